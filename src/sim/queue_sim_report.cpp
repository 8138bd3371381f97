// The queue replay's measurements: time integrals of allocation, fair share and fairness over the
// measurement window, the longest wait of a queue below its guarantee, the time series, and the
// final QueueSimResult; and the metric helpers. See queue_sim.h.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "sim/queue_sim.h"
#include "sim/queue_sim_replay.h"

namespace lepton::sim {

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(values.size())));
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

double jain_index(const std::vector<double>& x) {
  double sum = 0, sq = 0;
  for (double v : x) {
    sum += v;
    sq += v * v;
  }
  if (x.empty() || sq == 0) return 1;
  return sum * sum / (static_cast<double>(x.size()) * sq);
}

namespace queue_replay {

void Replay::integrate(int64_t to) {
  if (to <= last_t_) return;
  const double alloc = static_cast<double>(cluster_.gpu_allocated_milli());
  alloc_all_ms_ += alloc * static_cast<double>(to - last_t_);
  // The part inside the measurement window.
  const double dt = static_cast<double>(std::max<int64_t>(0, std::min(to, window_end_) - last_t_));
  last_t_ = to;
  if (dt <= 0) return;
  alloc_ms_ += alloc * dt;
  for (int q : leaves_) {
    in_use_ms_[q] += static_cast<double>(in_use_[q].gpu_milli) * dt;
    fair_ms_[q] += fair_gpu_now_[q] * dt;
  }
  if (jain_now_ >= 0) {
    jain_sum_ += jain_now_ * dt;
    jain_ms_ += dt;
  }
}

void Replay::open_owed(int q, int64_t t) {
  owed_since_[q] = t;
  owed_job_[q] = -1;
  const int64_t smallest = pending_gpu_sizes_[q].begin()->first;
  for (const sched::Work& w : pending_) {
    if (w.queue == q && state_[w.id].quota.gpu_milli == smallest) {
      owed_job_[q] = static_cast<int64_t>(w.id);
      break;
    }
  }
}

void Replay::close_owed(int q, int64_t t) {
  if (owed_since_[q] < 0) return;
  const double wait = static_cast<double>(t - owed_since_[q]);
  if (wait > max_owed_ms_[q]) {
    max_owed_ms_[q] = wait;
    max_owed_at_[q] = owed_since_[q];
    max_owed_job_[q] = owed_job_[q];
  }
  owed_since_[q] = -1;
}

void Replay::snapshot(int64_t t) {
  std::vector<Quota> demand(in_use_.size());
  for (size_t q = 0; q < demand.size(); ++q) demand[q] = in_use_[q] + pending_quota_[q];
  const std::vector<Quota> fair = sched::fair_shares(tree_, capacity_, demand);
  std::vector<double> x;
  bool any_use = false;
  for (int q : leaves_) {
    fair_gpu_now_[q] = static_cast<double>(fair[q].gpu_milli);
    if (fair[q].gpu_milli > 0) {
      x.push_back(static_cast<double>(in_use_[q].gpu_milli) / fair_gpu_now_[q]);
      any_use = any_use || in_use_[q].gpu_milli > 0;
    }
  }
  jain_now_ = any_use ? jain_index(x) : -1;
  // Queues below their guarantee with waiting GPU work that the guarantee would hold.
  for (int q : leaves_) {
    const auto& sizes = pending_gpu_sizes_[q];
    const bool owed =
        !sizes.empty() && in_use_[q].gpu_milli + sizes.begin()->first <= guaranteed_gpu_[q];
    if (started_gpu_[q] || !owed) {
      close_owed(q, t);
      if (owed && started_gpu_[q]) open_owed(q, t);
    } else if (owed_since_[q] < 0) {
      open_owed(q, t);
    }
    started_gpu_[q] = false;
  }
  seg_t_.push_back(t);
  seg_alloc_.push_back(static_cast<double>(cluster_.gpu_allocated_milli()));
  for (size_t i = 0; i < leaves_.size(); ++i) {
    seg_in_use_[i].push_back(static_cast<double>(in_use_[leaves_[i]].gpu_milli));
    seg_fair_[i].push_back(fair_gpu_now_[leaves_[i]]);
  }
}

std::vector<double> bin_series(const std::vector<int64_t>& t, const std::vector<double>& values,
                               int64_t start, int64_t end, int bins) {
  std::vector<double> out(static_cast<size_t>(bins), 0);
  if (end <= start || t.empty()) return out;
  const double width = static_cast<double>(end - start) / bins;
  for (size_t i = 0; i < t.size(); ++i) {
    const double a = static_cast<double>(std::max(t[i], start) - start);
    const double b = static_cast<double>(std::min(i + 1 < t.size() ? t[i + 1] : end, end) - start);
    if (b <= a) continue;
    int k = std::min(bins - 1, static_cast<int>(a / width));
    double from = a;
    while (from < b && k < bins) {
      const double to = std::min(b, (k + 1) * width);
      out[k] += values[i] * (to - from);
      from = to;
      ++k;
    }
  }
  for (double& v : out) v /= width;
  return out;
}

void Replay::finish(int64_t end, QueueSimResult& result) {
  integrate(end);
  for (int q : leaves_) close_owed(q, end);
  // A trace whose jobs all arrive at one instant has no arrival window: measure to the end.
  if (window_end_ <= start_t_) {
    window_end_ = end;
    alloc_ms_ = alloc_all_ms_;
  }
  const double window = static_cast<double>(window_end_ - start_t_);
  const double run = static_cast<double>(end - start_t_);
  const double cap = static_cast<double>(capacity_.gpu_milli);
  result.window_s = window / 1000;
  result.makespan_s = run / 1000;
  result.gpu_alloc_pct = (window > 0 && cap > 0) ? 100 * alloc_ms_ / (window * cap) : 0;
  result.gpu_alloc_pct_to_end = (run > 0 && cap > 0) ? 100 * alloc_all_ms_ / (run * cap) : 0;
  result.jain_fairness = jain_ms_ > 0 ? jain_sum_ / jain_ms_ : 1;
  result.preemptions = preemptions_;
  result.gpu_hours_lost = lost_gpu_ms_ / kMilliPerGpu / 3'600'000;
  result.cycles = cycles_;
  result.jobs = static_cast<int64_t>(order_.size());
  result.unplaceable = static_cast<int64_t>(jobs_.size() - order_.size());
  std::vector<double> jct, wait;
  std::map<int, std::vector<double>> q_jct, q_wait;
  std::map<int, int64_t> q_jobs;
  for (uint32_t j : order_) {
    const int q = jobs_[j].queue;
    ++q_jobs[q];
    const JobState& s = state_[j];
    if (s.status != JobStatus::kDone) continue;
    const double c = seconds(s.end_ms - jobs_[j].arrival_ms);
    const double w = seconds(s.start_ms - jobs_[j].arrival_ms);
    jct.push_back(c);
    wait.push_back(w);
    q_jct[q].push_back(c);
    q_wait[q].push_back(w);
  }
  auto mean = [](const std::vector<double>& v) {
    return v.empty() ? 0.0
                     : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  result.completed = static_cast<int64_t>(jct.size());
  result.not_completed = result.jobs - result.completed;
  result.avg_jct_s = mean(jct);
  result.p99_jct_s = percentile(jct, 99);
  result.avg_wait_s = mean(wait);
  result.p99_wait_s = percentile(wait, 99);
  const int bins = std::max(1, options_.series_bins);
  const double width_s = run / 1000 / bins;
  for (int k = 0; k < bins; ++k) result.series_t_s.push_back((k + 0.5) * width_s);
  result.series_alloc_pct = bin_series(seg_t_, seg_alloc_, start_t_, end, bins);
  for (double& v : result.series_alloc_pct) {
    v = capacity_.gpu_milli > 0 ? 100 * v / static_cast<double>(capacity_.gpu_milli) : 0;
  }
  for (size_t i = 0; i < leaves_.size(); ++i) {
    const int q = leaves_[i];
    QueueSimQueue s;
    s.name = tree_.spec(q).name;
    s.guaranteed_gpus = gpus(guaranteed_gpu_[q]);
    s.jobs = q_jobs[q];
    s.completed = static_cast<int64_t>(q_jct[q].size());
    s.avg_wait_s = mean(q_wait[q]);
    s.p99_wait_s = percentile(q_wait[q], 99);
    s.avg_jct_s = mean(q_jct[q]);
    s.avg_in_use_gpus = window > 0 ? in_use_ms_[q] / window / kMilliPerGpu : 0;
    s.avg_fair_share_gpus = window > 0 ? fair_ms_[q] / window / kMilliPerGpu : 0;
    s.preempted = preempted_[q];
    s.max_reclaim_wait_s = max_owed_ms_[q] / 1000;
    if (max_owed_job_[q] >= 0) {
      s.max_reclaim_wait_from_s = seconds(max_owed_at_[q] - start_t_);
      s.max_reclaim_wait_job = jobs_[max_owed_job_[q]].name;
      s.max_reclaim_wait_job_res = jobs_[max_owed_job_[q]].res;
    }
    result.max_reclaim_wait_s = std::max(result.max_reclaim_wait_s, s.max_reclaim_wait_s);
    s.in_use_gpus = bin_series(seg_t_, seg_in_use_[i], start_t_, end, bins);
    s.fair_share_gpus = bin_series(seg_t_, seg_fair_[i], start_t_, end, bins);
    for (double& v : s.in_use_gpus) v /= kMilliPerGpu;
    for (double& v : s.fair_share_gpus) v /= kMilliPerGpu;
    result.queues.push_back(std::move(s));
  }
}
}  // namespace queue_replay
}  // namespace lepton::sim
