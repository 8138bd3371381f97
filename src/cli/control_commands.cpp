// The control-plane commands: `lepton up`, `server`, `agent`, and the `job` and `node` CLI that
// talks to the REST API.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "agent/agent_daemon.h"
#include "agent/gpu_discovery.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cloud/catalog.h"
#include "cloud/provider_table.h"
#include "net/http.h"
#include "server/server.h"
#include "sim/csv.h"
#include "spec/job_json.h"
#include "spec/job_yaml.h"
#include "spec/json_text.h"

namespace lepton::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Blocks SIGINT and SIGTERM in every thread started after this, then waits for one of them.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int wait_for_stop_signal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "local";
  return buf;
}

// --- jobs ---

void print_job(const json& j) {
  std::printf("id:        %s\nname:      %s\nqueue:     %s\nstate:     %s\nrestarts:  %d\n",
              j.value("id", "").c_str(), j.value("name", "").c_str(), j.value("queue", "").c_str(),
              j.value("state", "").c_str(), j.value("restarts", 0));
  if (!j.value("reason", "").empty()) std::printf("reason:    %s\n", j.value("reason", "").c_str());
  if (j.contains("preempting") && !j["preempting"].empty()) {
    std::string ids;
    for (const json& v : j["preempting"]) ids += (ids.empty() ? "" : ", ") + v.get<std::string>();
    std::printf("preempting: %s (to make room for this job)\n", ids.c_str());
  }
  std::printf("tasks:\n");
  for (const json& t : j["tasks"]) {
    std::string gpus;
    for (const json& g : t["gpus"])
      gpus += (gpus.empty() ? "" : ",") + std::to_string(g.get<int>());
    std::printf("  rank %d  attempt %d  %-10s node %-16s gpus %-8s%s\n", t.value("rank", 0),
                t.value("attempt", 0), t.value("state", "").c_str(),
                t.value("node", "").empty() ? "-" : t.value("node", "").c_str(),
                gpus.empty() ? "-" : gpus.c_str(),
                t.value("reason", "").empty() ? "" : ("  (" + t.value("reason", "") + ")").c_str());
  }
}

bool terminal(const std::string& state) {
  return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED";
}

}  // namespace

std::string follow_job_logs(Api& api, const std::string& id, int rank) {
  int64_t offset = 0;
  int attempt = -1;
  while (true) {
    json r = api.call("GET", "/api/v1/jobs/" + id + "/logs?rank=" + std::to_string(rank) +
                                 "&offset=" + std::to_string(offset));
    if (r.value("attempt", 0) != attempt) {
      if (attempt >= 0) std::fprintf(stderr, "--- attempt %d ---\n", r.value("attempt", 0));
      if (attempt >= 0 && r.value("next_offset", int64_t{0}) < offset) offset = 0;
      attempt = r.value("attempt", 0);
    }
    const std::string data = r.value("data", "");
    std::fwrite(data.data(), 1, data.size(), stdout);
    std::fflush(stdout);
    offset = r.value("next_offset", offset);
    if (r.value("done", false)) break;
    if (data.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return api.call("GET", "/api/v1/jobs/" + id).value("state", "");
}

void print_job_logs(Api& api, const std::string& id, int rank) {
  int64_t offset = 0;
  // A job's output ships after its end: for an ended job, what is still on its way is waited
  // for (while it keeps arriving); for a running one, what has arrived is printed.
  constexpr auto kStalled = std::chrono::seconds(30);
  auto last_progress = std::chrono::steady_clock::now();
  while (true) {
    json r = api.call("GET", "/api/v1/jobs/" + id + "/logs?rank=" + std::to_string(rank) +
                                 "&offset=" + std::to_string(offset));
    const std::string data = r.value("data", "");
    if (data.empty()) {
      if (!r.value("ended", false) || r.value("done", true) ||
          std::chrono::steady_clock::now() - last_progress > kStalled) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    last_progress = std::chrono::steady_clock::now();
    std::fwrite(data.data(), 1, data.size(), stdout);
    offset = r.value("next_offset", offset);
  }
}

namespace {

int exit_code_for(const std::string& state) { return state == "SUCCEEDED" ? 0 : 1; }

// `job run --plan`: prints the server's plan (/api/v1/plan) and asks whether to submit. Returns
// whether to go on.
bool show_plan(Api& api, const JobSpec& spec, bool yes) {
  json plan = api.call_feature("plan", "POST", "/api/v1/plan", spec::job_spec_to_json(spec));
  std::printf("Plan for %s (%d node(s)%s):\n", spec.name.c_str(), spec.num_nodes,
              spec.use_spot ? ", spot" : "");
  const int fitting = plan.value("fitting_nodes", 0);
  if (plan.value("fits_now", false)) {
    std::printf("  fits on the current nodes (%d with room); nothing is rented, $0.00/h\n",
                fitting);
  } else if (!plan.value("clouds", false)) {
    std::printf(
        "  does not fit on the current nodes (%d with room) and no clouds are attached: "
        "it waits for nodes\n",
        fitting);
  } else if (plan.value("offers", json::array()).empty()) {
    std::printf("  does not fit on the current nodes, and no cloud offer fits it: it waits\n");
  } else {
    std::printf(
        "  does not fit on the current nodes; the cheapest machines to rent, first "
        "choice first:\n");
    for (const json& o : plan["offers"]) {
      char gpus[48];
      std::snprintf(gpus, sizeof gpus, "%s:%g", o.value("gpu_model", "").c_str(),
                    o.value("gpus", 0.0));
      std::printf(
          "    %s %s %s %s %s $%.2f/h x %d = $%.2f/h\n", pad(o.value("cloud", ""), 7).c_str(),
          pad(o.value("zone", "").empty() ? o.value("region", "") : o.value("zone", ""), 16)
              .c_str(),
          pad(o.value("instance_type", ""), 22).c_str(), pad(gpus, 10).c_str(),
          o.value("spot", false) ? "spot     " : "on-demand", o.value("price_per_hour", 0.0),
          o.value("machines", 1), o.value("total_per_hour", 0.0));
    }
  }
  if (yes) return true;
  if (!::isatty(STDIN_FILENO)) {
    fail("job run --plan: not submitted (no terminal to ask on); add --yes to submit", 1);
  }
  std::printf("Submit? [y/N] ");
  std::fflush(stdout);
  std::string answer;
  std::getline(std::cin, answer);
  if (answer == "y" || answer == "Y" || answer == "yes") return true;
  std::printf("not submitted\n");
  return false;
}

void register_job_commands(CLI::App& app) {
  CLI::App* job = app.add_subcommand("job", "Submit and follow batch jobs");
  job->require_subcommand(1);

  struct RunFlags {
    ClientFlags client;
    std::string file;
    bool wait = false, follow = false, plan = false, yes = false;
  };
  auto run = std::make_shared<RunFlags>();
  CLI::App* run_cmd = job->add_subcommand("run", "Submit a job from a YAML spec; prints its id");
  add_client_flags(run_cmd, run->client);
  run_cmd->add_option("-f,--file", run->file, "Job spec (YAML)")->required();
  run_cmd->add_flag("--wait", run->wait, "Wait for the end; exit non-zero unless it succeeded");
  run_cmd->add_flag("--follow", run->follow, "Stream rank 0's logs until the end");
  run_cmd->add_flag("--plan", run->plan,
                    "First show where it would run and what machines would be rented at what "
                    "hourly price, and ask before submitting");
  run_cmd->add_flag("-y,--yes", run->yes, "With --plan: submit without asking");
  run_cmd->callback([run] {
    auto text = sim::read_file(run->file);
    if (!text.is_ok()) fail(text.status().message(), 2);
    auto spec = spec::parse_job_yaml(*text, run->file);
    if (!spec.is_ok()) fail(spec.status().message(), 2);
    Api api(run->client);
    if (run->plan && !show_plan(api, *spec, run->yes)) return;
    json j = api.submit_job(spec::job_spec_to_json(*spec));
    const std::string id = j.value("id", "");
    std::printf("%s\n", id.c_str());
    std::fflush(stdout);
    if (run->follow) throw CLI::RuntimeError(exit_code_for(follow_job_logs(api, id, 0)));
    if (run->wait) {
      while (true) {
        std::string state = api.call("GET", "/api/v1/jobs/" + id).value("state", "");
        if (terminal(state)) {
          std::fprintf(stderr, "%s %s\n", id.c_str(), state.c_str());
          throw CLI::RuntimeError(exit_code_for(state));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
  });

  struct LsFlags {
    ClientFlags client;
    std::string state, queue;
  };
  auto ls = std::make_shared<LsFlags>();
  CLI::App* ls_cmd = job->add_subcommand("ls", "List jobs");
  add_client_flags(ls_cmd, ls->client);
  ls_cmd->add_flag("--json", ls->client.json, "Print a JSON array");
  ls_cmd->add_option("--state", ls->state,
                     "Only jobs in this state (PENDING, RUNNING, SUCCEEDED, FAILED, ...)");
  ls_cmd->add_option("--queue", ls->queue, "Only jobs of this queue");
  ls_cmd->callback([ls] {
    std::string query;
    if (!ls->state.empty()) query += "state=" + net::url_encode(ls->state);
    if (!ls->queue.empty())
      query += (query.empty() ? "" : "&") + ("queue=" + net::url_encode(ls->queue));
    json jobs = Api(ls->client).list_jobs(query);
    if (ls->client.json) {
      std::cout << spec::to_json_text(jobs) << "\n";
      return;
    }
    std::printf("%s %s %s %s %s\n", pad("ID", 8).c_str(), pad("NAME", 20).c_str(),
                pad("STATE", 10).c_str(), pad("RESTARTS", 8).c_str(), "REASON");
    for (const json& j : jobs) {
      std::printf("%s %s %s %s %s\n", pad(j.value("id", ""), 8).c_str(),
                  pad(j.value("name", ""), 20).c_str(), pad(j.value("state", ""), 10).c_str(),
                  pad(std::to_string(j.value("restarts", 0)), 8).c_str(),
                  j.value("reason", "").c_str());
    }
  });

  struct IdFlags {
    ClientFlags client;
    std::string id;
    int rank = 0;
    bool follow = false;
  };
  auto get = std::make_shared<IdFlags>();
  CLI::App* get_cmd = job->add_subcommand("get", "Show a job, its tasks, and why it waits");
  add_client_flags(get_cmd, get->client);
  get_cmd->add_option("id", get->id, "Job id")->required();
  get_cmd->add_flag("--json", get->client.json, "Print JSON");
  get_cmd->callback([get] {
    json j = Api(get->client).call("GET", "/api/v1/jobs/" + net::url_encode(get->id));
    if (get->client.json) {
      std::cout << spec::to_json_text(j) << "\n";
    } else {
      print_job(j);
    }
  });

  auto logs = std::make_shared<IdFlags>();
  CLI::App* logs_cmd = job->add_subcommand("logs", "Print a task's output (latest attempt)");
  add_client_flags(logs_cmd, logs->client);
  logs_cmd->add_option("id", logs->id, "Job id")->required();
  logs_cmd->add_option("--rank", logs->rank, "Node rank")->capture_default_str();
  logs_cmd->add_flag("-f,--follow", logs->follow, "Keep printing until the job ends");
  logs_cmd->callback([logs] {
    Api api(logs->client);
    const std::string id = net::url_encode(logs->id);
    if (logs->follow) {
      follow_job_logs(api, id, logs->rank);
    } else {
      print_job_logs(api, id, logs->rank);
    }
  });

  auto cancel = std::make_shared<IdFlags>();
  CLI::App* cancel_cmd = job->add_subcommand("cancel", "Cancel a job and stop its processes");
  add_client_flags(cancel_cmd, cancel->client);
  cancel_cmd->add_option("id", cancel->id, "Job id")->required();
  cancel_cmd->callback([cancel] {
    json j =
        Api(cancel->client).call("POST", "/api/v1/jobs/" + net::url_encode(cancel->id) + "/cancel");
    std::printf("%s %s\n", j.value("id", "").c_str(), j.value("state", "").c_str());
  });
}

void register_node_commands(CLI::App& app) {
  CLI::App* node = app.add_subcommand("node", "Inspect the nodes agents have joined");
  node->require_subcommand(1);
  auto ls = std::make_shared<ClientFlags>();
  CLI::App* ls_cmd = node->add_subcommand("ls", "List nodes");
  add_client_flags(ls_cmd, *ls);
  ls_cmd->add_flag("--json", ls->json, "Print a JSON array");
  ls_cmd->callback([ls] {
    json nodes = Api(*ls).list("/api/v1/nodes");
    if (ls->json) {
      std::cout << spec::to_json_text(nodes) << "\n";
      return;
    }
    std::printf("%s %s %s %s %s %s\n", pad("NAME", 20).c_str(), pad("READY", 6).c_str(),
                pad("CPU", 12).c_str(), pad("MEMORY", 16).c_str(), pad("GPUS", 18).c_str(),
                "ADDRESS");
    for (const json& n : nodes) {
      char cpu[32], mem[48], gpus[48];
      std::snprintf(cpu, sizeof cpu, "%g/%g", n.value("cpu_free_milli", int64_t{0}) / 1000.0,
                    n.value("cpu_milli", int64_t{0}) / 1000.0);
      std::snprintf(mem, sizeof mem, "%lld/%lld MiB",
                    static_cast<long long>(n.value("memory_free_mib", int64_t{0})),
                    static_cast<long long>(n.value("memory_mib", int64_t{0})));
      std::snprintf(gpus, sizeof gpus, "%g/%d %s", n.value("gpu_free_milli", int64_t{0}) / 1000.0,
                    n.value("gpu_count", 0), n.value("gpu_model", "").c_str());
      std::printf("%s %s %s %s %s %s\n", pad(n.value("name", ""), 20).c_str(),
                  pad(n.value("ready", false) ? "yes" : "no", 6).c_str(), pad(cpu, 12).c_str(),
                  pad(mem, 16).c_str(), pad(gpus, 18).c_str(), n.value("address", "").c_str());
    }
  });
}

// --- processes ---

struct ServeFlags {
  std::string data_dir;
  std::string address = "127.0.0.1";
  int port = 8080;
  int gateway_port = 8081;
  std::string gpus;
  std::string name;
  bool mps = false;
  std::string policy = "lepton";
  int node_timeout_s = 10;
  double preempt_grace_s = 30;
  double reserve_after_s = 60;
  bool demo_clouds = false;
  // The configuration file of each provider of the table (cloud/provider_table.h), by its name;
  // empty: not given.
  std::map<std::string, std::string, std::less<>> provider_configs;
  std::string catalog;
  std::string checkpoint_dir;
  double cloud_idle_s = 300;
  int max_instances = 16;
  std::vector<std::string> pool_limits;
  std::string advertise_url;
  std::vector<std::string> gateway_hosts;
  double log_retention_days = 0;
  int log_keep_mib = 16;
};

void add_serve_flags(CLI::App* cmd, ServeFlags& f) {
  cmd->add_option("--data-dir", f.data_dir, "State directory (default: ~/.lepton)");
  cmd->add_option("--address", f.address, "Listen address")->capture_default_str();
  cmd->add_option("--port", f.port, "Listen port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--gateway-port", f.gateway_port,
                  "Port of the gateway to deployments (0: any free port, -1: no gateway)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 65535));
  cmd->add_option("--gateway-host", f.gateway_hosts,
                  "Host name the gateway answers besides IP addresses and localhost, repeatable: "
                  "D allows D and NAME.D (Host-based routing); other names get 421, so a web "
                  "page cannot reach deployments by DNS rebinding");
  cmd->add_option("--log-retention-days", f.log_retention_days,
                  "Remove the logs of jobs that ended this many days ago (0: keep them)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 36500.0));
  cmd->add_option("--log-keep", f.log_keep_mib,
                  "MiB of each task's output kept from its start, and as many from its end")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--policy", f.policy, "Scheduling policy")->capture_default_str();
  cmd->add_option("--node-timeout", f.node_timeout_s,
                  "Seconds without heartbeats before a node is lost")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--preempt-grace", f.preempt_grace_s,
                  "Seconds a preempted task has between SIGTERM and SIGKILL")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--reserve-after", f.reserve_after_s,
                  "Seconds the first waiting job of a queue waits before nodes are held for it")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_flag("--demo-clouds", f.demo_clouds,
                "Rent machines for work that does not fit from emulated clouds (aws, gcp, azure, "
                "lambda, runpod) priced from the real catalog; each machine is a local agent");
  // One flag per provider of the table: --demo-clouds-config, --aws-config.
  for (const cloud::ProviderKind& kind : cloud::provider_kinds()) {
    cmd->add_option(std::string(kind.config_flag), f.provider_configs[std::string(kind.name)],
                    std::string(kind.config_help));
  }
  cmd->add_option("--catalog", f.catalog, "Offer catalog folder (default: the bundled one)");
  cmd->add_option("--checkpoint-dir", f.checkpoint_dir,
                  "Folder every node reaches at this path; jobs get LEPTON_CHECKPOINT_DIR under "
                  "it (default with --demo-clouds: DATA_DIR/checkpoints)");
  cmd->add_option("--cloud-idle", f.cloud_idle_s,
                  "Seconds a rented machine may sit without work before it is returned")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_option("--pool-limit", f.pool_limits,
                  "POOL=MIN:MAX, repeatable: bounds on rented machines of a pool (cloud, "
                  "cloud/region, or a whole pool as in lepton cloud ls; MIN needs a whole pool; "
                  "MAX may be empty)");
  cmd->add_option("--max-instances", f.max_instances, "Rented machines at once")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--advertise-url", f.advertise_url,
                  "URL rented machines reach this server at, such as http://10.0.0.5:8080 "
                  "(needed with --aws-config when listening on loopback)");
}

// The configuration file given for the provider `name` of the table; empty when none.
const std::string& provider_config(const ServeFlags& f, std::string_view name) {
  static const std::string kNone;
  auto it = f.provider_configs.find(name);
  return it == f.provider_configs.end() ? kNone : it->second;
}

// Whether the emulated clouds are wanted: --demo-clouds, or their configuration file.
bool wants_demo_clouds(const ServeFlags& f) {
  return f.demo_clouds || !provider_config(f, "sim").empty();
}

// "POOL=MIN:MAX" (MAX may be empty: no max).
Result<std::pair<std::string, server::PoolLimit>> parse_pool_limit(const std::string& text) {
  const size_t eq = text.find('=');
  const size_t colon = text.find(':', eq == std::string::npos ? 0 : eq);
  if (eq == std::string::npos || eq == 0 || colon == std::string::npos) {
    return Status::invalid_argument("expected POOL=MIN:MAX, such as aws=0:4");
  }
  server::PoolLimit limit;
  const std::string min = text.substr(eq + 1, colon - eq - 1), max = text.substr(colon + 1);
  auto number = [](const std::string& s, int& out) {
    if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    out = std::stoi(s);
    return true;
  };
  if (!number(min, limit.min)) return Status::invalid_argument("MIN: expected a whole number");
  if (!max.empty() && !number(max, limit.max)) {
    return Status::invalid_argument("MAX: expected a whole number, or nothing for no max");
  }
  if (limit.min > limit.max) return Status::invalid_argument("expected MIN <= MAX");
  const std::string pool = text.substr(0, eq);
  // A minimum is kept by renting, which needs one kind of machine: CLOUD/REGION[/ZONE]/TYPE.
  if (limit.min > 0 && std::count(pool.begin(), pool.end(), '/') < 2) {
    return Status::invalid_argument(
        "a MIN above 0 needs a whole pool, CLOUD/REGION[/ZONE]/TYPE[/spot] as lepton cloud ls "
        "names it, not '" +
        pool + "'");
  }
  return std::make_pair(pool, limit);
}

// The console's address with the token after '#' (never sent to the server; the page keeps it
// in the browser's storage), as Jupyter prints its link.
std::string console_link(const server::Server& server) {
  return server.url() + "/#token=" + server.token();
}

std::unique_ptr<server::Server> start_server(const ServeFlags& f) {
  server::ServerOptions o;
  o.data_dir = f.data_dir.empty() ? default_data_dir() : f.data_dir;
  o.address = f.address;
  o.port = static_cast<uint16_t>(f.port);
  o.gateway_port = f.gateway_port;
  o.gateway.allowed_hosts = f.gateway_hosts;
  o.control.log_retention_ms = static_cast<int64_t>(f.log_retention_days * 86'400'000);
  o.control.log_head_bytes = o.control.log_tail_bytes = int64_t{f.log_keep_mib} << 20;
  o.control.policy = f.policy;
  o.control.node_timeout_ms = int64_t{f.node_timeout_s} * 1000;
  o.control.preempt_grace_ms = static_cast<int64_t>(f.preempt_grace_s * 1000);
  o.control.reserve_after_ms = static_cast<int64_t>(f.reserve_after_s * 1000);
  o.control.cloud_idle_ms = static_cast<int64_t>(f.cloud_idle_s * 1000);
  o.control.max_instances = f.max_instances;
  for (const std::string& text : f.pool_limits) {
    auto limit = parse_pool_limit(text);
    if (!limit.is_ok()) fail("--pool-limit '" + text + "': " + limit.status().message(), 2);
    o.control.pool_limits[limit->first] = limit->second;
  }
  o.control.checkpoint_dir = f.checkpoint_dir;
  o.advertise_url = f.advertise_url;
  const bool demo = wants_demo_clouds(f);
  auto load_catalog = [&] {
    const std::string dir = f.catalog.empty() ? data_dir() + "/catalog" : f.catalog;
    auto catalog = cloud::load_catalog_dir(dir);
    if (!catalog.is_ok()) fail("--catalog " + dir + ": " + catalog.status().message(), 2);
    return std::move(*catalog);
  };
  if (demo && !provider_config(f, "aws").empty()) {
    fail("--aws-config: not together with --demo-clouds (both rent as aws)", 2);
  }
  // The providers of the table given a configuration file (sim also by --demo-clouds alone).
  for (const cloud::ProviderKind& kind : cloud::provider_kinds()) {
    const std::string& path = provider_config(f, kind.name);
    if (path.empty() && !(kind.name == "sim" && demo)) continue;
    const std::string flag(path.empty() ? "--demo-clouds" : kind.config_flag);
    if (!kind.machines_in.empty() && f.advertise_url.empty() &&
        (f.address.starts_with("127.") || f.address == "localhost")) {
      fail(flag + ": machines in " + std::string(kind.machines_in) + " cannot reach " + f.address +
               "; give --advertise-url with an address they can reach (and --address 0.0.0.0)",
           2);
    }
    cloud::ProviderContext context;
    if (!path.empty()) {
      auto text = sim::read_file(path);
      if (!text.is_ok()) fail(flag + ": " + text.status().message(), 2);
      context.config = std::move(*text);
    }
    context.catalog = load_catalog();
    context.data_dir = o.data_dir;
    auto provider = kind.make(context);
    if (!provider.is_ok()) {
      fail(flag + (path.empty() ? "" : " " + path) + ": " + provider.status().message(), 2);
    }
    o.providers.push_back(std::move(*provider));
  }
  if (demo && o.control.checkpoint_dir.empty()) {
    o.control.checkpoint_dir = o.data_dir + "/checkpoints";
  }
  auto s = server::Server::start(o);
  if (!s.is_ok()) {
    std::string hint;
    if (s.status().message().find("cannot listen") != std::string::npos) {
      hint = " (--port and --gateway-port choose other ports)";
    }
    fail(s.status().message() + hint, 2);
  }
  return std::move(*s);
}

void register_process_commands(CLI::App& app) {
  auto up = std::make_shared<ServeFlags>();
  CLI::App* up_cmd = app.add_subcommand(
      "up", "Run lepton on this machine: API server, scheduler and a local agent, in one process");
  add_serve_flags(up_cmd, *up);
  up_cmd->add_option("--gpus", up->gpus,
                     "This machine's GPUs as MODEL:COUNT, or 'none' (default: discover with NVML)");
  up_cmd->add_option("--name", up->name, "Name of the local node (default: the host name)");
  up_cmd->add_flag("--mps", up->mps,
                   "Run NVIDIA MPS so fractional-GPU tasks are held to their memory and SM share");
  up_cmd->callback([up] {
    sigset_t signals = block_stop_signals();
    auto server = start_server(*up);
    const std::string data_dir = up->data_dir.empty() ? default_data_dir() : up->data_dir;
    agent::AgentOptions a;
    a.server_url = server->url();
    a.token = server->token();
    a.name = up->name.empty() ? hostname() : up->name;
    a.gpus = up->gpus;
    a.mps = up->mps;
    a.work_dir = data_dir + "/agent";
    auto agent = agent::AgentDaemon::start(a);
    if (!agent.is_ok()) {
      server->stop();
      fail(agent.status().message(), 2);
    }
    std::printf("lepton is up at %s\n  console: %s\n  API token: %s\n  local node: %s (%s)\n",
                server->url().c_str(), console_link(*server).c_str(), server->token_path().c_str(),
                a.name.c_str(), a.gpus.empty() ? "GPUs from NVML" : ("GPUs " + a.gpus).c_str());
    if (!server->gateway_url().empty()) {
      std::printf("  gateway: %s/d/NAME/ reaches deployment NAME\n", server->gateway_url().c_str());
    }
    if (wants_demo_clouds(*up)) {
      std::printf(
          "  clouds: emulated, priced from the catalog; work that does not fit rents a "
          "machine (lepton cloud ls)\n"
          "Try: lepton job run -f examples/spot-train.yaml --plan\n");
    }
    std::printf(
        "Try: lepton job run -f examples/hello.yaml --follow\n"
        "     lepton deploy create -f examples/chat-deployment.yaml\nCtrl-C stops the server "
        "and the agent; running jobs keep running and are picked up at the next start.\n");
    std::fflush(stdout);
    wait_for_stop_signal(signals);
    (*agent)->stop();
    server->stop();
  });

  auto srv = std::make_shared<ServeFlags>();
  CLI::App* server_cmd = app.add_subcommand("server", "Run the API server and scheduler only");
  add_serve_flags(server_cmd, *srv);
  server_cmd->callback([srv] {
    sigset_t signals = block_stop_signals();
    auto server = start_server(*srv);
    std::printf("lepton server at %s\n  console: %s\n  API token: %s\n", server->url().c_str(),
                console_link(*server).c_str(), server->token_path().c_str());
    if (!server->gateway_url().empty()) {
      std::printf("  gateway: %s/d/NAME/ reaches deployment NAME\n", server->gateway_url().c_str());
    }
    std::fflush(stdout);
    wait_for_stop_signal(signals);
    server->stop();
  });

  struct AgentFlags {
    ClientFlags client;
    agent::AgentOptions options;
    double cpus = 0, memory_gib = 0;
  };
  auto ag = std::make_shared<AgentFlags>();
  CLI::App* agent_cmd = app.add_subcommand("agent", "Join this machine to a server as a node");
  add_client_flags(agent_cmd, ag->client);
  agent_cmd->add_option("--name", ag->options.name, "Node name (default: the host name)");
  agent_cmd->add_option("--gpus", ag->options.gpus,
                        "GPUs as MODEL:COUNT, or 'none' (default: discover with NVML)");
  agent_cmd->add_flag("--mps", ag->options.mps,
                      "Run NVIDIA MPS so fractional-GPU tasks are held to their memory and SM "
                      "share");
  agent_cmd->add_option("--work-dir", ag->options.work_dir,
                        "Task directories (default: ~/.lepton/agent-NAME)");
  agent_cmd->add_option("--cpus", ag->cpus, "CPU cores to offer (default: all)")
      ->check(CLI::NonNegativeNumber);
  agent_cmd->add_option("--memory", ag->memory_gib, "Memory to offer, GiB (default: all)")
      ->check(CLI::NonNegativeNumber);
  agent_cmd->add_option("--address", ag->options.address,
                        "Address other nodes use for this one (default: as the server sees it)");
  agent_cmd->callback([ag] {
    sigset_t signals = block_stop_signals();
    agent::AgentOptions o = ag->options;
    if (o.name.empty()) o.name = hostname();
    if (o.work_dir.empty()) o.work_dir = default_data_dir() + "/agent-" + o.name;
    o.cpu_milli = static_cast<int64_t>(ag->cpus * 1000);
    o.memory_mib = static_cast<int64_t>(ag->memory_gib * 1024);
    Connection c = connect(ag->client);
    o.server_url = c.url.to_string();
    o.token = std::move(c.token);
    auto agent = agent::AgentDaemon::start(o);
    if (!agent.is_ok()) fail(agent.status().message(), 2);
    std::printf("lepton agent %s joining %s\n", o.name.c_str(), o.server_url.c_str());
    std::fflush(stdout);
    wait_for_stop_signal(signals);
    (*agent)->stop();
  });
}

}  // namespace

void register_control_commands(CLI::App& app) {
  register_process_commands(app);
  register_job_commands(app);
  register_node_commands(app);
}

}  // namespace lepton::cli
