// ClusterState: the scheduler's view of nodes and their free capacity, down to the free
// milli-capacity of every GPU. It is a plain value owned by one thread (the server's control loop,
// or the simulator); policies read it through const references and never change it.
//
// Nodes in identical states (same model, capacities, free CPU/memory and the same multiset of free
// GPU capacities) form an equivalence class. Every policy scores a node from its state alone, so a
// score computed for a class holds for all its nodes; Scheduler uses this to score each class once
// and to cache (class, request) scores, which keeps decisions fast on large clusters.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/resources.h"
#include "core/status.h"

namespace lepton::sched {

inline constexpr int kMaxGpusPerNode = 16;
inline constexpr int kMaxGpuModels = 64;

using NodeId = int32_t;
using ModelId = int16_t;
using ModelMask = uint64_t;  // bit i set: model i allowed
inline constexpr ModelMask kAnyModel = ~ModelMask{0};
inline constexpr ModelId kNoModel = -1;

struct NodeSpec {
  std::string name;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int gpu_count = 0;
  std::string gpu_model;  // empty when gpu_count is 0
  // Which kind of machine it is, 0..kMaxNodeGroups-1, for work that accepts only some (the
  // server: rented spot machines, or machines of one cloud and region). 0 for most.
  int group = 0;
};

inline constexpr int kMaxNodeGroups = 64;
using GroupMask = uint64_t;
inline constexpr GroupMask kAnyGroup = ~GroupMask{0};

// A unit of work to place on one node: resources, the GPU models and the node groups it accepts.
struct Request {
  Resources res;
  ModelMask allowed_models = kAnyModel;
  GroupMask allowed_groups = kAnyGroup;
};

// The complete state that scores depend on. Free GPU capacities are kept sorted in descending
// order so that nodes differing only in which physical GPU is busy compare equal.
struct NodeState {
  int64_t cpu_total = 0;
  int64_t mem_total = 0;
  int64_t cpu_free = 0;
  int64_t mem_free = 0;
  ModelId model = kNoModel;
  int8_t gpu_count = 0;
  uint8_t group = 0;
  std::array<int16_t, kMaxGpusPerNode> gpu_free_sorted{};  // first gpu_count entries are valid

  int64_t gpu_free_total() const;
  int full_free_gpus() const;  // GPUs with all 1000 milli free
  bool operator==(const NodeState&) const = default;
};

// The state of a node after `request` is placed on it. For a fractional request the GPU used is
// one whose free capacity is `gpu_free_value`; whole GPUs come from fully free ones. The request
// must fit.
NodeState state_after(const NodeState& state, const Request& request, int16_t gpu_free_value);

struct NodeStateHash {
  size_t operator()(const NodeState& s) const;
};

// Where a request goes: a node and, for GPU requests, the physical GPUs (bit i = GPU i), each of
// which gives `request.res.gpu_milli`.
struct Placement {
  NodeId node = -1;
  uint32_t gpu_mask = 0;
};

class ClusterState {
 public:
  // Adds a node; fails with a message naming the field when the spec is invalid.
  Result<NodeId> add_node(const NodeSpec& spec);

  size_t node_count() const { return nodes_.size(); }
  const NodeSpec& spec(NodeId id) const { return nodes_[id].spec; }
  const NodeState& state(NodeId id) const { return nodes_[id].state; }
  // Free milli-capacity of each physical GPU of a node, in device order.
  const std::array<int16_t, kMaxGpusPerNode>& gpu_free(NodeId id) const {
    return nodes_[id].gpu_free;
  }

  // GPU models seen so far, indexed by ModelId.
  const std::vector<std::string>& models() const { return models_; }
  ModelId find_model(std::string_view name) const;
  // Registers a GPU model (idempotent) and returns its id. Ids follow registration order, so two
  // clusters that register the same models in the same order agree on ids and masks.
  Result<ModelId> add_model(std::string_view name);
  // Mask of the named models; names not in the cluster are ignored (they match no node).
  ModelMask model_mask(const std::vector<std::string>& names) const;

  // Whether `request` fits `state` (CPU, memory, GPU model, GPU capacity). Pure.
  static bool fits(const NodeState& state, const Request& request);

  // Chooses physical GPUs on `node` for `request`: for a fractional request, a GPU whose free
  // capacity equals `gpu_free_value` (the class-level choice); for whole GPUs, fully free ones.
  uint32_t pick_gpus(NodeId node, const Request& request, int gpu_free_value) const;

  // A cordoned node takes no new work: it belongs to no equivalence class, so the Scheduler never
  // sees it. Work bound to it stays accounted, and can still be released. Used for lost nodes and
  // to keep the tasks of one gang on distinct nodes.
  void set_cordoned(NodeId id, bool cordoned);
  bool cordoned(NodeId id) const { return nodes_[id].cordoned; }

  // Applies / reverts a placement. The placement must fit; a violation is a bug and aborts.
  void bind(const Request& request, const Placement& placement);
  void release(const Request& request, const Placement& placement);

  // Totals over all nodes, in milli-GPUs.
  int64_t gpu_capacity_milli() const { return gpu_capacity_milli_; }
  int64_t gpu_allocated_milli() const { return gpu_allocated_milli_; }

  // Equivalence classes. Class ids are stable while the class has nodes; an emptied class id may
  // be reused later by a different state. `nodes` is a binary min-heap of node ids, so nodes[0] is
  // the class's lowest node id. `state_hash` is a 64-bit hash of the state, for score caches.
  struct Class {
    NodeState state;
    uint64_t state_hash = 0;
    std::vector<NodeId> nodes;
    int bucket = -1;
  };
  const Class& node_class(int32_t class_id) const { return classes_[class_id]; }

  // Live classes are kept in capacity buckets ordered by how much GPU a node can still give:
  // buckets 0..9 hold classes with no whole free GPU, by their largest free share in hundreds of
  // milli-GPUs; bucket 10 + k holds classes with k whole free GPUs. A request can only fit classes
  // in buckets from first_bucket(request) up, so the filter skips the rest without looking.
  static constexpr int kBuckets = 11 + kMaxGpusPerNode;
  static int bucket_of(const NodeState& state);
  static int first_bucket(const Request& request);
  const std::vector<int32_t>& live_classes_in(int bucket) const { return live_[bucket]; }
  size_t live_class_count() const;
  std::vector<int32_t> live_classes() const;  // all buckets, in bucket order

 private:
  struct Node {
    NodeSpec spec;
    NodeState state;
    std::array<int16_t, kMaxGpusPerNode> gpu_free{};
    int32_t class_id = -1;
    int32_t index_in_class = -1;
    bool cordoned = false;
  };

  void refresh_sorted(Node& node);
  void enter_class(NodeId id);
  void leave_class(NodeId id);
  void heap_place(Class& c, size_t pos, NodeId id);
  void heap_sift_up(Class& c, size_t pos);
  void heap_sift_down(Class& c, size_t pos);

  std::vector<Node> nodes_;
  std::vector<std::string> models_;
  std::vector<Class> classes_;
  std::vector<int32_t> free_class_ids_;
  std::array<std::vector<int32_t>, kBuckets> live_;
  std::vector<int32_t> live_index_;  // position of each class in its bucket, or -1
  std::unordered_map<NodeState, int32_t, NodeStateHash> class_of_state_;
  int64_t gpu_capacity_milli_ = 0;
  int64_t gpu_allocated_milli_ = 0;
};

}  // namespace lepton::sched
