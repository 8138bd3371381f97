// Micro-benchmarks of the scheduler's hot paths on the Alibaba cluster shape: one decision on a
// cluster filled to 80% of its GPUs (the decision is not applied, so every iteration sees the same
// state), and the fragmentation measure of one node.
#include <benchmark/benchmark.h>

#include <map>

#include "sched/scheduler.h"
#include "sim/alibaba_trace.h"
#include "sim/alloc_experiment.h"

namespace lepton {
namespace {

const std::string kDir = std::string(LEPTON_SOURCE_DIR) + "/data/traces/alibaba-gpu-v2023/";

struct Fixture {
  sched::ClusterState cluster;
  std::vector<sched::Request> requests;
  sched::TypicalWorkload typical;
};

Fixture& fixture(int64_t nodes) {
  static std::map<int64_t, Fixture> cache;
  auto [it, inserted] = cache.try_emplace(nodes);
  if (!inserted) return it->second;
  Fixture& f = it->second;
  auto shape = sim::read_alibaba_nodes(kDir + "openb_node_list_gpu_node.csv").value();
  auto pods = sim::read_alibaba_pods(kDir + "openb_pod_list_default.csv").value();
  for (int64_t i = 0; i < nodes; ++i) {
    auto spec = shape[static_cast<size_t>(i) % shape.size()];
    spec.name = "n" + std::to_string(i);
    (void)f.cluster.add_node(spec);
  }
  for (const auto& p : pods) {
    f.requests.push_back(
        {p.res, p.gpu_spec.empty() ? sched::kAnyModel : f.cluster.model_mask(p.gpu_spec)});
  }
  f.typical = sched::TypicalWorkload::from_requests(f.requests, 0.95);
  auto policy = sched::make_policy("bestfit", {f.typical});
  sched::Scheduler filler(std::move(policy.value()), {});
  uint64_t rng = 1;
  int64_t arrived = 0;
  while (arrived < f.cluster.gpu_capacity_milli() * 8 / 10) {
    const auto& r = f.requests[sim::uniform_below(rng, f.requests.size())];
    arrived += r.res.total_gpu_milli();
    auto d = filler.decide(f.cluster, r);
    if (d.placement) f.cluster.bind(r, *d.placement);
  }
  return f;
}

void BM_Decide(benchmark::State& state, const char* policy_name) {
  Fixture& f = fixture(state.range(0));
  sched::Scheduler s(std::move(sched::make_policy(policy_name, {f.typical}).value()), {});
  uint64_t rng = 7;
  for (auto _ : state) {
    const auto& r = f.requests[sim::uniform_below(rng, f.requests.size())];
    benchmark::DoNotOptimize(s.decide(f.cluster, r));
  }
  state.counters["classes"] = static_cast<double>(f.cluster.live_class_count());
}

void BM_NodeFragmentation(benchmark::State& state) {
  Fixture& f = fixture(1213);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sched::gpu_frag_milli(
        f.cluster.state(static_cast<sched::NodeId>(i++ % f.cluster.node_count())), f.typical));
  }
}

BENCHMARK_CAPTURE(BM_Decide, bestfit, "bestfit")->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_Decide, fgd, "fgd")->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_Decide, lepton, "lepton")->Arg(1000)->Arg(10000);
BENCHMARK(BM_NodeFragmentation);

}  // namespace
}  // namespace lepton

BENCHMARK_MAIN();
