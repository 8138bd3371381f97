// FGD: fragmentation gradient descent (Weng et al., "Beware of Fragmentation", USENIX ATC'23),
// as its simulator computes it (06-FGD). The score of a placement is how much it lowers the node's
// expected fragmentation over the typical workload, squashed to an integer:
//   score = int(100 * sigmoid((F(before) - F(after)) / 1000)).
// A fractional request tries each GPU that fits and takes the best one. The integer squashing makes
// many nodes tie; the Scheduler's tie-break then decides, as in the simulator.
//
// One difference: when two GPUs of a node tie on the integer score, the simulator takes the lower
// device index; a policy here sees only the node's state, so it takes the GPU with the larger
// exact fragmentation decrease.
#include <cmath>

#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class FgdPolicy final : public Policy {
 public:
  explicit FgdPolicy(TypicalWorkload workload) : workload_(std::move(workload)) {}
  std::string_view name() const override { return "fgd"; }

  NodeScore score(const NodeState& state, const Request& request) const override {
    const double before = gpu_frag_milli(state, workload_);
    if (!request.res.fractional()) {
      double delta = before - gpu_frag_milli(state_after(state, request, 0), workload_);
      return {squash(delta), 0};
    }
    NodeScore best{-1, kAnyFittingGpu};
    double best_delta = 0;
    int16_t previous = -1;
    for (int i = 0; i < state.gpu_count; ++i) {
      int16_t free = state.gpu_free_sorted[i];
      if (free < request.res.gpu_milli) break;
      if (free == previous) continue;  // same capacity, same outcome
      previous = free;
      double delta = before - gpu_frag_milli(state_after(state, request, free), workload_);
      double s = squash(delta);
      if (s > best.score || (s == best.score && delta > best_delta)) {
        best = {s, free};
        best_delta = delta;
      }
    }
    return best;
  }

 private:
  static double squash(double delta_milli) {
    return static_cast<double>(
        static_cast<int64_t>(100.0 / (1.0 + std::exp(-delta_milli / kMilliPerGpu))));
  }

  TypicalWorkload workload_;
};

}  // namespace

std::unique_ptr<Policy> make_fgd_policy(const PolicyConfig& config) {
  return std::make_unique<FgdPolicy>(config.workload);
}

}  // namespace lepton::sched
