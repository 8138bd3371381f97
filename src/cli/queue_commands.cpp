// `lepton queue create|ls|get|set|rm`: the queues teams share a cluster through, over the REST
// API (/api/v1/queues). Request bodies are written by spec/queue_json.h, the codec the server
// reads them with.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/queue.h"
#include "net/http.h"
#include "spec/json_text.h"
#include "spec/queue_json.h"

namespace lepton::cli {
namespace {

using nlohmann::json;

constexpr const char* kQueuesPath = "/api/v1/queues";

json queue_call(Api& api, const std::string& method, const std::string& target,
                const std::string& body = "") {
  return api.call_feature("queue", method, target, body);
}

std::string queue_path(const std::string& name) {
  return kQueuesPath + ("/" + net::url_encode(name));
}

// The flags of `create` and `set`; an option's count() says whether it was given.
struct SpecFlags {
  ClientFlags client;
  std::string name, parent;
  double gpus = 0, cpus = 0, weight = 1, limit_gpus = 0, limit_cpus = 0, budget = 0;
  int64_t memory_mib = 0, limit_memory_mib = 0;
  bool no_limit = false, no_budget = false;
  CLI::Option *parent_opt = nullptr, *gpus_opt = nullptr, *cpus_opt = nullptr,
              *memory_opt = nullptr, *weight_opt = nullptr, *limit_gpus_opt = nullptr,
              *limit_cpus_opt = nullptr, *limit_memory_opt = nullptr, *no_limit_opt = nullptr,
              *budget_opt = nullptr;

  bool given(const CLI::Option* o) const { return o != nullptr && o->count() > 0; }
};

void add_spec_flags(CLI::App* cmd, SpecFlags& f, bool set) {
  add_client_flags(cmd, f.client);
  cmd->add_option("name", f.name, "Queue name (a-z, 0-9, '-')")->required();
  f.parent_opt = cmd->add_option(
      "--parent", f.parent, set ? "Parent queue ('' for none)" : "Parent queue (default: none)");
  f.gpus_opt = cmd->add_option("--gpus", f.gpus, "Guaranteed GPUs (fractions in steps of 0.001)");
  f.cpus_opt = cmd->add_option("--cpus", f.cpus, "Guaranteed CPU cores");
  f.memory_opt = cmd->add_option("--memory-mib", f.memory_mib, "Guaranteed memory, MiB");
  f.weight_opt = cmd->add_option("--weight", f.weight,
                                 "Over-quota weight: its part of idle capacity (default 1)");
  f.limit_gpus_opt = cmd->add_option("--limit-gpus", f.limit_gpus, "At most this many GPUs");
  f.limit_cpus_opt = cmd->add_option("--limit-cpus", f.limit_cpus, "At most this many CPU cores");
  f.limit_memory_opt =
      cmd->add_option("--limit-memory-mib", f.limit_memory_mib, "At most this much memory, MiB");
  f.budget_opt = cmd->add_option("--budget", f.budget,
                                 "Dollars its jobs may spend on rented machines (then none are "
                                 "rented for them)");
  if (set) {
    cmd->add_flag("--no-budget", f.no_budget, "Remove the budget")->excludes(f.budget_opt);
    f.no_limit_opt = cmd->add_flag("--no-limit", f.no_limit, "Remove every limit");
    f.no_limit_opt->excludes(f.limit_gpus_opt)
        ->excludes(f.limit_cpus_opt)
        ->excludes(f.limit_memory_opt);
  }
}

// GPUs or cores from a flag as milli-units; ends the command (exit 2) when not a multiple of 0.001
// or negative. The server checks the upper bounds.
int64_t milli(double value, const char* flag) {
  double m = value * 1000;
  double r = std::round(m);
  if (!std::isfinite(value) || value < 0 || std::fabs(m - r) > 1e-6 || r > 1e15) {
    fail(std::string(flag) + ": expected a number >= 0 in steps of 0.001", 2);
  }
  return static_cast<int64_t>(r);
}

int64_t mebibytes(int64_t value, const char* flag) {
  if (value < 0) fail(std::string(flag) + ": expected an integer >= 0", 2);
  return value;
}

// The guarantee and the limit the flags give; a dimension they do not name is kUnlimited, which
// quota_to_json leaves out (in a PATCH body: unchanged).
Quota given_guarantee(const SpecFlags& f) {
  Quota q{kUnlimited, kUnlimited, kUnlimited};
  if (f.given(f.gpus_opt)) q.gpu_milli = milli(f.gpus, "--gpus");
  if (f.given(f.cpus_opt)) q.cpu_milli = milli(f.cpus, "--cpus");
  if (f.given(f.memory_opt)) q.memory_mib = mebibytes(f.memory_mib, "--memory-mib");
  return q;
}

Quota given_limit(const SpecFlags& f) {
  Quota q{kUnlimited, kUnlimited, kUnlimited};
  if (f.given(f.limit_gpus_opt)) q.gpu_milli = milli(f.limit_gpus, "--limit-gpus");
  if (f.given(f.limit_cpus_opt)) q.cpu_milli = milli(f.limit_cpus, "--limit-cpus");
  if (f.given(f.limit_memory_opt)) {
    q.memory_mib = mebibytes(f.limit_memory_mib, "--limit-memory-mib");
  }
  return q;
}

bool names_any(const Quota& q) {
  return q.gpu_milli < kUnlimited || q.cpu_milli < kUnlimited || q.memory_mib < kUnlimited;
}

// The body of POST /api/v1/queues: the whole queue, checked here first.
std::string create_body(const SpecFlags& f) {
  QueueSpec spec;
  spec.name = f.name;
  spec.parent = f.parent;
  Quota g = given_guarantee(f);
  spec.guaranteed = {g.gpu_milli < kUnlimited ? g.gpu_milli : 0,
                     g.cpu_milli < kUnlimited ? g.cpu_milli : 0,
                     g.memory_mib < kUnlimited ? g.memory_mib : 0};
  if (f.given(f.weight_opt)) spec.weight = f.weight;
  if (Quota limit = given_limit(f); names_any(limit)) spec.limit = limit;
  if (f.given(f.budget_opt)) spec.budget_usd = f.budget;
  if (Status s = validate_queue_spec(spec); !s.is_ok()) fail(s);
  return spec::queue_spec_to_json(spec).dump();
}

// The body of PATCH /api/v1/queues/NAME: only what the flags name.
std::string set_body(const SpecFlags& f) {
  json body = json::object();
  if (f.given(f.parent_opt)) body["parent"] = f.parent;
  if (Quota g = given_guarantee(f); names_any(g)) body["guaranteed"] = spec::quota_to_json(g);
  if (f.given(f.weight_opt)) {
    if (!(f.weight > 0 && f.weight <= kMaxQueueWeight)) {
      fail("--weight: expected a number > 0 and <= 1000000", 2);
    }
    body["weight"] = f.weight;
  }
  if (Quota limit = given_limit(f); names_any(limit)) body["limit"] = spec::quota_to_json(limit);
  if (f.no_limit) body["limit"] = nullptr;
  if (f.given(f.budget_opt)) body["budget_usd"] = f.budget;
  if (f.no_budget) body["budget_usd"] = nullptr;
  if (body.empty()) {
    fail("queue set " + f.name +
             ": nothing to change (give --parent, --gpus, --cpus, --memory-mib, --weight, "
             "--limit-gpus, --limit-cpus, --limit-memory-mib, --no-limit, --budget or "
             "--no-budget)",
         2);
  }
  return body.dump();
}

// queue[key], or null when `queue` is not an object or lacks the key.
json field(const json& queue, const char* key) {
  if (!queue.is_object()) return nullptr;
  auto it = queue.find(key);
  return it == queue.end() ? json() : *it;
}

// "2.5" for a number, "-" for anything else.
std::string number(const json& v) {
  if (v.is_number_integer()) return v.dump();
  if (!v.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v.get<double>());
  return buf;
}

std::string text_of(const json& queue, const char* key) {
  json v = field(queue, key);
  return v.is_string() ? v.get<std::string>() : "";
}

// The GPUs of quota `key` of a queue object.
std::string gpus_of(const json& queue, const char* key) {
  return number(field(field(queue, key), "gpus"));
}

// "GPUs 4, CPUs 16, memory 65536 MiB"; a dimension the quota lacks reads `absent`.
std::string describe_quota(const json& quota, const char* absent) {
  if (!quota.is_object()) return "-";
  auto part = [&](const char* key) {
    json v = field(quota, key);
    return v.is_null() ? std::string(absent) : number(v);
  };
  return "GPUs " + part("gpus") + ", CPUs " + part("cpus") + ", memory " + part("memory_mib") +
         (field(quota, "memory_mib").is_null() ? "" : " MiB");
}

void print_queue(const json& q) {
  const std::string parent = text_of(q, "parent");
  const json limit = field(q, "limit");
  std::printf("name:        %s\n", text_of(q, "name").c_str());
  std::printf("parent:      %s\n", parent.empty() ? "-" : parent.c_str());
  std::printf("weight:      %s\n", number(field(q, "weight")).c_str());
  std::printf("guaranteed:  %s\n", describe_quota(field(q, "guaranteed"), "0").c_str());
  std::printf("limit:       %s\n",
              limit.is_object() ? describe_quota(limit, "unlimited").c_str() : "none");
  std::printf("fair share:  %s\n", describe_quota(field(q, "fair_share"), "-").c_str());
  std::printf("in use:      %s\n", describe_quota(field(q, "in_use"), "-").c_str());
  std::printf("pending:     %s\n", describe_quota(field(q, "pending"), "-").c_str());
  std::printf("jobs:        %s running, %s pending\n", number(field(q, "jobs_running")).c_str(),
              number(field(q, "jobs_pending")).c_str());
  const json budget = field(q, "budget_usd");
  const json spent = field(q, "spent_usd");
  std::printf("budget:      %s (spent $%.2f on rented machines)\n",
              budget.is_number() ? ("$" + number(budget)).c_str() : "none",
              spent.is_number() ? spent.get<double>() : 0.0);
}

void print_table(const json& queues) {
  std::printf("%s %s %s %s %s %s %s %s\n", pad("NAME", 20).c_str(), pad("PARENT", 16).c_str(),
              pad("WEIGHT", 7).c_str(), pad("GUARANTEED", 11).c_str(),
              pad("FAIR SHARE", 11).c_str(), pad("IN USE", 8).c_str(), pad("PENDING", 8).c_str(),
              "JOBS (running/pending)");
  if (!queues.is_array()) return;
  for (const json& q : queues) {
    if (!q.is_object()) continue;
    const std::string parent = text_of(q, "parent");
    std::printf(
        "%s %s %s %s %s %s %s %s\n", pad(text_of(q, "name"), 20).c_str(),
        pad(parent.empty() ? "-" : parent, 16).c_str(), pad(number(field(q, "weight")), 7).c_str(),
        pad(gpus_of(q, "guaranteed"), 11).c_str(), pad(gpus_of(q, "fair_share"), 11).c_str(),
        pad(gpus_of(q, "in_use"), 8).c_str(), pad(gpus_of(q, "pending"), 8).c_str(),
        (number(field(q, "jobs_running")) + "/" + number(field(q, "jobs_pending"))).c_str());
  }
}

void print(const json& queue, bool as_json) {
  if (as_json) {
    std::cout << spec::to_json_text(queue) << "\n";
  } else {
    print_queue(queue);
  }
}

}  // namespace

void register_queue_commands(CLI::App& app) {
  CLI::App* queue = app.add_subcommand(
      "queue", "Queues: guaranteed quotas, over-quota weights and limits for teams");
  queue->require_subcommand(1);

  auto create = std::make_shared<SpecFlags>();
  CLI::App* create_cmd = queue->add_subcommand("create", "Create a queue");
  add_spec_flags(create_cmd, *create, false);
  create_cmd->add_flag("--json", create->client.json, "Print the queue as JSON");
  create_cmd->callback([create] {
    const std::string body = create_body(*create);
    Api api(create->client);
    print(queue_call(api, "POST", kQueuesPath, body), create->client.json);
  });

  auto ls = std::make_shared<ClientFlags>();
  CLI::App* ls_cmd =
      queue->add_subcommand("ls", "List queues: guarantee, fair share, use and demand (GPUs)");
  add_client_flags(ls_cmd, *ls);
  ls_cmd->add_flag("--json", ls->json, "Print the JSON array the server returns");
  ls_cmd->callback([ls] {
    Api api(*ls);
    json queues = queue_call(api, "GET", kQueuesPath);
    if (ls->json) {
      std::cout << spec::to_json_text(queues) << "\n";
    } else {
      print_table(queues);
    }
  });

  struct NameFlags {
    ClientFlags client;
    std::string name;
  };
  auto get = std::make_shared<NameFlags>();
  CLI::App* get_cmd = queue->add_subcommand("get", "Show a queue");
  add_client_flags(get_cmd, get->client);
  get_cmd->add_option("name", get->name, "Queue name")->required();
  get_cmd->add_flag("--json", get->client.json, "Print JSON");
  get_cmd->callback([get] {
    Api api(get->client);
    print(queue_call(api, "GET", queue_path(get->name)), get->client.json);
  });

  auto set = std::make_shared<SpecFlags>();
  CLI::App* set_cmd = queue->add_subcommand("set", "Change a queue; only the flags given change");
  add_spec_flags(set_cmd, *set, true);
  set_cmd->add_flag("--json", set->client.json, "Print the queue as JSON");
  set_cmd->callback([set] {
    const std::string body = set_body(*set);
    Api api(set->client);
    print(queue_call(api, "PATCH", queue_path(set->name), body), set->client.json);
  });

  auto rm = std::make_shared<NameFlags>();
  CLI::App* rm_cmd = queue->add_subcommand("rm", "Delete a queue");
  add_client_flags(rm_cmd, rm->client);
  rm_cmd->add_option("name", rm->name, "Queue name")->required();
  rm_cmd->callback([rm] {
    Api api(rm->client);
    json r = queue_call(api, "DELETE", queue_path(rm->name));
    const std::string deleted = text_of(r, "deleted");
    std::printf("deleted queue %s\n", deleted.empty() ? rm->name.c_str() : deleted.c_str());
  });
}

}  // namespace lepton::cli
