// priority: highest priority first, then the oldest, across all queues; no quotas (only limits);
// work that fits starts (a waiting job does not block smaller ones); no preemption.
#include "sched/queue_policies/queue_policies.h"

namespace lepton::sched {
namespace {

class PriorityOrder final : public QueueOrder {
 public:
  std::string_view name() const override { return "priority"; }
  bool before(const Work& a, const Work& b) const override { return by_priority(a, b); }
  bool takes_turns() const override { return false; }
  Admission admit(const RoundView& view, const Work& w) const override {
    const Quota need = quota_of(w.task.res, w.tasks);
    if (int a = view.exceeds(w.queue, need, QueueBound::kLimit); a != -1) {
      return Admission::wait(view.exceeds_text(a, "limit", QueueBound::kLimit));
    }
    return Admission::start();
  }
};

}  // namespace

std::unique_ptr<QueueOrder> make_priority_queue_order() {
  return std::make_unique<PriorityOrder>();
}

}  // namespace lepton::sched
