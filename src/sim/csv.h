// A minimal reader for the simulator's CSV inputs: comma-separated fields without quoting (the
// traces have none), one record per line, CRLF tolerated, blank lines skipped. It tracks the line
// and column of every field so errors can say exactly where input went wrong.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::sim {

// One CSV record split into fields, with the 1-based column where each field starts.
struct CsvRow {
  std::vector<std::string_view> fields;
  std::vector<size_t> columns;
};

class CsvReader {
 public:
  // `content` must outlive the reader and its rows; `file` names the input in errors.
  CsvReader(std::string_view content, std::string_view file) : rest_(content), file_(file) {}

  // Reads the next non-empty line into `row`; false at the end of the input.
  bool next(CsvRow& row);
  // "FILE:LINE:COLUMN: message" for the line last read (line 1 before any).
  Status error(size_t column, std::string_view message) const;

 private:
  std::string_view rest_;
  std::string_view file_;
  size_t line_ = 0;
};

// Reads a whole file; the error names the path.
Result<std::string> read_file(const std::string& path);

}  // namespace lepton::sim
