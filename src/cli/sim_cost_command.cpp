// `lepton sim cost`: the multi-cloud cost replay (sim/cost_sim.h; docs/clouds.md, "Cost replay").
// A trace's GPU jobs run on emulated clouds priced from the offer catalog, under single-cloud,
// cheapest-first and lepton provisioning; the bill is compared with a lower bound. Simulation only.
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cli/cli.h"
#include "cli/experiments.h"
#include "cloud/catalog.h"
#include "core/gpu_model.h"
#include "sim/alibaba_trace.h"
#include "sim/chart.h"
#include "sim/cost_bound.h"
#include "sim/cost_sim.h"

namespace lepton::cli {
namespace {

using nlohmann::json;

struct CostFlags {
  std::string pods;
  std::string catalog;
  std::string policy = "all";
  std::string any_gpu = "T4,V100,V100-32GB,A10,A10G,L4";
  bool on_demand = false;
  int64_t max_pods = 0;
  double checkpoint_min = 30;
  sim::CostOptions options;
  bool json = false;
  std::string out;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

// One pool per (cloud, region, instance type, spot or on-demand), at the lowest price over the
// region's zones. GCP's GPU-only rows (no n1 host price) and fractional-GPU offers are left out.
std::vector<sim::CostPool> pools_from_offers(const std::vector<cloud::Offer>& offers) {
  std::map<std::tuple<std::string, std::string, std::string, bool>, sim::CostPool> pools;
  auto add = [&](const cloud::Offer& o, double price, bool spot) {
    if (!(price > 0)) return;
    auto key = std::make_tuple(o.cloud, o.region, o.instance_type, spot);
    auto it = pools.find(key);
    if (it != pools.end()) {
      it->second.price_per_hour = std::min(it->second.price_per_hour, price);
      return;
    }
    sim::CostPool p;
    p.cloud = o.cloud;
    p.region = o.region;
    p.instance_type = o.instance_type;
    p.gpu_model = o.gpu_model;
    p.gpu_count = static_cast<int>(o.gpu_count);
    p.price_per_hour = price;
    p.spot = spot;
    pools.emplace(key, p);
  };
  for (const cloud::Offer& o : offers) {
    if (o.instance_type == cloud::kGcpAttachableInstance) continue;
    if (o.gpu_count < 1 || o.gpu_count != std::floor(o.gpu_count)) continue;
    add(o, o.price_per_hour, false);
    if (o.spot_price_per_hour) add(o, *o.spot_price_per_hour, true);
  }
  std::vector<sim::CostPool> out;
  for (auto& [key, p] : pools) out.push_back(std::move(p));
  return out;
}

// "--flag: expected a number >= 0, got 'x'" instead of CLI11's range with DBL_MAX spelled out.
CLI::Validator number_at_least(double min, bool strict) {
  std::string rule = std::string(strict ? "> " : ">= ") + (min == 0 ? "0" : std::to_string(min));
  return CLI::Validator(
      [min, strict, rule](std::string& text) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != text.size() || used == 0 || !std::isfinite(v) ||
            (strict ? v <= min : v < min)) {
          return "expected a number " + rule + ", got '" + text + "'";
        }
        return {};
      },
      "NUMBER " + rule);
}

double round_to(double v, double unit) { return std::round(v / unit) * unit; }

json policy_json(const sim::CostPolicyResult& r) {
  return {
      {"policy", r.policy},
      {"cost_usd", round_to(r.cost_usd, 0.01)},
      {"lower_bound_usd", round_to(r.lower_bound_usd, 0.01)},
      {"gap_pct", round_to(r.gap_pct, 0.01)},
      {"bound_usd",
       {{"work", round_to(r.lower_bound_usd - r.packing_bound_usd - r.capacity_bound_usd, 0.01)},
        {"packing", round_to(r.packing_bound_usd, 0.01)},
        {"capacity", round_to(r.capacity_bound_usd, 0.01)}}},
      {"lower_bound_any_time_usd", round_to(r.lower_bound_any_time_usd, 0.01)},
      {"gap_any_time_pct", round_to(r.gap_any_time_pct, 0.01)},
      {"cost_per_gpu_hour", round_to(r.cost_per_gpu_hour, 0.0001)},
      {"avg_jct_s", round_to(r.avg_jct_s, 0.1)},
      {"p99_jct_s", round_to(r.p99_jct_s, 0.1)},
      {"avg_wait_s", round_to(r.avg_wait_s, 0.1)},
      {"gpu_hours_completed", round_to(r.gpu_hours_completed, 0.01)},
      {"gpu_hours_lost", round_to(r.gpu_hours_lost, 0.01)},
      {"interruptions", r.interruptions},
      {"capacity_errors", r.capacity_errors},
      {"jobs", r.jobs},
      {"jobs_completed", r.jobs_completed},
      {"stopped_at_horizon", r.stopped_at_horizon},
      {"jobs_unplaceable", r.jobs_unplaceable},
      {"instances_launched", r.instances_launched},
      {"gpu_hours_billed", round_to(r.gpu_hours_billed, 0.01)},
      {"gap_usd",
       {{"boot", round_to(r.boot_usd, 0.01)},
        {"idle", round_to(r.idle_usd, 0.01)},
        {"unused_share", round_to(r.unused_share_usd, 0.01)},
        {"premium", round_to(r.premium_usd, 0.01)},
        {"redone", round_to(r.redone_usd, 0.01)}}},
      {"spot_instance_hours", round_to(r.spot_instance_hours, 0.01)},
      {"on_demand_instance_hours", round_to(r.on_demand_instance_hours, 0.01)},
      {"seconds", round_to(r.seconds, 0.001)}};
}

void write_text(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path);
  out << content;
  if (!out) fail(path.string() + ": cannot write");
}

void write_outputs(const CostFlags& f, const std::string& workload, const json& report,
                   const std::vector<sim::CostPolicyResult>& results) {
  std::filesystem::path dir = f.out;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("--out " + f.out + ": " + ec.message(), 2);
  std::string csv =
      "trace,policy,cost_usd,lower_bound_usd,gap_pct,cost_per_gpu_hour,avg_jct_s,p99_jct_s,"
      "gpu_hours_lost,interruptions,capacity_errors,jobs,jobs_completed\n";
  std::string curve = "trace,policy,t_days,cost_usd\n";
  std::vector<sim::ChartSeries> series;
  double x_max = 0;
  double y_max = 0;
  for (const auto& r : results) {
    char line[512];
    std::snprintf(
        line, sizeof line, "%s,%s,%.2f,%.2f,%.2f,%.4f,%.1f,%.1f,%.2f,%lld,%lld,%lld,%lld\n",
        workload.c_str(), r.policy.c_str(), r.cost_usd, r.lower_bound_usd, r.gap_pct,
        r.cost_per_gpu_hour, r.avg_jct_s, r.p99_jct_s, r.gpu_hours_lost,
        static_cast<long long>(r.interruptions), static_cast<long long>(r.capacity_errors),
        static_cast<long long>(r.jobs), static_cast<long long>(r.jobs_completed));
    csv += line;
    sim::ChartSeries s{r.policy, {}, {}, false, static_cast<int>(series.size())};
    for (const auto& p : r.curve) {
      s.x.push_back(p.t_s / 86400.0);
      s.y.push_back(p.cost_usd);
      std::snprintf(line, sizeof line, "%s,%s,%.4f,%.2f\n", workload.c_str(), r.policy.c_str(),
                    p.t_s / 86400.0, p.cost_usd);
      curve += line;
      x_max = std::max(x_max, p.t_s / 86400.0);
      y_max = std::max(y_max, p.cost_usd);
    }
    series.push_back(std::move(s));
  }
  write_text(dir / ("cost-" + workload + ".csv"), csv);
  write_text(dir / ("cost-" + workload + "-curve.csv"), curve);
  write_text(dir / ("cost-" + workload + ".json"), report.dump(2) + "\n");
  write_text(dir / ("cost-" + workload + ".svg"),
             sim::render_line_chart_svg(series, {.title = "Cumulative cost: " + workload,
                                                 .x_label = "simulated time (days)",
                                                 .y_label = "cost (USD)",
                                                 .x_min = 0,
                                                 .x_max = x_max > 0 ? x_max : 1,
                                                 .y_min = 0,
                                                 .y_max = y_max > 0 ? y_max * 1.05 : 1}));
}

void run_cost(CostFlags f) {
  // Policies.
  std::vector<std::string> policies;
  if (f.policy == "all") {
    for (const char* p : sim::kCostPolicies) policies.emplace_back(p);
  } else {
    for (const std::string& p : split_commas(f.policy)) {
      bool known = false;
      for (const char* k : sim::kCostPolicies) known = known || p == k;
      if (!known) {
        fail("--policy: unknown policy '" + p +
                 "' (known: single-cloud, cheapest-first, lepton, all)",
             2);
      }
      policies.push_back(p);
    }
    if (policies.empty()) fail("--policy: empty", 2);
  }
  f.options.checkpoint_s = f.checkpoint_min * 60.0;

  // Offers, as pools with capacity.
  const std::string catalog_dir = f.catalog.empty() ? data_dir() + "/catalog" : f.catalog;
  auto offers = cloud::load_catalog_dir(catalog_dir);
  if (!offers.is_ok()) fail("--catalog " + catalog_dir + ": " + offers.status().message(), 2);
  std::vector<sim::CostPool> pools = pools_from_offers(offers.value());
  sim::assign_capacity(pools, f.options);
  std::set<std::string> clouds;
  std::set<std::string> models;
  for (const auto& p : pools) {
    clouds.insert(p.cloud);
    models.insert(p.gpu_model);
  }
  if (!clouds.count(f.options.single_cloud)) {
    std::string known;
    for (const auto& c : clouds) known += (known.empty() ? "" : ", ") + c;
    fail("--cloud: no offers from cloud '" + f.options.single_cloud + "' (known: " + known + ")",
         2);
  }
  std::vector<std::string> any_models;
  for (const std::string& m : split_commas(f.any_gpu)) {
    std::string c = canonical_gpu_model(m);
    if (!models.count(c)) {
      fail("--any-gpu: no offer in the catalog has GPU model '" + m + "'", 2);
    }
    any_models.push_back(c);
  }
  if (any_models.empty()) fail("--any-gpu: give at least one GPU model", 2);

  // Jobs.
  const std::string pods_path =
      f.pods.empty() ? default_trace_dir() + "/openb_pod_list_default.csv" : f.pods;
  auto pods = sim::read_alibaba_pods(pods_path);
  if (!pods.is_ok()) fail("--pods " + pods_path + ": " + pods.status().message(), 2);
  sim::TraceJobs trace =
      sim::jobs_from_trace(pods.value(), pools, any_models, !f.on_demand, f.max_pods);
  const std::string workload = std::filesystem::path(pods_path).stem().string();
  if (trace.jobs.empty()) {
    fail("--pods " + pods_path + ": no GPU job to replay (" + std::to_string(trace.cpu_only) +
             " CPU-only pods, " + std::to_string(trace.bad_duration) +
             " without a deletion_time or a positive duration): the cost replay needs "
             "creation_time and deletion_time",
         2);
  }

  std::vector<sim::CostPolicyResult> results;
  json list = json::array();
  if (!f.json) {
    std::printf(
        "%s: %zu GPU jobs (%lld CPU-only and %lld without a positive duration skipped), "
        "%zu pools\n",
        workload.c_str(), trace.jobs.size(), static_cast<long long>(trace.cpu_only),
        static_cast<long long>(trace.bad_duration), pools.size());
    std::printf("%-15s %11s %11s %7s %11s %7s %8s %10s %10s %8s %7s %8s %9s %7s\n", "policy",
                "cost $", "bound $", "gap %", "any-time $", "gap %", "$/GPU-h", "avg JCT s",
                "p99 JCT s", "lost GPUh", "interr", "cap.err", "completed", "seconds");
  }
  for (const std::string& policy : policies) {
    auto r = sim::run_cost_policy(policy, trace.jobs, pools, f.options);
    if (!r.is_ok()) fail(r.status());
    const auto& v = r.value();
    if (!f.json) {
      std::printf(
          "%-15s %11.2f %11.2f %7.1f %11.2f %7.1f %8.4f %10.0f %10.0f %8.1f %7lld %8lld %9lld "
          "%7.2f\n",
          v.policy.c_str(), v.cost_usd, v.lower_bound_usd, v.gap_pct, v.lower_bound_any_time_usd,
          v.gap_any_time_pct, v.cost_per_gpu_hour, v.avg_jct_s, v.p99_jct_s, v.gpu_hours_lost,
          static_cast<long long>(v.interruptions), static_cast<long long>(v.capacity_errors),
          static_cast<long long>(v.jobs_completed), v.seconds);
      std::fflush(stdout);
    }
    if (v.stopped_at_horizon) {
      std::fprintf(stderr,
                   "lepton: %s: %lld of %lld jobs did not finish by the run's horizon (ten times "
                   "the longest job past the last arrival): they lose more to interruptions than "
                   "they checkpoint\n",
                   v.policy.c_str(), static_cast<long long>(v.jobs - v.jobs_completed),
                   static_cast<long long>(v.jobs));
    }
    list.push_back(policy_json(v));
    results.push_back(v);
  }
  if (!f.json && !results.empty()) {
    std::printf(
        "\nthe cost above the jobs' work at their cheapest prices, $, by cause, and the part of it"
        " that the bound\nshows no schedule as fast avoids (packing, capacity):\n"
        "%-15s %10s %8s %8s %13s %9s %8s %9s %9s %9s\n",
        "policy", "above work", "boot", "idle", "unused share", "premium", "redone", "packing",
        "capacity", "gap");
    for (const auto& v : results) {
      double work = v.lower_bound_usd - v.packing_bound_usd - v.capacity_bound_usd;
      std::printf("%-15s %10.2f %8.2f %8.2f %13.2f %9.2f %8.2f %9.2f %9.2f %9.2f\n",
                  v.policy.c_str(), v.cost_usd - work, v.boot_usd, v.idle_usd, v.unused_share_usd,
                  v.premium_usd, v.redone_usd, v.packing_bound_usd, v.capacity_bound_usd,
                  v.cost_usd - v.lower_bound_usd);
    }
  }
  const sim::CostOptions& o = f.options;
  json report = {
      {"trace", workload},
      {"pods", pods.value().size()},
      {"jobs", trace.jobs.size()},
      {"skipped_cpu_only", trace.cpu_only},
      {"skipped_bad_duration", trace.bad_duration},
      {"unknown_model_pods", trace.unknown_model_pods},
      {"pools", pools.size()},
      {"lower_bound_all_jobs_usd", round_to(sim::cost_lower_bound(trace.jobs, pools).usd, 0.01)},
      {"options",
       {{"seed", o.seed},
        {"capacity_scale", o.capacity_scale},
        {"base_capacity", o.base_capacity},
        {"mtbi_hours", o.mtbi_hours},
        {"notice_s", o.notice_s},
        {"checkpoint_s", o.checkpoint_s},
        {"boot_s", o.boot_s},
        {"idle_timeout_s", o.idle_timeout_s},
        {"fail_delay_s", o.fail_delay_s},
        {"failover_ttl_s", o.failover_ttl_s},
        {"retry_s", o.retry_s},
        {"single_cloud", o.single_cloud},
        {"spot", !f.on_demand},
        {"any_gpu", any_models},
        {"max_pods", f.max_pods}}},
      {"policies", list}};
  if (f.json) std::cout << report.dump() << "\n";
  if (!f.out.empty()) {
    write_outputs(f, workload, report, results);
    if (!f.json) std::printf("wrote CSV, JSON and SVG files to %s\n", f.out.c_str());
  }
}

}  // namespace

void register_sim_cost_command(CLI::App& sim) {
  auto f = std::make_shared<CostFlags>();
  CLI::App* cmd = sim.add_subcommand(
      "cost",
      "Multi-cloud cost replay: a trace's GPU jobs on emulated clouds priced from the offer "
      "catalog (capacity limits, spot interruptions), under single-cloud, cheapest-first and "
      "lepton provisioning, against a cost lower bound. Simulation only");
  cmd->add_option("--pods", f->pods,
                  "Pod list CSV (default: the bundled openb_pod_list_default.csv)");
  cmd->add_option("--catalog", f->catalog, "Offer catalog folder (default: the bundled one)");
  cmd->add_option("--policy", f->policy,
                  "single-cloud, cheapest-first, lepton, a comma-separated list, or 'all'")
      ->capture_default_str();
  cmd->add_option("--cloud", f->options.single_cloud, "The cloud of the single-cloud policy")
      ->capture_default_str();
  cmd->add_option("--seed", f->options.seed, "Seed for capacities and interruptions")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--capacity-scale", f->options.capacity_scale,
                  "Multiply every pool's capacity (instances) by this")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--base-capacity", f->options.base_capacity,
                  "A pool holds floor(U[0,2) x this x scale) instances")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--mtbi-hours", f->options.mtbi_hours,
                  "Mean time between interruptions of a spot instance (0: none)")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--notice-s", f->options.notice_s, "Spot interruption notice, seconds")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--checkpoint-min", f->checkpoint_min,
                  "Jobs checkpoint every this many minutes of run time (0: never)")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--boot-s", f->options.boot_s, "Launch to ready, seconds (billed)")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--idle-timeout-s", f->options.idle_timeout_s,
                  "Terminate an instance after this many seconds without jobs")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--fail-delay-s", f->options.fail_delay_s, "Time lost per capacity error")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--failover-ttl-s", f->options.failover_ttl_s,
                  "lepton skips an offer this long after a capacity error")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--retry-s", f->options.retry_s, "Waiting jobs are retried this often")
      ->capture_default_str()
      ->check(number_at_least(0, true));
  cmd->add_option("--any-gpu", f->any_gpu, "GPU models a job without a usable gpu_spec may run on")
      ->capture_default_str();
  cmd->add_flag("--on-demand", f->on_demand,
                "No spot for any policy (default: every job tolerates spot)");
  cmd->add_option("--max-pods", f->max_pods, "Replay only the first N GPU jobs (0: all)")
      ->capture_default_str()
      ->check(number_at_least(0, false));
  cmd->add_option("--out", f->out, "Write CSV, JSON and an SVG of cumulative cost here");
  cmd->add_flag("--json", f->json, "Print one JSON object with a \"policies\" array");
  cmd->callback([f] { run_cost(*f); });
}

}  // namespace lepton::cli
