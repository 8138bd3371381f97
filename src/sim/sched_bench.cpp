#include "sim/sched_bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "sched/scheduler.h"
#include "sim/alloc_experiment.h"

namespace lepton::sim {
namespace {

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace

Result<SchedBenchResult> run_sched_bench(const std::vector<sched::NodeSpec>& shape,
                                         const std::vector<TracePod>& pods,
                                         const SchedBenchOptions& options) {
  if (options.nodes < 1 || options.nodes > 10'000'000) {
    return Status::invalid_argument("nodes: expected 1..10000000");
  }
  if (shape.empty()) return Status::invalid_argument("nodes file: no nodes to shape the cluster");
  if (pods.empty()) return Status::invalid_argument("pods file: no pods to draw from");
  SchedBenchResult r;
  r.nodes = options.nodes;
  const int64_t rss_before = resident_bytes();
  sched::ClusterState cluster;
  for (int64_t i = 0; i < options.nodes; ++i) {
    sched::NodeSpec spec = shape[static_cast<size_t>(i) % shape.size()];
    spec.name = "node-" + std::to_string(i);
    auto id = cluster.add_node(spec);
    if (!id.is_ok()) return id.status();
  }
  r.bytes_per_node =
      static_cast<double>(resident_bytes() - rss_before) / static_cast<double>(options.nodes);
  r.gpus = cluster.gpu_capacity_milli() / kMilliPerGpu;

  std::vector<sched::Request> requests;
  requests.reserve(pods.size());
  for (const TracePod& p : pods) {
    requests.push_back(
        {p.res, p.gpu_spec.empty() ? sched::kAnyModel : cluster.model_mask(p.gpu_spec)});
  }
  auto policy =
      sched::make_policy(options.policy, {sched::TypicalWorkload::from_requests(requests, 0.95)});
  if (!policy.is_ok()) return policy.status();
  sched::Scheduler scheduler(std::move(*policy), {.seed = options.seed});

  uint64_t rng = options.seed;
  const int64_t target = cluster.gpu_capacity_milli() * options.fill_pct / 100;
  int64_t arrived = 0;
  std::vector<double> latencies_us;
  double total = 0;
  while (arrived < target) {
    const sched::Request& req = requests[uniform_below(rng, requests.size())];
    arrived += req.res.total_gpu_milli();
    auto t0 = std::chrono::steady_clock::now();
    sched::Decision d = scheduler.decide(cluster, req);
    double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    latencies_us.push_back(us);
    total += us;
    ++r.decisions;
    if (d.placement) {
      cluster.bind(req, *d.placement);
      ++r.placed;
    }
    if (total > options.max_seconds * 1e6) {
      r.stopped_early = true;
      break;
    }
  }
  r.classes_at_end = cluster.live_class_count();
  r.decide_seconds = total / 1e6;
  r.placements_per_sec =
      r.decide_seconds > 0 ? static_cast<double>(r.decisions) / r.decide_seconds : 0;
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double q) {
    if (latencies_us.empty()) return 0.0;
    size_t i = static_cast<size_t>(q * static_cast<double>(latencies_us.size() - 1));
    return latencies_us[i];
  };
  r.p50_us = pct(0.50);
  r.p99_us = pct(0.99);
  r.max_us = latencies_us.empty() ? 0 : latencies_us.back();
  r.final_alloc_pct = 100.0 * static_cast<double>(cluster.gpu_allocated_milli()) /
                      static_cast<double>(cluster.gpu_capacity_milli());
  return r;
}

}  // namespace lepton::sim
