// Small text helpers shared by the parsers of several modules.
#pragma once

#include <cctype>
#include <string_view>

namespace lepton {

// `s` without the white space (isspace: spaces, tabs, CR, LF...) at either end.
inline std::string_view trim_space(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace lepton
