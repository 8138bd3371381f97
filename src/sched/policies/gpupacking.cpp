// GpuPacking: the FGD simulator's GpuPackingScore (04-GpuPacking). A GPU request prefers, in
// bands: GPUs already partly used (the fuller the better), then fully free GPUs on a node that is
// already in use, then an idle node. CPU-only requests score 0 everywhere. Fractional requests take
// the tightest GPU that fits.
#include <algorithm>

#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class GpuPackingPolicy final : public Policy {
 public:
  std::string_view name() const override { return "gpupacking"; }
  NodeScore score(const NodeState& state, const Request& request) const override {
    const Resources& r = request.res;
    if (r.gpu_count == 0) return {0, 0};
    const int16_t gpu = r.fractional() ? tightest_gpu(state, r.gpu_milli) : int16_t{0};
    const int full = state.full_free_gpus();
    if (full == state.gpu_count) return {static_cast<double>(std::max(33 - full, full)), gpu};
    // The GPUs the request would take, scanning from the fullest (ascending free capacity).
    int picked = 0, picked_full = 0;
    int64_t left_pct = 0;
    for (int i = state.gpu_count - 1; i >= 0 && picked < r.gpu_count; --i) {
      int16_t left = state.gpu_free_sorted[i];
      if (left < r.gpu_milli) continue;
      ++picked;
      if (left == kMilliPerGpu) ++picked_full;
      left_pct += left * 100 / kMilliPerGpu;
    }
    if (picked_full > 0) return {static_cast<double>(std::max(50 - picked_full, 33)), gpu};
    return {static_cast<double>(std::max<int64_t>(100 - left_pct / 10, 50)), gpu};
  }
};

}  // namespace

std::unique_ptr<Policy> make_gpupacking_policy(const PolicyConfig&) {
  return std::make_unique<GpuPackingPolicy>();
}

}  // namespace lepton::sched
