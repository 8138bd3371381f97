// The queue replay's event loop and measurements, private to sim/: the Replay class is defined in
// two files, queue_sim.cpp (events, scheduling cycles and their effects) and queue_sim_report.cpp
// (time integrals, waits below guarantee, time series and the final QueueSimResult).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <tuple>
#include <vector>

#include "sched/scheduler.h"
#include "sim/queue_sim.h"

namespace lepton::sim::queue_replay {

inline double gpus(int64_t milli) { return static_cast<double>(milli) / kMilliPerGpu; }
inline double seconds(int64_t ms) { return static_cast<double>(ms) / 1000; }

enum class JobStatus : uint8_t { kFuture, kPending, kRunning, kStopping, kDone };

struct JobState {
  JobStatus status = JobStatus::kFuture;
  uint32_t epoch = 0;  // bumped at every start, so events of an earlier run are ignored
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  size_t running_pos = 0;  // index in Replay::running_ while running or stopping
  sched::Request request;
  Quota quota;
};

// A completion (stop == false) or the end of a preemption's grace period.
struct Event {
  int64_t t;
  uint32_t job;
  uint32_t epoch;
  bool stop;
  bool operator>(const Event& o) const {
    return std::tie(t, job, epoch, stop) > std::tie(o.t, o.job, o.epoch, o.stop);
  }
};

// One replay of one policy.
class Replay {
 public:
  Replay(const QueueWorkload& workload, const sched::QueueTree& tree,
         const QueueSimOptions& options)
      : jobs_(workload.jobs), tree_(tree), options_(options) {}

  Result<QueueSimResult> run(const std::vector<sched::NodeSpec>& nodes,
                             const std::function<void(size_t, size_t)>& progress);

 private:
  Status setup(const std::vector<sched::NodeSpec>& nodes);
  Status round(int64_t t);
  Status apply(const sched::CycleResult& r, int64_t t);
  void finish_run(uint32_t j, int64_t t);  // releases a running or stopping job
  void add_pending(uint32_t j);
  void integrate(int64_t to);
  void snapshot(int64_t t);
  void open_owed(int q, int64_t t);
  void close_owed(int q, int64_t t);
  void finish(int64_t end, QueueSimResult& result);

  const std::vector<QueueJob>& jobs_;
  const sched::QueueTree& tree_;
  QueueSimOptions options_;

  sched::ClusterState cluster_;
  std::unique_ptr<sched::Scheduler> placer_;
  std::unique_ptr<sched::QueueScheduler> queues_;
  Quota capacity_;
  std::vector<JobState> state_;
  std::vector<uint32_t> order_;  // replayed jobs (placeable), by arrival
  size_t next_arrival_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::vector<sched::Work> pending_;
  std::vector<sched::RunningWork> running_;
  std::vector<uint64_t> stopping_;
  bool changed_ = false;  // since the last cycle

  // Per queue (indexed like the tree).
  std::vector<Quota> in_use_, pending_quota_;
  std::vector<std::map<int64_t, int>> pending_gpu_sizes_;  // GPU milli of waiting GPU jobs
  std::vector<int64_t> guaranteed_gpu_;
  std::vector<bool> started_gpu_;  // started GPU work in this round
  std::vector<int64_t> owed_since_;
  std::vector<int64_t> owed_job_;  // the smallest waiting GPU job when the wait began
  std::vector<double> max_owed_ms_;
  std::vector<int64_t> max_owed_at_, max_owed_job_;
  std::vector<int64_t> preempted_;
  std::vector<int> leaves_;

  // Metrics over time: values hold from the last snapshot on.
  int64_t last_t_ = 0;
  int64_t start_t_ = 0;
  int64_t window_end_ = 0;   // the measurement window is [start_t_, window_end_]
  double alloc_ms_ = 0;      // integral of allocated milli-GPU over ms, in the window
  double alloc_all_ms_ = 0;  // the same to the end of the run
  double jain_sum_ = 0, jain_ms_ = 0;
  double jain_now_ = -1;              // -1: undefined
  std::vector<double> fair_gpu_now_;  // per queue, milli
  std::vector<double> in_use_ms_, fair_ms_;
  // Segments for the time series: start time, allocation and per-leaf values.
  std::vector<int64_t> seg_t_;
  std::vector<double> seg_alloc_;
  std::vector<std::vector<double>> seg_in_use_, seg_fair_;

  int64_t preemptions_ = 0;
  double lost_gpu_ms_ = 0;  // milli-GPU x ms
  int64_t cycles_ = 0;
  int64_t last_real_t_ = 0;
};

// Time averages of a step function (values[i] from t[i] on) over `bins` equal bins of
// [start, end).
std::vector<double> bin_series(const std::vector<int64_t>& t, const std::vector<double>& values,
                               int64_t start, int64_t end, int bins);

}  // namespace lepton::sim::queue_replay
