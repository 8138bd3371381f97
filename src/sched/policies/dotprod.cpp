// DotProd: prefers the node whose free (CPU, GPU) vector is least aligned with the request, as the
// FGD simulator's DotProductScore (02-DotProd): score = int(100 * (1 - <free, request> / 2)), both
// vectors normalised by the largest node (128 cores, 8 GPUs). Fractional requests take the
// tightest GPU that fits.
#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class DotProdPolicy final : public Policy {
 public:
  std::string_view name() const override { return "dotprod"; }
  NodeScore score(const NodeState& state, const Request& request) const override {
    const Resources& r = request.res;
    double dot = static_cast<double>(state.cpu_free) / kFgdMaxSpecCpuMilli *
                     (static_cast<double>(r.cpu_milli) / kFgdMaxSpecCpuMilli) +
                 static_cast<double>(state.gpu_free_total()) / kFgdMaxSpecGpuMilli *
                     (static_cast<double>(r.total_gpu_milli()) / kFgdMaxSpecGpuMilli);
    double score = static_cast<double>(static_cast<int64_t>(100 * (1 - dot / 2)));
    return {score, r.fractional() ? tightest_gpu(state, r.gpu_milli) : int16_t{0}};
  }
};

}  // namespace

std::unique_ptr<Policy> make_dotprod_policy(const PolicyConfig&) {
  return std::make_unique<DotProdPolicy>();
}

}  // namespace lepton::sched
