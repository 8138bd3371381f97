// libFuzzer target: any bytes given to the API server's request parser (the same parser, limits
// and framing checks) must give a request or an error, never a crash; a request's path holds no
// query, its segments none empty, its header names are lower-case and its body within the limit.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto result = lepton::net::parse_request(raw, /*max_body_bytes=*/1 << 16);
  if (!result.is_ok()) {
    if (result.status().message().empty()) std::abort();
    return 0;
  }
  if (result->path.find('?') != std::string::npos) std::abort();
  for (const std::string& segment : result->segments) {
    if (segment.empty()) std::abort();
  }
  for (const auto& [name, value] : result->headers) {
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') std::abort();
    }
  }
  if (result->body.size() > (1 << 16)) std::abort();
  return 0;
}
