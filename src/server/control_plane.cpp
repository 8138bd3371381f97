#include "server/control_plane.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "spec/job_json.h"
#include "spec/queue_json.h"

namespace lepton::server {
namespace {

namespace fs = std::filesystem;

constexpr int kMasterPort = 29500;

std::string task_object(const std::string& job, int rank) {
  return "task/" + job + "/" + std::to_string(rank);
}

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
    if (holds) {
      active_tasks_.insert({t.job_id, t.rank});
      index_task({t.job_id, t.rank}, t.node);
    }
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

void ControlPlane::index_task(const TaskKey& key, const std::string& node) {
  auto old = active_node_.find(key);
  if (old != active_node_.end()) {
    if (old->second == node) return;
    auto on = node_tasks_.find(old->second);
    if (on != node_tasks_.end()) {
      on->second.erase(key);
      if (on->second.empty()) node_tasks_.erase(on);
    }
    active_node_.erase(old);
  }
  if (node.empty()) return;
  active_node_[key] = node;
  node_tasks_[node].insert(key);
}

spec::AgentTiming ControlPlane::agent_timing() const {
  return {.heartbeat_ms = heartbeat_ms_, .lease_ms = lease_ms()};
}

void ControlPlane::save_task(const store::TaskRecord& task, store::WriteBatch& batch) {
  const TaskKey key{task.job_id, task.rank};
  const bool was_active = active_tasks_.count(key) > 0;
  const bool active = !is_terminal(task.state) && task.state != JobState::kPending;
  if (active) {
    active_tasks_.insert(key);
  } else {
    active_tasks_.erase(key);
  }
  index_task(key, active ? task.node : std::string());
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
  for (const TaskKey& key : active_tasks_) {
    const store::TaskRecord& t = tasks_.at(key);
    auto node = nodes_.find(t.node);
    if (node == nodes_.end()) continue;
    if (last_job == nullptr || *last_job != key.first) {
      const Job& job = jobs_.at(key.first);
      running.push_back(sched::RunningWork{work_of(job), {}, job.started_ms});
      last_job = &key.first;
    }
    running.back().placements.push_back({node->second.id, t.gpu_mask});
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

// ---------------------------------------------------------------------------------------------
// Queues

namespace {

// The tree of `queues` plus the implicit default queue (unless one is stored).
Result<sched::QueueTree> tree_of(const std::map<std::string, QueueSpec>& queues) {
  std::vector<QueueSpec> specs;
  if (!queues.count(kDefaultQueue)) {
    QueueSpec d;
    d.name = kDefaultQueue;
    specs.push_back(d);
  }
  for (const auto& [name, spec] : queues) specs.push_back(spec);
  return sched::QueueTree::build(std::move(specs));
}

}  // namespace

sched::QueueTree ControlPlane::queue_tree() const {
  auto tree = tree_of(queues_);
  LEPTON_CHECK(tree.is_ok());  // every change is checked before it is stored
  return std::move(*tree);
}

int ControlPlane::queue_index(const Job& job) const {
  const int q =
      queue_scheduler_->tree().find(job.spec.queue.empty() ? kDefaultQueue : job.spec.queue);
  return q;  // -1 (a queue removed later) makes the job wait with that reason
}

std::vector<ControlPlane::QueueLoad> ControlPlane::queue_loads(const sched::QueueTree& tree) const {
  std::vector<QueueLoad> loads(tree.size());
  for (const auto& [id, job] : jobs_) {
    if (is_terminal(job.record.state)) continue;
    int q = tree.find(job.spec.queue.empty() ? kDefaultQueue : job.spec.queue);
    const Quota amount = quota_of(job.spec.resources, job.spec.num_nodes);
    const bool pending = job.record.state == JobState::kPending;
    for (; q != -1; q = tree.parent(q)) {
      (pending ? loads[q].pending : loads[q].in_use) += amount;
      (pending ? loads[q].jobs_pending : loads[q].jobs_running) += 1;
    }
  }
  return loads;
}

json ControlPlane::list_queues() const {
  // One pass over jobs and nodes for all queues: fair shares depend on every queue's demand.
  const sched::QueueTree tree = queue_tree();
  const std::vector<QueueLoad> loads = queue_loads(tree);
  Quota capacity;
  for (const auto& [name, node] : nodes_) {
    if (!node.record.ready) continue;
    capacity += Quota{int64_t{node.record.gpu_count} * kMilliPerGpu, node.record.cpu_milli,
                      node.record.memory_mib};
  }
  std::vector<Quota> demand(tree.size());
  for (int q = 0; q < tree.size(); ++q) demand[q] = loads[q].in_use + loads[q].pending;
  const std::vector<Quota> fair = sched::fair_shares(tree, capacity, demand);
  json out = json::array();
  for (int q = 0; q < tree.size(); ++q) {
    json j = spec::queue_spec_to_json(tree.spec(q));
    j["spent_usd"] = queue_spend(tree.spec(q).name, last_cloud_round_ms_);
    j["fair_share"] = spec::quota_to_json(fair[q]);
    j["in_use"] = spec::quota_to_json(loads[q].in_use);
    j["pending"] = spec::quota_to_json(loads[q].pending);
    j["jobs_running"] = loads[q].jobs_running;
    j["jobs_pending"] = loads[q].jobs_pending;
    out.push_back(std::move(j));
  }
  return out;
}

json ControlPlane::queue_json(const std::string& name) const {
  for (json& j : list_queues()) {
    if (j["name"] == name) return std::move(j);
  }
  return json::object();  // callers pass a queue of the current tree
}

Result<json> ControlPlane::get_queue(const std::string& name) const {
  if (queue_tree().find(name) == -1) return Status::not_found("queue " + name + ": no such queue");
  return queue_json(name);
}

Result<json> ControlPlane::create_queue(const std::string& body, int64_t now_ms) {
  auto spec = spec::queue_spec_from_json(body);
  if (!spec.is_ok()) return spec.status();
  if (queues_.count(spec->name)) {
    return Status(StatusCode::kAlreadyExists, "queue " + spec->name + ": already exists");
  }
  std::map<std::string, QueueSpec> next = queues_;
  next[spec->name] = *spec;
  auto tree = tree_of(next);
  if (!tree.is_ok()) return tree.status();
  store::WriteBatch batch;
  batch.queues.push_back({spec->name, spec::queue_spec_to_json(*spec).dump()});
  event(batch, now_ms, "queue/" + spec->name, "created");
  LEPTON_RETURN_IF_ERROR(commit_first(batch));
  queues_ = std::move(next);
  if (queue_scheduler_) queue_scheduler_->set_tree(std::move(*tree));
  sched_dirty_ = true;
  return queue_json(spec->name);
}

Result<json> ControlPlane::update_queue(const std::string& name, const std::string& body,
                                        int64_t now_ms) {
  QueueSpec current;
  if (auto it = queues_.find(name); it != queues_.end()) {
    current = it->second;
  } else if (name == kDefaultQueue) {
    current.name = kDefaultQueue;  // the implicit default queue becomes a stored one
  } else {
    return Status::not_found("queue " + name + ": no such queue");
  }
  auto spec = spec::update_queue_spec(current, body);
  if (!spec.is_ok()) return spec.status();
  std::map<std::string, QueueSpec> next = queues_;
  next[name] = *spec;
  auto tree = tree_of(next);
  if (!tree.is_ok()) return tree.status();
  store::WriteBatch batch;
  batch.queues.push_back({name, spec::queue_spec_to_json(*spec).dump()});
  event(batch, now_ms, "queue/" + name, "updated");
  LEPTON_RETURN_IF_ERROR(commit_first(batch));
  queues_ = std::move(next);
  if (queue_scheduler_) queue_scheduler_->set_tree(std::move(*tree));
  sched_dirty_ = true;
  return queue_json(spec->name);
}

Result<json> ControlPlane::delete_queue(const std::string& name, int64_t now_ms) {
  if (!queues_.count(name)) {
    return Status::not_found(name == kDefaultQueue
                                 ? "queue default: the default queue always exists"
                                 : "queue " + name + ": no such queue");
  }
  for (const auto& [n, s] : queues_) {
    if (s.parent == name) {
      return Status(StatusCode::kConflict,
                    "queue " + name + ": has child queue " + n + "; remove it first");
    }
  }
  for (const auto& [id, job] : jobs_) {
    if (!is_terminal(job.record.state) && job.spec.queue == name) {
      return Status(StatusCode::kConflict,
                    "queue " + name + ": job " + id + " is not finished; cancel it or wait");
    }
  }
  store::WriteBatch batch;
  batch.deleted_queues.push_back(name);
  event(batch, now_ms, "queue/" + name, "deleted");
  LEPTON_RETURN_IF_ERROR(commit_first(batch));
  queues_.erase(name);
  if (queue_scheduler_) queue_scheduler_->set_tree(queue_tree());
  sched_dirty_ = true;
  return json{{"deleted", name}};
}

}  // namespace lepton::server
