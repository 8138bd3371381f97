// lepton: guarantees plus borrowing up to the fair share (and beyond it into idle capacity, as
// preemptible work); reclaim of over-fair-share work for queues below their fair share; priority
// preemption inside a queue; gang reservations so large jobs do not starve while small ones
// backfill around them. Queues take turns, the least served relative to its fair share first;
// inside a queue, higher priority first, then the oldest. See docs/queues.md.
#include <cstdio>

#include "sched/queue_policies/queue_policies.h"

namespace lepton::sched {
namespace {

std::string gpus_text(int64_t milli) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(milli) / 1000);
  return buf;
}

class LeptonOrder final : public QueueOrder {
 public:
  std::string_view name() const override { return "lepton"; }
  bool before(const Work& a, const Work& b) const override { return by_priority(a, b); }
  bool takes_turns() const override { return true; }
  double served(const RoundView& view, int q) const override {
    return dominant_share(view.in_use(q), view.fair_share(q));
  }
  Admission admit(const RoundView& view, const Work& w) const override {
    const Quota need = quota_of(w.task.res, w.tasks);
    if (int a = view.exceeds(w.queue, need, QueueBound::kLimit); a != -1) {
      return Admission::wait(view.exceeds_text(a, "limit", QueueBound::kLimit));
    }
    if (!w.preemptible) {
      // Non-preemptible work runs only within the guarantee, so it never needs to be reclaimed.
      if (int a = view.exceeds(w.queue, need, QueueBound::kGuarantee); a != -1) {
        return Admission::wait("non-preemptible work runs only within the guarantee: " +
                               view.exceeds_text(a, "guarantee", QueueBound::kGuarantee));
      }
    } else if (view.exceeds(w.queue, need, QueueBound::kFairShare) != -1) {
      // Over its fair share it only borrows idle room, unless it outranks its own queue's work.
      if (!view.outranks_own_work(w)) return Admission::borrow();
      return Admission::start(Admission::Reclaim::kOwnQueue);
    }
    return Admission::start(Admission::Reclaim::kOverShare);
  }
  std::string borrow_note(const RoundView& view, const Work& w) const override {
    return "queue " + view.tree().spec(w.queue).name + " is at its fair share (" +
           gpus_text(view.fair_share(w.queue).gpu_milli) + " GPUs), so it only borrows idle room";
  }
  // Work of a queue over its fair share (in GPUs; in CPUs too for a claimant without GPUs).
  bool reclaimable(const RoundView& view, int q, const Quota& keeps,
                   const Work& claimant) const override {
    const Quota& fair = view.fair_share(q);
    return keeps.gpu_milli > fair.gpu_milli ||
           (claimant.task.res.gpu_count == 0 && keeps.cpu_milli > fair.cpu_milli);
  }
  bool reserves() const override { return true; }
};

}  // namespace

std::unique_ptr<QueueOrder> make_lepton_queue_order() { return std::make_unique<LeptonOrder>(); }

}  // namespace lepton::sched
