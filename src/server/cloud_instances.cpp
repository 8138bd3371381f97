// The rented machines, once rented: ControlPlane's members that keep their records (in memory
// and in the store's `instances` table), end them, make them nodes of the right group, hold them
// for the jobs they were rented for, and bill them through the cost ledger (cost_ledger.h). The
// rounds that rent and return machines are in cloud_autoscaler.cpp.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "server/control_plane.h"
#include "server/cost_ledger.h"

namespace lepton::server {

void ControlPlane::record_rented(size_t provider, const cloud::Instance& instance,
                                 const cloud::Offer& offer, bool spot, const std::string& for_job,
                                 store::WriteBatch& batch, int64_t now_ms) {
  CloudInstance inst;
  inst.provider = provider;
  inst.provider_name = std::string(providers_[provider]->name());
  inst.info = instance;
  inst.offer = offer;
  inst.price_per_hour = offer_price(offer, spot);
  inst.for_job = for_job;
  inst.launched_ms = now_ms;
  ledger_.add_machine(instance.id, {.cloud = offer.cloud,
                                    .gpus = offer.gpu_count,
                                    .price_per_hour = inst.price_per_hour,
                                    .launched_ms = now_ms,
                                    .ended_ms = 0,
                                    .uses = {}});
  save_instance(inst, batch);
  instances_[instance.id] = std::move(inst);
}

void ControlPlane::end_instance(CloudInstance& inst, const std::string& why,
                                store::WriteBatch& batch, int64_t now_ms) {
  inst.ended_ms = now_ms;
  inst.end_reason = why;
  inst.info.state = cloud::InstanceState::kTerminated;
  event(batch, now_ms, "instance/" + inst.info.id,
        "ended: " + why + " (billed " + usd(ledger_.machine_cost(inst.info.id, now_ms)) + ")");
  // Its tasks' uses end as the tasks fail, and any use still open ends with the machine.
  if (nodes_.count(inst.info.id)) forget_node(inst.info.id, "its machine ended", batch, now_ms);
  ledger_.end_machine(inst.info.id, now_ms);
  save_instance(inst, batch);
}

void ControlPlane::forget_node(const std::string& name, const std::string& why,
                               store::WriteBatch& batch, int64_t now_ms) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  auto on = node_tasks_.find(name);
  const std::vector<TaskKey> active =
      on == node_tasks_.end() ? std::vector<TaskKey>()
                              : std::vector<TaskKey>(on->second.begin(), on->second.end());
  for (const TaskKey& key : active) {
    store::TaskRecord& task = tasks_.at(key);
    if (task.node != name) continue;
    task_failed(jobs_.at(key.first), task, "its node " + name + " is gone: " + why,
                /*counts_as_restart=*/false, batch, now_ms);
  }
  // Tasks still stopping there are gone with it; their resources go with the node.
  std::erase_if(stopping_, [&](const auto& entry) { return entry.second.node == name; });
  cluster_.set_cordoned(it->second.id, true);  // the scheduler's slot stays, never used again
  sched_dirty_ = true;
  nodes_.erase(it);
  batch.deleted_nodes.push_back(name);
  event(batch, now_ms, "node/" + name, "removed: " + why);
}

void ControlPlane::save_instance(const CloudInstance& inst, store::WriteBatch& batch) const {
  json j = instance_json(inst);
  const MachineBill* bill = ledger_.machine(inst.info.id);
  j["usage"] = uses_json(bill ? bill->uses : std::vector<MachineUse>());
  batch.instances.push_back({inst.info.id, j.dump()});
}

json ControlPlane::instance_json(const CloudInstance& inst) const {
  const cloud::Offer& o = inst.offer;
  json j = {{"provider", inst.provider_name},
            {"cloud", o.cloud},
            {"region", o.region},
            {"zone", o.zone},
            {"instance_type", o.instance_type},
            {"gpu_model", o.gpu_model},
            {"gpus", o.gpu_count},
            {"vcpus", o.vcpus},
            {"memory_gib", o.memory_gib},
            {"spot", inst.info.spot},
            {"price_per_hour", inst.price_per_hour},
            {"state", cloud::instance_state_name(inst.info.state)},
            {"for_job", inst.for_job},
            {"launched_ms", inst.launched_ms},
            {"joined_ms", inst.joined_ms},
            {"notice_ms", inst.notice_ms},
            {"ended_ms", inst.ended_ms},
            {"end_reason", inst.end_reason}};
  return j;
}

Status ControlPlane::load_instances() {
  auto failed = store_->list_failed_pools();
  if (!failed.is_ok()) return failed.status();
  for (const store::FailedPoolRecord& f : *failed) failures_.remember(f.pool, f.until_ms);

  auto records = store_->list_instances();
  if (!records.is_ok()) return records.status();
  for (const store::InstanceRecord& r : *records) {
    json j = json::parse(r.record_json, nullptr, false);
    if (!j.is_object()) return Status::internal("instance " + r.id + ": stored record unreadable");
    CloudInstance inst;
    inst.info.id = r.id;
    inst.provider_name = j.value("provider", "");
    inst.provider = SIZE_MAX;  // until set_clouds() finds it
    inst.offer.cloud = j.value("cloud", "");
    inst.offer.region = j.value("region", "");
    inst.offer.zone = j.value("zone", "");
    inst.offer.instance_type = j.value("instance_type", "");
    inst.offer.gpu_model = j.value("gpu_model", "");
    inst.offer.gpu_count = j.value("gpus", 0.0);
    inst.offer.vcpus = j.value("vcpus", 0.0);
    inst.offer.memory_gib = j.value("memory_gib", 0.0);
    inst.info.cloud = inst.offer.cloud;
    inst.info.region = inst.offer.region;
    inst.info.zone = inst.offer.zone;
    inst.info.instance_type = inst.offer.instance_type;
    inst.info.spot = j.value("spot", false);
    inst.price_per_hour = j.value("price_per_hour", 0.0);
    inst.info.state = j.value("state", "") == "terminated" ? cloud::InstanceState::kTerminated
                                                           : cloud::InstanceState::kRunning;
    inst.for_job = j.value("for_job", "");
    inst.launched_ms = j.value("launched_ms", int64_t{0});
    inst.joined_ms = j.value("joined_ms", int64_t{0});
    inst.notice_ms = j.value("notice_ms", int64_t{0});
    inst.ended_ms = j.value("ended_ms", int64_t{0});
    inst.end_reason = j.value("end_reason", "");
    ledger_.add_machine(r.id, {.cloud = inst.offer.cloud,
                               .gpus = inst.offer.gpu_count,
                               .price_per_hour = inst.price_per_hour,
                               .launched_ms = inst.launched_ms,
                               .ended_ms = inst.ended_ms,
                               .uses = uses_from_json(j.value("usage", json::array()))});
    instances_[r.id] = std::move(inst);
  }
  return Status::ok();
}

json ControlPlane::list_instances(int64_t now_ms) const {
  json out = json::array();
  for (const auto& [id, inst] : instances_) {
    json j = instance_json(inst);
    j["id"] = id;
    j["cost_usd"] = ledger_.machine_cost(id, now_ms);
    j["node"] = nodes_.count(id) ? id : "";
    out.push_back(std::move(j));
  }
  return out;
}

void ControlPlane::track_use(const store::TaskRecord& task, bool was_active, bool active,
                             store::WriteBatch& batch) {
  const TaskKey key{task.job_id, task.rank};
  std::string machine;  // whose uses changed
  if (was_active && !active) {
    machine = ledger_.record_use_end(key, task.updated_ms);
  } else if (!was_active && active) {
    auto job = jobs_.find(task.job_id);
    if (job == jobs_.end()) return;
    const JobSpec& spec = job->second.spec;
    const Resources& r = spec.resources;
    const double gpus = r.fractional() ? r.gpu_milli / 1000.0 : static_cast<double>(r.gpu_count);
    if (ledger_.record_use_start(key, task.node,
                                 {.job = task.job_id,
                                  .queue = spec.queue.empty() ? kDefaultQueue : spec.queue,
                                  .gpus = gpus,
                                  .start_ms = task.updated_ms,
                                  .end_ms = 0})) {
      machine = task.node;
    }
  }
  if (auto inst = instances_.find(machine); inst != instances_.end()) {
    save_instance(inst->second, batch);
  }
}

double ControlPlane::queue_spend(const std::string& queue, int64_t now_ms) const {
  return ledger_.spend(queue, queues_, now_ms);
}

Result<json> ControlPlane::cost(const std::string& by, int64_t now_ms) const {
  const std::optional<CostBy> grouping = cost_by_named(by);
  if (!grouping) {
    return Status::invalid_argument("by: expected job, queue, cloud or instance, got '" + by + "'");
  }
  return cost_report_json(ledger_.report(*grouping, now_ms));
}

std::set<std::string> ControlPlane::nodes_with_tasks(bool with_stopping) const {
  std::set<std::string> nodes;
  for (const auto& [key, node] : active_tasks_) nodes.insert(node);
  if (with_stopping) {
    for (const auto& [key, st] : stopping_) nodes.insert(st.node);
  }
  return nodes;
}

int ControlPlane::node_group(const std::string& node) {
  auto it = instances_.find(node);
  if (it == instances_.end()) return 0;
  const CloudInstance& inst = it->second;
  const NodeGroup group{inst.offer.cloud, inst.offer.region, inst.offer.zone, inst.info.spot};
  auto known = std::find(node_groups_.begin(), node_groups_.end(), group);
  if (known != node_groups_.end()) return static_cast<int>(known - node_groups_.begin()) + 1;
  if (node_groups_.size() + 1 >= static_cast<size_t>(sched::kMaxNodeGroups)) {
    // Out of group ids (63 kinds of rented machine): this one takes any work, as owned nodes do.
    return 0;
  }
  node_groups_.push_back(group);
  return static_cast<int>(node_groups_.size());
}

sched::GroupMask ControlPlane::allowed_groups(const JobSpec& spec) const {
  sched::GroupMask mask = 1;  // machines of our own
  auto in = [](const std::vector<std::string>& names, const std::string& a, const std::string& b) {
    return names.empty() || std::find(names.begin(), names.end(), a) != names.end() ||
           (!b.empty() && std::find(names.begin(), names.end(), b) != names.end());
  };
  for (size_t g = 0; g < node_groups_.size(); ++g) {
    const NodeGroup& group = node_groups_[g];
    if (group.spot && !spec.use_spot) continue;  // on-demand work stays off spot machines
    if (!in(spec.clouds, group.cloud, "") || !in(spec.regions, group.region, group.zone)) continue;
    mask |= sched::GroupMask{1} << (g + 1);
  }
  return mask;
}

void ControlPlane::bind_rented(store::WriteBatch& batch, int64_t now_ms) {
  if (instances_.empty()) return;
  const std::set<std::string> busy = nodes_with_tasks(/*with_stopping=*/true);
  std::set<std::string> stopping_jobs;
  for (const auto& [key, st] : stopping_) stopping_jobs.insert(key.first);
  std::map<std::string, std::vector<std::string>> joined_for;  // job -> its idle machines
  for (const auto& [id, inst] : instances_) {
    if (inst.ended_ms || inst.notice_ms || inst.for_job.empty() || busy.count(id)) continue;
    auto node = nodes_.find(id);
    if (node == nodes_.end() || !node->second.record.ready || cluster_.cordoned(node->second.id)) {
      continue;
    }
    joined_for[inst.for_job].push_back(id);
  }
  for (const auto& [job_id, machines] : joined_for) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.record.state != JobState::kPending ||
        stopping_jobs.count(job_id)) {
      continue;
    }
    Job& job = it->second;
    if (static_cast<int>(machines.size()) < job.spec.num_nodes) continue;  // the rest still boot
    const sched::Request request = request_of(job);
    std::vector<sched::Placement> placements;
    for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
      const sched::NodeId node = nodes_.at(machines[static_cast<size_t>(rank)]).id;
      const sched::NodeState& state = cluster_.state(node);
      if (!sched::ClusterState::fits(state, request)) break;
      placements.push_back({node, cluster_.pick_gpus(node, request, state.gpu_free_sorted[0])});
    }
    if (static_cast<int>(placements.size()) != job.spec.num_nodes) continue;
    for (const sched::Placement& p : placements) cluster_.bind(request, p);
    sched_dirty_ = true;
    assign(job, placements, batch, now_ms);
  }
}

std::vector<sched::NodeId> ControlPlane::hold_rented_machines() {
  std::vector<sched::NodeId> held;
  if (instances_.empty()) return held;
  const std::set<std::string> busy = nodes_with_tasks(/*with_stopping=*/false);
  for (const auto& [id, inst] : instances_) {
    if (inst.ended_ms || inst.notice_ms || busy.count(id)) continue;
    auto owner = jobs_.find(inst.for_job);
    if (owner == jobs_.end() || owner->second.record.state != JobState::kPending) continue;
    auto node = nodes_.find(id);
    if (node == nodes_.end() || cluster_.cordoned(node->second.id)) continue;
    cluster_.set_cordoned(node->second.id, true);
    held.push_back(node->second.id);
  }
  return held;
}

}  // namespace lepton::server
