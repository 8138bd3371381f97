// `lepton sim queues`: a trace with arrival times and durations replayed through the queue
// scheduler (quotas, fair share, reclaim): completion times, allocation, fairness, preemptions.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/sim_commands.h"
#include "sched/policy.h"
#include "sched/queues.h"
#include "sim/chart.h"
#include "sim/csv.h"
#include "sim/queue_sim.h"

namespace lepton::cli {

using sim_internal::take;
using sim_internal::workload_name;
using sim_internal::write_file;

namespace {

using nlohmann::json;

struct QueuesFlags {
  std::string nodes;
  std::string pods;
  std::string policy = "all";
  std::string queues;
  std::string placement = std::string(sched::kDefaultPolicy);
  std::string out;
  double load = 1.3;
  double start_pct = 1;
  int64_t max_duration_s = 86'400;
  int64_t cluster_gpus = 256;
  uint64_t seed = 42;
  int64_t horizon_s = 0;
  int64_t grace_s = 0;
  int64_t reserve_after_s = 60;
  std::string window = "arrivals";
  bool json = false;
};

std::vector<sched::QueuePolicy> parse_queue_policies(const std::string& text) {
  if (text == "all") {
    return {sched::QueuePolicy::kFifo, sched::QueuePolicy::kPriority, sched::QueuePolicy::kDrf,
            sched::QueuePolicy::kLepton};
  }
  std::vector<sched::QueuePolicy> out;
  std::string_view t = text;
  while (true) {
    const size_t comma = t.find(',');
    auto p = sched::parse_queue_policy(t.substr(0, comma));
    if (!p.is_ok()) {
      fail(Status::invalid_argument(
          "--policy: expected fifo, priority, drf, lepton, a comma-separated list of them, or "
          "all, got '" +
          std::string(t.substr(0, comma)) + "'"));
    }
    out.push_back(*p);
    if (comma == std::string_view::npos) break;
    t = t.substr(comma + 1);
  }
  return out;
}

// Rounded to `digits` decimals.
double round_to(double v, int digits) {
  const double k = std::pow(10.0, digits);
  return std::round(v * k) / k;
}

json replay_json(const QueuesFlags& f, const sim::QueueWorkload& w,
                 const std::vector<sched::NodeSpec>& nodes, const sim::QueueConfig& config) {
  int64_t gpus = 0;
  for (const auto& n : nodes) gpus += n.gpu_count;
  json queues = json::array();
  for (const auto& q : config.queues) {
    json j = {{"name", q.name}, {"guaranteed_pct", q.guaranteed_pct}, {"weight", q.weight}};
    if (!q.parent.empty()) j["parent"] = q.parent;
    if (q.limit_pct) j["limit_pct"] = *q.limit_pct;
    queues.push_back(j);
  }
  json qos = json::object();
  for (const auto& [name, c] : config.qos) {
    qos[name] = {{"queue", c.queue}, {"priority", c.priority}, {"preemptible", c.preemptible}};
  }
  return {{"nodes", nodes.size()},
          {"cluster_gpus", gpus},
          {"pods", w.pods},
          {"jobs", w.jobs.size()},
          {"skipped_no_deletion_time", w.skipped_no_end},
          {"skipped_nonpositive_duration", w.skipped_nonpositive},
          {"duration_from_creation_time", w.no_scheduled_time},
          {"durations_capped", w.capped},
          {"early_arrivals", w.early_arrivals},
          {"load", f.load},
          {"offered_load", round_to(w.offered_load, 3)},
          {"max_offered_load", round_to(w.max_offered_load, 3)},
          {"time_scale", round_to(w.time_scale, 3)},
          {"arrival_span_s", round_to(w.arrival_span_s, 1)},
          {"gpu_hours_requested", round_to(w.gpu_hours, 1)},
          {"max_duration_s", f.max_duration_s},
          {"start_pct", f.start_pct},
          {"horizon_s", f.horizon_s},
          {"grace_s", f.grace_s},
          {"reserve_after_s", f.reserve_after_s},
          {"window", f.window},
          {"placement", f.placement},
          {"seed", f.seed},
          {"queues", queues},
          {"qos", qos}};
}

json queue_result_json(const sim::QueueSimResult& r, const std::string& trace, const json& replay) {
  json queues = json::array();
  for (const auto& q : r.queues) {
    queues.push_back(
        {{"name", q.name},
         {"guaranteed_gpus", round_to(q.guaranteed_gpus, 3)},
         {"jobs", q.jobs},
         {"jobs_completed", q.completed},
         {"avg_wait_s", round_to(q.avg_wait_s, 1)},
         {"p99_wait_s", round_to(q.p99_wait_s, 1)},
         {"avg_jct_s", round_to(q.avg_jct_s, 1)},
         {"avg_in_use_gpus", round_to(q.avg_in_use_gpus, 2)},
         {"avg_fair_share_gpus", round_to(q.avg_fair_share_gpus, 2)},
         {"preempted", q.preempted},
         {"max_reclaim_wait_s", round_to(q.max_reclaim_wait_s, 1)},
         {"max_reclaim_wait_from_s", round_to(q.max_reclaim_wait_from_s, 1)},
         {"max_reclaim_wait_job", q.max_reclaim_wait_job},
         {"max_reclaim_wait_job_resources",
          q.max_reclaim_wait_job.empty() ? "" : q.max_reclaim_wait_job_res.to_string()}});
  }
  return {{"policy", r.policy},
          {"trace", trace},
          {"avg_jct_s", round_to(r.avg_jct_s, 1)},
          {"p99_jct_s", round_to(r.p99_jct_s, 1)},
          {"avg_wait_s", round_to(r.avg_wait_s, 1)},
          {"p99_wait_s", round_to(r.p99_wait_s, 1)},
          {"gpu_alloc_pct", round_to(r.gpu_alloc_pct, 2)},
          {"gpu_alloc_pct_to_end", round_to(r.gpu_alloc_pct_to_end, 2)},
          {"jain_fairness", round_to(r.jain_fairness, 4)},
          {"preemptions", r.preemptions},
          {"gpu_hours_lost", round_to(r.gpu_hours_lost, 2)},
          {"max_reclaim_wait_s", round_to(r.max_reclaim_wait_s, 1)},
          {"jobs", r.jobs},
          {"jobs_completed", r.completed},
          {"jobs_not_completed", r.not_completed},
          {"jobs_unplaceable", r.unplaceable},
          {"window_s", round_to(r.window_s, 1)},
          {"makespan_s", round_to(r.makespan_s, 1)},
          {"cycles", r.cycles},
          {"seconds", round_to(r.seconds, 3)},
          {"queues", queues},
          {"replay", replay}};
}

void write_queue_outputs(const std::filesystem::path& dir, const std::string& trace,
                         const std::vector<sim::QueueSimResult>& results, const json& all) {
  std::filesystem::create_directories(dir);
  const std::string base = "queues-" + trace;
  write_file(dir / (base + ".json"), all.dump(2) + "\n");
  std::string csv =
      "trace,policy,queue,jobs,jobs_completed,avg_wait_s,p99_wait_s,avg_jct_s,avg_in_use_gpus,"
      "avg_fair_share_gpus,preempted,max_reclaim_wait_s\n";
  char line[512];
  for (const auto& r : results) {
    for (const auto& q : r.queues) {
      std::snprintf(line, sizeof line, "%s,%s,%s,%lld,%lld,%.1f,%.1f,%.1f,%.2f,%.2f,%lld,%.1f\n",
                    trace.c_str(), r.policy.c_str(), q.name.c_str(), static_cast<long long>(q.jobs),
                    static_cast<long long>(q.completed), q.avg_wait_s, q.p99_wait_s, q.avg_jct_s,
                    q.avg_in_use_gpus, q.avg_fair_share_gpus, static_cast<long long>(q.preempted),
                    q.max_reclaim_wait_s);
      csv += line;
    }
  }
  write_file(dir / (base + ".csv"), csv);
  // Time series: one row per bin and policy.
  std::string series = "trace,policy,t_h,gpu_alloc_pct";
  if (!results.empty()) {
    for (const auto& q : results[0].queues) {
      series += "," + q.name + "_in_use_gpus," + q.name + "_fair_share_gpus";
    }
  }
  series += "\n";
  for (const auto& r : results) {
    for (size_t k = 0; k < r.series_t_s.size(); ++k) {
      std::snprintf(line, sizeof line, "%s,%s,%.4f,%.2f", trace.c_str(), r.policy.c_str(),
                    r.series_t_s[k] / 3600, r.series_alloc_pct[k]);
      series += line;
      for (const auto& q : r.queues) {
        std::snprintf(line, sizeof line, ",%.2f,%.2f", q.in_use_gpus[k], q.fair_share_gpus[k]);
        series += line;
      }
      series += "\n";
    }
  }
  write_file(dir / (base + "-series.csv"), series);
  // GPU allocation over time, one line per policy.
  // The series run to each policy's last completion; a grey dashed line marks the last arrival,
  // where the measurement window ends.
  double x_max = 0;
  for (const auto& r : results) x_max = std::max(x_max, r.makespan_s / 3600);
  std::vector<sim::ChartSeries> lines;
  for (const auto& r : results) {
    sim::ChartSeries s{r.policy, {}, {}, false, static_cast<int>(lines.size())};
    for (size_t k = 0; k < r.series_t_s.size(); ++k) {
      s.x.push_back(r.series_t_s[k] / 3600);
      s.y.push_back(r.series_alloc_pct[k]);
    }
    lines.push_back(std::move(s));
  }
  auto window_marker = [](const sim::QueueSimResult& r, double y_max) {
    const double x = r.window_s / 3600;
    return sim::ChartSeries{"end of arrivals", {x, x}, {0, y_max}, true, 7};
  };
  if (!results.empty()) lines.push_back(window_marker(results[0], 100));
  write_file(dir / (base + "-alloc.svg"),
             sim::render_line_chart_svg(lines, {.title = "GPU allocation over time: " + trace,
                                                .x_label = "hours since the first arrival",
                                                .y_label = "GPUs allocated (% of capacity)",
                                                .x_min = 0,
                                                .x_max = x_max > 0 ? x_max : 1,
                                                .y_min = 0,
                                                .y_max = 100}));
  // Per policy: each queue's GPUs in use (solid) and fair share (dashed).
  for (const auto& r : results) {
    std::vector<sim::ChartSeries> qs;
    double y_max = 1;
    for (size_t i = 0; i < r.queues.size(); ++i) {
      const auto& q = r.queues[i];
      sim::ChartSeries use{q.name + " in use", {}, {}, false, static_cast<int>(i)};
      sim::ChartSeries fair{q.name + " fair share", {}, {}, true, static_cast<int>(i)};
      for (size_t k = 0; k < r.series_t_s.size(); ++k) {
        use.x.push_back(r.series_t_s[k] / 3600);
        use.y.push_back(q.in_use_gpus[k]);
        fair.x.push_back(r.series_t_s[k] / 3600);
        fair.y.push_back(q.fair_share_gpus[k]);
        y_max = std::max({y_max, q.in_use_gpus[k], q.fair_share_gpus[k]});
      }
      qs.push_back(std::move(use));
      qs.push_back(std::move(fair));
    }
    qs.push_back(window_marker(r, y_max * 1.05));
    write_file(
        dir / (base + "-" + r.policy + "-shares.svg"),
        sim::render_line_chart_svg(qs, {.title = "GPUs per queue, " + r.policy + ": " + trace,
                                        .x_label = "hours since the first arrival",
                                        .y_label = "GPUs (in use solid, fair share dashed)",
                                        .x_min = 0,
                                        .x_max = r.makespan_s > 0 ? r.makespan_s / 3600 : 1,
                                        .y_min = 0,
                                        .y_max = y_max * 1.05}));
  }
}

std::string hms(double s) {
  char buf[32];
  if (s < 100) {
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  } else if (s < 6000) {
    std::snprintf(buf, sizeof buf, "%.1fm", s / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
  }
  return buf;
}

void run_queues(const QueuesFlags& f) {
  const std::string trace_dir = default_trace_dir();
  const std::string nodes_path =
      f.nodes.empty() ? trace_dir + "/openb_node_list_gpu_node.csv" : f.nodes;
  const std::string pods_path = f.pods.empty() ? trace_dir + "/openb_pod_list_default.csv" : f.pods;
  const std::vector<sched::QueuePolicy> policies = parse_queue_policies(f.policy);
  if (!sched::make_policy(f.placement, {}).is_ok()) {
    fail(Status::invalid_argument("--placement: " +
                                  sched::make_policy(f.placement, {}).status().message()));
  }
  sim::QueueConfig config = sim::default_queue_config();
  if (!f.queues.empty()) {
    auto text = sim::read_file(f.queues);
    if (!text.is_ok()) fail(Status::invalid_argument("--queues: " + text.status().message()));
    auto parsed = sim::parse_queue_config(*text, f.queues);
    if (!parsed.is_ok()) fail(Status::invalid_argument("--queues: " + parsed.status().message()));
    config = std::move(*parsed);
  }
  const auto all_nodes = take(sim::read_alibaba_nodes(nodes_path));
  const auto nodes = sim::select_nodes(all_nodes, f.cluster_gpus, f.seed);
  if (nodes.empty()) fail(Status::invalid_argument("--nodes: " + nodes_path + ": no GPU nodes"));
  Quota capacity;
  for (const auto& n : nodes) {
    capacity.gpu_milli += int64_t{n.gpu_count} * kMilliPerGpu;
    capacity.cpu_milli += n.cpu_milli;
    capacity.memory_mib += n.memory_mib;
  }
  auto tree = sim::build_queue_tree(config, capacity);
  if (!tree.is_ok()) {
    fail(
        Status::invalid_argument((f.queues.empty() ? "" : "--queues: ") + tree.status().message()));
  }
  const auto pods = take(sim::read_alibaba_pods(pods_path));
  sim::QueueTraceOptions topt{
      .load = f.load, .max_duration_s = f.max_duration_s, .start_pct = f.start_pct};
  auto workload = sim::make_queue_workload(pods, *tree, config, capacity.gpu_milli, topt);
  if (!workload.is_ok()) {
    fail(Status::invalid_argument("--pods " + pods_path + ": " + workload.status().message()));
  }
  const std::string trace = workload_name(pods_path);
  const json replay = replay_json(f, *workload, nodes, config);
  if (!f.json) {
    std::printf(
        "%s: %zu jobs of %lld pods on %zu nodes (%lld GPUs); arrivals %.1fx faster than the "
        "trace, offered load %.2f over %s; durations capped at %llds (%lld jobs)\n",
        trace.c_str(), workload->jobs.size(), static_cast<long long>(workload->pods), nodes.size(),
        static_cast<long long>(capacity.gpu_milli / kMilliPerGpu), workload->time_scale,
        workload->offered_load, hms(workload->arrival_span_s).c_str(),
        static_cast<long long>(f.max_duration_s), static_cast<long long>(workload->capped));
    std::printf("%-9s %6s %6s %9s %9s %7s %6s %8s %9s %11s %8s\n", "policy", "jobs", "done",
                "avg JCT", "p99 JCT", "alloc%", "Jain", "preempt", "GPU-h lost", "max reclaim",
                "seconds");
    std::fflush(stdout);
  }
  std::vector<sim::QueueSimResult> results;
  json objects = json::array();
  for (sched::QueuePolicy policy : policies) {
    sim::QueueSimOptions options;
    options.policy = policy;
    options.placement = f.placement;
    options.grace_ms = f.grace_s * 1000;
    options.horizon_ms = f.horizon_s * 1000;
    options.reserve_after_ms = f.reserve_after_s * 1000;
    options.window = f.window == "run" ? sim::MeasureWindow::kRun : sim::MeasureWindow::kArrivals;
    const std::string label = trace.substr(0, 16) + " " + std::string(queue_policy_name(policy));
    auto r =
        take(sim::run_queue_sim(nodes, *workload, *tree, options, [&](size_t done, size_t total) {
          if (!f.json) progress_bar(label, done, total);
        }));
    if (!f.json) {
      std::printf("%-9s %6lld %6lld %9s %9s %7.2f %6.3f %8lld %10.1f %11s %8.2f\n",
                  r.policy.c_str(), static_cast<long long>(r.jobs),
                  static_cast<long long>(r.completed), hms(r.avg_jct_s).c_str(),
                  hms(r.p99_jct_s).c_str(), r.gpu_alloc_pct, r.jain_fairness,
                  static_cast<long long>(r.preemptions), r.gpu_hours_lost,
                  hms(r.max_reclaim_wait_s).c_str(), r.seconds);
      std::fflush(stdout);
    }
    objects.push_back(queue_result_json(r, trace, replay));
    results.push_back(std::move(r));
  }
  if (!f.json) {
    std::printf("\n%-9s %-10s %9s %6s %9s %9s %9s %9s %11s  %s\n", "policy", "queue", "guar.GPU",
                "jobs", "avg wait", "p99 wait", "avg GPUs", "avg fair", "max reclaim",
                "(its job, from)");
    for (const auto& r : results) {
      for (const auto& q : r.queues) {
        std::string job;
        if (!q.max_reclaim_wait_job.empty()) {
          const Resources& res = q.max_reclaim_wait_job_res;
          char buf[128];
          std::snprintf(
              buf, sizeof buf, "%s: %g GPU %g CPU, from %s", q.max_reclaim_wait_job.c_str(),
              static_cast<double>(res.total_gpu_milli()) / kMilliPerGpu,
              static_cast<double>(res.cpu_milli) / 1000, hms(q.max_reclaim_wait_from_s).c_str());
          job = buf;
        }
        std::printf("%-9s %-10s %9.1f %6lld %9s %9s %9.1f %9.1f %11s  %s\n", r.policy.c_str(),
                    q.name.c_str(), q.guaranteed_gpus, static_cast<long long>(q.jobs),
                    hms(q.avg_wait_s).c_str(), hms(q.p99_wait_s).c_str(), q.avg_in_use_gpus,
                    q.avg_fair_share_gpus, hms(q.max_reclaim_wait_s).c_str(), job.c_str());
      }
    }
  }
  const json all = objects.size() == 1
                       ? objects[0]
                       : json{{"trace", trace}, {"replay", replay}, {"policies", objects}};
  if (!f.out.empty()) {
    json with_series = all;
    json& list = objects.size() == 1 ? with_series : with_series["policies"];
    for (size_t i = 0; i < results.size(); ++i) {
      json& o = objects.size() == 1 ? list : list[i];
      o["series"] = {{"t_s", results[i].series_t_s},
                     {"gpu_alloc_pct", results[i].series_alloc_pct}};
    }
    write_queue_outputs(f.out, trace, results, with_series);
  }
  if (f.json) std::cout << all.dump() << "\n";
  if (!f.out.empty() && !f.json)
    std::printf("wrote CSV, JSON and SVG files to %s\n", f.out.c_str());
}

}  // namespace

void register_sim_queues_command(CLI::App& sim) {
  auto qf = std::make_shared<QueuesFlags>();
  CLI::App* queues = sim.add_subcommand(
      "queues",
      "Replay a trace with arrival times and durations through the queue scheduler (quotas, fair "
      "share, reclaim); report completion times, GPU allocation, fairness and preemptions");
  queues->add_option("--nodes", qf->nodes,
                     "Node list CSV (default: the bundled Alibaba v2023 GPU nodes)");
  queues->add_option("--pods", qf->pods,
                     "Pod list CSV with creation_time, deletion_time and scheduled_time (default: "
                     "the bundled openb_pod_list_default.csv)");
  queues
      ->add_option("--policy", qf->policy,
                   "fifo, priority, drf, lepton, a comma-separated list, or all")
      ->capture_default_str();
  queues->add_option("--queues", qf->queues,
                     "Queues and the QoS-to-queue map as JSON (default: prod 40%, research 40%, "
                     "dev 20%; LS->prod, BE->research, Burstable/Guaranteed->dev)");
  queues
      ->add_option("--load", qf->load,
                   "Scale arrival times so that the mean GPU demand over the arrival window, with "
                   "unlimited GPUs, is this share of the cluster (0: the trace's own times)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1000.0));
  queues
      ->add_option("--max-duration", qf->max_duration_s,
                   "Cut job durations to this many seconds (0: no cap)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000}));
  queues
      ->add_option("--start-pct", qf->start_pct,
                   "Pods created before this percentile of creation times arrive at it")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  queues
      ->add_option("--cluster-gpus", qf->cluster_gpus,
                   "Use a deterministic subset of the nodes with at least this many GPUs (0: all; "
                   "the whole bundled cluster is too large for the trace to contend for)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{10'000'000}));
  queues->add_option("--seed", qf->seed, "Seed of the node subset")->capture_default_str();
  queues
      ->add_option("--horizon", qf->horizon_s,
                   "Stop this many seconds after the first arrival (0: when all work is done)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000}));
  queues
      ->add_option("--grace", qf->grace_s,
                   "Seconds a preempted job keeps its resources before it stops")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000}));
  queues
      ->add_option("--reserve-after", qf->reserve_after_s,
                   "Seconds a job first in line waits before it reserves nodes (lepton)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000'000}));
  queues->add_option("--placement", qf->placement, "Node-scoring policy for placements")
      ->capture_default_str();
  queues
      ->add_option("--window", qf->window,
                   "Time averages over 'arrivals' (first to last arrival) or 'run' (first "
                   "arrival to the last completion)")
      ->capture_default_str()
      ->check(CLI::IsMember({"arrivals", "run"}));
  queues->add_option("--out", qf->out,
                     "Write JSON, CSV (per queue, time series) and SVG charts here");
  queues->add_flag("--json", qf->json,
                   "Print one JSON object (with --policy all: {\"policies\": [...]})");
  queues->callback([qf] { run_queues(*qf); });
}

}  // namespace lepton::cli
