// The queue replay's event loop: arrivals, completions and ends of grace periods, one scheduling
// cycle per instant, and what each cycle's decisions do to the replay. See queue_sim.h.
#include "sim/queue_sim.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "sched/policy.h"
#include "sched/workload.h"
#include "sim/queue_sim_replay.h"

namespace lepton::sim {
namespace queue_replay {

Status Replay::setup(const std::vector<sched::NodeSpec>& nodes) {
  if (nodes.empty()) return Status::invalid_argument("nodes: the node list is empty");
  for (const auto& n : nodes) {
    if (n.gpu_count > 0 && !cluster_.add_model(n.gpu_model).is_ok()) {
      return Status::invalid_argument("node " + n.name + ": too many distinct GPU models");
    }
  }
  for (const auto& n : nodes) {
    auto id = cluster_.add_node(n);
    if (!id.is_ok()) {
      return Status::invalid_argument("node " + n.name + ": " + id.status().message());
    }
    capacity_.cpu_milli += n.cpu_milli;
    capacity_.memory_mib += n.memory_mib;
  }
  capacity_.gpu_milli = cluster_.gpu_capacity_milli();
  // Distinct empty node states, to find jobs that can never run here.
  std::vector<sched::NodeState> shapes;
  for (size_t i = 0; i < cluster_.node_count(); ++i) {
    const auto& s = cluster_.state(static_cast<sched::NodeId>(i));
    if (std::find(shapes.begin(), shapes.end(), s) == shapes.end()) shapes.push_back(s);
  }
  state_.resize(jobs_.size());
  std::vector<sched::Request> requests;
  for (size_t j = 0; j < jobs_.size(); ++j) {
    const QueueJob& job = jobs_[j];
    if (job.queue < 0 || job.queue >= tree_.size() || !tree_.is_leaf(job.queue)) {
      return Status::invalid_argument("job " + job.name + ": queue is not a leaf of the tree");
    }
    sched::Request& r = state_[j].request;
    r.res = job.res;
    r.allowed_models = job.gpu_spec.empty() ? sched::kAnyModel : cluster_.model_mask(job.gpu_spec);
    state_[j].quota = quota_of(job.res);
    requests.push_back(r);
    const bool placeable = std::any_of(shapes.begin(), shapes.end(), [&](const auto& s) {
      return sched::ClusterState::fits(s, r);
    });
    if (placeable) order_.push_back(static_cast<uint32_t>(j));
  }
  std::stable_sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
    return jobs_[a].arrival_ms < jobs_[b].arrival_ms;
  });
  auto typical = sched::TypicalWorkload::from_requests(requests, 0.95);
  auto policy = sched::make_policy(options_.placement, sched::PolicyConfig{typical});
  if (!policy.is_ok()) return Status::invalid_argument("placement: " + policy.status().message());
  placer_ = std::make_unique<sched::Scheduler>(
      std::move(*policy),
      sched::SchedulerOptions{.seed = 1, .ties = sched::TieBreak::kLowestNodeId});
  queues_ = std::make_unique<sched::QueueScheduler>(
      tree_, sched::QueueOptions{.policy = options_.policy,
                                 .reserve_after_ms = options_.reserve_after_ms});
  const size_t n = static_cast<size_t>(tree_.size());
  in_use_.assign(n, {});
  pending_quota_.assign(n, {});
  pending_gpu_sizes_.assign(n, {});
  guaranteed_gpu_.assign(n, 0);
  started_gpu_.assign(n, false);
  owed_since_.assign(n, -1);
  owed_job_.assign(n, -1);
  max_owed_ms_.assign(n, 0);
  max_owed_at_.assign(n, 0);
  max_owed_job_.assign(n, -1);
  preempted_.assign(n, 0);
  fair_gpu_now_.assign(n, 0);
  in_use_ms_.assign(n, 0);
  fair_ms_.assign(n, 0);
  for (int q = 0; q < tree_.size(); ++q) {
    guaranteed_gpu_[q] = tree_.spec(q).guaranteed.gpu_milli;
    if (tree_.is_leaf(q)) leaves_.push_back(q);
  }
  seg_in_use_.assign(leaves_.size(), {});
  seg_fair_.assign(leaves_.size(), {});
  return Status::ok();
}

void Replay::add_pending(uint32_t j) {
  const QueueJob& job = jobs_[j];
  JobState& s = state_[j];
  s.status = JobStatus::kPending;
  sched::Work w;
  w.id = j;
  w.queue = job.queue;
  w.priority = job.priority;
  w.preemptible = job.preemptible;
  w.submit_ms = job.arrival_ms;
  w.task = s.request;
  w.tasks = 1;
  pending_.push_back(w);
  pending_quota_[job.queue] += s.quota;
  if (s.quota.gpu_milli > 0) ++pending_gpu_sizes_[job.queue][s.quota.gpu_milli];
  changed_ = true;
}

void Replay::finish_run(uint32_t j, int64_t t) {
  JobState& s = state_[j];
  const size_t pos = s.running_pos;
  for (const sched::Placement& p : running_[pos].placements) cluster_.release(s.request, p);
  if (pos + 1 != running_.size()) {
    running_[pos] = std::move(running_.back());
    state_[running_[pos].work.id].running_pos = pos;
  }
  running_.pop_back();
  if (s.status == JobStatus::kStopping) {
    stopping_.erase(std::find(stopping_.begin(), stopping_.end(), uint64_t{j}));
  }
  in_use_[jobs_[j].queue] -= s.quota;
  s.end_ms = t;
  changed_ = true;
  last_real_t_ = t;
}

Status Replay::apply(const sched::CycleResult& r, int64_t t) {
  // (What a cycle itself starts or preempts needs no second cycle; the events it causes do.)
  bool any_started = false;
  for (const auto& [id, placements] : r.started) {
    if (id >= state_.size() || state_[id].status != JobStatus::kPending) {
      return Status::internal("cycle at t=" + std::to_string(t) + " ms started work " +
                              std::to_string(id) + ", which is not pending");
    }
    if (placements.size() != 1) {
      return Status::internal("cycle started work " + std::to_string(id) + " with " +
                              std::to_string(placements.size()) + " placements for 1 task");
    }
    const uint32_t j = static_cast<uint32_t>(id);
    JobState& s = state_[j];
    const int q = jobs_[j].queue;
    s.status = JobStatus::kRunning;
    s.start_ms = t;
    ++s.epoch;
    s.running_pos = running_.size();
    sched::RunningWork rw;
    rw.work.id = j;
    rw.work.queue = q;
    rw.work.priority = jobs_[j].priority;
    rw.work.preemptible = jobs_[j].preemptible;
    rw.work.submit_ms = jobs_[j].arrival_ms;
    rw.work.task = s.request;
    rw.work.tasks = 1;
    rw.placements = placements;
    rw.start_ms = t;
    running_.push_back(std::move(rw));
    in_use_[q] += s.quota;
    pending_quota_[q] -= s.quota;
    if (s.quota.gpu_milli > 0) {
      auto& sizes = pending_gpu_sizes_[q];
      auto it = sizes.find(s.quota.gpu_milli);
      if (--it->second == 0) sizes.erase(it);
      started_gpu_[q] = true;
    }
    events_.push({t + jobs_[j].duration_ms, j, s.epoch, false});
    any_started = true;
  }
  if (any_started) {
    std::erase_if(pending_,
                  [&](const sched::Work& w) { return state_[w.id].status != JobStatus::kPending; });
  }
  for (uint64_t id : r.preempted) {
    if (id >= state_.size() || state_[id].status != JobStatus::kRunning) {
      return Status::internal("cycle at t=" + std::to_string(t) + " ms preempted work " +
                              std::to_string(id) + ", which is not running (or already stopping)");
    }
    if (!jobs_[id].preemptible) {
      return Status::internal("cycle preempted work " + std::to_string(id) +
                              ", which is not preemptible");
    }
    const uint32_t j = static_cast<uint32_t>(id);
    state_[j].status = JobStatus::kStopping;
    stopping_.push_back(id);
    ++preemptions_;
    ++preempted_[jobs_[j].queue];
    events_.push({t + options_.grace_ms, j, state_[j].epoch, true});
  }
  return Status::ok();
}

Status Replay::round(int64_t t) {
  while (!events_.empty() && events_.top().t == t) {
    const Event e = events_.top();
    events_.pop();
    JobState& s = state_[e.job];
    if (e.epoch != s.epoch) continue;
    if (!e.stop && (s.status == JobStatus::kRunning || s.status == JobStatus::kStopping)) {
      finish_run(e.job, t);
      s.status = JobStatus::kDone;
    } else if (e.stop && s.status == JobStatus::kStopping) {
      lost_gpu_ms_ += static_cast<double>(s.quota.gpu_milli) * static_cast<double>(t - s.start_ms);
      finish_run(e.job, t);
      add_pending(e.job);
    }
  }
  while (next_arrival_ < order_.size() && jobs_[order_[next_arrival_]].arrival_ms == t) {
    add_pending(order_[next_arrival_++]);
    last_real_t_ = t;
  }
  if (!pending_.empty() && changed_) {
    changed_ = false;
    ++cycles_;
    sched::CycleResult r = queues_->cycle(cluster_, *placer_, pending_, running_, stopping_, t);
    LEPTON_RETURN_IF_ERROR(apply(r, t));
  }
  return Status::ok();
}

Result<QueueSimResult> Replay::run(const std::vector<sched::NodeSpec>& nodes,
                                   const std::function<void(size_t, size_t)>& progress) {
  const auto wall = std::chrono::steady_clock::now();
  LEPTON_RETURN_IF_ERROR(setup(nodes));
  QueueSimResult result;
  result.policy = std::string(sched::queue_policy_name(options_.policy));
  constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  start_t_ = order_.empty() ? 0 : jobs_[order_.front()].arrival_ms;
  window_end_ = order_.empty() ? 0 : jobs_[order_.back()].arrival_ms;
  if (options_.window == MeasureWindow::kRun) window_end_ = kNone;
  if (options_.horizon_ms > 0) window_end_ = std::min(window_end_, start_t_ + options_.horizon_ms);
  last_t_ = start_t_;
  last_real_t_ = start_t_;
  const size_t step = std::max<size_t>(1, order_.size() / 200);
  size_t reported = 0;
  int64_t prev_t = kNone;
  int same_t_rounds = 0;
  bool hit_horizon = false;
  while (true) {
    int64_t t = kNone;
    if (next_arrival_ < order_.size()) t = jobs_[order_[next_arrival_]].arrival_ms;
    if (!events_.empty()) t = std::min(t, events_.top().t);
    if (t == kNone) break;
    if (options_.horizon_ms > 0 && t > start_t_ + options_.horizon_ms) {
      hit_horizon = true;
      break;
    }
    if (t == prev_t && ++same_t_rounds > 1000) {
      return Status::internal("the queue scheduler keeps preempting and starting work at t=" +
                              std::to_string(t) + " ms (1000 rounds at one instant)");
    }
    if (t != prev_t) same_t_rounds = 0;
    prev_t = t;
    integrate(t);
    LEPTON_RETURN_IF_ERROR(round(t));
    snapshot(t);
    if (progress && next_arrival_ >= reported + step) {
      reported = next_arrival_;
      progress(next_arrival_, order_.size());
    }
  }
  if (progress) progress(order_.size(), order_.size());
  const int64_t end = hit_horizon ? start_t_ + options_.horizon_ms : last_real_t_;
  window_end_ = std::min(window_end_, end);
  finish(end, result);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
  return result;
}

}  // namespace queue_replay

Result<QueueSimResult> run_queue_sim(const std::vector<sched::NodeSpec>& nodes,
                                     const QueueWorkload& workload, const sched::QueueTree& tree,
                                     const QueueSimOptions& options,
                                     const std::function<void(size_t, size_t)>& progress) {
  if (options.grace_ms < 0) return Status::invalid_argument("grace: expected >= 0");
  if (options.horizon_ms < 0) return Status::invalid_argument("horizon: expected >= 0");
  queue_replay::Replay replay(workload, tree, options);
  return replay.run(nodes, progress);
}

}  // namespace lepton::sim
