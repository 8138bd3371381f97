// `lepton bench ...`: timed runs of lepton's own code, printing their figures.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "sched/policy.h"
#include "sim/sched_bench.h"

namespace lepton::cli {
namespace {

struct SchedFlags {
  sim::SchedBenchOptions options;
  std::string nodes_file;
  std::string pods_file;
  bool json = false;
};

void run_sched(const SchedFlags& f) {
  const std::string dir = default_trace_dir();
  auto nodes = sim::read_alibaba_nodes(f.nodes_file.empty() ? dir + "/openb_node_list_gpu_node.csv"
                                                            : f.nodes_file);
  auto pods = sim::read_alibaba_pods(f.pods_file.empty() ? dir + "/openb_pod_list_default.csv"
                                                         : f.pods_file);
  for (const Status* s : {&nodes.status(), &pods.status()}) {
    if (!s->is_ok()) {
      std::cerr << "lepton: " << s->message() << "\n";
      throw CLI::RuntimeError(2);
    }
  }
  auto r = sim::run_sched_bench(*nodes, *pods, f.options);
  if (!r.is_ok()) {
    std::cerr << "lepton: " << r.status().message() << "\n";
    throw CLI::RuntimeError(2);
  }
  if (f.json) {
    nlohmann::json j = {{"policy", f.options.policy},
                        {"nodes", r->nodes},
                        {"gpus", r->gpus},
                        {"decisions", r->decisions},
                        {"placed", r->placed},
                        {"placements_per_sec", r->placements_per_sec},
                        {"p50_us", r->p50_us},
                        {"p99_us", r->p99_us},
                        {"max_us", r->max_us},
                        {"bytes_per_node", r->bytes_per_node},
                        {"classes_at_end", r->classes_at_end},
                        {"final_alloc_pct", r->final_alloc_pct},
                        {"stopped_early", r->stopped_early}};
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf("policy %s, %lld nodes (%lld GPUs), one thread\n", f.options.policy.c_str(),
              static_cast<long long>(r->nodes), static_cast<long long>(r->gpus));
  std::printf("  decisions         %lld (%lld placed)%s\n", static_cast<long long>(r->decisions),
              static_cast<long long>(r->placed),
              r->stopped_early ? ", stopped at the time limit" : "");
  std::printf("  placements/s      %.0f\n", r->placements_per_sec);
  std::printf("  latency p50/p99   %.2f / %.2f us (max %.1f us)\n", r->p50_us, r->p99_us,
              r->max_us);
  std::printf("  memory per node   %.0f bytes\n", r->bytes_per_node);
  std::printf("  classes at end    %zu node equivalence classes\n", r->classes_at_end);
  std::printf("  GPUs allocated    %.2f%%\n", r->final_alloc_pct);
}

}  // namespace

void register_bench_commands(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks of lepton's own components");
  bench->require_subcommand(1);
  auto flags = std::make_shared<SchedFlags>();
  CLI::App* sched = bench->add_subcommand(
      "sched",
      "Placement decisions per second and latency on a synthetic cluster shaped like the "
      "Alibaba one, filled by pods drawn from the trace");
  sched->add_option("--nodes", flags->options.nodes, "Number of nodes")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}));
  sched->add_option("--policy", flags->options.policy, "Policy name")->capture_default_str();
  sched->add_option("--seed", flags->options.seed, "Seed of the pod draws")->capture_default_str();
  sched
      ->add_option("--fill", flags->options.fill_pct,
                   "Stop when arrived GPU requests reach this % of capacity")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  sched
      ->add_option("--max-seconds", flags->options.max_seconds,
                   "Stop after this much decision time")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sched->add_option("--node-shapes", flags->nodes_file,
                    "Node list CSV whose rows are repeated (default: bundled Alibaba GPU nodes)");
  sched->add_option("--pods", flags->pods_file, "Pod list CSV to draw from (default: bundled)");
  sched->add_flag("--json", flags->json, "Print one JSON object");
  sched->callback([flags] { run_sched(*flags); });
}

}  // namespace lepton::cli
