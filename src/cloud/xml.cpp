#include "cloud/xml.h"

#include <algorithm>
#include <cstdint>

#include "core/hex.h"

namespace lepton::cloud::xml {

const Element* Element::child(std::string_view child_name) const {
  for (const Element& c : children) {
    if (c.name == child_name) return &c;
  }
  return nullptr;
}

std::string Element::child_text(std::string_view child_name) const {
  const Element* c = child(child_name);
  return c ? c->text : std::string();
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool is_name_start(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || u >= 0x80;
}

bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

// XML 1.0 allows tab, LF and CR among the C0 controls, and no DEL-free restriction beyond that.
bool is_allowed_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 || c == '\t' || c == '\n' || c == '\r';
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Result<Element> document() {
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // UTF-8 byte order mark
    if (s_.substr(pos_, 5) == "<?xml") {
      LEPTON_RETURN_IF_ERROR(skip_processing_instruction());
    }
    LEPTON_RETURN_IF_ERROR(skip_misc());
    if (s_.substr(pos_, 9) == "<!DOCTYPE") return error("no DOCTYPE (not supported)");
    if (at_end() || s_[pos_] != '<') return error("'<' starting the root element");
    Element root;
    LEPTON_RETURN_IF_ERROR(element(root, 1));
    LEPTON_RETURN_IF_ERROR(skip_misc());
    if (!at_end()) return error("end of input after the root element </" + root.name + ">");
    return root;
  }

 private:
  bool at_end() const { return pos_ >= s_.size(); }
  bool starts_with(std::string_view prefix) const {
    return s_.substr(pos_, prefix.size()) == prefix;
  }

  std::string got() const {
    if (at_end()) return "end of input";
    const char c = s_[pos_];
    if (!is_allowed_char(c)) {
      std::string out = "byte 0x";
      append_hex(out, static_cast<unsigned char>(c), HexCase::kUpper);
      return out;
    }
    return "'" + std::string(s_.substr(pos_, std::min<size_t>(12, s_.size() - pos_))) + "'";
  }

  // The 1-based line of byte `at`; calls come with increasing `at`, so counting resumes.
  int line_at(size_t at) {
    for (; counted_to_ < at && counted_to_ < s_.size(); ++counted_to_) {
      if (s_[counted_to_] == '\n') ++counted_lines_;
    }
    return counted_lines_;
  }

  Status error(const std::string& expected) const { return error_at(pos_, expected, got()); }

  Status error_at(size_t at, const std::string& expected, const std::string& got_text) const {
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    return Status::invalid_argument("xml:" + std::to_string(line) + ":" +
                                    std::to_string(at - line_start + 1) + ": expected " + expected +
                                    ", got " + got_text);
  }

  void skip_space() {
    while (!at_end() && is_space(s_[pos_])) ++pos_;
  }

  // Whitespace, comments and processing instructions, outside the root element.
  Status skip_misc() {
    for (;;) {
      skip_space();
      if (starts_with("<!--")) {
        LEPTON_RETURN_IF_ERROR(skip_comment());
      } else if (starts_with("<?")) {
        LEPTON_RETURN_IF_ERROR(skip_processing_instruction());
      } else {
        return Status::ok();
      }
    }
  }

  Status skip_until(std::string_view terminator, const std::string& what) {
    const size_t start = pos_;
    const size_t end = s_.find(terminator, pos_);
    if (end == std::string_view::npos) {
      pos_ = s_.size();
      return error("'" + std::string(terminator) + "' closing the " + what);
    }
    for (size_t i = start; i < end; ++i) {
      if (!is_allowed_char(s_[i])) {
        pos_ = i;
        return error("a character allowed in XML inside the " + what);
      }
    }
    pos_ = end + terminator.size();
    return Status::ok();
  }

  Status skip_comment() {
    pos_ += 4;  // "<!--"
    return skip_until("-->", "comment");
  }

  Status skip_processing_instruction() {
    pos_ += 2;  // "<?"
    return skip_until("?>", "processing instruction");
  }

  Result<std::string> name(const std::string& what) {
    if (at_end() || !is_name_start(s_[pos_])) return error(what);
    const size_t start = pos_;
    while (!at_end() && is_name_char(s_[pos_])) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  // At '&': decodes one entity or character reference into `out`.
  Status reference(std::string& out) {
    const size_t start = pos_;
    const size_t semi = s_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 12) {
      return error("an entity such as &amp; or &#38; after '&'");
    }
    const std::string_view body = s_.substr(pos_ + 1, semi - pos_ - 1);
    if (body == "lt") {
      out += '<';
    } else if (body == "gt") {
      out += '>';
    } else if (body == "amp") {
      out += '&';
    } else if (body == "quot") {
      out += '"';
    } else if (body == "apos") {
      out += '\'';
    } else if (body.size() >= 2 && body[0] == '#') {
      const bool hex = body[1] == 'x';
      const std::string_view digits = body.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      bool valid = !digits.empty();
      for (char c : digits) {
        const int d = hex ? hex_digit_value(c) : (c >= '0' && c <= '9' ? c - '0' : -1);
        if (d < 0) {
          valid = false;
          break;
        }
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
        if (cp > 0x10FFFF) {
          valid = false;
          break;
        }
      }
      const bool allowed_control = cp == 0x9 || cp == 0xA || cp == 0xD;
      if (!valid || (cp < 0x20 && !allowed_control) || (cp >= 0xD800 && cp <= 0xDFFF) ||
          cp == 0xFFFE || cp == 0xFFFF) {
        return error_at(start, "a character reference to a character allowed in XML",
                        "'&" + std::string(body) + ";'");
      }
      append_utf8(out, cp);
    } else {
      return error_at(start, "one of &lt; &gt; &amp; &quot; &apos; or a character reference",
                      "'&" + std::string(body) + ";'");
    }
    pos_ = semi + 1;
    return Status::ok();
  }

  Status attribute_value(std::string& out) {
    if (at_end() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
      return error("a quoted attribute value");
    }
    const char quote = s_[pos_++];
    for (;;) {
      if (at_end()) return error(std::string("closing ") + quote + " of the attribute value");
      const char c = s_[pos_];
      if (c == quote) {
        ++pos_;
        return Status::ok();
      }
      if (c == '<') return error("no '<' inside an attribute value");
      if (!is_allowed_char(c)) return error("a character allowed in XML");
      if (c == '&') {
        LEPTON_RETURN_IF_ERROR(reference(out));
      } else {
        out += c;
        ++pos_;
      }
    }
  }

  // At '<' of a start tag.
  Status element(Element& e, int depth) {
    if (depth > kMaxDepth) {
      return error("at most " + std::to_string(kMaxDepth) + " levels of nested elements");
    }
    const size_t start = pos_;
    e.line = line_at(start);
    ++pos_;  // '<'
    auto element_name = name("an element name after '<'");
    if (!element_name.is_ok()) return element_name.status();
    e.name = std::move(element_name.value());
    for (;;) {
      const size_t before_space = pos_;
      skip_space();
      if (starts_with("/>")) {
        pos_ += 2;
        return Status::ok();
      }
      if (starts_with(">")) {
        ++pos_;
        break;
      }
      if (pos_ == before_space) return error("'>', '/>' or whitespace in <" + e.name + ">");
      auto attribute_name = name("an attribute name, '>' or '/>' in <" + e.name + ">");
      if (!attribute_name.is_ok()) return attribute_name.status();
      for (const auto& a : e.attributes) {
        if (a.first == attribute_name.value()) {
          return error_at(pos_ - a.first.size(), "each attribute once in <" + e.name + ">",
                          "'" + a.first + "' again");
        }
      }
      skip_space();
      if (!starts_with("=")) return error("'=' after attribute " + attribute_name.value());
      ++pos_;
      skip_space();
      std::string value;
      LEPTON_RETURN_IF_ERROR(attribute_value(value));
      e.attributes.emplace_back(std::move(attribute_name.value()), std::move(value));
    }
    // Content, up to the matching end tag.
    for (;;) {
      if (at_end())
        return error("</" + e.name + "> closing the element opened on line " +
                     std::to_string(e.line));
      const char c = s_[pos_];
      if (c == '<') {
        if (starts_with("</")) {
          pos_ += 2;
          const size_t name_at = pos_;
          auto end_name = name("an element name after '</'");
          if (!end_name.is_ok()) return end_name.status();
          if (end_name.value() != e.name) {
            return error_at(
                name_at,
                "</" + e.name + "> closing the element opened on line " + std::to_string(e.line),
                "</" + end_name.value() + ">");
          }
          skip_space();
          if (!starts_with(">")) return error("'>' ending </" + e.name + ">");
          ++pos_;
          return Status::ok();
        }
        if (starts_with("<!--")) {
          LEPTON_RETURN_IF_ERROR(skip_comment());
        } else if (starts_with("<![CDATA[")) {
          pos_ += 9;
          const size_t data_start = pos_;
          LEPTON_RETURN_IF_ERROR(skip_until("]]>", "CDATA section"));
          e.text += s_.substr(data_start, pos_ - 3 - data_start);
        } else if (starts_with("<?")) {
          LEPTON_RETURN_IF_ERROR(skip_processing_instruction());
        } else if (starts_with("<!")) {
          return error("an element, a comment or CDATA after '<!'");
        } else {
          e.children.emplace_back();
          LEPTON_RETURN_IF_ERROR(element(e.children.back(), depth + 1));
        }
      } else if (c == '&') {
        LEPTON_RETURN_IF_ERROR(reference(e.text));
      } else if (!is_allowed_char(c)) {
        return error("a character allowed in XML");
      } else {
        e.text += c;
        ++pos_;
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  size_t counted_to_ = 0;
  int counted_lines_ = 1;
};

}  // namespace

Result<Element> parse(std::string_view document) { return Parser(document).document(); }

}  // namespace lepton::cloud::xml
