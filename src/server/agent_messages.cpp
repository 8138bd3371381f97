// The agent side of the control plane: registration, heartbeats (task reports in, starts and
// stops out) and nodes lost for want of them.
#include <algorithm>

#include "server/control_plane.h"

namespace lepton::server {
namespace {

constexpr int kMasterPort = 29500;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Agents

Result<spec::RegistrationReply> ControlPlane::register_agent(const spec::AgentRegistration& message,
                                                             const std::string& peer,
                                                             int64_t now_ms) {
  LEPTON_RETURN_IF_ERROR(store_failure_);
  store::NodeRecord r;
  r.name = message.name;
  r.cpu_milli = message.cpu_milli;
  r.memory_mib = message.memory_mib;
  r.gpu_count = message.gpu_count;
  r.gpu_model = message.gpu_model;
  r.address = message.address.empty() ? peer : message.address;
  r.ready = true;
  r.last_heartbeat_ms = now_ms;
  store::WriteBatch batch;
  auto it = nodes_.find(r.name);
  if (it == nodes_.end()) {
    auto id = cluster_.add_node(
        {r.name, r.cpu_milli, r.memory_mib, r.gpu_count, r.gpu_model, node_group(r.name)});
    sched_dirty_ = true;
    if (!id.is_ok()) return id.status();
    node_names_[*id] = r.name;
    nodes_[r.name] = Node{r, *id, now_ms};
    size_heartbeat_interval();
    if (going_away(r.name)) cluster_.set_cordoned(*id, true);
    event(batch, now_ms, "node/" + r.name, "registered");
  } else {
    Node& node = it->second;
    const bool same_shape =
        node.record.cpu_milli == r.cpu_milli && node.record.memory_mib == r.memory_mib &&
        node.record.gpu_count == r.gpu_count && node.record.gpu_model == r.gpu_model;
    if (!same_shape) {
      return Status(
          StatusCode::kConflict,
          "node " + r.name + ": already registered with other resources; use another --name");
    }
    if (!node.record.ready) event(batch, now_ms, "node/" + r.name, "back");
    node.record.ready = true;
    node.record.address = r.address;
    node.record.last_heartbeat_ms = now_ms;
    node.seen_ms = now_ms;
    cluster_.set_cordoned(node.id, going_away(r.name));
    sched_dirty_ = true;
  }
  batch.nodes.push_back(nodes_[r.name].record);
  LEPTON_RETURN_IF_ERROR(commit(batch));
  return spec::RegistrationReply{.name = r.name, .timing = agent_timing()};
}

spec::TaskStart ControlPlane::task_start_message(const Job& job,
                                                 const store::TaskRecord& task) const {
  std::string ips;
  std::string master;
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    const store::TaskRecord& t = tasks_.at({job.record.id, rank});
    auto node = nodes_.find(t.node);
    std::string ip = node == nodes_.end() || node->second.record.address.empty()
                         ? "127.0.0.1"
                         : node->second.record.address;
    if (rank == 0) master = ip;
    ips += (rank ? "\n" : "") + ip;
  }
  std::string gpus;
  for (int g = 0; g < 32; ++g) {
    if (task.gpu_mask >> g & 1) gpus += (gpus.empty() ? "" : ",") + std::to_string(g);
  }
  std::map<std::string, std::string> env = {
      {"LEPTON_JOB_ID", job.record.id},
      {"LEPTON_JOB_NAME", job.spec.name},
      {"LEPTON_TASK_ATTEMPT", std::to_string(task.attempt)},
      {"LEPTON_NODE_RANK", std::to_string(task.rank)},
      {"LEPTON_NUM_NODES", std::to_string(job.spec.num_nodes)},
      {"LEPTON_NODE_IPS", ips},
      {"MASTER_ADDR", master},
      {"MASTER_PORT", std::to_string(kMasterPort)},
      {"WORLD_SIZE", std::to_string(job.spec.num_nodes)},
      {"RANK", std::to_string(task.rank)},
      {"CUDA_VISIBLE_DEVICES", gpus}};
  if (!options_.checkpoint_dir.empty()) {
    env["LEPTON_CHECKPOINT_DIR"] = options_.checkpoint_dir + "/" + job.record.id;
  }
  if (job.spec.resources.fractional()) {
    env["LEPTON_GPU_FRACTION"] = std::to_string(job.spec.resources.gpu_milli / 1000.0);
  }
  for (const auto& [k, v] : job.spec.envs) env[k] = v;  // the user's envs win
  std::string script;
  if (!job.spec.setup.empty()) script += "set -e\n" + job.spec.setup + "\nset +e\n";
  script += job.spec.run;
  return {.task = {job.record.id, task.rank, task.attempt},
          .script = std::move(script),
          .env = std::move(env)};
}

Result<spec::HeartbeatReply> ControlPlane::heartbeat(const std::string& node_name,
                                                     const spec::Heartbeat& message,
                                                     int64_t now_ms) {
  using State = spec::TaskReport::State;
  auto it = nodes_.find(node_name);
  if (it == nodes_.end()) {
    return Status::not_found("node " + node_name + ": not registered; register first");
  }
  Node& node = it->second;
  LEPTON_RETURN_IF_ERROR(store_failure_);
  store::WriteBatch batch;
  node.seen_ms = now_ms;
  // Liveness is kept in memory only (a restarted server gives every node a fresh timeout): the
  // node's record is written when its readiness changes, not on every heartbeat.
  node.record.last_heartbeat_ms = now_ms;
  if (!node.record.ready) {
    node.record.ready = true;
    cluster_.set_cordoned(node.id, going_away(node_name));
    sched_dirty_ = true;
    event(batch, now_ms, "node/" + node_name, "back");
    batch.nodes.push_back(node.record);
  }
  // Log chunks are queued to the log writer (its own thread: no disk I/O on the loop). A resend
  // or a gap is dropped; the reply says where to resume.
  for (const spec::LogChunk& c : message.logs) {
    auto t = tasks_.find({c.task.job_id, c.task.rank});
    if (t == tasks_.end() || t->second.node != node_name) continue;
    logs_->append({c.task.job_id, c.task.rank, c.task.attempt}, c.offset, c.data);
  }
  spec::HeartbeatReply reply;
  reply.timing = agent_timing();
  std::set<TaskKey> reported;
  for (const spec::TaskReport& report : message.tasks) {
    const spec::TaskRef& r = report.task;
    auto t = tasks_.find({r.job_id, r.rank});
    auto job = jobs_.find(r.job_id);
    const bool current = t != tasks_.end() && job != jobs_.end() &&
                         t->second.attempt == r.attempt && t->second.node == node_name &&
                         !is_terminal(t->second.state) && t->second.state != JobState::kPending;
    // A task that ended (its end is recorded as soon as its process ends) keeps shipping the rest
    // of its output: the agent is told where to resume instead of being told to forget it.
    const bool ended_here = !current && report.state != State::kRunning && t != tasks_.end() &&
                            t->second.attempt == r.attempt && t->second.node == node_name &&
                            is_terminal(t->second.state);
    const int64_t resume =
        ended_here ? logs_->resume_offset({r.job_id, r.rank, r.attempt}, report.log_size) : 0;
    if (ended_here && resume < report.log_size) {
      reply.log_offsets.push_back({.task = r, .offset = resume});
      expected_log_[{r.job_id, r.rank}] = report.log_size;
      reported.insert({r.job_id, r.rank});
      continue;
    }
    if (!current) {
      spec::TaskStop entry{.task = r, .grace_ms = std::nullopt, .notice = false};
      // Stale, cancelled or unknown: the agent stops and forgets it.
      auto st = stopping_.find({r.job_id, r.rank});
      if (st != stopping_.end() && st->second.attempt == r.attempt) {
        entry.grace_ms = st->second.grace_ms;  // preempted: SIGTERM, then the grace
        entry.notice = st->second.notice;
      }
      reply.stop.push_back(std::move(entry));
      continue;
    }
    reported.insert({r.job_id, r.rank});
    reply.log_offsets.push_back(
        {.task = r,
         .offset = logs_->resume_offset({r.job_id, r.rank, r.attempt}, report.log_size)});
    store::TaskRecord& task = t->second;
    if (report.state == State::kRunning) {
      if (task.state != JobState::kRunning) {
        task.state = JobState::kRunning;
        task.updated_ms = now_ms;
        save_task(task, batch);
        update_job_state(job->second, batch, now_ms);
      }
      continue;
    }
    // EXITED, GONE or FENCED: the end is recorded now; output still to come ships after it.
    expected_log_[{r.job_id, r.rank}] = report.log_size;
    task.exit_code = report.state == State::kGone ? -1 : report.exit_code;
    task.updated_ms = now_ms;
    if (report.state == State::kFenced) {
      task_failed(job->second, task,
                  "its agent stopped it after losing contact with the server (lease of " +
                      std::to_string(lease_ms() / 1000) + " s)",
                  /*counts_as_restart=*/false, batch, now_ms);
    } else if (report.state == State::kExited && report.exit_code == 0) {
      release(task);
      task.state = JobState::kSucceeded;
      save_task(task, batch);
      event(batch, now_ms, task_object(r.job_id, r.rank), "succeeded");
      update_job_state(job->second, batch, now_ms);
    } else {
      std::string why = report.state == State::kGone
                            ? "the task's processes disappeared"
                            : "exited with code " + std::to_string(report.exit_code);
      task_failed(job->second, task, why, /*counts_as_restart=*/true, batch, now_ms);
    }
  }
  // Resources the reports freed go to pending work at once, so this reply can carry it (rounds
  // are spaced out once there is much work: schedule_pending).
  schedule_pending(batch, now_ms);
  // Tasks this node should run: start those not reported (the agent ignores a start for a task
  // it already has); a running task it no longer reports has vanished.
  auto on_node = node_tasks_.find(node_name);
  const std::vector<TaskKey> active =
      on_node == node_tasks_.end()
          ? std::vector<TaskKey>()
          : std::vector<TaskKey>(on_node->second.begin(), on_node->second.end());
  for (const TaskKey& key : active) {
    store::TaskRecord& task = tasks_.at(key);
    if (task.node != node_name || reported.count(key)) continue;
    if (task.state == JobState::kScheduled || task.state == JobState::kStarting) {
      Job& job = jobs_.at(key.first);
      reply.start.push_back(task_start_message(job, task));
      if (task.state == JobState::kScheduled) {
        task.state = JobState::kStarting;
        task.updated_ms = now_ms;
        save_task(task, batch);
        update_job_state(job, batch, now_ms);
      }
    } else if (task.state == JobState::kRunning) {
      task_failed(jobs_.at(key.first), task, "the agent no longer reports it",
                  /*counts_as_restart=*/true, batch, now_ms);
    }
  }
  LEPTON_RETURN_IF_ERROR(commit(batch));
  return reply;
}

// Lost nodes take no new work at once. Their tasks are started elsewhere (an infrastructure
// failure, not the job's) only once the node's agent has stopped them for lack of contact (its
// lease) or the node is back and reports them: never two attempts at once. A node's deadlines
// only move later (heartbeats, a loop gap, an interval that grows), and a node that registers has
// a whole timeout ahead: so the next look is due at the earliest deadline seen now (and within a
// second), not at every tick, which at 10,000 nodes is most of an idle tick's work.
void ControlPlane::check_nodes(store::WriteBatch& batch, int64_t now_ms) {
  const int64_t fence_ms = lease_ms() + options_.fence_margin_ms;
  int64_t next = now_ms + 1000;
  for (auto& [name, node] : nodes_) {
    const int64_t silent = now_ms - node.seen_ms;
    if (node.record.ready && silent >= node_timeout_ms()) {
      node.record.ready = false;
      cluster_.set_cordoned(node.id, true);
      sched_dirty_ = true;
      batch.nodes.push_back(node.record);
      event(batch, now_ms, "node/" + name,
            "lost: no heartbeat for " + std::to_string(silent) + " ms; its tasks are started " +
                "elsewhere " + std::to_string((fence_ms - silent + 999) / 1000) +
                " s from now unless it comes back");
    }
    if (node.record.ready) {
      next = std::min(next, node.seen_ms + node_timeout_ms());
      continue;
    }
    auto on_node = node_tasks_.find(name);
    if (on_node == node_tasks_.end()) continue;
    if (silent < fence_ms) {
      next = std::min(next, node.seen_ms + fence_ms);
      continue;
    }
    const std::vector<TaskKey> active(on_node->second.begin(), on_node->second.end());
    for (const TaskKey& key : active) {
      store::TaskRecord& task = tasks_.at(key);
      if (task.node != name || is_terminal(task.state) || task.state == JobState::kPending) {
        continue;
      }
      task_failed(jobs_.at(key.first), task,
                  "its node " + name + " was lost (no heartbeat for " +
                      std::to_string(silent / 1000) + " s; its agent stops what it ran)",
                  /*counts_as_restart=*/false, batch, now_ms);
    }
  }
  next_node_check_ms_ = next;
}

}  // namespace lepton::server
