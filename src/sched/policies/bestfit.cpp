// BestFit: the node with the least CPU and GPU left after placement, as the FGD simulator's
// BestFitScore (05-BestFit): score = int(100 * (1 - (cpu_left / 128 cores + gpu_left / 8 GPUs) /
// 2)). (The simulator then min-max normalises scores over feasible nodes; that is monotone and
// keeps the set of best nodes, so it is not repeated here.) Fractional requests take the tightest
// GPU.
#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class BestFitPolicy final : public Policy {
 public:
  std::string_view name() const override { return "bestfit"; }
  NodeScore score(const NodeState& state, const Request& request) const override {
    const Resources& r = request.res;
    double left = 0.5 * static_cast<double>(state.cpu_free - r.cpu_milli) / kFgdMaxSpecCpuMilli +
                  0.5 * static_cast<double>(state.gpu_free_total() - r.total_gpu_milli()) /
                      kFgdMaxSpecGpuMilli;
    double score = static_cast<double>(static_cast<int64_t>((1 - left) * 100));
    return {score, r.fractional() ? tightest_gpu(state, r.gpu_milli) : int16_t{0}};
  }
};

}  // namespace

std::unique_ptr<Policy> make_bestfit_policy(const PolicyConfig&) {
  return std::make_unique<BestFitPolicy>();
}

}  // namespace lepton::sched
