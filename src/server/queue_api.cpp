// Queues through the API: create, update, delete and list them with their load.
#include "server/control_plane.h"
#include "spec/queue_json.h"

namespace lepton::server {

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
