// The FGD paper's allocation experiment (Weng et al., ATC'23, section 6; the "tune 1.3" runs of its
// simulator): pods drawn from a trace arrive one at a time into an empty cluster until the GPU they
// request reaches `arrive_to` (130%) of the cluster's GPU capacity. A pod that fits nowhere is
// dropped; no pod ever leaves. After every arrival the GPU allocation and fragmentation are
// recorded against the arrived workload.
//
// The workload of a seed, exactly as the FGD simulator builds it: the trace's pods sorted by name
// and shuffled; then, while the total GPU request is below the target, pods drawn uniformly with
// replacement from the trace are appended (stopping at the first draw whose per-GPU share would
// cross the target, a quirk of the simulator kept for fidelity); above the target, random pods are
// removed instead. Nodes are ranked by a random permutation and ties go to the lowest rank.
// The random numbers come from our own generator, not Go's, so individual seeds differ from the
// published runs while their distribution is the same.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sched/cluster_state.h"
#include "sched/scheduler.h"
#include "sim/alibaba_trace.h"

namespace lepton::sim {

struct AllocOptions {
  std::string policy = "lepton";
  std::vector<uint64_t> seeds = {42, 43, 44, 45, 46, 47, 48, 49, 50, 51};
  int arrive_to_pct = 130;
  // Share of the trace's pods the typical workload covers (the simulator's popularity threshold).
  double typical_coverage = 0.95;
  sched::TieBreak ties = sched::TieBreak::kLowestNodeId;
};

struct AllocRun {
  uint64_t seed = 0;
  // Index k: mean over arrival events whose arrived GPU request rounds to k% of capacity
  // (NaN when no event is near k), as the simulator's analysis scripts discretise.
  std::vector<double> alloc_pct;
  std::vector<double> frag_pct;
  int64_t pods_arrived = 0;
  int64_t pods_placed = 0;
  double seconds = 0;
};

struct AllocResult {
  std::string policy;
  std::vector<AllocRun> runs;
  std::vector<double> mean_alloc_pct;  // per arrived percent, mean over seeds
  std::vector<double> mean_frag_pct;
  double gpu_alloc_pct = 0;  // mean over seeds at arrive_to_pct
  double frag_pct = 0;
  double seconds = 0;  // wall time of all seeds
};

// Builds the arrival sequence of one seed (exposed for tests).
std::vector<const TracePod*> arrival_sequence(const std::vector<TracePod>& pods,
                                              int64_t gpu_capacity_milli, int arrive_to_pct,
                                              uint64_t seed);

// Runs every seed. `progress(done, total)` is called after each seed when set.
Result<AllocResult> run_alloc_experiment(const std::vector<sched::NodeSpec>& nodes,
                                         const std::vector<TracePod>& pods,
                                         const AllocOptions& options,
                                         const std::function<void(size_t, size_t)>& progress = {});

// A deterministic uniform integer in [0, n), the same on every platform (std's distributions are
// implementation-defined).
uint64_t uniform_below(uint64_t& state, uint64_t n);

}  // namespace lepton::sim
