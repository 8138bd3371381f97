// lepton, the default policy: FGD's squashed fragmentation gradient with two tie-breaks among
// equally scored nodes. Measurements behind each choice, and what did not work, are in
// docs/scheduling.md.
//   primary   = int(100 * sigmoid((F(before) - F(after)) / 1000)), F = expected fragmented GPU
//               capacity over the typical workload (as FGD).
//   secondary = for a CPU-only pod: minus the node's free GPU capacity (put CPU load where GPUs are
//               already used, so free GPUs are not stranded without CPU);
//               for a GPU pod: -1 when the node is entirely empty (do not open a fresh node when an
//               equally good used one exists).
// Remaining ties go to the Scheduler's tie-break (lowest node rank). A fractional request takes
// the first GPU (largest free capacity) reaching the node's best primary score.
#include <cmath>

#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class LeptonPolicy final : public Policy {
 public:
  explicit LeptonPolicy(TypicalWorkload workload) : workload_(std::move(workload)) {}
  std::string_view name() const override { return "lepton"; }

  NodeScore score(const NodeState& state, const Request& request) const override {
    const double before = gpu_frag_milli(state, workload_);
    if (!request.res.fractional()) {
      return {value(state, before, state_after(state, request, 0)), 0};
    }
    NodeScore best{-HUGE_VAL, kAnyFittingGpu};
    int16_t previous = -1;
    for (int i = 0; i < state.gpu_count; ++i) {
      int16_t free = state.gpu_free_sorted[i];
      if (free < request.res.gpu_milli) break;
      if (free == previous) continue;  // same capacity, same outcome
      previous = free;
      double v = value(state, before, state_after(state, request, free));
      if (v > best.score) best = {v, free};
    }
    return best;
  }

 private:
  static double squash(double delta_milli) {
    return static_cast<double>(
        static_cast<int64_t>(100.0 / (1.0 + std::exp(-delta_milli / kMilliPerGpu))));
  }

  double value(const NodeState& state, double frag_before, const NodeState& after) const {
    const double primary = squash(frag_before - gpu_frag_milli(after, workload_));
    const bool cpu_only = after.gpu_free_total() == state.gpu_free_total();
    double secondary;
    if (cpu_only) {
      secondary = -static_cast<double>(after.gpu_free_total());
    } else {
      secondary = state.full_free_gpus() == state.gpu_count ? -1 : 0;
    }
    return primary * 1e9 + secondary;
  }

  TypicalWorkload workload_;
};

}  // namespace

std::unique_ptr<Policy> make_lepton_policy(const PolicyConfig& config) {
  return std::make_unique<LeptonPolicy>(config.workload);
}

}  // namespace lepton::sched
