// The queue replay's inputs: the queue configuration (default, or a JSON file) and its tree, the
// jobs made from a trace's pods with arrival times compressed to an offered load, and the subset of
// nodes the replay runs on. See queue_sim.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "sim/alloc_experiment.h"
#include "sim/queue_sim.h"

namespace lepton::sim {
namespace {

using nlohmann::json;

double gpus(int64_t milli) { return static_cast<double>(milli) / kMilliPerGpu; }

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

}  // namespace lepton::sim
