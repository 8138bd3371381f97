// libFuzzer target: any catalog text, as any cloud's file, gives offers or an error that names the
// file, never a crash. The first byte picks the cloud, so each cloud's column handling is reached.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cloud/catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr std::array<std::string_view, 5> kClouds = {"aws", "gcp", "azure", "lambda",
                                                              "runpod"};
  const std::string_view cloud = kClouds[data[0] % kClouds.size()];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto result = lepton::cloud::parse_catalog(text, "fuzz.csv", cloud);
  if (!result.is_ok() && result.status().message().rfind("fuzz.csv", 0) != 0) std::abort();
  return 0;
}
