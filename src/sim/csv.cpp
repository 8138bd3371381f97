#include "sim/csv.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace lepton::sim {

bool CsvReader::next(CsvRow& row) {
  while (!rest_.empty()) {
    size_t end = rest_.find('\n');
    std::string_view line = rest_.substr(0, end);
    rest_ = end == std::string_view::npos ? std::string_view{} : rest_.substr(end + 1);
    ++line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    row.fields.clear();
    row.columns.clear();
    for (size_t start = 0;;) {
      size_t comma = line.find(',', start);
      row.fields.push_back(line.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      row.columns.push_back(start + 1);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return true;
  }
  return false;
}

Status CsvReader::error(size_t column, std::string_view message) const {
  return Status::invalid_argument(std::string(file_) + ":" +
                                  std::to_string(std::max<size_t>(line_, 1)) + ":" +
                                  std::to_string(column) + ": " + std::string(message));
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found(path + ": cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::invalid_argument(path + ": read error");
  return ss.str();
}

}  // namespace lepton::sim
