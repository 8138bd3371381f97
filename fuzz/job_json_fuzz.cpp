// libFuzzer target: any input must give a job spec or an error, never a crash; a spec read from
// JSON must survive writing and reading again unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "spec/job_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = lepton::spec::job_spec_from_json(text);
  if (!result.is_ok()) {
    if (result.status().message().empty()) std::abort();
    return 0;
  }
  std::string json = lepton::spec::job_spec_to_json(*result);
  auto back = lepton::spec::job_spec_from_json(json);
  if (!back.is_ok() || !(*back == *result) || lepton::spec::job_spec_to_json(*back) != json) {
    std::abort();
  }
  return 0;
}
