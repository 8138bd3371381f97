// lepton, the default policy: FGD's squashed fragmentation gradient, for GPU pods over a
// fragmentation measure that also counts GPUs stranded by a shortage of CPU, with two tie-breaks
// among equally scored nodes. Measurements behind each choice, and what did not work, are in
// docs/scheduling.md.
//   F(node)   = FGD's expected fragmented GPU capacity over the typical workload
//               + (for a GPU pod) max(0, free GPU - free CPU / r), the node's free GPU capacity
//               that its free CPU cannot serve when tasks take CPU and GPU in the workload's ratio
//               r (the popularity-weighted CPU over the popularity-weighted GPU of its GPU tasks).
//               Both terms are in milli-GPUs; neither is scaled. A CPU-only pod is scored on FGD's
//               measure alone: its tie-break below already keeps CPU load off free GPUs, and the
//               extra term made it seek CPU-rich nodes with free GPUs instead (measured: worse).
//   primary   = int(100 * sigmoid((F(before) - F(after)) / 1000)), squashed as FGD squashes.
//   secondary = for a CPU-only pod: minus the node's free GPU capacity (put CPU load where GPUs are
//               already used, so free GPUs are not stranded without CPU);
//               for a GPU pod: -1 when the node is entirely empty (do not open a fresh node when an
//               equally good used one exists).
// Remaining ties go to the Scheduler's tie-break (lowest node rank). A fractional request takes
// the first GPU (largest free capacity) reaching the node's best primary score.
#include <algorithm>

#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

// CPU milli-cores per milli-GPU that the workload's GPU tasks take, weighted by popularity; 0 when
// it has no GPU task or they take no CPU.
double cpu_per_gpu(const TypicalWorkload& workload) {
  double cpu = 0, gpu = 0;
  for (const TaskType& t : workload.types) {
    if (t.request.res.gpu_count == 0) continue;
    cpu += t.weight * static_cast<double>(t.request.res.cpu_milli);
    gpu += t.weight * static_cast<double>(t.request.res.total_gpu_milli());
  }
  return gpu > 0 ? cpu / gpu : 0;
}

class LeptonPolicy final : public Policy {
 public:
  explicit LeptonPolicy(TypicalWorkload workload)
      : workload_(std::move(workload)), cpu_per_gpu_(cpu_per_gpu(workload_)) {}
  std::string_view name() const override { return "lepton"; }

  NodeScore score(const NodeState& state, const Request& request) const override {
    const bool cpu_only = request.res.gpu_count == 0;
    const double before = frag(state, cpu_only);
    auto [v, gpu] = best_placement(state, request, [&](const NodeState& after) {
      return value(state, before, after, cpu_only);
    });
    return {v, gpu};
  }

 private:
  // Free GPU capacity (milli) that the node's free CPU cannot serve at the workload's ratio.
  double cpu_stranded(const NodeState& state) const {
    if (cpu_per_gpu_ <= 0) return 0;
    return std::max(0.0, static_cast<double>(state.gpu_free_total()) -
                             static_cast<double>(state.cpu_free) / cpu_per_gpu_);
  }

  double frag(const NodeState& state, bool cpu_only) const {
    const double f = gpu_frag_milli(state, workload_);
    return cpu_only ? f : f + cpu_stranded(state);
  }

  double value(const NodeState& state, double frag_before, const NodeState& after,
               bool cpu_only) const {
    const double primary = fgd_squash(frag_before - frag(after, cpu_only));
    double secondary;
    if (cpu_only) {
      secondary = -static_cast<double>(after.gpu_free_total());
    } else {
      secondary = state.full_free_gpus() == state.gpu_count ? -1 : 0;
    }
    return primary * 1e9 + secondary;
  }

  TypicalWorkload workload_;
  double cpu_per_gpu_;
};

}  // namespace

std::unique_ptr<Policy> make_lepton_policy(const PolicyConfig& config) {
  return std::make_unique<LeptonPolicy>(config.workload);
}

}  // namespace lepton::sched
