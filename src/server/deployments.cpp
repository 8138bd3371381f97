// Deployments: the controller that keeps each deployment's replicas running, rolls them over to a
// new spec, scales them with the autoscaler, and tells the gateway where they are.
//
// A replica is a one-task job (the deployment's name, envs PORT and LEPTON_DEPLOYMENT) scheduled
// like any job. The controller runs in ControlPlane::tick:
// - a replica whose job ended on its own is replaced (after a back-off when replicas keep failing);
// - the autoscaler sets the desired count (autoscaler.h);
// - with a new generation (a changed spec), one extra replica starts at a time; an old replica is
//   taken out of service only once enough replicas are ready without it (max surge 1,
//   max unavailable 0);
// - a replica taken out of service first leaves the gateway's rotation, then gets until its
//   requests in flight are done (at most drain_timeout_ms) before it is stopped.
#include <algorithm>
#include <charconv>
#include <tuple>

#include "core/hex.h"
#include "server/control_plane.h"
#include "server/server.h"
#include "spec/deployment_spec.h"
#include "spec/json_document.h"

namespace lepton::server {
namespace {

constexpr int kFirstPort = 20000;
constexpr int kPortCount = 10000;
// A draining replica is stopped once the gateway reports nothing in flight on it, but not before
// the gateway has had time to take it out of rotation.
constexpr int64_t kMinDrainMs = 1000;
constexpr int64_t kMaxBackoffMs = 60'000;
constexpr int64_t kObserveEveryMs = 100;
constexpr int64_t kLoadSampleEveryMs = 1000;
constexpr int64_t kLoadHistoryMs = 60'000;
// After the control plane starts: time for the gateway's first readiness probes.
constexpr int64_t kWarmupMs = 3000;

std::string deployment_object(const std::string& name) { return "deployment/" + name; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Persistence

void ControlPlane::save_deployment(const Deployment& d, store::WriteBatch& batch) const {
  json replicas = json::array();
  for (const Replica& r : d.replicas) {
    replicas.push_back({{"job", r.job},
                        {"generation", r.generation},
                        {"port", r.port},
                        {"draining_since_ms", r.draining_since_ms},
                        {"readiness_path", r.readiness_path}});
  }
  json state = {{"generation", d.generation},
                {"token", d.token},
                {"created_ms", d.created_ms},
                {"replicas", replicas}};
  batch.deployments.push_back({d.spec.name(), spec::deployment_spec_to_json(d.spec), state.dump()});
}

Status ControlPlane::load_deployments(int64_t now_ms) {
  auto records = store_->list_deployments();
  if (!records.is_ok()) return records.status();
  if (!records->empty()) opened_ms_ = now_ms;
  for (const store::DeploymentRecord& rec : *records) {
    auto spec = spec::deployment_spec_from_json(rec.spec_json);
    if (!spec.is_ok()) {
      return Status::internal("deployment " + rec.name +
                              ": stored spec unreadable: " + spec.status().message());
    }
    Deployment d;
    d.spec = std::move(*spec);
    d.autoscaler = Autoscaler(now_ms);
    try {
      const json state = json::parse(rec.state_json);
      d.generation = state.at("generation").get<int>();
      d.token = state.at("token").get<std::string>();
      d.created_ms = state.at("created_ms").get<int64_t>();
      for (const json& r : state.at("replicas")) {
        d.replicas.push_back({r.at("job").get<std::string>(), r.at("generation").get<int>(),
                              r.at("port").get<int>(), r.at("draining_since_ms").get<int64_t>(),
                              r.at("readiness_path").get<std::string>()});
        deployment_of_job_[d.replicas.back().job] = rec.name;
      }
    } catch (const json::exception& e) {
      return Status::internal("deployment " + rec.name + ": stored state unreadable: " + e.what());
    }
    deployments_.emplace(rec.name, std::move(d));
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// The user API

Result<json> ControlPlane::create_deployment(const std::string& body, int64_t now_ms) {
  auto spec = spec::deployment_spec_from_json(body);
  if (!spec.is_ok()) return spec.status();
  const std::string name = spec->name();
  if (deployments_.count(name)) {
    return Status(StatusCode::kAlreadyExists,
                  "deployment " + name + ": already exists (lepton deploy update changes it)");
  }
  LEPTON_RETURN_IF_ERROR(check_queue(spec->replica.queue));
  Deployment d;
  d.spec = std::move(*spec);
  d.created_ms = now_ms;
  d.autoscaler = Autoscaler(now_ms);
  if (d.spec.token_auth) d.token = random_hex(32);
  store::WriteBatch batch;
  save_deployment(d, batch);
  event(batch, now_ms, deployment_object(name), "created");
  LEPTON_RETURN_IF_ERROR(commit(batch));
  auto [it, inserted] = deployments_.emplace(name, std::move(d));
  return deployment_json(it->second, now_ms);
}

json ControlPlane::list_deployments(int64_t now_ms) const {
  json out = json::array();
  for (const auto& [name, d] : deployments_) out.push_back(deployment_json(d, now_ms));
  return out;
}

Result<json> ControlPlane::get_deployment(const std::string& name, int64_t now_ms) const {
  auto it = deployments_.find(name);
  if (it == deployments_.end()) {
    return Status::not_found("deployment " + name + ": no such deployment");
  }
  return deployment_json(it->second, now_ms);
}

Result<json> ControlPlane::update_deployment(const std::string& name, const std::string& body,
                                             int64_t now_ms) {
  auto it = deployments_.find(name);
  if (it == deployments_.end()) {
    return Status::not_found("deployment " + name + ": no such deployment");
  }
  auto spec = spec::deployment_spec_from_json(body);
  if (!spec.is_ok()) return spec.status();
  if (spec->name() != name) {
    return Status::invalid_argument("name: expected " + name +
                                    " (a deployment keeps its name), got '" + spec->name() + "'");
  }
  LEPTON_RETURN_IF_ERROR(check_queue(spec->replica.queue));
  Deployment& d = it->second;
  const bool rollover = !(spec->replica == d.spec.replica) || spec->port != d.spec.port ||
                        spec->readiness_path != d.spec.readiness_path;
  Deployment next_state = d;  // only what is stored changes before the commit
  next_state.spec = std::move(*spec);
  if (rollover) ++next_state.generation;
  if (next_state.spec.token_auth && next_state.token.empty()) next_state.token = random_hex(32);
  if (!next_state.spec.token_auth) next_state.token.clear();
  store::WriteBatch batch;
  save_deployment(next_state, batch);
  event(batch, now_ms, deployment_object(name),
        rollover ? "updated: rolling over to generation " + std::to_string(next_state.generation)
                 : "updated: same replicas, new bounds or settings");
  LEPTON_RETURN_IF_ERROR(commit(batch));
  d.spec = std::move(next_state.spec);
  d.generation = next_state.generation;
  d.token = std::move(next_state.token);
  d.failures = 0;  // a new spec starts without the old one's back-off
  d.next_start_ms = 0;
  return deployment_json(d, now_ms);
}

Result<json> ControlPlane::scale_deployment(const std::string& name, const std::string& body,
                                            int64_t now_ms) {
  auto it = deployments_.find(name);
  if (it == deployments_.end()) {
    return Status::not_found("deployment " + name + ": no such deployment");
  }
  auto j = spec::internal::parse_json_object(body, "a scale request ({\"min\": N, \"max\": M})");
  if (!j.is_ok()) return j.status();
  DeploymentSpec spec = it->second.spec;
  for (const auto& [key, value] : j->items()) {
    if (key != "min" && key != "max") {
      return Status::invalid_argument(key + ": unknown field, expected min or max");
    }
    if (!value.is_number_integer()) {
      return Status::invalid_argument(key + ": expected an integer, got " + value.dump());
    }
    const int64_t v = value.get<int64_t>();
    if (v < 0 || v > kMaxReplicas) {
      return Status::invalid_argument(key + ": expected 0.." + std::to_string(kMaxReplicas) +
                                      ", got " + std::to_string(v));
    }
    (key == "min" ? spec.min_replicas : spec.max_replicas) = static_cast<int>(v);
  }
  if (Status s = validate_deployment_spec(spec); !s.is_ok()) {
    return Status::invalid_argument(s.message().starts_with("replicas.")
                                        ? s.message().substr(std::string("replicas.").size())
                                        : s.message());
  }
  Deployment next_state = it->second;
  next_state.spec = spec;
  store::WriteBatch batch;
  save_deployment(next_state, batch);
  event(batch, now_ms, deployment_object(name),
        "scaled: min " + std::to_string(spec.min_replicas) + ", max " +
            std::to_string(spec.max_replicas));
  LEPTON_RETURN_IF_ERROR(commit(batch));
  it->second.spec = spec;
  return deployment_json(it->second, now_ms);
}

Result<json> ControlPlane::delete_deployment(const std::string& name, int64_t now_ms) {
  auto it = deployments_.find(name);
  if (it == deployments_.end()) {
    return Status::not_found("deployment " + name + ": no such deployment");
  }
  json last = deployment_json(it->second, now_ms);
  store::WriteBatch batch;
  for (const Replica& r : it->second.replicas) {
    auto job = jobs_.find(r.job);
    if (job != jobs_.end() && !is_terminal(job->second.record.state)) {
      finish_job(job->second, JobState::kCancelled, "its deployment was deleted", batch, now_ms);
    }
  }
  batch.deleted_deployments.push_back(name);
  event(batch, now_ms, deployment_object(name), "deleted");
  LEPTON_RETURN_IF_ERROR(commit(batch));
  deployments_.erase(it);  // job_json keeps naming the deployment its replicas belonged to
  return last;
}

// ---------------------------------------------------------------------------------------------
// The controller

int ControlPlane::next_free_port() {
  std::set<int> used;
  for (const auto& [name, d] : deployments_) {
    for (const Replica& r : d.replicas) used.insert(r.port);
  }
  for (int i = 0; i < kPortCount; ++i) {
    const int port = kFirstPort + (next_port_ + i) % kPortCount;
    if (!used.count(port)) {
      next_port_ = (port - kFirstPort + 1) % kPortCount;
      return port;
    }
  }
  return kFirstPort;  // 10,000 replicas in use: share, and let the failed bind say so
}

std::string ControlPlane::replica_address(const Replica& r) const {
  auto task = tasks_.find({r.job, 0});
  if (task == tasks_.end() || task->second.node.empty()) return "";
  auto node = nodes_.find(task->second.node);
  std::string host = node == nodes_.end() || node->second.record.address.empty()
                         ? "127.0.0.1"
                         : node->second.record.address;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(r.port);
}

bool ControlPlane::replica_running(const Replica& r) const {
  auto task = tasks_.find({r.job, 0});
  return task != tasks_.end() && task->second.state == JobState::kRunning;
}

bool ControlPlane::replica_ready(const Deployment& d, const Replica& r) const {
  if (r.draining_since_ms != 0 || !replica_running(r)) return false;
  auto seen = d.observed.find(replica_address(r));
  return seen != d.observed.end() && seen->second.ready;
}

void ControlPlane::start_replica(Deployment& d, store::WriteBatch& batch, int64_t now_ms) {
  JobSpec spec = d.spec.replica;
  spec.num_nodes = 1;
  spec.max_restarts = 0;
  if (spec.use_spot) {
    // The on-demand floor first: replicas in service that do not run on spot.
    int on_demand = 0;
    for (const Replica& r : d.replicas) {
      auto job = jobs_.find(r.job);
      if (r.draining_since_ms == 0 && job != jobs_.end() &&
          !is_terminal(job->second.record.state) && !job->second.spec.use_spot) {
        ++on_demand;
      }
    }
    if (on_demand < d.spec.min_on_demand) spec.use_spot = false;
  }
  const int port = d.spec.port > 0 ? d.spec.port : next_free_port();
  spec.envs["PORT"] = std::to_string(port);
  spec.envs["LEPTON_DEPLOYMENT"] = d.spec.name();
  Job& job = add_job(std::move(spec), next_job_number(batch), batch, now_ms);
  d.replicas.push_back({job.record.id, d.generation, port, 0, d.spec.readiness_path});
  deployment_of_job_[job.record.id] = d.spec.name();
  event(batch, now_ms, deployment_object(d.spec.name()),
        "replica " + job.record.id + " started (generation " + std::to_string(d.generation) +
            ", port " + std::to_string(port) + ")");
}

ControlPlane::Location ControlPlane::location_of(const cloud::Offer& offer) {
  Location l{offer.cloud + "/" + offer.region, ""};
  if (!offer.zone.empty()) l.zone = l.region + "/" + offer.zone;
  return l;
}

ControlPlane::Location ControlPlane::location_of(const std::string& node) const {
  auto inst = instances_.find(node);
  if (inst == instances_.end()) return {};
  return location_of(inst->second.offer);
}

std::map<std::string, int> ControlPlane::replica_locations(const Deployment& d,
                                                           const std::string& job) const {
  std::map<std::string, int> at;
  auto count = [&at](const Location& l) {
    ++at[l.region];
    if (!l.zone.empty()) ++at[l.zone];
  };
  for (const Replica& r : d.replicas) {
    if (r.job == job) continue;
    if (active_tasks_.count({r.job, 0})) {
      count(location_of(tasks_.at({r.job, 0}).node));
      continue;
    }
    for (const auto& [id, inst] : instances_) {
      if (!inst.ended_ms && inst.for_job == r.job) {
        count(location_of(id));
        break;
      }
    }
  }
  return at;
}

std::pair<int, int> ControlPlane::crowding(const std::map<std::string, int>& at,
                                           const Location& location) {
  auto count = [&at](const std::string& key) {
    auto it = at.find(key);
    return it == at.end() ? 0 : it->second;
  };
  return {count(location.region), location.zone.empty() ? 0 : count(location.zone)};
}

void ControlPlane::spread_replica(const Job& job, std::vector<sched::Placement>& placements) {
  auto dep = deployment_of_job_.find(job.record.id);
  if (dep == deployment_of_job_.end() || placements.size() != 1) return;
  auto d = deployments_.find(dep->second);
  if (d == deployments_.end()) return;
  std::map<sched::NodeId, int> replicas_on;  // the deployment's other running replicas
  for (const Replica& r : d->second.replicas) {
    if (r.job == job.record.id || !active_tasks_.count({r.job, 0})) continue;
    auto node = nodes_.find(tasks_.at({r.job, 0}).node);
    if (node != nodes_.end()) ++replicas_on[node->second.id];
  }
  const std::map<std::string, int> in_location = replica_locations(d->second, job.record.id);
  // Fewer replicas in the node's cloud region first, then in its zone, then on the node itself.
  auto near = [&](const std::string& name, sched::NodeId id) {
    const auto [region, zone] = crowding(in_location, location_of(name));
    auto on = replicas_on.find(id);
    return std::make_tuple(region, zone, on == replicas_on.end() ? 0 : on->second);
  };
  const sched::NodeId chosen = placements[0].node;
  std::tuple<int, int, int> least = near(node_names_.at(chosen), chosen);
  if (least == std::make_tuple(0, 0, 0)) return;  // nothing of the deployment near it
  const sched::Request request = request_of(job);
  cluster_.release(request, placements[0]);  // so the node's room is seen as the others' is
  sched::NodeId best = chosen;
  for (const auto& [name, node] : nodes_) {
    const std::tuple<int, int, int> here = near(name, node.id);
    if (here >= least || !node.record.ready || cluster_.cordoned(node.id) ||
        !sched::ClusterState::fits(cluster_.state(node.id), request)) {
      continue;
    }
    best = node.id;
    least = here;
  }
  if (best != chosen) {
    placements[0] = {best,
                     cluster_.pick_gpus(best, request, cluster_.state(best).gpu_free_sorted[0])};
  }
  cluster_.bind(request, placements[0]);
}

void ControlPlane::drain_replica(Deployment& d, Replica& r, const std::string& why,
                                 store::WriteBatch& batch, int64_t now_ms) {
  r.draining_since_ms = now_ms;
  event(batch, now_ms, deployment_object(d.spec.name()),
        "replica " + r.job + " taken out of service: " + why);
}

void ControlPlane::reconcile_deployments(store::WriteBatch& batch, int64_t now_ms) {
  for (auto& [name, d] : deployments_) reconcile(d, batch, now_ms);
}

void ControlPlane::reconcile(Deployment& d, store::WriteBatch& batch, int64_t now_ms) {
  const std::string& name = d.spec.name();
  bool changed = false;
  bool failed = false;
  // Replicas whose job ended leave; one that ended on its own is replaced, after a back-off that
  // doubles while replicas keep ending before any is ready (once per round, however many ended).
  for (auto it = d.replicas.begin(); it != d.replicas.end();) {
    auto job = jobs_.find(it->job);
    if (job != jobs_.end() && !is_terminal(job->second.record.state)) {
      ++it;
      continue;
    }
    if (it->draining_since_ms == 0) {
      if (!failed) {
        failed = true;
        ++d.failures;
        d.next_start_ms =
            now_ms + std::min<int64_t>(kMaxBackoffMs, int64_t{1000} << std::min(d.failures, 7));
      }
      std::string how =
          job == jobs_.end() ? "vanished" : std::string(job_state_name(job->second.record.state));
      if (job != jobs_.end() && !reason_of(job->second).empty()) {
        how += ": " + reason_of(job->second);
      }
      event(batch, now_ms, deployment_object(name),
            "replica " + it->job + " ended (" + how + "); a new one starts");
    }
    deployment_of_job_.erase(it->job);
    it = d.replicas.erase(it);
    changed = true;
  }
  // Draining replicas stop once their requests are done.
  for (Replica& r : d.replicas) {
    if (r.draining_since_ms == 0) continue;
    Job& job = jobs_.at(r.job);
    const int64_t drained_for = now_ms - r.draining_since_ms;
    auto seen = d.observed.find(replica_address(r));
    const bool idle = seen == d.observed.end() || seen->second.in_flight == 0;
    if (!replica_running(r) || (idle && drained_for >= kMinDrainMs) ||
        drained_for >= options_.drain_timeout_ms) {
      finish_job(job, JobState::kCancelled, "taken out of service by deployment " + name, batch,
                 now_ms);
    }
  }

  // Just after the control plane starts with stored deployments, the gateway has not probed their
  // replicas yet: every one looks not ready. Wait before acting on readiness.
  if (now_ms - opened_ms_ < kWarmupMs) {
    if (changed) save_deployment(d, batch);
    return;
  }
  int in_service = 0, ready_now = 0;
  for (const Replica& r : d.replicas) {
    in_service += r.draining_since_ms == 0 ? 1 : 0;
    ready_now += replica_ready(d, r) ? 1 : 0;
  }
  d.desired = d.autoscaler.desired(d.spec, in_service, ready_now, now_ms);

  // Old generation. A replica leaves only while the ready replicas without it still cover the
  // desired count: those not ready first, then ready ones. A replica not ready at this moment may
  // only be unprobed (just after a restart) or slow under load, so it is not dropped on sight.
  int new_count = 0, new_ready = 0, old_count = 0, old_ready = 0, draining = 0;
  for (const Replica& r : d.replicas) {
    if (r.draining_since_ms != 0) {
      ++draining;
      continue;
    }
    const bool ready = replica_ready(d, r);
    if (r.generation == d.generation) {
      ++new_count;
      new_ready += ready ? 1 : 0;
    } else {
      ++old_count;
      old_ready += ready ? 1 : 0;
    }
  }
  if (new_ready > 0) d.failures = 0;
  // With a fixed port, two replicas on one node cannot both listen: replace one at a time, the old
  // one first (at most one replica unavailable), and start the new one once it has stopped.
  const bool fixed_port = d.spec.port > 0;
  const int may_lack = fixed_port && new_count == new_ready && draining == 0 ? 1 : 0;
  const std::string why = "replaced by generation " + std::to_string(d.generation);
  for (bool want_ready : {false, true}) {
    for (Replica& r : d.replicas) {
      if (r.draining_since_ms != 0 || r.generation == d.generation) continue;
      const bool ready = replica_ready(d, r);
      if (ready != want_ready) continue;
      if (new_ready + old_ready - (ready ? 1 : 0) < d.desired - may_lack) break;
      if (fixed_port && (draining > 0 || new_count > new_ready)) break;
      drain_replica(d, r, why, batch, now_ms);
      --old_count;
      old_ready -= ready ? 1 : 0;
      ++draining;
      changed = true;
    }
  }
  // Scale down: surplus replicas of this generation go, those not ready first, then the newest.
  for (bool want_ready : {false, true}) {
    for (auto it = d.replicas.rbegin(); it != d.replicas.rend() && new_count > d.desired; ++it) {
      if (it->draining_since_ms != 0 || it->generation != d.generation) continue;
      if (replica_ready(d, *it) != want_ready) continue;
      drain_replica(d, *it, "scaling down to " + std::to_string(d.desired), batch, now_ms);
      --new_count;
      changed = true;
    }
  }
  // Scale up, or roll over: at most one replica beyond the desired count while ready old ones
  // remain (none with a fixed port, and not while a replica on that port is still stopping).
  const int allowed = d.desired + (old_ready > 0 && !fixed_port ? 1 : 0);
  while (new_count < d.desired && new_count + old_ready < allowed && now_ms >= d.next_start_ms &&
         !(fixed_port && draining > 0)) {
    start_replica(d, batch, now_ms);
    ++new_count;
    changed = true;
  }
  if (changed) save_deployment(d, batch);
}

// ---------------------------------------------------------------------------------------------
// The gateway

gateway::RouteSpec ControlPlane::routes() const {
  gateway::RouteSpec spec;
  for (const auto& [name, d] : deployments_) {
    gateway::DeploymentRoute& route = spec[name];
    route.probe_path = d.spec.readiness_path;
    route.token = d.token;
    route.hold_when_empty = true;
    for (const Replica& r : d.replicas) {
      if (!replica_running(r)) continue;
      const std::string address = replica_address(r);
      (r.draining_since_ms == 0 ? route.replicas : route.draining).push_back(address);
      if (r.readiness_path != route.probe_path) route.probe_paths[address] = r.readiness_path;
    }
  }
  return spec;
}

void ControlPlane::observe_gateway(const gateway::RouteTable& table, int64_t now_ms) {
  for (auto& [name, d] : deployments_) {
    const gateway::Deployment* g = table.find(name);
    if (d.observed_ms != 0 && now_ms - d.observed_ms < kObserveEveryMs) continue;
    d.observed_ms = now_ms;
    d.in_flight = g ? g->stats->in_flight.load() : 0;
    d.autoscaler.observe(now_ms, static_cast<double>(d.in_flight));
    d.observed.clear();
    if (!g) continue;
    for (const auto& r : g->replicas) {
      d.observed[r->address] = {r->ready.load(), r->in_flight.load()};
    }
    if (d.load.empty() || now_ms - d.load.back().time_ms >= kLoadSampleEveryMs) {
      LoadSample s;
      s.time_ms = now_ms;
      s.requests = g->stats->requests.load();
      for (size_t i = 0; i < s.latency.size(); ++i) s.latency[i] = g->stats->latency[i].load();
      d.load.push_back(s);
      while (d.load.size() > 2 && now_ms - d.load.front().time_ms > kLoadHistoryMs) {
        d.load.pop_front();
      }
    }
  }
}

json ControlPlane::deployment_json(const Deployment& d, int64_t now_ms) const {
  const std::string& name = d.spec.name();
  json replicas = json::array();
  int ready = 0;
  for (const Replica& r : d.replicas) {
    const Job& job = jobs_.at(r.job);
    const store::TaskRecord& task = tasks_.at({r.job, 0});
    const std::string address = replica_address(r);
    auto seen = d.observed.find(address);
    const bool is_ready = replica_ready(d, r);
    ready += is_ready ? 1 : 0;
    replicas.push_back({{"job", r.job},
                        {"generation", r.generation},
                        {"state", job_state_name(job.record.state)},
                        {"node", task.node},
                        {"address", address},
                        {"ready", is_ready},
                        {"draining", r.draining_since_ms != 0},
                        {"in_flight", seen == d.observed.end() ? 0 : seen->second.in_flight},
                        {"reason", reason_of(job)}});
  }
  // Requests per second (counted as they arrive) and latency percentiles (of the requests that
  // ended: those still in flight have no latency yet) over the last minute.
  double rps = 0;
  json latency = json::object();
  if (d.load.size() >= 2) {
    const LoadSample& a = d.load.front();
    const LoadSample& b = d.load.back();
    const uint64_t requests = b.requests - a.requests;
    rps = static_cast<double>(requests) * 1000.0 / static_cast<double>(b.time_ms - a.time_ms);
    uint64_t ended = 0;
    for (size_t i = 0; i < a.latency.size(); ++i) ended += b.latency[i] - a.latency[i];
    if (ended > 0) {
      for (auto [label, q] : {std::pair{"p50_ms", 0.5}, {"p90_ms", 0.9}, {"p99_ms", 0.99}}) {
        uint64_t seen = 0;
        const auto rank = static_cast<uint64_t>(q * static_cast<double>(ended) + 0.999999);
        for (size_t i = 0; i < a.latency.size(); ++i) {
          seen += b.latency[i] - a.latency[i];
          if (seen >= rank) {
            latency[label] =
                static_cast<double>(gateway::latency_bucket_us(static_cast<int>(i))) / 1000.0;
            break;
          }
        }
      }
    }
  }
  json out = {
      {"name", name},
      {"url", options_.gateway_url.empty() ? "" : options_.gateway_url + "/d/" + name + "/"},
      {"ready_replicas", ready},
      {"desired_replicas", d.desired},
      {"generation", d.generation},
      {"in_flight", d.in_flight},
      {"panic", d.autoscaler.panicking(now_ms)},
      {"rps", rps},
      {"latency", latency},
      {"created_ms", d.created_ms},
      {"spec", spec::deployment_spec_to_json_value(d.spec)},
      {"replicas", replicas}};
  if (!d.token.empty()) out["token"] = d.token;
  return out;
}

}  // namespace lepton::server
