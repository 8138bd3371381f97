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
#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class FgdPolicy final : public Policy {
 public:
  explicit FgdPolicy(TypicalWorkload workload) : workload_(std::move(workload)) {}
  std::string_view name() const override { return "fgd"; }

  NodeScore score(const NodeState& state, const Request& request) const override {
    const double before = gpu_frag_milli(state, workload_);
    // Ordered by the squashed score, then by the exact decrease (the GPU choice on ties).
    auto [value, gpu] = best_placement(state, request, [&](const NodeState& after) {
      const double delta = before - gpu_frag_milli(after, workload_);
      return std::pair{fgd_squash(delta), delta};
    });
    return {value.first, gpu};
  }

 private:
  TypicalWorkload workload_;
};

}  // namespace

std::unique_ptr<Policy> make_fgd_policy(const PolicyConfig& config) {
  return std::make_unique<FgdPolicy>(config.workload);
}

}  // namespace lepton::sched
