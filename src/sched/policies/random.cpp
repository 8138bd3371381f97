// Random: every feasible node is equally likely, and so is every GPU that fits on it. The
// baseline of the FGD paper (01-Random).
#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class RandomPolicy final : public Policy {
 public:
  std::string_view name() const override { return "random"; }
  NodeScore score(const NodeState&, const Request&) const override { return {0, kAnyFittingGpu}; }
  bool chooses_at_random() const override { return true; }
};

}  // namespace

std::unique_ptr<Policy> make_random_policy(const PolicyConfig&) {
  return std::make_unique<RandomPolicy>();
}

}  // namespace lepton::sched
