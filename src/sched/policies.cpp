#include "sched/policies/policies.h"

#include <cmath>
#include <string>

#include "sched/policy.h"

namespace lepton::sched {

const std::vector<PolicyInfo>& builtin_policies() {
  static const std::vector<PolicyInfo> kPolicies = {
      {"random", "sched.score.random", "a uniformly random feasible node (baseline)",
       make_random_policy},
      {"dotprod", "sched.score.dotprod",
       "smallest dot product of free and requested CPU/GPU (Tetris-style alignment)",
       make_dotprod_policy},
      {"gpupacking", "sched.score.gpupacking",
       "prefer partly used GPUs, then used nodes, then idle nodes", make_gpupacking_policy},
      {"bestfit", "sched.score.bestfit", "least CPU and GPU left over after placement",
       make_bestfit_policy},
      {"fgd", "sched.score.fgd",
       "fragmentation gradient descent (Weng et al., ATC'23), as in its simulator",
       make_fgd_policy},
      {"lepton", "sched.score.lepton",
       "lepton's default: FGD's fragmentation gradient, counting GPUs stranded without CPU; "
       "ties broken to keep CPU next to free GPUs and whole nodes empty",
       make_lepton_policy},
  };
  return kPolicies;
}

Result<std::unique_ptr<Policy>> make_policy(std::string_view name, const PolicyConfig& config) {
  std::string names;
  for (const PolicyInfo& p : builtin_policies()) {
    if (p.name == name || p.dotted_name == name) return p.make(config);
    names += names.empty() ? "" : ", ";
    names += p.name;
  }
  return Status::invalid_argument("policy '" + std::string(name) + "': expected one of " + names);
}

double fgd_squash(double delta_milli) {
  return static_cast<double>(
      static_cast<int64_t>(100.0 / (1.0 + std::exp(-delta_milli / kMilliPerGpu))));
}

int16_t tightest_gpu(const NodeState& state, int32_t gpu_milli) {
  // Descending order: the last GPU that still fits is the tightest.
  int16_t best = kAnyFittingGpu;
  for (int i = 0; i < state.gpu_count && state.gpu_free_sorted[i] >= gpu_milli; ++i) {
    best = state.gpu_free_sorted[i];
  }
  return best;
}

}  // namespace lepton::sched
