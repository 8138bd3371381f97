// libFuzzer target: any input must give a parse or an error that names the file, never a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sim/alibaba_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = lepton::sim::parse_alibaba_nodes(text, "fuzz.csv");
  if (!result.is_ok() && result.status().message().rfind("fuzz.csv:", 0) != 0) std::abort();
  return 0;
}
