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
#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

class LeptonPolicy final : public Policy {
 public:
  explicit LeptonPolicy(TypicalWorkload workload) : workload_(std::move(workload)) {}
  std::string_view name() const override { return "lepton"; }

  NodeScore score(const NodeState& state, const Request& request) const override {
    const double before = gpu_frag_milli(state, workload_);
    const bool cpu_only = request.res.gpu_count == 0;
    auto [v, gpu] = best_placement(state, request, [&](const NodeState& after) {
      return value(state, before, after, cpu_only);
    });
    return {v, gpu};
  }

 private:
  double value(const NodeState& state, double frag_before, const NodeState& after,
               bool cpu_only) const {
    const double primary = fgd_squash(frag_before - gpu_frag_milli(after, workload_));
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
