// A job's life on the control loop: the tick, scheduling rounds and what they start, preempt
// and release, and the end of tasks and jobs.
#include <algorithm>
#include <chrono>

#include "server/control_plane.h"

namespace lepton::server {

std::string ControlPlane::task_object(const std::string& job, int rank) {
  return "task/" + job + "/" + std::to_string(rank);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

void ControlPlane::release(const store::TaskRecord& task) {
  if (task.node.empty()) return;
  auto node = nodes_.find(task.node);
  auto job = jobs_.find(task.job_id);
  if (node == nodes_.end() || job == jobs_.end()) return;
  cluster_.release(request_of(job->second), {node->second.id, task.gpu_mask});
  sched_dirty_ = true;
}

void ControlPlane::finish_job(Job& job, JobState state, const std::string& why,
                              store::WriteBatch& batch, int64_t now_ms) {
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    store::TaskRecord& t = tasks_.at({job.record.id, rank});
    if (is_terminal(t.state)) continue;
    if (t.state != JobState::kPending) release(t);
    t.state = JobState::kCancelled;  // the job ended while this task had not
    t.reason = why;
    t.updated_ms = now_ms;
    save_task(t, batch);
  }
  job.record.state = state;
  job.record.reason = why;
  job.record.updated_ms = now_ms;
  save_job(job, batch);
  event(batch, now_ms, "job/" + job.record.id,
        std::string(job_state_name(state)) + (why.empty() ? "" : ": " + why));
}

void ControlPlane::task_failed(Job& job, store::TaskRecord& task, const std::string& why,
                               bool counts_as_restart, store::WriteBatch& batch, int64_t now_ms) {
  release(task);
  task.state = JobState::kFailed;
  task.reason = why;
  task.updated_ms = now_ms;
  save_task(task, batch);
  event(batch, now_ms, task_object(job.record.id, task.rank), "failed: " + why);
  const bool may_restart = !counts_as_restart || job.record.restarts < job.spec.max_restarts;
  if (!may_restart) {
    finish_job(job, JobState::kFailed, "rank " + std::to_string(task.rank) + " " + why, batch,
               now_ms);
    return;
  }
  // Restart the whole job: every task gets a new attempt and goes back to pending; the agents
  // stop the old attempts, which no longer match.
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    store::TaskRecord& t = tasks_.at({job.record.id, rank});
    if (&t != &task && !is_terminal(t.state) && t.state != JobState::kPending) release(t);
    t.attempt++;
    t.state = JobState::kPending;
    t.node.clear();
    t.gpu_mask = 0;
    t.exit_code = -1;
    t.updated_ms = now_ms;
    save_task(t, batch);
  }
  if (counts_as_restart) job.record.restarts++;
  job.record.state = JobState::kPending;
  job.record.reason = "restarting: rank " + std::to_string(task.rank) + " " + why;
  job.record.updated_ms = now_ms;
  save_job(job, batch);
  event(batch, now_ms, "job/" + job.record.id, job.record.reason);
}

void ControlPlane::update_job_state(Job& job, store::WriteBatch& batch, int64_t now_ms) {
  if (is_terminal(job.record.state)) return;
  bool all_succeeded = true, all_running = true, any_starting = false;
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    const store::TaskRecord& t = tasks_.at({job.record.id, rank});
    all_succeeded &= t.state == JobState::kSucceeded;
    all_running &= t.state == JobState::kRunning || t.state == JobState::kSucceeded;
    any_starting |= t.state == JobState::kStarting || t.state == JobState::kRunning;
  }
  JobState next = job.record.state;
  if (all_succeeded) {
    finish_job(job, JobState::kSucceeded, "", batch, now_ms);
    return;
  }
  if (all_running) {
    next = JobState::kRunning;
  } else if (any_starting) {
    next = JobState::kStarting;
  }
  if (next != job.record.state) {
    job.record.state = next;
    job.record.reason.clear();
    job.record.updated_ms = now_ms;
    save_job(job, batch);
  }
}

void ControlPlane::assign(Job& job, const std::vector<sched::Placement>& placements,
                          store::WriteBatch& batch, int64_t now_ms) {
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    store::TaskRecord& t = tasks_.at({job.record.id, rank});
    t.node = node_names_.at(placements[rank].node);
    t.gpu_mask = placements[rank].gpu_mask;
    t.state = JobState::kScheduled;
    t.reason.clear();
    t.updated_ms = now_ms;
    save_task(t, batch);
  }
  job.record.state = JobState::kScheduled;
  job.record.reason.clear();
  job.record.updated_ms = now_ms;
  job.started_ms = now_ms;
  job.preempting.clear();
  job.no_capacity = false;
  job.cloud_note.clear();
  save_job(job, batch);
  event(batch, now_ms, "job/" + job.record.id, "scheduled");
}

void ControlPlane::preempt(Job& job, const std::string& why, int64_t grace_ms, bool notice,
                           store::WriteBatch& batch, int64_t now_ms) {
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    store::TaskRecord& t = tasks_.at({job.record.id, rank});
    if (is_terminal(t.state) || t.state == JobState::kPending) continue;
    // The resources stay bound until the task has had its grace period; a new attempt number
    // makes the agent's reports of the old one stale, so the next heartbeat stops it.
    stopping_[{job.record.id, rank}] =
        Stopping{t.node, t.gpu_mask, t.attempt, now_ms + grace_ms + 2000, grace_ms, notice};
    t.attempt++;
    t.state = JobState::kPending;
    t.node.clear();
    t.gpu_mask = 0;
    t.exit_code = -1;
    t.reason = "preempted";
    t.updated_ms = now_ms;
    save_task(t, batch);
  }
  job.record.state = JobState::kPending;
  job.record.reason = why + "; waits in its queue to resume";
  job.record.updated_ms = now_ms;
  save_job(job, batch);
  event(batch, now_ms, "job/" + job.record.id, job.record.reason);
}

Status ControlPlane::tick(int64_t now_ms) {
  LEPTON_RETURN_IF_ERROR(store_failure_);
  store::WriteBatch batch;
  // Preempted tasks whose grace period is over give their resources back.
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    if (now_ms < it->second.until_ms) {
      ++it;
      continue;
    }
    auto node = nodes_.find(it->second.node);
    auto job = jobs_.find(it->first.first);
    if (node != nodes_.end() && job != jobs_.end()) {
      cluster_.release(request_of(job->second), {node->second.id, it->second.gpu_mask});
      sched_dirty_ = true;
    }
    it = stopping_.erase(it);
  }
  // Time the loop did not run (the process was stopped, or a call held the loop) is given back
  // to every node: their heartbeats were waiting for us, not missing.
  constexpr int64_t kLoopGapMs = 1000;
  if (last_tick_ms_ > 0 && now_ms - last_tick_ms_ > kLoopGapMs) {
    const int64_t gap = now_ms - last_tick_ms_;
    for (auto& [name, node] : nodes_) node.seen_ms = std::min(now_ms, node.seen_ms + gap);
    event(batch, now_ms, "server",
          "the control loop did not run for " + std::to_string(gap) +
              " ms; that time does not count against the nodes");
  }
  last_tick_ms_ = now_ms;
  if (now_ms >= next_node_check_ms_) check_nodes(batch, now_ms);
  remove_old_logs(now_ms);
  reconcile_deployments(batch, now_ms);
  schedule_pending(batch, now_ms);
  cloud_round(batch, now_ms);
  return commit(batch);
}

void ControlPlane::remove_old_logs(int64_t now_ms) {
  if (options_.log_retention_ms <= 0) return;
  // Oldest first, stopping at the first job still running or ended too recently: each job is
  // looked at once, and a tick does no more than what has aged since.
  while (retention_cursor_ < job_order_.size()) {
    const Job& job = jobs_.at(job_order_[retention_cursor_]);
    if (!is_terminal(job.record.state) ||
        now_ms - job.record.updated_ms < options_.log_retention_ms) {
      return;
    }
    logs_->remove_job(job.record.id);
    expected_log_.erase({job.record.id, 0});
    ++retention_cursor_;
  }
}

void ControlPlane::schedule_pending(store::WriteBatch& batch, int64_t now_ms) {
  if (pending_jobs_.empty()) return;
  bind_rented(batch, now_ms);
  // A round changes nothing unless work, capacity or queues changed, or time passed (waiting
  // jobs earn reservations, victims finish stopping): skip it otherwise, but not for long.
  if (!sched_dirty_ && now_ms - last_round_ms_ < 1000) return;
  // A round looks at all pending and running work. With much of it (thousands of nodes
  // heartbeating, each asking for one), the next round waits at least four times as long as the
  // last one took, and kMinRoundGapMs: rounds then take at most a fifth of the control loop, and
  // the calls between them are answered. Work that waits meanwhile is placed by the next one.
  constexpr int64_t kMinRoundGapMs = 20;
  constexpr size_t kCheapRound = 2000;  // pending jobs plus running tasks
  if (pending_jobs_.size() + active_tasks_.size() > kCheapRound &&
      now_ms - last_round_ms_ < std::max(kMinRoundGapMs, 4 * last_round_cost_ms_)) {
    return;
  }
  sched_dirty_ = false;
  last_round_ms_ = now_ms;
  const auto started = std::chrono::steady_clock::now();
  run_round(batch, now_ms);
  last_round_cost_ms_ =
      std::chrono::ceil<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
          .count();
}

void ControlPlane::run_round(store::WriteBatch& batch, int64_t now_ms) {
  ensure_scheduler();
  // Jobs with tasks still stopping wait for them; their old placements count as running.
  std::set<std::string> stopping_jobs;
  for (const auto& [key, st] : stopping_) stopping_jobs.insert(key.first);
  std::vector<sched::Work> pending;
  std::vector<sched::RunningWork> running;
  std::vector<uint64_t> stopping;
  auto work_of = [&](const Job& job) {
    sched::Work w;
    w.id = static_cast<uint64_t>(job.seq);
    w.queue = queue_index(job);
    w.priority = job.spec.priority;
    w.preemptible = job.spec.preemptible;
    w.submit_ms = job.record.created_ms;
    w.task = request_of(job);
    w.tasks = job.spec.num_nodes;
    return w;
  };
  for (const auto& [seq, id] : pending_jobs_) {
    const Job& job = jobs_.at(id);
    if (job.record.state == JobState::kPending && !stopping_jobs.count(id)) {
      pending.push_back(work_of(job));
    }
  }
  if (pending.empty()) return;
  std::map<std::string, sched::RunningWork> stopping_work;  // preempted, not yet released
  for (const auto& [key, st] : stopping_) {
    auto node = nodes_.find(st.node);
    if (node == nodes_.end()) continue;
    const Job& job = jobs_.at(key.first);
    auto [it, fresh] = stopping_work.try_emplace(key.first);
    if (fresh) {
      // The job itself is not pending until all of it has stopped, so its id is free here.
      it->second = sched::RunningWork{work_of(job), {}, job.started_ms};
      stopping.push_back(it->second.work.id);
    }
    it->second.placements.push_back({node->second.id, st.gpu_mask});
  }
  for (auto& [id, r] : stopping_work) running.push_back(std::move(r));
  // Running work, a job at a time: active_tasks_ is ordered by job, so a job's tasks are
  // adjacent (a round looks at thousands of them).
  const std::string* last_job = nullptr;
  for (const auto& [key, on_node] : active_tasks_) {
    auto node = nodes_.find(on_node);
    if (node == nodes_.end()) continue;
    if (last_job == nullptr || *last_job != key.first) {
      const Job& job = jobs_.at(key.first);
      running.push_back(sched::RunningWork{work_of(job), {}, job.started_ms});
      last_job = &key.first;
    }
    running.back().placements.push_back({node->second.id, tasks_.at(key).gpu_mask});
  }

  // Machines rented for jobs that still wait for them are kept for those jobs (bind_rented places
  // them): other work taking one would leave its job to rent again.
  const std::vector<sched::NodeId> held = hold_rented_machines();
  sched::CycleResult result =
      queue_scheduler_->cycle(cluster_, *scheduler_, pending, running, stopping, now_ms);
  for (sched::NodeId id : held) cluster_.set_cordoned(id, false);
  auto job_by_seq = [&](uint64_t seq) -> Job& { return jobs_.at(job_order_.at(seq - 1)); };
  for (const auto& [seq, placements] : result.started) {
    Job& job = job_by_seq(seq);
    std::vector<sched::Placement> chosen = placements;
    spread_replica(job, chosen);
    assign(job, chosen, batch, now_ms);
  }
  for (const auto& [seq, why] : result.waiting) {
    Job& job = job_by_seq(seq);
    job.no_capacity = why.no_capacity;
    std::vector<std::string> preempting;
    for (uint64_t v : why.preempting) preempting.push_back(job_by_seq(v).record.id);
    job.preempting = preempting;
    if (why.text != job.record.reason) {
      job.record.reason = why.text;
      job.record.updated_ms = now_ms;
      save_job(job, batch);
    }
  }
  for (uint64_t victim : result.preempted) {
    std::string for_job;
    for (const auto& [seq, why] : result.waiting) {
      if (std::find(why.preempting.begin(), why.preempting.end(), victim) != why.preempting.end()) {
        for_job = job_by_seq(seq).record.id;
      }
    }
    preempt(job_by_seq(victim), "preempted for " + (for_job.empty() ? "other work" : for_job),
            options_.preempt_grace_ms, /*notice=*/false, batch, now_ms);
  }
}

}  // namespace lepton::server
