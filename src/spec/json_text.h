// JSON text for the wire and the terminal. Strings that are not valid UTF-8 (a task's raw output,
// say) would make nlohmann::json throw; here their bad bytes become U+FFFD instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lepton::spec {

inline std::string to_json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace lepton::spec
