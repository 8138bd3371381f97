// The table of queue policies: one row per policy, each implemented in queue_policies/.
#include "sched/queue_policies/queue_policies.h"

#include <string>

#include "sched/queue_order.h"

namespace lepton::sched {

const std::vector<QueuePolicyInfo>& builtin_queue_policies() {
  static const std::vector<QueuePolicyInfo> kPolicies = {
      {QueuePolicy::kFifo, "fifo",
       "oldest first per queue; the first waiting job blocks its queue; capped at the guarantee",
       make_fifo_queue_order},
      {QueuePolicy::kPriority, "priority",
       "highest priority, then oldest, across queues; no quotas, no preemption",
       make_priority_queue_order},
      {QueuePolicy::kDrf, "drf",
       "least dominant share first; capped at the guarantee, no borrowing, no preemption",
       make_drf_queue_order},
      {QueuePolicy::kLepton, "lepton",
       "least served relative to fair share first; borrowing, reclaim, priority preemption, "
       "reservations",
       make_lepton_queue_order},
  };
  return kPolicies;
}

const QueuePolicyInfo* find_queue_policy(QueuePolicy policy) {
  for (const QueuePolicyInfo& p : builtin_queue_policies()) {
    if (p.policy == policy) return &p;
  }
  return nullptr;
}

std::string_view queue_policy_name(QueuePolicy policy) {
  const QueuePolicyInfo* p = find_queue_policy(policy);
  return p ? p->name : "?";
}

Result<QueuePolicy> parse_queue_policy(std::string_view name) {
  const std::vector<QueuePolicyInfo>& all = builtin_queue_policies();
  std::string names;  // "a, b or c"
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].name == name) return all[i].policy;
    names += i == 0 ? "" : i + 1 == all.size() ? " or " : ", ";
    names += all[i].name;
  }
  return Status::invalid_argument("policy: expected " + names + ", got '" + std::string(name) +
                                  "'");
}

}  // namespace lepton::sched
