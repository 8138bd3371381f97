// Queue policies: what differs between the ways a scheduling round orders and admits waiting work.
//
// QueueScheduler::cycle (queues.cpp) is one pipeline for every policy: it measures usage and fair
// shares, lines waiting work up, offers each piece to the policy, places what the policy admits
// (gangs all or nothing), reclaims room for admitted work that found none, lets work the policy
// marked as borrowing fill what is left, and holds nodes for work that waited too long. A policy
// (a QueueOrder) makes the decisions in that pipeline and nothing else:
//   - which waiting work goes first (before), and whether queues take turns, least served first
//     (takes_turns, served), or all work stands in one line;
//   - whether a piece of work may start as far as its queue's quotas go, and if it does not start,
//     whether its queue's later work waits behind it (admit);
//   - what admitted work that finds no room may preempt (Admission::reclaim, reclaimable);
//   - whether long-waiting work gets nodes held for it (reserves).
// Policies are pure: they read only their arguments, never clocks, randomness or the cluster.
//
// The built-in policies are in queue_policies/, one file each, named in one table
// (queue_policies.cpp): adding a policy is a file, a line in that table and a QueuePolicy value.
// Mesos' Sorter and KAI-Scheduler's proportion plugin are the models.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sched/queues.h"

namespace lepton::sched {

// Weighted dominant share of `use` relative to `base`: the largest use / base over the dimensions
// (a dimension where base is 0 counts only when used, as a huge share).
double dominant_share(const Quota& use, const Quota& base);

// Whether `use` fits `bound`. A bound that sets some dimensions leaves the dimensions it sets to 0
// open (a queue guaranteed only GPUs is not held to zero CPUs); an all-zero bound holds all.
bool fits_bound(const Quota& use, const Quota& bound);

// The bounds a queue's use is held to.
enum class QueueBound {
  kGuarantee,  // QueueSpec::guaranteed
  kLimit,      // QueueSpec::limit (unlimited when none)
  kFairShare,  // this round's fair share (within the limit, with a few units of rounding slack)
};

// What a policy may read about the round in progress. Figures of a queue count its whole subtree
// and include the work started so far in this round. Made by the QueueScheduler.
class RoundView {
 public:
  RoundView(const QueueTree& tree, const Quota& capacity, const std::vector<Quota>& in_use,
            const std::vector<Quota>& fair, const std::vector<RunningWork>& running,
            const std::set<uint64_t>& stopping)
      : tree_(tree),
        capacity_(capacity),
        in_use_(in_use),
        fair_(fair),
        running_(running),
        stopping_(stopping) {}

  const QueueTree& tree() const { return tree_; }
  const Quota& capacity() const { return capacity_; }  // of the nodes that take work
  const Quota& in_use(int q) const { return in_use_[q]; }
  const Quota& fair_share(int q) const { return fair_[q]; }
  Quota bound(int q, QueueBound b) const;
  // The first queue, from `q` up to the top, that `need` more would take past its bound; -1 when
  // none. An inner queue whose bound is all zero (no guarantee) is skipped.
  int exceeds(int q, const Quota& need, QueueBound b) const;
  // "queue A would exceed its WHAT (BOUND; in use USE)", for the queue `exceeds` returned.
  std::string exceeds_text(int q, std::string_view what, QueueBound b) const;
  // Whether running preemptible work of w's queue, not already stopping, has a lower priority.
  bool outranks_own_work(const Work& w) const;

 private:
  const QueueTree& tree_;
  const Quota& capacity_;
  const std::vector<Quota>& in_use_;
  const std::vector<Quota>& fair_;
  const std::vector<RunningWork>& running_;
  const std::set<uint64_t>& stopping_;
};

// A policy's answer for one piece of waiting work.
struct Admission {
  enum class Verdict {
    kStart,   // place it now if it fits
    kWait,    // it waits this round, for `reason`
    kBorrow,  // its queue is owed no more: it may take room still idle after everything else
  };
  // What admitted work that finds no room may preempt (never non-preemptible work, never work
  // already stopping).
  enum class Reclaim {
    kNone,
    kOwnQueue,   // lower-priority work of its own queue
    kOverShare,  // that, and work of queues the policy finds reclaimable()
  };

  Verdict verdict = Verdict::kStart;
  std::string reason;  // kWait: one line
  // When it does not start this round, its queue's later work waits behind it.
  bool blocks_queue = false;
  Reclaim reclaim = Reclaim::kNone;  // kStart only

  static Admission start(Reclaim reclaim = Reclaim::kNone, bool blocks_queue = false) {
    return {Verdict::kStart, {}, blocks_queue, reclaim};
  }
  static Admission wait(std::string reason, bool blocks_queue = false) {
    return {Verdict::kWait, std::move(reason), blocks_queue, Reclaim::kNone};
  }
  static Admission borrow() { return {Verdict::kBorrow, {}, false, Reclaim::kNone}; }
};

class QueueOrder {
 public:
  virtual ~QueueOrder() = default;
  virtual std::string_view name() const = 0;

  // Whether `a` goes before `b` among waiting work: a strict total order (the last tie-break is
  // the id, unique among waiting work).
  virtual bool before(const Work& a, const Work& b) const = 0;
  // False: all waiting work stands in one line, in `before` order. True: queues take turns; each
  // turn the queue with the lowest served() (ties: the lowest index) offers its next work.
  virtual bool takes_turns() const = 0;
  virtual double served(const RoundView& /*view*/, int /*queue*/) const { return 0; }

  // Whether `w` may start now as far as its queue's bounds go. Not asked about work behind a
  // piece that blocks its queue. Whatever it answers, the round checks the queue's limit again
  // right before it places anything: limits are hard under every policy.
  virtual Admission admit(const RoundView& view, const Work& w) const = 0;

  // For work admitted as kBorrow that found no room while other queues run work: a note for its
  // wait reason, saying why it cannot take room back.
  virtual std::string borrow_note(const RoundView& /*view*/, const Work& /*w*/) const { return {}; }

  // For a claimant admitted with Reclaim::kOverShare: whether running work of `queue` (another
  // queue) may be taken, when the queue would keep `keeps` without the victims chosen so far.
  virtual bool reclaimable(const RoundView& /*view*/, int /*queue*/, const Quota& /*keeps*/,
                           const Work& /*claimant*/) const {
    return false;
  }

  // Whether the first waiting work of a queue, once it has waited QueueOptions::reserve_after_ms
  // and fits its queue's fair share, gets nodes held for it so smaller work cannot starve it.
  virtual bool reserves() const { return false; }
};

struct QueuePolicyInfo {
  QueuePolicy policy;
  std::string_view name;     // as given to --policy
  std::string_view summary;  // one line for help text and docs
  std::unique_ptr<QueueOrder> (*make)();
};

// The built-in queue policies, in the order they are reported.
const std::vector<QueuePolicyInfo>& builtin_queue_policies();
// The table's row of `policy`; nullptr when it has none.
const QueuePolicyInfo* find_queue_policy(QueuePolicy policy);

}  // namespace lepton::sched
