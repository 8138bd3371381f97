#include "sim/queue_sim.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <queue>
#include <tuple>

#include "sched/policy.h"
#include "sched/scheduler.h"
#include "sched/workload.h"
#include "sim/alloc_experiment.h"

namespace lepton::sim {
namespace {

using nlohmann::json;

double gpus(int64_t milli) { return static_cast<double>(milli) / kMilliPerGpu; }
double seconds(int64_t ms) { return static_cast<double>(ms) / 1000; }

int64_t share_of(int64_t total, double pct) {
  return static_cast<int64_t>(std::floor(static_cast<double>(total) * pct / 100));
}

Quota share_of(const Quota& capacity, double pct) {
  return Quota{share_of(capacity.gpu_milli, pct), share_of(capacity.cpu_milli, pct),
               share_of(capacity.memory_mib, pct)};
}

// ---- Config parsing ----

Status config_error(std::string_view file, const std::string& where, const std::string& what) {
  return Status::invalid_argument(std::string(file) + ": " + where + ": " + what);
}

Status read_pct(const json& j, const char* key, std::string_view file, const std::string& where,
                double& out) {
  const json& v = j.at(key);
  if (!v.is_number() || !(v.get<double>() >= 0 && v.get<double>() <= 100)) {
    return config_error(file, where + "." + key, "expected a number from 0 to 100");
  }
  out = v.get<double>();
  return Status::ok();
}

}  // namespace

QueueConfig default_queue_config() {
  QueueConfig c;
  c.queues = {{"prod", "", 40, 1, std::nullopt},
              {"research", "", 40, 1, std::nullopt},
              {"dev", "", 20, 1, std::nullopt}};
  c.qos = {{"LS", {"prod", 1, true}},
           {"BE", {"research", 0, true}},
           {"Burstable", {"dev", 0, true}},
           {"Guaranteed", {"dev", 0, false}}};
  return c;
}

Result<QueueConfig> parse_queue_config(std::string_view json_text, std::string_view file) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    return Status::invalid_argument(std::string(file) + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) return config_error(file, "top level", "expected an object");
  QueueConfig c;
  for (const auto& [key, value] : j.items()) {
    if (key != "queues" && key != "qos") {
      return config_error(file, key, "unknown field (expected 'queues' and 'qos')");
    }
  }
  if (!j.contains("queues") || !j["queues"].is_array() || j["queues"].empty()) {
    return config_error(file, "queues", "expected a non-empty array");
  }
  for (size_t i = 0; i < j["queues"].size(); ++i) {
    const json& q = j["queues"][i];
    const std::string where = "queues[" + std::to_string(i) + "]";
    if (!q.is_object()) return config_error(file, where, "expected an object");
    SimQueue s;
    for (const auto& [key, value] : q.items()) {
      if (key == "name" || key == "parent") {
        if (!value.is_string()) return config_error(file, where + "." + key, "expected a string");
        (key == "name" ? s.name : s.parent) = value.get<std::string>();
      } else if (key == "guaranteed_pct") {
        LEPTON_RETURN_IF_ERROR(read_pct(q, "guaranteed_pct", file, where, s.guaranteed_pct));
      } else if (key == "limit_pct") {
        double limit = 0;
        LEPTON_RETURN_IF_ERROR(read_pct(q, "limit_pct", file, where, limit));
        s.limit_pct = limit;
      } else if (key == "weight") {
        if (!value.is_number() || !(value.get<double>() > 0)) {
          return config_error(file, where + ".weight", "expected a number > 0");
        }
        s.weight = value.get<double>();
      } else {
        return config_error(file, where + "." + key,
                            "unknown field (expected name, parent, guaranteed_pct, weight, "
                            "limit_pct)");
      }
    }
    if (s.name.empty()) return config_error(file, where + ".name", "missing");
    c.queues.push_back(std::move(s));
  }
  if (!j.contains("qos") || !j["qos"].is_object() || j["qos"].empty()) {
    return config_error(file, "qos", "expected an object mapping QoS classes to queues");
  }
  for (const auto& [qos, value] : j["qos"].items()) {
    const std::string where = "qos." + qos;
    QosClass cls;
    if (value.is_string()) {
      cls.queue = value.get<std::string>();
    } else if (value.is_object()) {
      for (const auto& [key, v] : value.items()) {
        if (key == "queue" && v.is_string()) {
          cls.queue = v.get<std::string>();
        } else if (key == "priority" && v.is_number_integer()) {
          cls.priority = v.get<int>();
        } else if (key == "preemptible" && v.is_boolean()) {
          cls.preemptible = v.get<bool>();
        } else {
          return config_error(file, where + "." + key,
                              "expected queue (string), priority (integer) or preemptible (bool)");
        }
      }
    } else {
      return config_error(file, where, "expected a queue name or an object");
    }
    if (cls.queue.empty()) return config_error(file, where + ".queue", "missing");
    c.qos[qos] = std::move(cls);
  }
  return c;
}

Result<sched::QueueTree> build_queue_tree(const QueueConfig& config, const Quota& capacity) {
  std::vector<QueueSpec> specs;
  for (const SimQueue& q : config.queues) {
    QueueSpec s;
    s.name = q.name;
    s.parent = q.parent;
    s.guaranteed = share_of(capacity, q.guaranteed_pct);
    s.weight = q.weight;
    if (q.limit_pct) s.limit = share_of(capacity, *q.limit_pct);
    specs.push_back(std::move(s));
  }
  auto tree = sched::QueueTree::build(std::move(specs));
  if (!tree.is_ok()) return Status::invalid_argument("queues: " + tree.status().message());
  for (const auto& [qos, cls] : config.qos) {
    const int q = tree->find(cls.queue);
    if (q < 0) {
      return Status::invalid_argument("qos " + qos + ": no queue named '" + cls.queue + "'");
    }
    if (!tree->is_leaf(q)) {
      return Status::invalid_argument("qos " + qos + ": queue '" + cls.queue +
                                      "' has children; jobs go to leaf queues");
    }
  }
  return tree;
}

Result<QueueWorkload> make_queue_workload(const std::vector<TracePod>& pods,
                                          const sched::QueueTree& tree, const QueueConfig& config,
                                          int64_t cluster_gpu_milli,
                                          const QueueTraceOptions& options) {
  if (!(options.load >= 0) || !std::isfinite(options.load)) {
    return Status::invalid_argument("load: expected a number >= 0");
  }
  if (options.max_duration_s < 0) {
    return Status::invalid_argument("max_duration_s: expected >= 0");
  }
  if (!(options.start_pct >= 0 && options.start_pct <= 100)) {
    return Status::invalid_argument("start_pct: expected 0..100");
  }
  QueueWorkload w;
  w.pods = static_cast<int64_t>(pods.size());
  struct Raw {
    size_t pod;
    int64_t creation;
    int64_t duration;
  };
  std::vector<Raw> raw;
  for (size_t i = 0; i < pods.size(); ++i) {
    const TracePod& p = pods[i];
    if (!p.deletion_time) {
      ++w.skipped_no_end;
      continue;
    }
    int64_t start = p.creation_time;
    if (p.scheduled_time && *p.scheduled_time > 0) {
      start = *p.scheduled_time;
    } else if (p.creation_time > 0 || !p.scheduled_time) {
      ++w.no_scheduled_time;  // (a pod created and scheduled at 0 is not a fallback)
    }
    const int64_t d = *p.deletion_time - start;
    if (d <= 0) {
      ++w.skipped_nonpositive;
      continue;
    }
    raw.push_back({i, p.creation_time, d});
  }
  if (raw.empty()) {
    return Status::invalid_argument(
        "pods: no pod has a positive duration (deletion_time - scheduled_time); the queue replay "
        "needs the creation_time, deletion_time and scheduled_time columns");
  }
  std::vector<int64_t> creations;
  for (const Raw& r : raw) creations.push_back(r.creation);
  std::sort(creations.begin(), creations.end());
  int64_t t0 = creations.front();
  if (options.start_pct > 0) {
    size_t k = static_cast<size_t>(
        std::ceil(options.start_pct / 100 * static_cast<double>(creations.size())));
    t0 = creations[std::min(creations.size(), std::max<size_t>(k, 1)) - 1];
  }
  double gpu_seconds = 0;
  int64_t span = 0;
  for (Raw& r : raw) {
    if (options.max_duration_s > 0 && r.duration > options.max_duration_s) {
      r.duration = options.max_duration_s;
      ++w.capped;
    }
    if (r.creation < t0) ++w.early_arrivals;
    r.creation = std::max(r.creation, t0) - t0;
    span = std::max(span, r.creation);
    gpu_seconds += gpus(pods[r.pod].res.total_gpu_milli()) * static_cast<double>(r.duration);
  }
  w.gpu_hours = gpu_seconds / 3600;
  const double capacity = gpus(cluster_gpu_milli);
  // Mean GPU demand over the arrival window with unlimited GPUs, as a share of the cluster, when
  // arrivals come `scale` times faster: every job counts the part of its run inside the window.
  // It grows with the scale, towards the limit where every job arrives at once.
  const double S = static_cast<double>(span);
  auto load_at = [&](double scale) {
    double demand = 0;
    for (const Raw& r : raw) {
      const double g = gpus(pods[r.pod].res.total_gpu_milli());
      if (g == 0) continue;
      const double a = static_cast<double>(r.creation) / S;
      demand += g * std::min(static_cast<double>(r.duration) * scale / S, 1 - a);
    }
    return demand / capacity;
  };
  if (span > 0 && capacity > 0) {
    w.max_offered_load = load_at(std::numeric_limits<double>::infinity());
    if (options.load > 0) {
      if (options.load >= w.max_offered_load) {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "load %.2f is out of reach: even with every pod arriving at once, the mean "
                      "GPU demand over the arrival window would be %.2f of the cluster's %.0f "
                      "GPUs; use fewer GPUs or a lower load",
                      options.load, w.max_offered_load, capacity);
        return Status::invalid_argument(buf);
      }
      double lo = 0, hi = 1;
      while (load_at(hi) < options.load) hi *= 2;
      for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
        const double mid = (lo + hi) / 2;
        (load_at(mid) < options.load ? lo : hi) = mid;
      }
      w.time_scale = hi;
    }
    w.offered_load = load_at(w.time_scale);
  }
  w.arrival_span_s = S / w.time_scale;
  for (const Raw& r : raw) {
    const TracePod& p = pods[r.pod];
    auto cls = config.qos.find(p.qos);
    if (cls == config.qos.end()) {
      std::string known;
      for (const auto& [name, c] : config.qos) known += (known.empty() ? "" : ", ") + name;
      return Status::invalid_argument("pod " + p.name + ": qos '" + p.qos +
                                      "' maps to no queue (known: " + known + ")");
    }
    const int q = tree.find(cls->second.queue);
    if (q < 0 || !tree.is_leaf(q)) {
      return Status::invalid_argument("qos " + p.qos + ": '" + cls->second.queue +
                                      "' is not a leaf queue");
    }
    QueueJob job;
    job.name = p.name;
    job.queue = q;
    job.priority = cls->second.priority;
    job.preemptible = cls->second.preemptible;
    const double arrival_s = static_cast<double>(r.creation) / w.time_scale;
    job.arrival_ms = std::llround(arrival_s * 1000);
    job.duration_ms = r.duration * 1000;
    job.res = p.res;
    job.gpu_spec = p.gpu_spec;
    w.jobs.push_back(std::move(job));
  }
  std::stable_sort(w.jobs.begin(), w.jobs.end(), [](const QueueJob& a, const QueueJob& b) {
    return a.arrival_ms < b.arrival_ms;
  });
  return w;
}

std::vector<sched::NodeSpec> select_nodes(const std::vector<sched::NodeSpec>& nodes, int64_t gpus,
                                          uint64_t seed) {
  std::vector<sched::NodeSpec> sorted;
  for (const auto& n : nodes) {
    if (n.gpu_count > 0) sorted.push_back(n);
  }
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.name < b.name; });
  int64_t total = 0;
  for (const auto& n : sorted) total += n.gpu_count;
  if (gpus <= 0 || gpus >= total) return sorted;
  uint64_t rng = seed;
  for (size_t i = sorted.size(); i > 1; --i)
    std::swap(sorted[i - 1], sorted[uniform_below(rng, i)]);
  std::vector<sched::NodeSpec> out;
  int64_t have = 0;
  for (auto& n : sorted) {
    if (have >= gpus) break;
    have += n.gpu_count;
    out.push_back(std::move(n));
  }
  return out;
}

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

namespace {

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

// Time averages of a step function (values[i] from t[i] on) over `bins` equal bins of
// [start, end).
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

}  // namespace

Result<QueueSimResult> run_queue_sim(const std::vector<sched::NodeSpec>& nodes,
                                     const QueueWorkload& workload, const sched::QueueTree& tree,
                                     const QueueSimOptions& options,
                                     const std::function<void(size_t, size_t)>& progress) {
  if (options.grace_ms < 0) return Status::invalid_argument("grace: expected >= 0");
  if (options.horizon_ms < 0) return Status::invalid_argument("horizon: expected >= 0");
  Replay replay(workload, tree, options);
  return replay.run(nodes, progress);
}

}  // namespace lepton::sim
