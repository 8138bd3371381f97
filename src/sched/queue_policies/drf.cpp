// drf: static quotas (each queue capped at its guarantee, no borrowing, no preemption; the round
// holds its limit too, which a guarantee that leaves a dimension open does not); queues take
// turns, the one with the lowest weighted dominant share of the cluster first; inside a queue,
// higher priority first, then the oldest.
#include "sched/queue_policies/queue_policies.h"

namespace lepton::sched {
namespace {

class DrfOrder final : public QueueOrder {
 public:
  std::string_view name() const override { return "drf"; }
  bool before(const Work& a, const Work& b) const override { return by_priority(a, b); }
  bool takes_turns() const override { return true; }
  double served(const RoundView& view, int q) const override {
    return dominant_share(view.in_use(q), view.capacity()) / view.tree().spec(q).weight;
  }
  Admission admit(const RoundView& view, const Work& w) const override {
    const Quota need = quota_of(w.task.res, w.tasks);
    if (int a = view.exceeds(w.queue, need, QueueBound::kGuarantee); a != -1) {
      return Admission::wait(view.exceeds_text(a, "quota", QueueBound::kGuarantee));
    }
    return Admission::start();
  }
};

}  // namespace

std::unique_ptr<QueueOrder> make_drf_queue_order() { return std::make_unique<DrfOrder>(); }

}  // namespace lepton::sched
