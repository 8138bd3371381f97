// `lepton sim alloc`: the FGD paper's experiment, replayed through the scheduler's own placement
// policies: GPU allocation and fragmentation as pods arrive, compared with the published curves.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/sim_commands.h"
#include "sched/policy.h"
#include "sim/alloc_experiment.h"
#include "sim/chart.h"
#include "sim/csv.h"
#include "sim/published_results.h"

namespace lepton::cli {

using sim_internal::take;
using sim_internal::workload_name;
using sim_internal::write_file;

namespace {

using nlohmann::json;

// "all" or a comma-separated list of policy names, checked against the built-ins.
std::vector<std::string> parse_policies(const std::string& text) {
  std::vector<std::string> names;
  if (text == "all") {
    for (const auto& p : sched::builtin_policies()) names.emplace_back(p.name);
    return names;
  }
  std::string_view t = text;
  while (true) {
    size_t comma = t.find(',');
    std::string name(t.substr(0, comma));
    auto probe = sched::make_policy(name, {});
    if (!probe.is_ok()) fail(Status::invalid_argument("--policy: " + probe.status().message()));
    names.push_back(name);
    if (comma == std::string_view::npos) break;
    t = t.substr(comma + 1);
  }
  return names;
}

json nan_to_null(double v) {
  return std::isnan(v) ? json(nullptr) : json(std::round(v * 100) / 100);
}

// The FGD simulator's published curves: allocation and fragmentation.
struct Published {
  std::vector<sim::PublishedCurve> alloc;
  std::vector<sim::PublishedCurve> frag;
};

json result_json(const sim::AllocResult& r, const std::string& workload, const Published* published,
                 int arrive_to) {
  json j = {{"policy", r.policy},
            {"trace", workload},
            {"arrived_pct", arrive_to},
            {"gpu_alloc_pct", nan_to_null(r.gpu_alloc_pct)},
            {"frag_pct", nan_to_null(r.frag_pct)},
            {"seconds", std::round(r.seconds * 1000) / 1000}};
  json seeds = json::array();
  for (const auto& run : r.runs) {
    seeds.push_back({{"seed", run.seed},
                     {"gpu_alloc_pct", nan_to_null(run.alloc_pct.back())},
                     {"frag_pct", nan_to_null(run.frag_pct.back())},
                     {"pods_arrived", run.pods_arrived},
                     {"pods_placed", run.pods_placed}});
  }
  j["seeds"] = seeds;
  if (published) {
    auto alloc = sim::published_mean(published->alloc, workload, r.policy, arrive_to);
    auto frag = sim::published_mean(published->frag, workload, r.policy, arrive_to);
    j["published_gpu_alloc_pct"] = alloc ? nan_to_null(*alloc) : json(nullptr);
    j["published_frag_pct"] = frag ? nan_to_null(*frag) : json(nullptr);
  }
  return j;
}

// Curves of every policy (and, dashed, the published ones) against arrived workload.
std::string alloc_chart(const std::vector<sim::AllocResult>& results, const std::string& workload,
                        const Published* published, int arrive_to) {
  std::vector<sim::ChartSeries> series;
  const int from = 70;  // below ~80% arrived, every policy allocates all arrivals
  for (const auto& r : results) {
    sim::ChartSeries s{r.policy, {}, {}, false, static_cast<int>(series.size())};
    for (int k = from; k <= arrive_to; ++k) {
      if (std::isnan(r.mean_alloc_pct[k])) continue;
      s.x.push_back(k);
      s.y.push_back(r.mean_alloc_pct[k]);
    }
    series.push_back(std::move(s));
  }
  if (published) {
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      sim::ChartSeries s{r.policy + " (published)", {}, {}, true, static_cast<int>(i)};
      for (int k = from; k <= arrive_to; ++k) {
        auto v = sim::published_mean(published->alloc, workload, r.policy, k);
        if (!v || std::isnan(*v)) continue;
        s.x.push_back(k);
        s.y.push_back(*v);
      }
      if (!s.x.empty()) series.push_back(std::move(s));
    }
  }
  return sim::render_line_chart_svg(series,
                                    {.title = "GPU allocation vs. arrived workload: " + workload,
                                     .x_label = "arrived GPU requests (% of cluster GPU capacity)",
                                     .y_label = "GPUs allocated (% of capacity)",
                                     .x_min = from,
                                     .x_max = static_cast<double>(arrive_to),
                                     .y_min = 70,
                                     .y_max = 100});
}

void write_outputs(const std::filesystem::path& dir, const std::string& workload,
                   const std::vector<sim::AllocResult>& results, const Published* published,
                   int arrive_to) {
  std::filesystem::create_directories(dir);
  std::string csv = "trace,policy,seed,arrived_pct,gpu_alloc_pct,frag_pct\n";
  json all = json::array();
  for (const auto& r : results) {
    for (const auto& run : r.runs) {
      for (size_t k = 0; k < run.alloc_pct.size(); ++k) {
        if (std::isnan(run.alloc_pct[k])) continue;
        char line[160];
        std::snprintf(line, sizeof line, "%s,%s,%llu,%zu,%.2f,%.2f\n", workload.c_str(),
                      r.policy.c_str(), static_cast<unsigned long long>(run.seed), k,
                      run.alloc_pct[k], run.frag_pct[k]);
        csv += line;
      }
    }
    all.push_back(result_json(r, workload, published, arrive_to));
  }
  write_file(dir / ("alloc-" + workload + ".csv"), csv);
  write_file(dir / ("alloc-" + workload + ".json"), all.dump(2) + "\n");
  write_file(dir / ("alloc-" + workload + ".svg"),
             alloc_chart(results, workload, published, arrive_to));
}

struct AllocFlags {
  std::string nodes;
  std::vector<std::string> pods;
  std::string policy = std::string(sched::kDefaultPolicy);
  std::string seeds = "42..51";
  std::string published;
  std::string out;
  int arrive_to = 130;
  bool json = false;
  bool random_ties = false;
};

void run_alloc(const AllocFlags& f) {
  const std::string trace_dir = default_trace_dir();
  const std::string nodes_path =
      f.nodes.empty() ? trace_dir + "/openb_node_list_gpu_node.csv" : f.nodes;
  std::vector<std::string> pod_paths = f.pods;
  if (pod_paths.empty()) pod_paths.push_back(trace_dir + "/openb_pod_list_default.csv");
  const std::vector<std::string> policies = parse_policies(f.policy);
  sim::AllocOptions options;
  options.seeds = take(parse_seeds(f.seeds));
  options.arrive_to_pct = f.arrive_to;
  options.ties = f.random_ties ? sched::TieBreak::kRandom : sched::TieBreak::kLowestNodeId;
  const auto nodes = take(sim::read_alibaba_nodes(nodes_path));
  std::unique_ptr<Published> published;
  std::string published_dir = f.published;
  if (published_dir.empty() && std::filesystem::exists(trace_dir + "/fgd-expected")) {
    published_dir = trace_dir + "/fgd-expected";
  }
  if (!published_dir.empty() && published_dir != "none") {
    published = std::make_unique<Published>();
    published->alloc =
        take(sim::read_published_curves(published_dir + "/analysis_allo_discrete.csv"));
    published->frag =
        take(sim::read_published_curves(published_dir + "/analysis_frag_discrete.csv"));
  }

  json out = json::array();
  const size_t steps = pod_paths.size() * policies.size() * options.seeds.size();
  size_t done = 0;
  if (!f.json) {
    std::printf("%-26s %-11s %6s %8s %8s %10s %10s %8s\n", "trace", "policy", "seeds", "alloc%",
                "frag%", "pub.alloc%", "pub.frag%", "seconds");
  }
  for (const std::string& pods_path : pod_paths) {
    const auto pods = take(sim::read_alibaba_pods(pods_path));
    const std::string workload = workload_name(pods_path);
    std::vector<sim::AllocResult> results;
    for (const std::string& policy : policies) {
      options.policy = policy;
      auto r = take(sim::run_alloc_experiment(nodes, pods, options, [&](size_t, size_t) {
        progress_bar(workload.substr(std::min<size_t>(workload.size(), 15)) + " " + policy, ++done,
                     steps);
      }));
      if (!f.json) {
        auto text = [&](const std::vector<sim::PublishedCurve>* curves) {
          auto v =
              curves ? sim::published_mean(*curves, workload, policy, f.arrive_to) : std::nullopt;
          char buf[32] = "-";
          if (v && !std::isnan(*v)) std::snprintf(buf, sizeof buf, "%.2f", *v);
          return std::string(buf);
        };
        std::printf("%-26s %-11s %6zu %8.2f %8.2f %10s %10s %8.2f\n", workload.c_str(),
                    policy.c_str(), r.runs.size(), r.gpu_alloc_pct, r.frag_pct,
                    text(published ? &published->alloc : nullptr).c_str(),
                    text(published ? &published->frag : nullptr).c_str(), r.seconds);
        std::fflush(stdout);
      }
      out.push_back(result_json(r, workload, published.get(), f.arrive_to));
      results.push_back(std::move(r));
    }
    if (!f.out.empty()) write_outputs(f.out, workload, results, published.get(), f.arrive_to);
  }
  if (f.json)
    std::cout << (out.size() == 1 ? out[0].dump() : json{{"results", out}}.dump()) << "\n";
  if (!f.out.empty() && !f.json)
    std::printf("wrote CSV, JSON and SVG files to %s\n", f.out.c_str());
}

}  // namespace

void register_sim_alloc_command(CLI::App& sim) {
  auto flags = std::make_shared<AllocFlags>();
  CLI::App* alloc = sim.add_subcommand(
      "alloc",
      "The FGD paper's experiment: pods arrive until their GPU requests reach 130% of the "
      "cluster's GPU capacity; report GPU allocation and fragmentation");
  alloc->add_option("--nodes", flags->nodes,
                    "Node list CSV (default: the bundled Alibaba v2023 "
                    "GPU nodes)");
  alloc->add_option("--pods", flags->pods,
                    "Pod list CSV; repeat for several traces (default: the bundled "
                    "openb_pod_list_default.csv)");
  alloc->add_option("--policy", flags->policy, "Policy name, a comma-separated list, or 'all'")
      ->capture_default_str();
  alloc->add_option("--seeds", flags->seeds, "Sampling seeds: a range A..B or a list A,B")
      ->capture_default_str();
  alloc
      ->add_option("--arrive-to", flags->arrive_to,
                   "Stop when arrived GPU requests reach this % of capacity")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  alloc->add_option("--published", flags->published,
                    "Folder with the FGD simulator's analysis_allo_discrete.csv and "
                    "analysis_frag_discrete.csv to compare with ('none' to skip; default: the "
                    "bundled copy)");
  alloc->add_option("--out", flags->out,
                    "Write per-seed CSV, JSON and an SVG chart per trace here");
  alloc->add_flag("--json", flags->json, "Print one JSON object (or {\"results\": [...]})");
  alloc->add_flag("--random-ties", flags->random_ties,
                  "Break score ties uniformly at random instead of by node rank");
  alloc->callback([flags] { run_alloc(*flags); });
}

}  // namespace lepton::cli
