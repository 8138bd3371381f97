// A reader for CSV files (RFC 4180): comma-separated fields, quoted or not. A quoted field may
// hold commas, line breaks and doubled quotes (""); a quote inside an unquoted field is an error.
// LF and CRLF end records; blank lines between records are skipped. Every field keeps the line
// and column where it starts, so errors can say exactly where input went wrong.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton {

struct CsvField {
  std::string text;   // quotes removed, "" read as "
  size_t line = 0;    // 1-based line where the field starts
  size_t column = 0;  // 1-based byte column where the field starts
};

class CsvReader {
 public:
  // `content` must outlive the reader; `file` names the input in errors.
  CsvReader(std::string_view content, std::string_view file) : text_(content), file_(file) {}

  // Reads the next record into `fields`; `got` is false at the end of the input. A malformed
  // record is an error naming its line and column.
  Status next(std::vector<CsvField>& fields, bool& got);

  // "FILE:LINE:COLUMN: message".
  Status error(size_t line, size_t column, std::string_view message) const;
  // The same at the start of `field`.
  Status error(const CsvField& field, std::string_view message) const {
    return error(field.line, field.column, message);
  }

 private:
  bool at_line_end() const;
  void skip_line_end();
  size_t column() const { return pos_ - line_start_ + 1; }

  std::string_view text_;
  std::string_view file_;
  size_t pos_ = 0;
  size_t line_ = 1;
  size_t line_start_ = 0;
};

}  // namespace lepton
