// libFuzzer target: any input must give a deployment spec or an error that names the file, never
// a crash or a hang; a spec read from YAML must survive the JSON round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "spec/deployment_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = lepton::spec::parse_deployment_yaml(text, "fuzz.yaml");
  if (!result.is_ok()) {
    if (result.status().message().rfind("fuzz.yaml:", 0) != 0) std::abort();
    return 0;
  }
  auto back =
      lepton::spec::deployment_spec_from_json(lepton::spec::deployment_spec_to_json(*result));
  if (!back.is_ok() || !(*back == *result)) std::abort();
  return 0;
}
