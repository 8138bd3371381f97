// libFuzzer target: any input must give a queue or an error, never a crash; a queue read from JSON
// must survive writing and reading again unchanged. The input is also applied as a PATCH body to
// a queue with every field set, which must give a valid queue or an error.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spec/queue_json.h"

namespace {

void check_round_trip(const lepton::QueueSpec& spec) {
  std::string json = lepton::spec::queue_spec_to_json(spec).dump();
  auto back = lepton::spec::queue_spec_from_json(json);
  if (!back.is_ok() || !(*back == spec) || lepton::spec::queue_spec_to_json(*back).dump() != json) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto created = lepton::spec::queue_spec_from_json(text);
  if (created.is_ok()) {
    check_round_trip(*created);
  } else if (created.status().message().empty()) {
    std::abort();
  }
  lepton::QueueSpec current;
  current.name = "team-a";
  current.parent = "dept";
  current.guaranteed = {4000, 16000, 65536};
  current.weight = 2;
  current.limit = lepton::Quota{8000, lepton::kUnlimited, 131072};
  auto updated = lepton::spec::update_queue_spec(current, text);
  if (updated.is_ok()) {
    if (!lepton::validate_queue_spec(*updated).is_ok() || updated->name != "team-a") std::abort();
    check_round_trip(*updated);
  } else if (updated.status().message().empty()) {
    std::abort();
  }
  return 0;
}
