#include "sched/scheduler.h"

#include <algorithm>
#include <bit>

namespace lepton::sched {
namespace {

// The score cache starts at 1.5 MiB (24-byte slots) and grows with the number of live classes
// (every live class is scored for most requests, under many request shapes), up to 48 MiB.
constexpr size_t kInitialCacheSlots = size_t{1} << 16;
constexpr size_t kMaxCacheSlots = size_t{1} << 21;
constexpr size_t kSlotsPerClass = 32;

}  // namespace

std::string FilterReport::to_string() const {
  std::string s = "0/" + std::to_string(nodes) + " nodes fit";
  auto add = [&s, first = true](int64_t n, const char* what) mutable {
    if (n == 0) return;
    s += first ? ": " : ", ";
    s += std::to_string(n) + " " + what;
    first = false;
  };
  add(other_group, "not of an accepted kind (spot, cloud or region)");
  add(insufficient_cpu, "insufficient cpu");
  add(insufficient_memory, "insufficient memory");
  add(gpu_model_mismatch, "no gpu of an allowed model");
  add(insufficient_gpu, "insufficient gpu");
  return s;
}

size_t Scheduler::ShapeHash::operator()(const ShapeKey& k) const {
  uint64_t h = static_cast<uint64_t>(k.res.cpu_milli) * 0x9E3779B97F4A7C15ull;
  h ^= static_cast<uint64_t>(k.res.memory_mib) + 0x7F4A7C15ull + (h << 6) + (h >> 2);
  h ^= (static_cast<uint64_t>(k.res.gpu_count) << 32 | static_cast<uint32_t>(k.res.gpu_milli)) +
       (h << 6) + (h >> 2);
  h ^= k.models + (h << 6) + (h >> 2);
  return static_cast<size_t>(h);
}

Scheduler::Scheduler(std::unique_ptr<Policy> policy, SchedulerOptions options)
    : policy_(std::move(policy)),
      ties_(policy_->chooses_at_random() ? TieBreak::kRandom : options.ties),
      rng_(options.seed),
      score_cache_(kInitialCacheSlots) {}

uint32_t Scheduler::shape_id(const Request& request) {
  auto [it, inserted] = shapes_.try_emplace(ShapeKey{request.res, request.allowed_models},
                                            static_cast<uint32_t>(shapes_.size()));
  return it->second;
}

NodeScore Scheduler::cached_score(const ClusterState::Class& c, uint32_t shape,
                                  const Request& request) {
  CacheSlot& slot = score_cache_[(c.state_hash ^ (uint64_t{shape} * 0x9E3779B97F4A7C15ull)) &
                                 (score_cache_.size() - 1)];
  if (slot.state_hash != c.state_hash || slot.shape != shape) {
    NodeScore s = policy_->score(c.state, request);
    slot = CacheSlot{c.state_hash, s.score, shape, s.gpu_free_value};
  }
  return {slot.score, slot.gpu_free_value};
}

Decision Scheduler::decide(const ClusterState& cluster, const Request& request) {
  const size_t wanted = std::min(kMaxCacheSlots, cluster.live_class_count() * kSlotsPerClass);
  if (wanted > score_cache_.size()) score_cache_.assign(std::bit_ceil(wanted), CacheSlot{});
  const uint32_t shape = shape_id(request);
  const int first = ClusterState::first_bucket(request);
  // Pass 1: the best score, the class holding the lowest tied node id, and how many nodes tie.
  int32_t chosen = -1;
  NodeScore chosen_score;
  uint64_t tied_nodes = 0;
  for (int b = first; b < ClusterState::kBuckets; ++b) {
    for (int32_t cid : cluster.live_classes_in(b)) {
      const ClusterState::Class& c = cluster.node_class(cid);
      if (!ClusterState::fits(c.state, request)) continue;
      const NodeScore s = cached_score(c, shape, request);
      if (chosen < 0 || s.score > chosen_score.score) {
        chosen = cid;
        chosen_score = s;
        tied_nodes = c.nodes.size();
      } else if (s.score == chosen_score.score) {
        tied_nodes += c.nodes.size();
        if (c.nodes[0] < cluster.node_class(chosen).nodes[0]) {
          chosen = cid;
          chosen_score = s;  // equal score, but the class's own GPU choice
        }
      }
    }
  }
  Decision d;
  if (chosen < 0) {
    d.report = explain(cluster, request);
    return d;
  }
  NodeId node = cluster.node_class(chosen).nodes[0];
  if (ties_ == TieBreak::kRandom) {
    // Pass 2: the k-th tied node in the same order, k uniform; scores now come from the cache.
    uint64_t k = std::uniform_int_distribution<uint64_t>(0, tied_nodes - 1)(rng_);
    for (int b = first; b < ClusterState::kBuckets && k != UINT64_MAX; ++b) {
      for (int32_t cid : cluster.live_classes_in(b)) {
        const ClusterState::Class& c = cluster.node_class(cid);
        if (!ClusterState::fits(c.state, request)) continue;
        const NodeScore s = cached_score(c, shape, request);
        if (s.score != chosen_score.score) continue;
        if (k < c.nodes.size()) {
          node = c.nodes[k];
          chosen_score = s;
          k = UINT64_MAX;
          break;
        }
        k -= c.nodes.size();
      }
    }
  }
  uint32_t gpus = 0;
  if (request.res.fractional() && chosen_score.gpu_free_value == kAnyFittingGpu) {
    // Uniform over the node's physical GPUs that fit.
    const auto& free = cluster.gpu_free(node);
    int seen = 0;
    for (int i = 0; i < cluster.state(node).gpu_count; ++i) {
      if (free[i] < request.res.gpu_milli) continue;
      if (std::uniform_int_distribution<int>(0, seen++)(rng_) == 0) gpus = uint32_t{1} << i;
    }
  } else {
    gpus = cluster.pick_gpus(node, request, chosen_score.gpu_free_value);
  }
  d.placement = Placement{node, gpus};
  return d;
}

FilterReport Scheduler::explain(const ClusterState& cluster, const Request& request) const {
  FilterReport r;
  const Resources& res = request.res;
  for (int32_t cid : cluster.live_classes()) {
    const ClusterState::Class& c = cluster.node_class(cid);
    const int64_t n = static_cast<int64_t>(c.nodes.size());
    r.nodes += n;
    if (!(request.allowed_groups >> c.state.group & 1)) {
      r.other_group += n;
    } else if (res.cpu_milli > c.state.cpu_free) {
      r.insufficient_cpu += n;
    } else if (res.memory_mib > c.state.mem_free) {
      r.insufficient_memory += n;
    } else if (res.gpu_count > 0 &&
               (c.state.gpu_count == 0 || !(request.allowed_models >> c.state.model & 1))) {
      r.gpu_model_mismatch += n;
    } else {
      r.insufficient_gpu += n;
    }
  }
  return r;
}

}  // namespace lepton::sched
