// The typical workload and GPU fragmentation, as defined by Weng et al., "Beware of
// Fragmentation: Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent" (USENIX
// ATC'23), section 3.
//
// A node's free GPU capacity is "fragmented" with respect to a task when the task cannot use it:
// the task does not fit the node at all (too little CPU, memory or GPU, or a disallowed GPU model),
// or the task needs no GPU, or the capacity sits on GPUs with less free capacity than the task
// needs from each GPU. A node's fragmentation is the expectation over the typical workload (task
// types weighted by popularity); the cluster's is the sum over nodes.
#pragma once

#include <span>
#include <vector>

#include "sched/cluster_state.h"

namespace lepton::sched {

struct TaskType {
  Request request;
  double weight = 0;  // popularity; the weights of a workload sum to 1
};

struct TypicalWorkload {
  std::vector<TaskType> types;

  // Groups requests by shape (CPU, GPU count and share, allowed models; memory is ignored), orders
  // the groups by popularity and keeps the most popular ones until they cover `coverage` (0..1] of
  // all requests; weights are renormalised over the kept groups.
  static TypicalWorkload from_requests(std::span<const Request> requests, double coverage);
};

// Free GPU capacity (milli) of `state` that a task of `type` cannot use.
int64_t gpu_frag_milli(const NodeState& state, const Request& type);

// Expected fragmented GPU capacity (milli) of `state` over the typical workload.
double gpu_frag_milli(const NodeState& state, const TypicalWorkload& workload);

}  // namespace lepton::sched
