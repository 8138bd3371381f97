// Factories of the built-in queue policies; the table in queue_policies.cpp names them. Private to
// sched/.
#pragma once

#include <memory>
#include <tuple>

#include "sched/queue_order.h"

namespace lepton::sched {

// Higher priority first, then the oldest, then the lowest id.
inline bool by_priority(const Work& a, const Work& b) {
  return std::tie(b.priority, a.submit_ms, a.id) < std::tie(a.priority, b.submit_ms, b.id);
}

std::unique_ptr<QueueOrder> make_fifo_queue_order();
std::unique_ptr<QueueOrder> make_priority_queue_order();
std::unique_ptr<QueueOrder> make_drf_queue_order();
std::unique_ptr<QueueOrder> make_lepton_queue_order();

}  // namespace lepton::sched
