// `lepton bench ...`: timed runs of lepton's own code, printing their figures.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "agent/agent_daemon.h"
#include "cli/cli.h"
#include "cli/experiments.h"
#include "net/http.h"
#include "sched/policy.h"
#include "server/server.h"
#include "sim/chart.h"
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
  o.gateway_port = 0;
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
    std::vector<std::unique_ptr<agent::AgentDaemon>> agents;
    for (int a = 0; a < f.agents; ++a) {
      agent::AgentOptions o;
      o.server_url = server->url();
      o.token = server->token();
      o.name = "bench-" + std::to_string(a);
      o.gpus = "none";
      o.work_dir = root + "/agent-" + std::to_string(a);
      o.cpu_milli = 1'000'000;
      o.memory_mib = 1 << 30;
      auto agent = agent::AgentDaemon::start(o);
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

// ---- bench autoscale

struct AutoscaleFlags {
  std::string steps = "0:10,50:30,200:60,50:30,0:90";
  int target_in_flight = 10;
  int window_s = 60;
  int panic_window_s = 6;
  int scale_to_zero_after_s = 30;
  int max_replicas = 30;
  int ttft_ms = 200;
  int token_ms = 20;
  int tokens = 20;
  std::string out = "out/autoscale";
  bool json = false;
};

struct LoadStep {
  int concurrency = 0;
  int seconds = 0;
};

std::vector<LoadStep> parse_steps(const std::string& text) {
  std::vector<LoadStep> steps;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    LoadStep step;
    char colon = 0;
    std::stringstream one(item);
    if (!(one >> step.concurrency >> colon >> step.seconds) || colon != ':' || !one.eof() ||
        step.concurrency < 0 || step.concurrency > 2000 || step.seconds < 1 ||
        step.seconds > 3600) {
      fail(
          "--steps: expected CONCURRENCY:SECONDS items separated by commas (concurrency "
          "0..2000, 1..3600 s), such as 0:10,200:60,0:90; got '" +
              item + "'",
          2);
    }
    steps.push_back(step);
  }
  if (steps.empty()) fail("--steps: expected at least one CONCURRENCY:SECONDS item", 2);
  return steps;
}

// One second of the run.
struct AutoscaleSample {
  int t = 0;
  int concurrency = 0;
  int ready = 0, desired = 0;
  int64_t in_flight = 0;
  int completed = 0, errors = 0;
  double p50_ms = -1, p99_ms = -1;  // of requests that ended in this second; -1: none
};

void run_autoscale(const AutoscaleFlags& f) {
  namespace fs = std::filesystem;
  const std::vector<LoadStep> steps = parse_steps(f.steps);
  const fs::path bin = fs::path(server::this_binary()).parent_path();
  if (!fs::exists(bin / "lepton-test-upstream")) {
    fail("lepton-test-upstream is not next to this lepton binary (" + bin.string() +
         "); build it with scripts/build build");
  }
  const std::string path = bin.string() + ":" + (std::getenv("PATH") ? std::getenv("PATH") : "");
  setenv("PATH", path.c_str(), 1);  // the agent's tasks inherit it
  char tmpl[] = "/tmp/lepton-bench-XXXXXX";
  if (!mkdtemp(tmpl)) fail("cannot create a temporary directory under /tmp");
  const std::string root = tmpl;

  auto server = bench_server(root + "/server");
  const net::Url api = net::Url::parse(server->url()).value();
  const net::HttpClientOptions auth{.timeout = std::chrono::milliseconds(10000),
                                    .bearer_token = server->token()};
  agent::AgentOptions o;
  o.server_url = server->url();
  o.token = server->token();
  o.name = "bench";
  o.gpus = "none";
  o.work_dir = root + "/agent";
  o.cpu_milli = 1'000'000;
  o.memory_mib = 1 << 30;
  auto agent = agent::AgentDaemon::start(o);
  if (!agent.is_ok()) fail(agent.status().message());

  nlohmann::json spec = {
      {"kind", "deployment"},
      {"name", "chat"},
      {"resources", {{"cpus", 0.01}, {"memory", 0.01}}},
      {"run", "exec lepton-test-upstream --port $PORT --ttft-ms " + std::to_string(f.ttft_ms) +
                  " --token-ms " + std::to_string(f.token_ms) + " --tokens " +
                  std::to_string(f.tokens)},
      {"replicas", {{"min", 0}, {"max", f.max_replicas}}},
      {"autoscale",
       {{"target_in_flight", f.target_in_flight},
        {"window", f.window_s},
        {"panic_window", f.panic_window_s},
        {"scale_to_zero_after", f.scale_to_zero_after_s}}},
      {"readiness", {{"path", "/healthz"}}}};
  nlohmann::json created;
  auto start_wait = Clock::now();
  while (true) {  // the agent may not have joined yet: retry until the deployment is accepted
    auto r = net::http_request(api, "POST", "/api/v1/deployments", spec.dump(), auth);
    if (r.is_ok() && r->status == 201) {
      created = nlohmann::json::parse(r->body);
      break;
    }
    if (seconds_since(start_wait) > 30) {
      fail("creating the deployment: " + (r.is_ok() ? r->body : r.status().message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const net::Url gateway = net::Url::parse(server->gateway_url()).value();
  auto deployment = [&] {
    auto r = net::http_request(api, "GET", "/api/v1/deployments/chat", "", auth);
    return r.is_ok() && r->status == 200 ? nlohmann::json::parse(r->body, nullptr, false)
                                         : nlohmann::json::object();
  };
  while (deployment().value("ready_replicas", 0) < 1) {
    if (seconds_since(start_wait) > 60) fail("no replica became ready in 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  // Load: thread i sends requests back to back while i < the step's concurrency.
  int max_concurrency = 0;
  for (const LoadStep& s : steps) max_concurrency = std::max(max_concurrency, s.concurrency);
  std::atomic<int> active{0};
  std::atomic<bool> done{false};
  std::mutex mu;
  struct Finished {
    double at_s, latency_ms;
    bool ok;
  };
  std::vector<Finished> finished;
  const auto t0 = Clock::now();
  const std::string body = R"({"stream": true, "messages": [{"role": "user", "content": "hi"}]})";
  std::vector<std::thread> clients;
  for (int i = 0; i < max_concurrency; ++i) {
    clients.emplace_back([&, i] {
      while (!done) {
        if (i >= active.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        auto begin = Clock::now();
        auto r = net::http_request(gateway, "POST", "/d/chat/v1/chat/completions", body,
                                   {.timeout = std::chrono::milliseconds(70000)});
        const bool ok = r.is_ok() && r->status == 200;
        std::lock_guard lock(mu);
        finished.push_back({seconds_since(t0), seconds_since(begin) * 1000, ok});
      }
    });
  }
  std::vector<AutoscaleSample> samples;
  int total_s = 0;
  for (const LoadStep& s : steps) total_s += s.seconds;
  std::fprintf(stderr,
               "stepped load %s over %d s against one deployment (target %d in flight "
               "per replica)...\n",
               f.steps.c_str(), total_s, f.target_in_flight);
  int t = 0;
  for (const LoadStep& step : steps) {
    active = step.concurrency;
    for (int k = 0; k < step.seconds; ++k, ++t) {
      std::this_thread::sleep_until(t0 + std::chrono::seconds(t + 1));
      nlohmann::json d = deployment();
      AutoscaleSample s;
      s.t = t + 1;
      s.concurrency = step.concurrency;
      s.ready = d.value("ready_replicas", 0);
      s.desired = d.value("desired_replicas", 0);
      s.in_flight = d.value("in_flight", int64_t{0});
      samples.push_back(s);
      if (s.t % 10 == 0) {
        std::fprintf(stderr, "  %3d s: %3d concurrent, %2d ready of %2d desired\n", s.t,
                     s.concurrency, s.ready, s.desired);
      }
    }
  }
  done = true;
  for (auto& c : clients) c.join();
  (*agent)->stop();
  server->stop();
  std::error_code ec;
  fs::remove_all(root, ec);

  // Latency per second, of the requests that ended in it.
  std::vector<std::vector<double>> by_second(samples.size());
  for (const Finished& r : finished) {
    auto i = static_cast<size_t>(r.at_s);
    if (i >= samples.size()) continue;
    if (!r.ok) ++samples[i].errors;
    by_second[i].push_back(r.latency_ms);
  }
  int errors = 0;
  double peak_p99 = 0;
  int max_ready = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    std::vector<double>& v = by_second[i];
    std::sort(v.begin(), v.end());
    samples[i].completed = static_cast<int>(v.size());
    errors += samples[i].errors;
    max_ready = std::max(max_ready, samples[i].ready);
    if (v.empty()) continue;
    samples[i].p50_ms = v[(v.size() - 1) / 2];
    samples[i].p99_ms = v[static_cast<size_t>(0.99 * static_cast<double>(v.size() - 1))];
    peak_p99 = std::max(peak_p99, samples[i].p99_ms);
  }
  // When the peak first got its replicas, and when the deployment reached zero after the load.
  int first_peak = -1, peak_covered = -1, load_end = -1, zero_at = -1;
  for (const AutoscaleSample& s : samples) {
    if (s.concurrency == max_concurrency && first_peak < 0) first_peak = s.t;
    if (first_peak >= 0 && peak_covered < 0 && s.ready * f.target_in_flight >= max_concurrency) {
      peak_covered = s.t;
    }
    if (s.concurrency > 0) load_end = s.t;
    if (load_end >= 0 && s.t > load_end && s.concurrency == 0 && s.desired == 0 && s.ready == 0 &&
        zero_at < 0) {
      zero_at = s.t;
    }
  }

  fs::create_directories(f.out, ec);
  {
    std::ofstream csv(f.out + "/autoscale.csv");
    csv << "t_s,concurrency,ready,desired,in_flight,completed,errors,p50_ms,p99_ms\n";
    for (const AutoscaleSample& s : samples) {
      csv << s.t << "," << s.concurrency << "," << s.ready << "," << s.desired << "," << s.in_flight
          << "," << s.completed << "," << s.errors << "," << s.p50_ms << "," << s.p99_ms << "\n";
    }
  }
  sim::ChartSeries conc{"concurrent clients / target", {}, {}, true, 2};
  sim::ChartSeries desired{"desired replicas", {}, {}, true, 1};
  sim::ChartSeries ready{"ready replicas", {}, {}, false, 0};
  sim::ChartSeries p99{"p99 latency (ms)", {}, {}, false, 3};
  double y_max = 1, p99_max = 1;
  for (const AutoscaleSample& s : samples) {
    conc.x.push_back(s.t);
    conc.y.push_back(static_cast<double>(s.concurrency) / f.target_in_flight);
    desired.x.push_back(s.t);
    desired.y.push_back(s.desired);
    ready.x.push_back(s.t);
    ready.y.push_back(s.ready);
    y_max = std::max({y_max, conc.y.back(), desired.y.back(), ready.y.back()});
    if (s.p99_ms >= 0) {
      p99.x.push_back(s.t);
      p99.y.push_back(s.p99_ms);
      p99_max = std::max(p99_max, s.p99_ms);
    }
  }
  std::ofstream(f.out + "/autoscale-replicas.svg") << sim::render_line_chart_svg(
      {conc, desired, ready}, {.title = "Replicas under a stepped load (" + f.steps + ")",
                               .x_label = "seconds",
                               .y_label = "replicas",
                               .x_min = 0,
                               .x_max = static_cast<double>(samples.size()),
                               .y_min = 0,
                               .y_max = y_max * 1.1});
  std::ofstream(f.out + "/autoscale-latency.svg")
      << sim::render_line_chart_svg({p99}, {.title = "p99 latency of requests ending each second",
                                            .x_label = "seconds",
                                            .y_label = "ms",
                                            .x_min = 0,
                                            .x_max = static_cast<double>(samples.size()),
                                            .y_min = 0,
                                            .y_max = p99_max * 1.1});
  nlohmann::json j = {
      {"steps", f.steps},
      {"target_in_flight", f.target_in_flight},
      {"requests", finished.size()},
      {"errors", errors},
      {"max_ready_replicas", max_ready},
      {"seconds_to_cover_peak", peak_covered < 0 ? -1 : peak_covered - first_peak},
      {"seconds_to_zero_after_load", zero_at < 0 ? -1 : zero_at - load_end},
      {"peak_p99_ms", peak_p99},
      {"csv", f.out + "/autoscale.csv"},
      {"charts", {f.out + "/autoscale-replicas.svg", f.out + "/autoscale-latency.svg"}}};
  if (f.json) {
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf("%zu requests, %d errors; at most %d replicas ready\n", finished.size(), errors,
              max_ready);
  std::printf("peak of %d concurrent covered (ready x target >= load) after %d s\n",
              max_concurrency, peak_covered < 0 ? -1 : peak_covered - first_peak);
  std::printf("zero replicas %d s after the load ended; worst p99 of a second %.0f ms\n",
              zero_at < 0 ? -1 : zero_at - load_end, peak_p99);
  std::printf(
      "per second: %s/autoscale.csv; charts: %s/autoscale-replicas.svg, "
      "%s/autoscale-latency.svg\n",
      f.out.c_str(), f.out.c_str(), f.out.c_str());
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

  auto as = std::make_shared<AutoscaleFlags>();
  CLI::App* as_cmd = bench->add_subcommand(
      "autoscale",
      "A stepped load against one deployment of the OpenAI test server through the gateway: "
      "replicas and p99 latency per second (CSV and SVG)");
  as_cmd->add_option("--steps", as->steps, "Load as CONCURRENCY:SECONDS items")
      ->capture_default_str();
  as_cmd->add_option("--target", as->target_in_flight, "Requests in flight per replica")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  as_cmd->add_option("--window", as->window_s, "Stable window, s")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  as_cmd->add_option("--panic-window", as->panic_window_s, "Panic window, s")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  as_cmd->add_option("--scale-to-zero-after", as->scale_to_zero_after_s, "s")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  as_cmd->add_option("--max-replicas", as->max_replicas, "Replica ceiling")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  as_cmd->add_option("--ttft-ms", as->ttft_ms, "Test server: time to first token")
      ->capture_default_str();
  as_cmd->add_option("--token-ms", as->token_ms, "Test server: delay per token")
      ->capture_default_str();
  as_cmd->add_option("--tokens", as->tokens, "Test server: tokens per answer")
      ->capture_default_str();
  as_cmd->add_option("--out", as->out, "Directory for the CSV and SVG charts")
      ->capture_default_str();
  as_cmd->add_flag("--json", as->json, "Print one JSON object");
  as_cmd->callback([as] { run_autoscale(*as); });
  add_bench_agents_command(*bench);
}

}  // namespace lepton::cli
