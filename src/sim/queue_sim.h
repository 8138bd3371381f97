// The queue experiment: a trace's pods replayed with their arrival times and durations through the
// queue scheduler (sched/queues.h), one policy at a time, on a cluster of the trace's nodes.
//
// Each pod becomes one job of one task, put in a queue by its QoS class. Events are arrivals,
// completions and the ends of preemption grace periods; after the events of one instant the
// scheduler runs one cycle (more when grace is 0 and it preempted, so that the freed resources are
// handed out at the same instant). Started work runs for its duration; preempted work loses its
// progress and waits again with its original arrival time.
//
// The Alibaba v2023 trace is far too light to contend for its own cluster (at most ~66 of 6,212
// GPUs requested at once), so the replay compresses arrival times until the offered GPU load
// reaches a chosen level; see QueueTraceOptions. Everything is deterministic.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/queue.h"
#include "core/resources.h"
#include "core/status.h"
#include "sched/cluster_state.h"
#include "sched/queues.h"
#include "sim/alibaba_trace.h"

namespace lepton::sim {

// ---- Queues and how pods map to them ------------------------------------------------------------

struct SimQueue {
  std::string name;
  std::string parent;         // empty: top-level
  double guaranteed_pct = 0;  // of the cluster's GPUs, CPU and memory alike
  double weight = 1;
  std::optional<double> limit_pct;
};

// What a pod of one QoS class becomes.
struct QosClass {
  std::string queue;  // a leaf queue
  int priority = 0;
  bool preemptible = true;
};

struct QueueConfig {
  std::vector<SimQueue> queues;
  std::map<std::string, QosClass> qos;  // by the trace's qos value
};

// prod 40%, research 40%, dev 20%, weights 1; LS -> prod (priority 1), BE -> research,
// Burstable -> dev, Guaranteed -> dev (not preemptible).
QueueConfig default_queue_config();

// {"queues": [{"name": "prod", "guaranteed_pct": 40, "weight": 1, "limit_pct": 100,
//              "parent": ""}, ...],
//  "qos": {"LS": {"queue": "prod", "priority": 1, "preemptible": true}, "BE": "research", ...}}
// A qos entry may be just the queue's name. Errors name the file and the field.
Result<QueueConfig> parse_queue_config(std::string_view json_text, std::string_view file);

// The queues with guarantees (and limits) as shares of `capacity`, rounded down.
Result<sched::QueueTree> build_queue_tree(const QueueConfig& config, const Quota& capacity);

// ---- The workload -------------------------------------------------------------------------------

struct QueueTraceOptions {
  // Offered load the arrival times are scaled to: the mean GPU demand over the arrival window if
  // the cluster had unlimited GPUs (every job counts the part of its run that falls inside the
  // window), divided by the cluster's GPUs. 0 keeps the trace's own times.
  double load = 1.3;
  // Durations are cut to this (a cluster's maximum run time); 0: no cap.
  int64_t max_duration_s = 86'400;
  // Pods created before this percentile of creation times arrive at it: the trace's first pods are
  // long-lived ones created months before the rest, and would otherwise stretch the arrival span.
  double start_pct = 1;
};

struct QueueJob {
  std::string name;
  int queue = 0;  // index in the tree (a leaf)
  int priority = 0;
  bool preemptible = true;
  int64_t arrival_ms = 0;  // from the replay's start; the first arrival is at 0
  int64_t duration_ms = 0;
  Resources res;
  std::vector<std::string> gpu_spec;  // allowed GPU models; empty means any
};

struct QueueWorkload {
  std::vector<QueueJob> jobs;       // by arrival time, then trace order
  int64_t pods = 0;                 // in the trace
  int64_t skipped_no_end = 0;       // no deletion_time
  int64_t skipped_nonpositive = 0;  // duration <= 0
  int64_t no_scheduled_time = 0;    // duration measured from creation_time instead
  int64_t capped = 0;               // duration cut to max_duration_s
  int64_t early_arrivals = 0;       // moved to the start_pct percentile
  double time_scale = 1;            // arrival times were divided by this
  double arrival_span_s = 0;        // after scaling
  double offered_load = 0;          // after scaling, as QueueTraceOptions::load defines it
  double max_offered_load = 0;      // the limit as the scale grows (all pods at once)
  double gpu_hours = 0;             // requested, after the cap
};

// Builds jobs from pods: arrival = creation_time, duration = deletion_time - scheduled_time (or
// - creation_time when scheduled_time is missing or 0). `cluster_gpu_milli` is the capacity the
// load is measured against. Fails when no pod has times, a pod's qos maps to no queue, or the load
// cannot be reached on that capacity.
Result<QueueWorkload> make_queue_workload(const std::vector<TracePod>& pods,
                                          const sched::QueueTree& tree, const QueueConfig& config,
                                          int64_t cluster_gpu_milli,
                                          const QueueTraceOptions& options);

// A deterministic subset of nodes with at least `gpus` GPUs (all nodes when 0 or more than there
// are): sorted by name, shuffled with `seed`, taken in that order. GPU-less nodes are skipped.
std::vector<sched::NodeSpec> select_nodes(const std::vector<sched::NodeSpec>& nodes, int64_t gpus,
                                          uint64_t seed);

// ---- The replay ---------------------------------------------------------------------------------

// Which span time averages are taken over.
enum class MeasureWindow {
  kArrivals,  // first arrival to last arrival (the trace's live period)
  kRun,       // first arrival to the end of the run (last completion, or the horizon)
};

struct QueueSimOptions {
  sched::QueuePolicy policy = sched::QueuePolicy::kLepton;
  MeasureWindow window = MeasureWindow::kArrivals;
  std::string placement = "lepton";   // the Scheduler's node-scoring policy
  int64_t grace_ms = 0;               // a preempted job holds its resources this long
  int64_t horizon_ms = 0;             // stop here; 0: run until nothing can happen
  int64_t reserve_after_ms = 60'000;  // QueueOptions::reserve_after_ms
  int series_bins = 300;              // points of the time series
};

struct QueueSimQueue {
  std::string name;
  double guaranteed_gpus = 0;
  int64_t jobs = 0;
  int64_t completed = 0;
  double avg_wait_s = 0;  // arrival to the start that completed; completed jobs
  double p99_wait_s = 0;
  double avg_jct_s = 0;
  double avg_in_use_gpus = 0;  // time-averaged over the measurement window
  double avg_fair_share_gpus = 0;
  int64_t preempted = 0;  // times its jobs were preempted
  // Longest time the queue had waiting GPU work that fit within its guarantee (in use + the job
  // <= guaranteed GPUs) without starting any GPU work.
  double max_reclaim_wait_s = 0;
  // When that wait began (seconds from the first arrival), and the smallest waiting GPU job then.
  double max_reclaim_wait_from_s = 0;
  std::string max_reclaim_wait_job;
  Resources max_reclaim_wait_job_res;
  std::vector<double> in_use_gpus;  // time series, per bin
  std::vector<double> fair_share_gpus;
};

// Time averages (GPU allocation, fairness, per-queue GPUs) are taken over the measurement window:
// by default from the first arrival to the last (or to the horizon when that comes first). A
// finite trace ends with a drain in which only its longest jobs run; that tail says little about a
// scheduler, so it is reported apart (gpu_alloc_pct_to_end). When all jobs arrive at one instant
// the window is the whole run. Job figures count every completed job.
struct QueueSimResult {
  std::string policy;
  int64_t jobs = 0;
  int64_t unplaceable = 0;  // fit no node of the cluster even when empty; not replayed
  int64_t completed = 0;
  int64_t not_completed = 0;  // still waiting or running at the end
  double avg_jct_s = 0;       // completion - arrival, completed jobs
  double p99_jct_s = 0;
  double avg_wait_s = 0;  // last start - arrival, completed jobs
  double p99_wait_s = 0;
  // Time-averaged share of the cluster's GPU capacity bound to work (running or stopping).
  double gpu_alloc_pct = 0;
  double gpu_alloc_pct_to_end = 0;  // the same from the first arrival to the end of the run
  // Time average of Jain's index over queues with a positive GPU fair share of
  // x = GPUs in use / GPU fair share, at instants where some such queue uses GPUs.
  double jain_fairness = 0;
  int64_t preemptions = 0;
  double gpu_hours_lost = 0;      // GPU time of preempted runs, which restart from scratch
  double max_reclaim_wait_s = 0;  // over queues, over the whole run
  double window_s = 0;            // the measurement window
  double makespan_s = 0;          // first arrival to the last completion (or the horizon)
  int64_t cycles = 0;
  double seconds = 0;                 // wall time
  std::vector<QueueSimQueue> queues;  // the leaves, in tree order
  std::vector<double> series_t_s;     // bin centres over the whole run, from the first arrival
  std::vector<double> series_alloc_pct;
};

// `progress(done, total)` is called now and then with the jobs that have arrived.
Result<QueueSimResult> run_queue_sim(const std::vector<sched::NodeSpec>& nodes,
                                     const QueueWorkload& workload, const sched::QueueTree& tree,
                                     const QueueSimOptions& options,
                                     const std::function<void(size_t, size_t)>& progress = {});

// ---- Metrics helpers (exposed for tests)
// ---------------------------------------------------------

// Nearest-rank percentile (p in (0, 100]) of `values`; 0 for none.
double percentile(std::vector<double> values, double p);
// Jain's index (sum x)^2 / (n sum x^2); 1 for no values or all zero.
double jain_index(const std::vector<double>& x);

}  // namespace lepton::sim
