// `lepton bench ...`: timed runs of lepton's own code, printing their figures.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "net/http.h"
#include "sched/policy.h"
#include "server/agent_daemon.h"
#include "server/server.h"
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
    if (!s->is_ok()) fail(s->message(), 2);
  }
  auto r = sim::run_sched_bench(*nodes, *pods, f.options);
  if (!r.is_ok()) fail(r.status().message(), 2);
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

struct ApiFlags {
  int clients = 8;
  int submissions = 2000;
  int agents = 4;
  int jobs = 1000;
  bool json = false;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::unique_ptr<server::Server> bench_server(const std::string& dir) {
  server::ServerOptions o;
  o.data_dir = dir;
  o.port = 0;
  o.control.node_timeout_ms = 60000;
  auto s = server::Server::start(o);
  if (!s.is_ok()) fail(s.status().message());
  return std::move(*s);
}

// Counts jobs by state through the API.
std::map<std::string, int> job_states(const net::Url& url, const std::string& token) {
  std::map<std::string, int> counts;
  auto r = net::http_request(url, "GET", "/api/v1/jobs", "", {.bearer_token = token});
  if (!r.is_ok() || r->status != 200) return counts;
  for (const auto& j : nlohmann::json::parse(r->body)) ++counts[j.value("state", "")];
  return counts;
}

void run_api(const ApiFlags& f) {
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/lepton-bench-XXXXXX";
  if (!mkdtemp(tmpl)) fail("cannot create a temporary directory under /tmp");
  const std::string root = tmpl;
  const std::string spec =
      R"({"name":"bench","resources":{"cpus":0.01,"memory":0.01},"run":"true"})";

  // 1. Durable submissions: every accepted job is committed to SQLite before the answer.
  std::vector<double> latencies_ms;
  double submit_seconds = 0;
  int errors = 0;
  {
    auto server = bench_server(root + "/submit");
    const net::Url url = net::Url::parse(server->url()).value();
    std::mutex mu;
    std::atomic<int> next{0};
    std::fprintf(stderr, "submitting %d jobs with %d clients...\n", f.submissions, f.clients);
    auto start = Clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < f.clients; ++c) {
      clients.emplace_back([&] {
        std::vector<double> mine;
        int failed = 0;
        while (next.fetch_add(1) < f.submissions) {
          auto t0 = Clock::now();
          auto r = net::http_request(url, "POST", "/api/v1/jobs", spec,
                                     {.bearer_token = server->token()});
          mine.push_back(seconds_since(t0) * 1000);
          if (!r.is_ok() || r->status != 201) ++failed;
        }
        std::lock_guard lock(mu);
        latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
        errors += failed;
      });
    }
    for (auto& t : clients) t.join();
    submit_seconds = seconds_since(start);
    server->stop();
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double q) {
    return latencies_ms.empty() ? 0.0
                                : latencies_ms[static_cast<size_t>(
                                      q * static_cast<double>(latencies_ms.size() - 1))];
  };

  // 2. Submit to RUNNING (and to done) for trivial jobs on several agents.
  double all_started = -1, all_done = -1;
  {
    auto server = bench_server(root + "/run");
    const net::Url url = net::Url::parse(server->url()).value();
    std::vector<std::unique_ptr<server::AgentDaemon>> agents;
    for (int a = 0; a < f.agents; ++a) {
      server::AgentOptions o;
      o.server_url = server->url();
      o.token = server->token();
      o.name = "bench-" + std::to_string(a);
      o.gpus = "none";
      o.work_dir = root + "/agent-" + std::to_string(a);
      o.cpu_milli = 1'000'000;
      o.memory_mib = 1 << 30;
      auto agent = server::AgentDaemon::start(o);
      if (!agent.is_ok()) fail(agent.status().message());
      agents.push_back(std::move(*agent));
    }
    auto ready = Clock::now();
    while (seconds_since(ready) < 30) {
      auto r =
          net::http_request(url, "GET", "/api/v1/nodes", "", {.bearer_token = server->token()});
      if (r.is_ok() && nlohmann::json::parse(r->body).size() == static_cast<size_t>(f.agents))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::fprintf(stderr, "running %d trivial jobs on %d agents...\n", f.jobs, f.agents);
    auto start = Clock::now();
    for (int i = 0; i < f.jobs; ++i) {
      (void)net::http_request(url, "POST", "/api/v1/jobs", spec, {.bearer_token = server->token()});
    }
    while (seconds_since(start) < 600) {
      auto states = job_states(url, server->token());
      const int started = states["RUNNING"] + states["SUCCEEDED"] + states["FAILED"];
      if (all_started < 0 && started + states["STARTING"] >= f.jobs && states["STARTING"] == 0) {
        all_started = seconds_since(start);
      }
      if (states["SUCCEEDED"] + states["FAILED"] >= f.jobs) {
        if (all_started < 0) all_started = seconds_since(start);
        all_done = seconds_since(start);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (auto& a : agents) a->stop();
    server->stop();
  }
  std::error_code ec;
  fs::remove_all(root, ec);

  nlohmann::json j = {{"clients", f.clients},
                      {"submissions", f.submissions},
                      {"submit_errors", errors},
                      {"submissions_per_sec", f.submissions / submit_seconds},
                      {"submit_p50_ms", pct(0.5)},
                      {"submit_p99_ms", pct(0.99)},
                      {"agents", f.agents},
                      {"jobs", f.jobs},
                      {"seconds_to_all_running", all_started},
                      {"seconds_to_all_done", all_done},
                      {"jobs_per_sec_end_to_end", all_done > 0 ? f.jobs / all_done : 0}};
  if (f.json) {
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf("durable submissions: %.0f/s with %d clients (p50 %.2f ms, p99 %.2f ms, %d errors)\n",
              f.submissions / submit_seconds, f.clients, pct(0.5), pct(0.99), errors);
  std::printf(
      "%d trivial jobs on %d agents: all started after %.2f s, all done after %.2f s "
      "(%.0f jobs/s end to end)\n",
      f.jobs, f.agents, all_started, all_done, all_done > 0 ? f.jobs / all_done : 0.0);
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

  auto api = std::make_shared<ApiFlags>();
  CLI::App* api_cmd = bench->add_subcommand(
      "api",
      "Durable job submissions per second through the REST API (concurrent clients, real "
      "SQLite), then the time from submit to running for trivial jobs on local agents");
  api_cmd->add_option("--clients", api->clients, "Concurrent clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  api_cmd->add_option("--submissions", api->submissions, "Jobs submitted in the first part")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  api_cmd->add_option("--agents", api->agents, "Agents in the second part")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  api_cmd->add_option("--jobs", api->jobs, "Jobs run in the second part")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  api_cmd->add_flag("--json", api->json, "Print one JSON object");
  api_cmd->callback([api] { run_api(*api); });
}

}  // namespace lepton::cli
