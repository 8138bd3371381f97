// Queue-aware scheduling: quotas, fair share, priorities, gangs, reservations and reclaim, on
// top of the per-task placement of Scheduler. Pure and deterministic: the control plane and the
// simulator feed it the same inputs and get the same decisions.
//
// One call to QueueScheduler::cycle looks at every pending and running piece of work and returns
// what to start (already bound in the ClusterState), what to preempt (NOT released: the caller
// stops it and releases its placements once it has really stopped), and why everything else
// waits.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/queue.h"
#include "core/status.h"
#include "sched/cluster_state.h"
#include "sched/scheduler.h"

namespace lepton::sched {

// A validated hierarchy of queues. Index 0.. in the order given; parents before children is not
// required.
class QueueTree {
 public:
  // Fails with a message naming the queue and field when a spec is invalid, a name repeats, a
  // parent does not exist, the parents form a cycle, or the children's guarantees add up to more
  // than their parent's guarantee in some dimension (a parent with a zero guarantee has no such
  // check).
  static Result<QueueTree> build(std::vector<QueueSpec> specs);

  int size() const { return static_cast<int>(specs_.size()); }
  const QueueSpec& spec(int q) const { return specs_[q]; }
  int find(std::string_view name) const;          // -1 if absent
  int parent(int q) const { return parent_[q]; }  // -1 for a top-level queue
  const std::vector<int>& children(int q) const { return children_[q]; }
  const std::vector<int>& top_level() const { return top_; }
  bool is_leaf(int q) const { return children_[q].empty(); }

 private:
  std::vector<QueueSpec> specs_;
  std::vector<int> parent_;
  std::vector<std::vector<int>> children_;
  std::vector<int> top_;
};

// Fair share of every queue, by hierarchical weighted dominant-resource fairness: at each level,
// every queue first gets min(guarantee, demand); what is left of the level's capacity is then
// filled progressively (DRF water-filling), each queue's dominant share of its extra growing in
// proportion to its weight, until its demand or limit is met or a resource runs out. A parent's
// fair share is divided among its children the same way. `demand` holds, per queue, what its
// work (running plus pending) asks for; an inner queue's own entry is ignored and replaced by the
// sum over its subtree. The result is indexed like the tree.
std::vector<Quota> fair_shares(const QueueTree& tree, const Quota& capacity,
                               const std::vector<Quota>& demand);

// How a cycle orders and admits work. Each policy is a QueueOrder (sched/queue_order.h), one file
// in queue_policies/, named in the table builtin_queue_policies().
enum class QueuePolicy {
  // First come, first served within each queue, each queue capped at its guarantee (static
  // quotas, no borrowing). A queue's first waiting job blocks the ones behind it.
  kFifo,
  // Highest priority first, then oldest, across all queues; no quotas; work that fits starts
  // (a waiting job does not block smaller ones); no preemption.
  kPriority,
  // Static quotas (no borrowing); the queue with the lowest weighted dominant share goes next.
  kDrf,
  // lepton: guarantees plus borrowing up to the fair share (and beyond it into idle capacity, as
  // preemptible work); reclaim of over-fair-share work for queues below their fair share;
  // priority preemption inside a queue; gang reservations so large jobs do not starve while
  // small ones backfill around them.
  kLepton,
};

// By the table: "fifo", "priority", "drf", "lepton" ("?" for a value the table lacks).
std::string_view queue_policy_name(QueuePolicy policy);
Result<QueuePolicy> parse_queue_policy(std::string_view name);

class QueueOrder;  // sched/queue_order.h

// A job as the queue scheduler sees it: `tasks` identical tasks, each on a distinct node, placed
// all at once or not at all (a gang).
struct Work {
  uint64_t id = 0;          // the caller's id, unique among pending and running work
  int queue = 0;            // a leaf of the tree
  int priority = 0;         // higher goes first within a queue
  bool preemptible = true;  // false: runs only within the queue's guarantee, never preempted
  int64_t submit_ms = 0;    // order among equal priorities; older first
  Request task;
  int tasks = 1;
};

struct RunningWork {
  Work work;
  std::vector<Placement> placements;  // one per task, bound in the ClusterState
  int64_t start_ms = 0;
};

struct QueueOptions {
  QueuePolicy policy = QueuePolicy::kLepton;
  // A job that has waited this long while it is first in line gets a reservation: the nodes it
  // needs take no other work until it starts (kLepton only).
  int64_t reserve_after_ms = 60'000;
};

// Why a piece of work still waits, for `lepton job get`.
struct WaitReason {
  std::string text;                  // one line, e.g. "queue team-a is at its quota (gpu=4)"
  std::vector<uint64_t> preempting;  // running work being preempted for this one
  // Its queue would admit it, but no node has room for it: more machines would let it start
  // (the cloud autoscaler's signal).
  bool no_capacity = false;
};

// Per-queue figures of the last cycle, for `lepton queue ls`.
struct QueueUsage {
  Quota guaranteed;
  Quota fair_share;
  Quota in_use;   // running work
  Quota pending;  // waiting work
};

struct CycleResult {
  // Started work and its placements, one per task; already bound in the cluster.
  std::vector<std::pair<uint64_t, std::vector<Placement>>> started;
  // Running work to preempt: stop it and requeue it; release its placements when it has stopped.
  std::vector<uint64_t> preempted;
  std::map<uint64_t, WaitReason> waiting;  // every pending item not started
};

class QueueScheduler {
 public:
  // `options.policy` must be in builtin_queue_policies().
  QueueScheduler(QueueTree tree, QueueOptions options);

  const QueueTree& tree() const { return tree_; }
  // Replaces the queues (queue create/set/rm). Reservations are dropped.
  void set_tree(QueueTree tree);

  // One scheduling round. `pending` and `running` are all the work there is; work being
  // preempted but not yet stopped is still in `running` (its resources are still bound) and is
  // marked in `stopping` so it is not chosen again. `placer` chooses nodes for single tasks.
  CycleResult cycle(ClusterState& cluster, Scheduler& placer, const std::vector<Work>& pending,
                    const std::vector<RunningWork>& running, const std::vector<uint64_t>& stopping,
                    int64_t now_ms);

  // Indexed like the tree; refreshed by every cycle.
  const std::vector<QueueUsage>& usage() const { return usage_; }

 private:
  QueueTree tree_;
  QueueOptions options_;
  std::shared_ptr<const QueueOrder> order_;  // options_.policy's; stateless, so shared by copies
  std::vector<QueueUsage> usage_;
  // Work id -> nodes held for it (a gang reservation or the nodes its victims are leaving).
  std::map<uint64_t, std::vector<NodeId>> reservations_;
  std::map<uint64_t, int64_t> first_blocked_ms_;        // when work first failed to fit
  std::map<uint64_t, std::vector<uint64_t>> reclaims_;  // work id -> victims preempted for it
};

}  // namespace lepton::sched
