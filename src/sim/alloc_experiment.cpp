#include "sim/alloc_experiment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "sim/random.h"

namespace lepton::sim {
namespace {

double round2(double v) { return std::nearbyint(v * 100) / 100; }

sched::Request to_request(const TracePod& pod, const sched::ClusterState& cluster) {
  sched::Request r;
  r.res = pod.res;
  r.allowed_models = pod.gpu_spec.empty() ? sched::kAnyModel : cluster.model_mask(pod.gpu_spec);
  return r;
}

// Per-percent accumulators of the recorded metrics.
struct Buckets {
  explicit Buckets(int n) : alloc(n + 1), frag(n + 1), count(n + 1) {}
  std::vector<double> alloc, frag;
  std::vector<int64_t> count;

  void add(int64_t k, double alloc_pct, double frag_pct) {
    if (k < 0 || k >= static_cast<int64_t>(count.size())) return;
    alloc[k] += alloc_pct;
    frag[k] += frag_pct;
    ++count[k];
  }
  // The simulator's scripts: the mean at k, else over k-1..k+1, else NaN.
  void finish(AllocRun& run) const {
    const int n = static_cast<int>(count.size());
    run.alloc_pct.assign(n, NAN);
    run.frag_pct.assign(n, NAN);
    for (int k = 0; k < n; ++k) {
      double a = alloc[k], f = frag[k];
      int64_t c = count[k];
      if (c == 0) {
        for (int j : {k - 1, k + 1}) {
          if (j < 0 || j >= n) continue;
          a += alloc[j];
          f += frag[j];
          c += count[j];
        }
      }
      if (c == 0) continue;
      run.alloc_pct[k] = round2(a / static_cast<double>(c));
      run.frag_pct[k] = round2(f / static_cast<double>(c));
    }
  }
};

Result<AllocRun> run_seed(const std::vector<sched::NodeSpec>& nodes_by_name,
                          const std::vector<TracePod>& pods, const sched::TypicalWorkload& typical,
                          const AllocOptions& options, uint64_t seed) {
  auto started = std::chrono::steady_clock::now();
  uint64_t rng = seed;
  // Nodes enter in a random rank order: node id = rank, and ties go to the lowest id.
  std::vector<size_t> order(nodes_by_name.size());
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);
  sched::ClusterState cluster;
  // Models first, in name order of the nodes, so model ids match the typical workload's masks.
  for (const sched::NodeSpec& n : nodes_by_name) {
    if (n.gpu_count > 0 && !cluster.add_model(n.gpu_model).is_ok()) {
      return Status::invalid_argument("node " + n.name + ": too many distinct GPU models");
    }
  }
  for (size_t i : order) {
    auto id = cluster.add_node(nodes_by_name[i]);
    if (!id.is_ok()) {
      return Status::invalid_argument("node " + nodes_by_name[i].name + ": " +
                                      id.status().message());
    }
  }
  auto policy = sched::make_policy(options.policy, sched::PolicyConfig{typical});
  if (!policy.is_ok()) return policy.status();
  sched::Scheduler scheduler(std::move(*policy), {.seed = splitmix64(rng), .ties = options.ties});

  const int64_t capacity = cluster.gpu_capacity_milli();
  const double capacity_gpus = static_cast<double>(capacity) / kMilliPerGpu;
  AllocRun run;
  run.seed = seed;
  Buckets buckets(options.arrive_to_pct);
  double frag_milli = 0;  // sum of node fragmentation; every node starts with only its own
  for (size_t id = 0; id < cluster.node_count(); ++id) {
    frag_milli += sched::gpu_frag_milli(cluster.state(static_cast<sched::NodeId>(id)), typical);
  }
  int64_t arrived = 0;
  for (const TracePod* pod : arrival_sequence(pods, capacity, options.arrive_to_pct, seed)) {
    sched::Request request = to_request(*pod, cluster);
    arrived += request.res.total_gpu_milli();
    ++run.pods_arrived;
    sched::Decision d = scheduler.decide(cluster, request);
    if (d.placement) {
      const sched::NodeId node = d.placement->node;
      frag_milli -= sched::gpu_frag_milli(cluster.state(node), typical);
      cluster.bind(request, *d.placement);
      frag_milli += sched::gpu_frag_milli(cluster.state(node), typical);
      ++run.pods_placed;
    }
    // As the simulator's analysis: percentages rounded (half to even) before averaging.
    const int64_t k =
        static_cast<int64_t>(std::nearbyint(static_cast<double>(arrived) / capacity_gpus / 10));
    const double alloc =
        round2(static_cast<double>(cluster.gpu_allocated_milli()) / capacity_gpus / 10);
    buckets.add(k, alloc, 100 * frag_milli / kMilliPerGpu / capacity_gpus);
  }
  buckets.finish(run);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return run;
}

double mean_ignoring_nan(const std::vector<AllocRun>& runs, std::vector<double> AllocRun::*series,
                         size_t k) {
  double sum = 0;
  int n = 0;
  for (const AllocRun& r : runs) {
    double v = (r.*series)[k];
    if (std::isnan(v)) continue;
    sum += v;
    ++n;
  }
  return n == 0 ? NAN : sum / n;
}

}  // namespace

uint64_t uniform_below(uint64_t& state, uint64_t n) {
  // Rejection sampling keeps the result exactly uniform.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = splitmix64(state);
  } while (x >= limit);
  return x % n;
}

std::vector<const TracePod*> arrival_sequence(const std::vector<TracePod>& pods,
                                              int64_t gpu_capacity_milli, int arrive_to_pct,
                                              uint64_t seed) {
  std::vector<const TracePod*> by_name;
  by_name.reserve(pods.size());
  for (const TracePod& p : pods) by_name.push_back(&p);
  std::stable_sort(by_name.begin(), by_name.end(),
                   [](const TracePod* a, const TracePod* b) { return a->name < b->name; });
  // A stream of its own, so that the node ranks (drawn from the seed too) do not shift it.
  uint64_t rng = seed ^ 0xA5A5A5A5DEADBEEFull;
  std::vector<const TracePod*> seq = by_name;
  for (size_t i = seq.size(); i > 1; --i) std::swap(seq[i - 1], seq[uniform_below(rng, i)]);
  const int64_t target = gpu_capacity_milli * arrive_to_pct / 100;
  int64_t total = 0;
  for (const TracePod* p : seq) total += p->res.total_gpu_milli();
  if (total < target && !by_name.empty()) {
    while (true) {
      const TracePod* p = by_name[uniform_below(rng, by_name.size())];
      if (total + p->res.gpu_milli > target) break;
      total += p->res.total_gpu_milli();
      seq.push_back(p);
    }
  } else {
    while (total > target && !seq.empty()) {
      size_t i = uniform_below(rng, seq.size());
      total -= seq[i]->res.total_gpu_milli();
      seq.erase(seq.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  return seq;
}

Result<AllocResult> run_alloc_experiment(const std::vector<sched::NodeSpec>& nodes,
                                         const std::vector<TracePod>& pods,
                                         const AllocOptions& options,
                                         const std::function<void(size_t, size_t)>& progress) {
  auto started = std::chrono::steady_clock::now();
  if (options.seeds.empty()) return Status::invalid_argument("seeds: expected at least one seed");
  if (options.arrive_to_pct < 1 || options.arrive_to_pct > 1000) {
    return Status::invalid_argument("arrive_to_pct: expected 1..1000");
  }
  if (nodes.empty()) return Status::invalid_argument("nodes: the node list is empty");
  // Sorted by name first, so the rank permutation does not depend on the file's order.
  std::vector<sched::NodeSpec> nodes_by_name = nodes;
  std::stable_sort(nodes_by_name.begin(), nodes_by_name.end(),
                   [](const auto& a, const auto& b) { return a.name < b.name; });
  // The typical workload comes from the whole trace before tuning, as in the simulator. Model
  // masks are resolved against a cluster holding the nodes (ids follow first appearance).
  sched::ClusterState models;
  for (const sched::NodeSpec& n : nodes_by_name) {
    auto id = models.add_node(n);
    if (!id.is_ok())
      return Status::invalid_argument("node " + n.name + ": " + id.status().message());
  }
  std::vector<sched::Request> requests;
  requests.reserve(pods.size());
  for (const TracePod& p : pods) requests.push_back(to_request(p, models));
  auto typical = sched::TypicalWorkload::from_requests(requests, options.typical_coverage);
  AllocResult result;
  result.policy = options.policy;
  for (size_t i = 0; i < options.seeds.size(); ++i) {
    auto run = run_seed(nodes_by_name, pods, typical, options, options.seeds[i]);
    if (!run.is_ok()) return run.status();
    result.runs.push_back(std::move(*run));
    if (progress) progress(i + 1, options.seeds.size());
  }
  const size_t n = static_cast<size_t>(options.arrive_to_pct) + 1;
  for (size_t k = 0; k < n; ++k) {
    result.mean_alloc_pct.push_back(mean_ignoring_nan(result.runs, &AllocRun::alloc_pct, k));
    result.mean_frag_pct.push_back(mean_ignoring_nan(result.runs, &AllocRun::frag_pct, k));
  }
  result.gpu_alloc_pct = result.mean_alloc_pct.back();
  result.frag_pct = result.mean_frag_pct.back();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace lepton::sim
