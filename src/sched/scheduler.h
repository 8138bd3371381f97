// Scheduler: the filter -> score -> select pipeline for one request at a time. It decides; the
// caller applies the decision with ClusterState::bind. Ties between equally scored nodes are
// broken uniformly at random with the scheduler's own seeded generator, so a run replays exactly.
//
// Not thread-safe: one owner (the control loop or the simulator).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "sched/cluster_state.h"
#include "sched/policy.h"

namespace lepton::sched {

// Why a request could not be placed: how many nodes each filter rejected (first failing filter).
struct FilterReport {
  int64_t nodes = 0;
  int64_t insufficient_cpu = 0;
  int64_t insufficient_memory = 0;
  int64_t gpu_model_mismatch = 0;
  int64_t insufficient_gpu = 0;
  int64_t other_group = 0;        // machines of a kind it does not accept (spot, cloud, region)
  std::string to_string() const;  // "0/1213 nodes fit: 3 insufficient cpu, ..."
};

struct Decision {
  std::optional<Placement> placement;  // empty when no node fits
  FilterReport report;                 // filled only when placement is empty
};

// How to choose among nodes with the best score.
enum class TieBreak {
  // The lowest node id. Deterministic, and it packs: ties keep landing on the same nodes. The
  // FGD simulator does this (its nodes carry a random per-run rank; the simulator adds nodes in
  // rank order to get the same effect).
  kLowestNodeId,
  // Uniformly at random among the tied nodes (kube-scheduler's reservoir sampling).
  kRandom,
};

struct SchedulerOptions {
  uint64_t seed = 1;
  TieBreak ties = TieBreak::kLowestNodeId;
};

class Scheduler {
 public:
  Scheduler(std::unique_ptr<Policy> policy, SchedulerOptions options);

  Decision decide(const ClusterState& cluster, const Request& request);
  const Policy& policy() const { return *policy_; }

 private:
  struct ShapeKey {
    Resources res;
    ModelMask models;
    bool operator==(const ShapeKey&) const = default;
  };
  struct ShapeHash {
    size_t operator()(const ShapeKey& k) const;
  };
  // One slot of the score cache: a lossy, direct-mapped table keyed by (state hash, shape). States
  // recur (a node returns to a state many others were in), so keying by state, not by class id,
  // keeps scores across class churn.
  struct CacheSlot {  // 24 bytes
    uint64_t state_hash = 0;
    double score = 0;
    uint32_t shape = UINT32_MAX;
    int16_t gpu_free_value = 0;
  };

  uint32_t shape_id(const Request& request);
  NodeScore cached_score(const ClusterState::Class& c, uint32_t shape, const Request& request);
  FilterReport explain(const ClusterState& cluster, const Request& request) const;

  std::unique_ptr<Policy> policy_;
  TieBreak ties_;
  std::mt19937_64 rng_;
  std::unordered_map<ShapeKey, uint32_t, ShapeHash> shapes_;
  std::vector<CacheSlot> score_cache_;
};

}  // namespace lepton::sched
