// `lepton bench sched`: placement decisions per second and decision latency of one policy on a
// synthetic cluster of N nodes shaped like the Alibaba one (its node list repeated), filled from
// empty by pods drawn from a trace until the arrived GPU request reaches `fill_pct` of capacity.
// Only Scheduler::decide is timed; binding and bookkeeping are not. Single-threaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sched/cluster_state.h"
#include "sim/alibaba_trace.h"

namespace lepton::sim {

struct SchedBenchOptions {
  int64_t nodes = 10000;
  std::string policy = "lepton";
  uint64_t seed = 42;
  int fill_pct = 100;
  double max_seconds = 20;  // stop early (and say so) past this much decision time
};

struct SchedBenchResult {
  int64_t nodes = 0;
  int64_t gpus = 0;
  int64_t decisions = 0;
  int64_t placed = 0;
  bool stopped_early = false;
  double decide_seconds = 0;
  double placements_per_sec = 0;  // decisions per second of decision time
  double p50_us = 0, p99_us = 0, max_us = 0;
  double bytes_per_node = 0;  // resident memory growth while building the cluster, per node
  size_t classes_at_end = 0;  // live node equivalence classes when the run ended
  double final_alloc_pct = 0;
};

Result<SchedBenchResult> run_sched_bench(const std::vector<sched::NodeSpec>& shape,
                                         const std::vector<TracePod>& pods,
                                         const SchedBenchOptions& options);

}  // namespace lepton::sim
