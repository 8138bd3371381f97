// `lepton deploy create|ls|get|update|scale|logs|rm`: inference deployments over the REST API
// (/api/v1/deployments). Specs are read with spec/deployment_spec.h, the codec the server uses.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cli/cli.h"
#include "cli/client.h"
#include "net/http.h"
#include "sim/csv.h"
#include "spec/deployment_spec.h"
#include "spec/json_text.h"

namespace lepton::cli {
namespace {

using nlohmann::json;

constexpr const char* kDeploymentsPath = "/api/v1/deployments";

std::string deployment_path(const std::string& name) {
  return kDeploymentsPath + ("/" + net::url_encode(name));
}

json deploy_call(Api& api, const std::string& method, const std::string& target,
                 const std::string& body = "") {
  json j = api.call_feature("deployment", method, target, body);
  if (!j.is_object()) fail("the server sent a response that is not a JSON object");
  return j;
}

std::string read_spec(const std::string& file) {
  auto text = sim::read_file(file);
  if (!text.is_ok()) fail(text.status().message(), 2);
  auto spec = spec::parse_deployment_yaml(*text, file);
  if (!spec.is_ok()) fail(spec.status().message(), 2);
  return spec::deployment_spec_to_json(*spec);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string latency_text(const json& d) {
  const json latency = d.value("latency", json::object());
  if (!latency.is_object() || latency.empty()) return "-";
  auto ms = [&](const char* key) {
    return latency.contains(key) && latency[key].is_number() ? number(latency[key].get<double>())
                                                             : std::string("-");
  };
  return "p50 " + ms("p50_ms") + " ms, p90 " + ms("p90_ms") + " ms, p99 " + ms("p99_ms") + " ms";
}

void print_deployment(const json& d) {
  const json spec = d.value("spec", json::object());
  const json replicas = spec.value("replicas", json::object());
  std::printf("name:        %s\n", d.value("name", "").c_str());
  std::printf("url:         %s\n",
              d.value("url", "").empty() ? "- (no gateway)" : d.value("url", "").c_str());
  if (d.contains("token")) std::printf("token:       %s\n", d.value("token", "").c_str());
  std::printf("replicas:    %d ready of %d desired (min %d, max %d), generation %d\n",
              d.value("ready_replicas", 0), d.value("desired_replicas", 0),
              replicas.value("min", 0), replicas.value("max", 0), d.value("generation", 0));
  std::printf("load:        %lld in flight%s, %s req/s over the last minute\n",
              static_cast<long long>(d.value("in_flight", int64_t{0})),
              d.value("panic", false) ? " (panic mode)" : "", number(d.value("rps", 0.0)).c_str());
  std::printf("latency:     %s\n", latency_text(d).c_str());
  std::printf("replicas:\n");
  const json list = d.value("replicas", json::array());
  if (!list.is_array() || list.empty()) std::printf("  (none)\n");
  for (const json& r : list) {
    std::string status = r.value("ready", false) ? "ready" : "not ready";
    if (r.value("draining", false)) status = "draining";
    std::printf("  %s %s gen %-3d %s node %s %s in flight %d%s\n",
                pad(r.value("job", ""), 8).c_str(), pad(r.value("state", ""), 10).c_str(),
                r.value("generation", 0), pad(status, 9).c_str(),
                pad(r.value("node", "").empty() ? "-" : r.value("node", ""), 14).c_str(),
                pad(r.value("address", "").empty() ? "-" : r.value("address", ""), 22).c_str(),
                r.value("in_flight", 0),
                r.value("reason", "").empty() ? "" : ("  (" + r.value("reason", "") + ")").c_str());
  }
}

}  // namespace

void register_deploy_commands(CLI::App& app) {
  CLI::App* deploy =
      app.add_subcommand("deploy", "Run inference endpoints: replicas behind the gateway");
  deploy->require_subcommand(1);

  struct FileFlags {
    ClientFlags client;
    std::string name, file;
    bool wait = false;
    int timeout_s = 600;
  };
  auto create = std::make_shared<FileFlags>();
  CLI::App* create_cmd =
      deploy->add_subcommand("create", "Create a deployment from a YAML spec (kind: deployment)");
  add_client_flags(create_cmd, create->client);
  create_cmd->add_option("-f,--file", create->file, "Deployment spec (YAML)")->required();
  create_cmd->add_flag("--wait", create->wait, "Wait until a replica is ready");
  create_cmd->add_option("--timeout", create->timeout_s, "Seconds --wait waits at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  create_cmd->callback([create] {
    const std::string body = read_spec(create->file);
    Api api(create->client);
    json d = deploy_call(api, "POST", kDeploymentsPath, body);
    const std::string name = d.value("name", "");
    std::printf("%s %s\n", name.c_str(), d.value("url", "").c_str());
    std::fflush(stdout);
    if (!create->wait) return;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(create->timeout_s);
    bool wanted = false;  // the controller has asked for a replica
    while (d.value("ready_replicas", 0) < 1) {
      wanted = wanted || d.value("desired_replicas", 0) > 0;
      if (wanted && d.value("desired_replicas", 0) == 0) {
        fail("deployment " + name +
             ": scaled to zero before a replica was ready (nothing in flight for "
             "scale_to_zero_after); a request to " +
             d.value("url", std::string("its URL")) + " starts one");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        fail("deployment " + name + ": no replica ready after " +
             std::to_string(create->timeout_s) + " s (lepton deploy get " + name + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      d = deploy_call(api, "GET", deployment_path(name));
    }
    std::fprintf(stderr, "%s: %d replica(s) ready\n", name.c_str(), d.value("ready_replicas", 0));
  });

  auto ls = std::make_shared<ClientFlags>();
  CLI::App* ls_cmd = deploy->add_subcommand("ls", "List deployments");
  add_client_flags(ls_cmd, *ls);
  ls_cmd->add_flag("--json", ls->json, "Print a JSON array");
  ls_cmd->callback([ls] {
    json list = Api(*ls).list(kDeploymentsPath);
    if (ls->json) {
      std::cout << spec::to_json_text(list) << "\n";
      return;
    }
    std::printf("%s %s %s %s %s %s\n", pad("NAME", 20).c_str(), pad("READY", 6).c_str(),
                pad("DESIRED", 8).c_str(), pad("IN-FLIGHT", 10).c_str(), pad("REQ/S", 8).c_str(),
                "URL");
    for (const json& d : list) {
      std::printf("%s %s %s %s %s %s\n", pad(d.value("name", ""), 20).c_str(),
                  pad(std::to_string(d.value("ready_replicas", 0)), 6).c_str(),
                  pad(std::to_string(d.value("desired_replicas", 0)), 8).c_str(),
                  pad(std::to_string(d.value("in_flight", int64_t{0})), 10).c_str(),
                  pad(number(d.value("rps", 0.0)), 8).c_str(), d.value("url", "").c_str());
    }
  });

  struct NameFlags {
    ClientFlags client;
    std::string name;
  };
  auto get = std::make_shared<NameFlags>();
  CLI::App* get_cmd =
      deploy->add_subcommand("get", "Show a deployment: replicas, nodes, load and latency");
  add_client_flags(get_cmd, get->client);
  get_cmd->add_option("name", get->name, "Deployment name")->required();
  get_cmd->add_flag("--json", get->client.json, "Print JSON");
  get_cmd->callback([get] {
    Api api(get->client);
    json d = deploy_call(api, "GET", deployment_path(get->name));
    if (get->client.json) {
      std::cout << spec::to_json_text(d) << "\n";
    } else {
      print_deployment(d);
    }
  });

  auto update = std::make_shared<FileFlags>();
  CLI::App* update_cmd = deploy->add_subcommand(
      "update", "Replace a deployment's spec; replicas roll over one at a time");
  add_client_flags(update_cmd, update->client);
  update_cmd->add_option("name", update->name, "Deployment name")->required();
  update_cmd->add_option("-f,--file", update->file, "Deployment spec (YAML)")->required();
  update_cmd->callback([update] {
    const std::string body = read_spec(update->file);
    Api api(update->client);
    json d = deploy_call(api, "PUT", deployment_path(update->name), body);
    std::printf("%s generation %d\n", d.value("name", "").c_str(), d.value("generation", 0));
  });

  struct ScaleFlags {
    ClientFlags client;
    std::string name;
    int min = 0, max = 0, replicas = 0;
    CLI::Option *min_opt = nullptr, *max_opt = nullptr, *replicas_opt = nullptr;
  };
  auto scale = std::make_shared<ScaleFlags>();
  CLI::App* scale_cmd =
      deploy->add_subcommand("scale", "Set a deployment's replica bounds (autoscaling between)");
  add_client_flags(scale_cmd, scale->client);
  scale_cmd->add_option("name", scale->name, "Deployment name")->required();
  scale->min_opt = scale_cmd->add_option("--min", scale->min,
                                         "At least this many (0: may scale "
                                         "to zero)");
  scale->max_opt = scale_cmd->add_option("--max", scale->max, "At most this many");
  scale->replicas_opt =
      scale_cmd->add_option("--replicas", scale->replicas, "Exactly this many (min = max)");
  scale->replicas_opt->excludes(scale->min_opt)->excludes(scale->max_opt);
  scale_cmd->callback([scale] {
    json body = json::object();
    if (scale->replicas_opt->count() > 0) {
      body["min"] = scale->replicas;
      body["max"] = scale->replicas;
    }
    if (scale->min_opt->count() > 0) body["min"] = scale->min;
    if (scale->max_opt->count() > 0) body["max"] = scale->max;
    if (body.empty()) fail("deploy scale " + scale->name + ": give --min, --max or --replicas", 2);
    Api api(scale->client);
    json d = deploy_call(api, "POST", deployment_path(scale->name) + "/scale", body.dump());
    const json bounds = d.value("spec", json::object()).value("replicas", json::object());
    std::printf("%s min %d max %d\n", d.value("name", "").c_str(), bounds.value("min", 0),
                bounds.value("max", 0));
  });

  struct LogsFlags {
    ClientFlags client;
    std::string name, replica;
    bool follow = false;
  };
  auto logs = std::make_shared<LogsFlags>();
  CLI::App* logs_cmd = deploy->add_subcommand("logs", "Print a replica's output");
  add_client_flags(logs_cmd, logs->client);
  logs_cmd->add_option("name", logs->name, "Deployment name")->required();
  logs_cmd->add_option("--replica", logs->replica,
                       "The replica's job id (default: the first replica in service)");
  logs_cmd->add_flag("-f,--follow", logs->follow, "Keep printing until the replica ends");
  logs_cmd->callback([logs] {
    Api api(logs->client);
    json d = deploy_call(api, "GET", deployment_path(logs->name));
    std::string job = logs->replica;
    std::string ids;
    bool found = false;
    for (const json& r : d.value("replicas", json::array())) {
      const std::string id = r.value("job", "");
      ids += (ids.empty() ? "" : ", ") + id;
      if (job.empty() && !r.value("draining", false)) job = id;
      found = found || id == job;
    }
    if (job.empty()) fail("deployment " + logs->name + " has no replica");
    if (!found) {
      fail("--replica: deployment " + logs->name + " has no replica " + job + " (it has " +
               (ids.empty() ? "none" : ids) + ")",
           2);
    }
    if (logs->follow) {
      follow_job_logs(api, net::url_encode(job), 0);
    } else {
      print_job_logs(api, net::url_encode(job), 0);
    }
  });

  auto rm = std::make_shared<NameFlags>();
  CLI::App* rm_cmd = deploy->add_subcommand("rm", "Delete a deployment and stop its replicas");
  add_client_flags(rm_cmd, rm->client);
  rm_cmd->add_option("name", rm->name, "Deployment name")->required();
  rm_cmd->callback([rm] {
    Api api(rm->client);
    json d = deploy_call(api, "DELETE", deployment_path(rm->name));
    std::printf("%s deleted\n", d.value("name", "").c_str());
  });
}

}  // namespace lepton::cli
