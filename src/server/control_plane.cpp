#include "server/control_plane.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "spec/job_json.h"
#include "spec/queue_json.h"

namespace lepton::server {
namespace {

namespace fs = std::filesystem;

}  // namespace

ControlPlane::ControlPlane(std::unique_ptr<store::Store> store, ControlPlaneOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

Result<std::unique_ptr<ControlPlane>> ControlPlane::open(std::unique_ptr<store::Store> store,
                                                         ControlPlaneOptions options,
                                                         int64_t now_ms) {
  std::unique_ptr<ControlPlane> cp(new ControlPlane(std::move(store), std::move(options)));
  auto logs = TaskLogs::open({.dir = cp->options_.data_dir + "/logs",
                              .head_bytes = cp->options_.log_head_bytes,
                              .tail_bytes = cp->options_.log_tail_bytes,
                              .queue_bytes = 64 << 20,
                              .before_write = {}});
  if (!logs.is_ok()) return logs.status();
  cp->logs_ = std::move(*logs);
  LEPTON_RETURN_IF_ERROR(cp->load(now_ms));
  return cp;
}

Status ControlPlane::load(int64_t now_ms) {
  auto counter = store_->counter("job");
  if (!counter.is_ok()) return counter.status();
  job_counter_ = *counter;
  LEPTON_RETURN_IF_ERROR(load_instances());  // first: a rented node's group comes from it
  auto nodes = store_->list_nodes();
  if (!nodes.is_ok()) return nodes.status();
  for (store::NodeRecord& r : *nodes) {
    sched::NodeSpec spec{r.name,      r.cpu_milli, r.memory_mib,
                         r.gpu_count, r.gpu_model, node_group(r.name)};
    auto id = cluster_.add_node(spec);
    if (!id.is_ok()) return Status::internal("node " + r.name + ": " + id.status().message());
    if (!r.ready) cluster_.set_cordoned(*id, true);
    node_names_[*id] = r.name;
    nodes_[r.name] = Node{r, *id, now_ms};  // a fresh timeout to reconnect
  }
  auto queues = store_->list_queues();
  if (!queues.is_ok()) return queues.status();
  for (store::QueueRecord& r : *queues) {
    auto spec = spec::queue_spec_from_json(r.spec_json);
    if (!spec.is_ok()) {
      return Status::internal("queue " + r.name +
                              ": stored spec unreadable: " + spec.status().message());
    }
    queues_[r.name] = std::move(*spec);
  }
  auto jobs = store_->list_jobs();
  if (!jobs.is_ok()) return jobs.status();
  for (store::JobRecord& r : *jobs) {
    auto spec = spec::job_spec_from_json(r.spec_json);
    if (!spec.is_ok()) {
      return Status::internal("job " + r.id +
                              ": stored spec unreadable: " + spec.status().message());
    }
    job_order_.push_back(r.id);
    if (!r.idempotency_key.empty()) idempotency_keys_[r.idempotency_key] = r.id;
    const int64_t seq = static_cast<int64_t>(job_order_.size());
    if (r.state == JobState::kPending) pending_jobs_.emplace(seq, r.id);
    jobs_[r.id] = Job{r, std::move(*spec), seq, r.updated_ms, {}, false, {}};
  }
  auto tasks = store_->list_tasks("");
  if (!tasks.is_ok()) return tasks.status();
  for (store::TaskRecord& t : *tasks) {
    // Work that holds resources is bound again, on the node it was placed on.
    const bool holds = !is_terminal(t.state) && t.state != JobState::kPending && !t.node.empty();
    auto node = nodes_.find(t.node);
    auto job = jobs_.find(t.job_id);
    if (holds && node != nodes_.end() && job != jobs_.end()) {
      cluster_.bind(request_of(job->second), {node->second.id, t.gpu_mask});
    }
    if (holds) set_active({t.job_id, t.rank}, true, t.node);
    tasks_[{t.job_id, t.rank}] = t;
  }
  // Tasks still on rented machines: their cost records are open.
  for (const auto& [key, task] : tasks_) ledger_.reopen_use(key, task.node);
  size_heartbeat_interval();
  return load_deployments(now_ms);
}

Status ControlPlane::commit(store::WriteBatch& batch) {
  if (!store_failure_.is_ok()) return store_failure_;
  if (batch.empty()) return Status::ok();
  if (group_commits_) {
    unflushed_.append(std::move(batch));
    return Status::ok();
  }
  auto rev = store_->commit(batch);
  batch = store::WriteBatch{};
  if (!rev.is_ok()) fail_store(rev.status());
  return store_failure_;
}

Status ControlPlane::flush() {
  if (!store_failure_.is_ok()) return store_failure_;
  if (unflushed_.empty()) return Status::ok();
  auto rev = store_->commit(unflushed_);
  unflushed_ = store::WriteBatch{};
  if (!rev.is_ok()) fail_store(rev.status());
  return store_failure_;
}

// Memory already holds what the store refused. Answering on from it would tell clients of
// changes a restart forgets (a cancelled job that runs again), so nothing is answered any more:
// the owner stops, and a restart rebuilds the state from the store.
void ControlPlane::fail_store(const Status& why) {
  store_failure_ = Status(StatusCode::kUnavailable,
                          "the store failed (" + why.message() +
                              "); the server stops and must be restarted once the store "
                              "is writable again");
}

Status ControlPlane::commit_first(store::WriteBatch& batch) {
  if (!store_failure_.is_ok()) return store_failure_;
  if (group_commits_) return commit(batch);
  if (batch.empty()) return Status::ok();
  auto rev = store_->commit(batch);
  batch = store::WriteBatch{};
  return rev.status();
}

int64_t ControlPlane::next_job_number(store::WriteBatch& batch) {
  ++job_counter_;
  batch.counters.push_back({"job", job_counter_});
  return job_counter_;
}

int64_t ControlPlane::lease_ms() const {
  return options_.lease_ms > 0 ? std::max(options_.lease_ms, 3 * heartbeat_ms_)
                               : 2 * node_timeout_ms();
}

int64_t ControlPlane::node_timeout_ms() const {
  return std::max(options_.node_timeout_ms, 3 * heartbeat_ms_);
}

void ControlPlane::size_heartbeat_interval() {
  const int64_t rate = std::max(1, options_.max_heartbeats_per_s);
  const int64_t wanted = (static_cast<int64_t>(nodes_.size()) * 1000 + rate - 1) / rate;
  heartbeat_ms_ =
      std::max({heartbeat_ms_, static_cast<int64_t>(options_.heartbeat_interval_ms), wanted});
}

void ControlPlane::set_active(const TaskKey& key, bool active, const std::string& node) {
  auto old = active_tasks_.find(key);
  if (old != active_tasks_.end()) {
    if (active && old->second == node) return;
    auto on = node_tasks_.find(old->second);
    if (on != node_tasks_.end()) {
      on->second.erase(key);
      if (on->second.empty()) node_tasks_.erase(on);
    }
    active_tasks_.erase(old);
  }
  if (!active) return;
  active_tasks_[key] = node;
  if (!node.empty()) node_tasks_[node].insert(key);
}

spec::AgentTiming ControlPlane::agent_timing() const {
  return {.heartbeat_ms = heartbeat_ms_, .lease_ms = lease_ms()};
}

void ControlPlane::save_task(const store::TaskRecord& task, store::WriteBatch& batch) {
  const TaskKey key{task.job_id, task.rank};
  const bool was_active = active_tasks_.count(key) > 0;
  const bool active = !is_terminal(task.state) && task.state != JobState::kPending;
  set_active(key, active, task.node);
  track_use(task, was_active, active, batch);
  batch.tasks.push_back(task);
}

void ControlPlane::save_job(const Job& job, store::WriteBatch& batch) {
  if (job.record.state == JobState::kPending) {
    pending_jobs_.emplace(job.seq, job.record.id);
    sched_dirty_ = true;
  } else {
    pending_jobs_.erase(job.seq);
  }
  batch.jobs.push_back(job.record);
}

void ControlPlane::event(store::WriteBatch& batch, int64_t now_ms, std::string object,
                         std::string message) {
  batch.events.push_back({0, now_ms, std::move(object), std::move(message)});
}

sched::Request ControlPlane::request_of(const Job& job) const {
  sched::Request r;
  r.res = job.spec.resources;
  r.allowed_models =
      job.spec.gpu_models.empty() ? sched::kAnyModel : cluster_.model_mask(job.spec.gpu_models);
  r.allowed_groups = allowed_groups(job.spec);
  return r;
}

void ControlPlane::ensure_scheduler() {
  if (!queue_scheduler_) {
    queue_scheduler_ = std::make_unique<sched::QueueScheduler>(
        queue_tree(), sched::QueueOptions{.policy = sched::QueuePolicy::kLepton,
                                          .reserve_after_ms = options_.reserve_after_ms});
  }
  // The typical workload (what fragmentation is measured against) is the jobs seen so far;
  // rebuilt when their number has doubled.
  if (scheduler_ && jobs_.size() < 2 * scheduler_jobs_ + 8) return;
  std::vector<sched::Request> requests;
  for (const auto& [id, job] : jobs_) requests.push_back(request_of(job));
  auto policy =
      sched::make_policy(options_.policy, {sched::TypicalWorkload::from_requests(requests, 0.95)});
  LEPTON_CHECK(policy.is_ok());  // the name was checked when the server started
  scheduler_ = std::make_unique<sched::Scheduler>(std::move(*policy), sched::SchedulerOptions{});
  scheduler_jobs_ = jobs_.size();
}

// ---------------------------------------------------------------------------------------------
// User API

Status ControlPlane::check_queue(const std::string& queue) const {
  if (!queue.empty() && queue != kDefaultQueue && !queues_.count(queue)) {
    return Status::invalid_argument("queue: no queue named " + queue + " (see lepton queue ls)");
  }
  for (const auto& [name, q] : queues_) {
    if (!queue.empty() && q.parent == queue) {
      return Status::invalid_argument("queue: " + queue +
                                      " has child queues; submit to one of them");
    }
  }
  return Status::ok();
}

Result<json> ControlPlane::submit_job(const std::string& body, int64_t now_ms,
                                      const std::string& idempotency_key, bool* replayed) {
  LEPTON_RETURN_IF_ERROR(store_failure_);
  if (replayed != nullptr) *replayed = false;
  if (idempotency_key.size() > 255 || std::any_of(idempotency_key.begin(), idempotency_key.end(),
                                                  [](char c) { return c < 0x21 || c > 0x7e; })) {
    return Status::invalid_argument(
        "idempotency-key: expected up to 255 printable ASCII characters without spaces");
  }
  auto spec = spec::job_spec_from_json(body);
  if (!spec.is_ok()) return spec.status();
  if (!idempotency_key.empty()) {
    if (auto it = idempotency_keys_.find(idempotency_key); it != idempotency_keys_.end()) {
      const Job& earlier = jobs_.at(it->second);
      if (earlier.record.spec_json != spec::job_spec_to_json(*spec)) {
        return Status(StatusCode::kConflict, "idempotency-key: " + idempotency_key +
                                                 " was used for job " + it->second +
                                                 " with another spec; use a new key");
      }
      if (replayed != nullptr) *replayed = true;
      return job_json(earlier);
    }
  }
  LEPTON_RETURN_IF_ERROR(check_queue(spec->queue));
  store::WriteBatch batch;
  Job& job = add_job(std::move(*spec), next_job_number(batch), batch, now_ms);
  const std::string id = job.record.id;
  if (!idempotency_key.empty()) {
    job.record.idempotency_key = idempotency_key;
    batch.jobs.back().idempotency_key = idempotency_key;
  }
  if (Status s = commit_first(batch); !s.is_ok()) {  // durable before the API answers
    // Not stored: forget it again.
    pending_jobs_.erase(job.seq);
    for (int rank = 0; rank < job.spec.num_nodes; ++rank) tasks_.erase({id, rank});
    jobs_.erase(id);
    job_order_.pop_back();
    return s;
  }
  ++submitted_;
  if (!idempotency_key.empty()) idempotency_keys_[idempotency_key] = id;
  return job_json(jobs_[id]);
}

ControlPlane::Job& ControlPlane::add_job(JobSpec spec, int64_t id, store::WriteBatch& batch,
                                         int64_t now_ms) {
  Job job;
  job.spec = std::move(spec);
  job.record.id = "j-" + std::to_string(id);
  job.record.name = job.spec.name;
  job.record.spec_json = spec::job_spec_to_json(job.spec);
  job.record.state = JobState::kPending;
  job.record.created_ms = job.record.updated_ms = now_ms;
  batch.jobs.push_back(job.record);
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    store::TaskRecord t;
    t.job_id = job.record.id;
    t.rank = rank;
    t.gpu_milli = job.spec.resources.gpu_milli;
    t.updated_ms = now_ms;
    batch.tasks.push_back(t);
    tasks_[{t.job_id, t.rank}] = t;
  }
  event(batch, now_ms, "job/" + job.record.id, "submitted");
  const std::string key = job.record.id;
  job_order_.push_back(key);
  job.seq = static_cast<int64_t>(job_order_.size());
  pending_jobs_.emplace(job.seq, key);
  sched_dirty_ = true;
  return jobs_[key] = std::move(job);
}

json ControlPlane::job_json(const Job& job) const {
  json tasks = json::array();
  for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
    auto it = tasks_.find({job.record.id, rank});
    if (it == tasks_.end()) continue;
    const store::TaskRecord& t = it->second;
    json gpus = json::array();
    for (int g = 0; g < 32; ++g) {
      if (t.gpu_mask >> g & 1) gpus.push_back(g);
    }
    tasks.push_back({{"rank", t.rank},
                     {"attempt", t.attempt},
                     {"node", t.node},
                     {"gpus", gpus},
                     {"state", job_state_name(t.state)},
                     {"exit_code", t.exit_code},
                     {"reason", t.reason}});
  }
  auto deployment = deployment_of_job_.find(job.record.id);
  return {{"id", job.record.id},
          {"name", job.record.name},
          {"deployment", deployment == deployment_of_job_.end() ? "" : deployment->second},
          {"queue", job.spec.queue.empty() ? std::string(kDefaultQueue) : job.spec.queue},
          {"state", job_state_name(job.record.state)},
          {"restarts", job.record.restarts},
          {"reason", reason_of(job)},
          {"preempting", job.preempting},
          {"created_ms", job.record.created_ms},
          {"updated_ms", job.record.updated_ms},
          {"spec", json::parse(job.record.spec_json)},
          {"tasks", tasks}};
}

std::string ControlPlane::reason_of(const Job& job) {
  if (job.cloud_note.empty() || job.record.state != JobState::kPending) return job.record.reason;
  return job.record.reason.empty() ? job.cloud_note : job.record.reason + "; " + job.cloud_note;
}

Result<json> ControlPlane::list_jobs(const JobPage& page, std::string* next_after) const {
  if (page.limit == 0) return Status::invalid_argument("limit: expected at least 1");
  if (!page.state.empty() && !parse_job_state(page.state)) {
    return Status::invalid_argument(
        "state: expected one of PENDING, SCHEDULED, STARTING, RUNNING, SUCCEEDED, FAILED, "
        "CANCELLED, got '" +
        page.state + "'");
  }
  // Positions in job_order_; a page walks from its cursor, so its cost is bounded by what it
  // returns and what the filters skip, not by every job ever submitted.
  const int64_t count = static_cast<int64_t>(job_order_.size());
  int64_t pos = page.newest_first ? count - 1 : 0;
  if (!page.after.empty()) {
    auto it = jobs_.find(page.after);
    if (it == jobs_.end()) return Status::invalid_argument("after: no job " + page.after);
    pos = it->second.seq - 1 + (page.newest_first ? -1 : 1);
  }
  const int64_t step = page.newest_first ? -1 : 1;
  json out = json::array();
  if (next_after != nullptr) next_after->clear();
  for (; pos >= 0 && pos < count; pos += step) {
    const std::string& id = job_order_[static_cast<size_t>(pos)];
    const Job& job = jobs_.at(id);
    if (!page.state.empty() && job_state_name(job.record.state) != page.state) continue;
    if (!page.queue.empty() &&
        (job.spec.queue.empty() ? std::string(kDefaultQueue) : job.spec.queue) != page.queue) {
      continue;
    }
    if (out.size() == page.limit) {
      if (next_after != nullptr) *next_after = out.back()["id"];
      break;
    }
    out.push_back({{"id", id},
                   {"name", job.record.name},
                   {"state", job_state_name(job.record.state)},
                   {"restarts", job.record.restarts},
                   {"reason", reason_of(job)},
                   {"created_ms", job.record.created_ms}});
  }
  return out;
}

Result<json> ControlPlane::get_job(const std::string& id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::not_found("job " + id + ": no such job");
  return job_json(it->second);
}

Result<json> ControlPlane::cancel_job(const std::string& id, int64_t now_ms) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::not_found("job " + id + ": no such job");
  Job& job = it->second;
  LEPTON_RETURN_IF_ERROR(store_failure_);
  if (!is_terminal(job.record.state)) {
    store::WriteBatch batch;
    finish_job(job, JobState::kCancelled, "cancelled by the user", batch, now_ms);
    LEPTON_RETURN_IF_ERROR(commit(batch));
  }
  return job_json(job);
}

Result<ControlPlane::LogSource> ControlPlane::log_source(const std::string& id, int rank) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Status::not_found("job " + id + ": no such job");
  auto task = tasks_.find({id, rank});
  if (task == tasks_.end()) {
    return Status::not_found("rank: job " + id + " has no rank " + std::to_string(rank));
  }
  auto expected = expected_log_.find({id, rank});
  return LogSource{.key = {id, rank, task->second.attempt},
                   .ended = is_terminal(it->second.record.state),
                   .expected = expected == expected_log_.end() ? -1 : expected->second,
                   .logs = logs_};
}

Result<json> ControlPlane::read_logs(const LogSource& source, int64_t offset, size_t max_bytes) {
  if (offset < 0) return Status::invalid_argument("offset: expected a value >= 0");
  auto read = source.logs->read(source.key, offset, max_bytes);
  if (!read.is_ok()) return read.status();
  // Done: the job ended and every byte its agent reported has arrived (after a restart, which
  // forgets how many were reported, once nothing more is stored).
  const bool all_arrived =
      source.expected < 0 || source.logs->accepted(source.key) >= source.expected;
  const bool done = source.ended && read->data.empty() && all_arrived;
  return json{{"data", std::move(read->data)},
              {"next_offset", read->next_offset},
              {"attempt", source.key.attempt},
              {"ended", source.ended},
              {"done", done}};
}

Result<json> ControlPlane::job_logs(const std::string& id, int rank, int64_t offset,
                                    size_t max_bytes) const {
  auto source = log_source(id, rank);
  if (!source.is_ok()) return source.status();
  return read_logs(*source, offset, max_bytes);
}

json ControlPlane::list_nodes(int64_t now_ms) const {
  json out = json::array();
  for (const auto& [name, node] : nodes_) {
    const sched::NodeState& s = cluster_.state(node.id);
    out.push_back({{"name", name},
                   {"address", node.record.address},
                   {"ready", node.record.ready},
                   {"cpu_milli", node.record.cpu_milli},
                   {"memory_mib", node.record.memory_mib},
                   {"gpu_count", node.record.gpu_count},
                   {"gpu_model", node.record.gpu_model},
                   {"cpu_free_milli", s.cpu_free},
                   {"memory_free_mib", s.mem_free},
                   {"gpu_free_milli", s.gpu_free_total()},
                   {"last_seen_ms_ago", now_ms - node.seen_ms}});
  }
  return out;
}

std::string ControlPlane::metrics() const {
  std::map<std::string, int> by_state;
  for (const auto& [id, job] : jobs_) ++by_state[std::string(job_state_name(job.record.state))];
  int ready = 0;
  for (const auto& [name, node] : nodes_) ready += node.record.ready ? 1 : 0;
  std::string m;
  m += "# HELP lepton_jobs Jobs by state.\n# TYPE lepton_jobs gauge\n";
  for (const char* s :
       {"PENDING", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"}) {
    m += "lepton_jobs{state=\"" + std::string(s) + "\"} " + std::to_string(by_state[s]) + "\n";
  }
  m += "# HELP lepton_jobs_submitted_total Jobs accepted since the server started.\n";
  m += "# TYPE lepton_jobs_submitted_total counter\n";
  m += "lepton_jobs_submitted_total " + std::to_string(submitted_) + "\n";
  m += "# HELP lepton_nodes Nodes known to the server.\n# TYPE lepton_nodes gauge\n";
  m += "lepton_nodes{ready=\"true\"} " + std::to_string(ready) + "\n";
  m += "lepton_nodes{ready=\"false\"} " + std::to_string(nodes_.size() - ready) + "\n";
  m += "# HELP lepton_gpu_allocated_milli GPU capacity allocated, in milli-GPUs.\n";
  m += "# TYPE lepton_gpu_allocated_milli gauge\n";
  m += "lepton_gpu_allocated_milli " + std::to_string(cluster_.gpu_allocated_milli()) + "\n";
  m += "# HELP lepton_gpu_capacity_milli GPU capacity of all nodes, in milli-GPUs.\n";
  m += "# TYPE lepton_gpu_capacity_milli gauge\n";
  m += "lepton_gpu_capacity_milli " + std::to_string(cluster_.gpu_capacity_milli()) + "\n";
  m += "# HELP lepton_store_revision Revision of the store.\n# TYPE lepton_store_revision gauge\n";
  m += "lepton_store_revision " + std::to_string(store_->revision()) + "\n";
  return m;
}

}  // namespace lepton::server
