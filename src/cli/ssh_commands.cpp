// `lepton node add --ssh` and `lepton node remove`: join a machine the user already has to the
// server the CLI talks to, over ssh, and take it out again (cloud/ssh_provider.h does the work).
//
// The records of added machines (and ssh's known_hosts for them) are kept in ~/.lepton/ssh, so
// `node remove` works from the machine and account that ran `node add`.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/cli.h"
#include "cli/client.h"
#include "cloud/ssh_provider.h"

namespace lepton::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
namespace ssh = cloud::ssh;

std::string ssh_state_dir() { return default_data_dir() + "/ssh"; }

bool loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The node `name` in the server's list, or null.
json find_node(Api& api, const std::string& name) {
  for (const json& n : api.list("/api/v1/nodes")) {
    if (n.value("name", "") == name) return n;
  }
  return nullptr;
}

struct AddFlags {
  ClientFlags client;
  std::string ssh, identity, name, gpus, remote_dir;
  int wait_s = 60;
};

void add_command(const AddFlags& f) {
  auto target = ssh::parse_ssh_target(f.ssh, "--ssh");
  if (!target.is_ok()) fail(target.status());
  std::error_code ec;
  // Absolute, so that `node remove` finds the key from any working directory.
  const std::string identity = fs::absolute(f.identity, ec).string();
  auto host = ssh::normalize_host(ssh::SshHost{.target = *target,
                                               .identity_file = identity,
                                               .gpus = f.gpus,
                                               .name = f.name,
                                               .remote_dir = f.remote_dir},
                                  "--");
  if (!host.is_ok()) fail(host.status());
  if (!fs::is_regular_file(identity, ec)) {
    fail("--identity " + f.identity + ": no such file (the private key that logs in to " +
             ssh::format_ssh_target(*target) + ")",
         2);
  }
  Connection c = connect(f.client);
  if (loopback(c.url.host) && !loopback(host->target.host)) {
    fail("--server " + c.url.to_string() + " is a loopback address, which " + host->target.host +
             " cannot reach: pass --server with an address of this server that the machine can "
             "reach (and have the server listen on it, e.g. lepton server --address 0.0.0.0)",
         2);
  }
  Api api(f.client);
  json existing = find_node(api, host->name);
  if (existing.is_object() && existing.value("ready", false)) {
    fail("a node named " + host->name + " is already in the cluster and ready; pick another --name",
         2);
  }

  ssh::SshProviderOptions o;
  o.hosts = {*host};
  o.state_dir = ssh_state_dir();
  o.lepton_binary = "/proc/self/exe";
  o.server_url = c.url.to_string();
  o.token = c.token;
  o.progress = say;
  auto provider = ssh::SshProvider::create(std::move(o));
  if (!provider.is_ok()) fail(provider.status());
  cloud::ProvisionRequest request;
  request.offer.instance_type = host->name;
  auto launched = (*provider)->provision(request);
  if (!launched.is_ok()) fail(launched.status());

  say(host->name + ": waiting for the node to join " + c.url.to_string());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f.wait_s);
  while (true) {
    json n = find_node(api, host->name);
    if (n.is_object() && n.value("ready", false)) {
      const int gpus = n.value("gpu_count", 0);
      say(host->name + ": joined, " +
          (gpus > 0 ? std::to_string(gpus) + "x " + n.value("gpu_model", "") : "no GPUs") +
          " (lepton node remove " + host->name + " takes it out)");
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const std::string log = host->remote_dir + "/agents/" + host->name + "/agent.log";
  Status stopped = (*provider)->terminate({host->name});
  fail("the agent started on " + ssh::format_ssh_target(host->target) + " but the node did not " +
       "join " + c.url.to_string() + " within " + std::to_string(f.wait_s) + " s; see " + log +
       " on that machine" +
       (stopped.is_ok() ? " (the agent was stopped)"
                        : " (stopping the agent failed too: " + stopped.message() + ")"));
}

void remove_command(const std::string& name) {
  ssh::SshProviderOptions o;
  o.state_dir = ssh_state_dir();
  o.progress = say;
  auto provider = ssh::SshProvider::create(std::move(o));
  if (!provider.is_ok()) fail(provider.status());
  auto host = (*provider)->host_of(name);
  if (!host.is_ok()) {
    fail("node " + name + " was not added with `lepton node add` from this account (records in " +
             ssh_state_dir() + "/instances.json)",
         2);
  }
  Status s = (*provider)->terminate({name});
  if (!s.is_ok()) fail(s);
  say(name + ": removed; the agent and its tasks on " + ssh::format_ssh_target(host->target) +
      " are stopped (the server marks the node lost)");
}

}  // namespace

void register_ssh_commands(CLI::App& app) {
  CLI::App* node = app.get_subcommand("node");
  node->description("Inspect the nodes agents have joined; add and remove machines over ssh");

  auto add = std::make_shared<AddFlags>();
  CLI::App* add_cmd = node->add_subcommand(
      "add", "Join a machine over ssh: copy this lepton binary to it and start `lepton agent`");
  add_client_flags(add_cmd, add->client);
  add_cmd->add_option("--ssh", add->ssh, "USER@HOST or USER@HOST:PORT")->required();
  add_cmd->add_option("-i,--identity", add->identity, "Private key file that logs in")->required();
  add_cmd->add_option("--name", add->name, "Node name (default: the host)");
  add_cmd->add_option("--gpus", add->gpus,
                      "The machine's GPUs as MODEL:COUNT, or 'none' (default: discovered with "
                      "NVML on the machine)");
  add_cmd->add_option("--remote-dir", add->remote_dir,
                      "Where lepton lives on the machine, absolute or relative to the home "
                      "directory (default: ~/.lepton)");
  add_cmd->add_option("--wait", add->wait_s, "Seconds to wait for the node to join")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  add_cmd->callback([add] { add_command(*add); });

  auto name = std::make_shared<std::string>();
  CLI::App* remove_cmd = node->add_subcommand(
      "remove", "Stop the agent (and its tasks) on a machine added with `node add`");
  remove_cmd->add_option("name", *name, "Node name")->required();
  remove_cmd->callback([name] { remove_command(*name); });
}

}  // namespace lepton::cli
