// Queues: how teams share a cluster. A queue has a guaranteed quota (always theirs when they want
// it), an over-quota weight (their part of what others leave idle), and an optional hard limit.
// Queues form a hierarchy (department -> project); jobs are submitted to leaf queues. Plain values,
// no I/O; the rules live in sched/queues.h, codecs in spec/, persistence in store/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/resources.h"
#include "core/status.h"

namespace lepton {

// An amount of the resources queues account for: milli-GPUs (any model), milli-CPUs and MiB.
struct Quota {
  int64_t gpu_milli = 0;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;

  Quota& operator+=(const Quota& o);
  Quota& operator-=(const Quota& o);
  friend Quota operator+(Quota a, const Quota& b) { return a += b; }
  friend Quota operator-(Quota a, const Quota& b) { return a -= b; }
  // Every dimension of this is <= the other's.
  bool fits_in(const Quota& o) const;
  bool is_zero() const { return gpu_milli == 0 && cpu_milli == 0 && memory_mib == 0; }
  bool operator==(const Quota&) const = default;
  // "gpu=2.5 cpu=8 mem=32768Mi"
  std::string to_string() const;
};

// What `count` tasks of `per_task` take from a queue.
Quota quota_of(const Resources& per_task, int count = 1);

struct QueueSpec {
  std::string name;    // [a-z0-9-], starting with a letter, at most 63
  std::string parent;  // empty: a top-level queue
  Quota guaranteed;
  double weight = 1.0;  // over-quota weight, > 0
  // Hard cap; must hold the guarantee. A dimension with no cap is kUnlimited.
  std::optional<Quota> limit;
  // Dollars its jobs (and its children's) may spend on rented machines; once spent, no machine is
  // rented for them (they still run on nodes lepton did not rent). None: no cap.
  std::optional<double> budget_usd;

  bool operator==(const QueueSpec&) const = default;
};

inline constexpr double kMaxQueueWeight = 1e6;
inline constexpr double kMaxQueueBudgetUsd = 1e12;
inline constexpr int64_t kUnlimited = INT64_MAX / 4;  // sums of a few stay representable

// Checks one queue's own invariants (name, weight, non-negative amounts, guarantee within the
// limit). The error names the field. Hierarchy rules (parents exist, no cycles) are checked by
// sched::QueueTree.
Status validate_queue_spec(const QueueSpec& spec);

// The queue a job goes to when its spec names none.
inline constexpr const char* kDefaultQueue = "default";

}  // namespace lepton
