// fifo: first come, first served within each queue, each queue capped at its guarantee (static
// quotas, no borrowing, no preemption). A queue's first waiting job blocks the ones behind it,
// whether its quota or the lack of room holds it back (its limit does not block the queue).
#include "sched/queue_policies/queue_policies.h"

namespace lepton::sched {
namespace {

class FifoOrder final : public QueueOrder {
 public:
  std::string_view name() const override { return "fifo"; }
  bool before(const Work& a, const Work& b) const override {
    return std::tie(a.submit_ms, a.id) < std::tie(b.submit_ms, b.id);
  }
  bool takes_turns() const override { return false; }
  Admission admit(const RoundView& view, const Work& w) const override {
    const Quota need = quota_of(w.task.res, w.tasks);
    if (int a = view.exceeds(w.queue, need, QueueBound::kGuarantee); a != -1) {
      return Admission::wait(view.exceeds_text(a, "quota", QueueBound::kGuarantee),
                             /*blocks_queue=*/true);
    }
    if (int a = view.exceeds(w.queue, need, QueueBound::kLimit); a != -1) {
      return Admission::wait(view.exceeds_text(a, "limit", QueueBound::kLimit));
    }
    return Admission::start(Admission::Reclaim::kNone, /*blocks_queue=*/true);
  }
};

}  // namespace

std::unique_ptr<QueueOrder> make_fifo_queue_order() { return std::make_unique<FifoOrder>(); }

}  // namespace lepton::sched
