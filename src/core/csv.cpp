#include "core/csv.h"

#include <algorithm>

namespace lepton {

Status CsvReader::next(std::vector<CsvField>& fields, bool& got) {
  fields.clear();
  got = false;
  while (pos_ < text_.size() && at_line_end()) skip_line_end();
  if (pos_ >= text_.size()) return Status::ok();
  got = true;
  while (true) {
    CsvField f;
    f.line = line_;
    f.column = column();
    if (pos_ < text_.size() && text_[pos_] == '"') {
      ++pos_;
      while (true) {
        if (pos_ >= text_.size()) {
          return error(f.line, f.column, "unterminated quoted field (no closing '\"')");
        }
        const char c = text_[pos_];
        if (c == '"') {
          if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
            f.text.push_back('"');
            pos_ += 2;
            continue;
          }
          ++pos_;
          break;
        }
        f.text.push_back(c);
        ++pos_;
        if (c == '\n') {
          ++line_;
          line_start_ = pos_;
        }
      }
      if (pos_ < text_.size() && text_[pos_] != ',' && !at_line_end()) {
        return error(line_, column(), "expected ',' or the end of the line after a closing quote");
      }
    } else {
      while (pos_ < text_.size() && text_[pos_] != ',' && !at_line_end()) {
        if (text_[pos_] == '"') {
          return error(line_, column(), "a '\"' inside an unquoted field (quote the whole field)");
        }
        f.text.push_back(text_[pos_++]);
      }
    }
    fields.push_back(std::move(f));
    if (pos_ < text_.size() && text_[pos_] == ',') {
      ++pos_;
      continue;
    }
    if (pos_ < text_.size()) skip_line_end();
    return Status::ok();
  }
}

Status CsvReader::error(size_t line, size_t column, std::string_view message) const {
  return Status::invalid_argument(std::string(file_) + ":" + std::to_string(line) + ":" +
                                  std::to_string(column) + ": " + std::string(message));
}

bool CsvReader::at_line_end() const {
  return text_[pos_] == '\n' ||
         (text_[pos_] == '\r' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n') ||
         (text_[pos_] == '\r' && pos_ + 1 == text_.size());
}

void CsvReader::skip_line_end() {
  pos_ += text_[pos_] == '\r' ? 2 : 1;
  pos_ = std::min(pos_, text_.size());
  ++line_;
  line_start_ = pos_;
}

}  // namespace lepton
