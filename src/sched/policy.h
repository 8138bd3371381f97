// A scoring policy: given the state of one node that passed the filters and a request, it returns
// how good the placement would be (higher is better) and, for a fractional GPU request, which GPU
// to use. Policies are pure: they read only their arguments and their own construction-time
// configuration, never clocks, randomness or the rest of the cluster. That is what lets the
// Scheduler score each node equivalence class once and cache the result.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sched/cluster_state.h"
#include "sched/workload.h"

namespace lepton::sched {

// NodeScore::gpu_free_value meaning "any GPU that fits, chosen uniformly at random".
inline constexpr int16_t kAnyFittingGpu = -1;

struct NodeScore {
  double score = 0;
  // For a fractional request: the free capacity (milli) of the GPU the request should take. Any
  // physical GPU with that free capacity is equivalent. Unused for other requests.
  int16_t gpu_free_value = kAnyFittingGpu;
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  // `state` fits `request` (the Scheduler filtered it). Must be a pure function of its inputs.
  virtual NodeScore score(const NodeState& state, const Request& request) const = 0;
  // True for a policy whose point is a random choice: ties are then broken uniformly at random
  // whatever the Scheduler's tie-break option says.
  virtual bool chooses_at_random() const { return false; }
};

// What policies may be configured with. The typical workload is what fragmentation-aware policies
// measure fragmentation against (the FGD paper's "target workload").
struct PolicyConfig {
  TypicalWorkload workload;
};

struct PolicyInfo {
  std::string_view name;         // as given to --policy
  std::string_view dotted_name;  // stable name, e.g. "sched.score.fgd"
  std::string_view summary;      // one line for help text and docs
  std::unique_ptr<Policy> (*make)(const PolicyConfig& config);
};

// The built-in policies, in the order they are reported.
const std::vector<PolicyInfo>& builtin_policies();
// Creates a policy by name; the error lists the valid names.
Result<std::unique_ptr<Policy>> make_policy(std::string_view name, const PolicyConfig& config);
// The default policy's name ("lepton").
inline constexpr std::string_view kDefaultPolicy = "lepton";

// Shared GPU choice for fractional requests: the GPU with the least free capacity that still fits
// (the tightest fit). Returns that free capacity.
int16_t tightest_gpu(const NodeState& state, int32_t gpu_milli);

}  // namespace lepton::sched
