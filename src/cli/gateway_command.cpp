// `lepton gateway`: the deployment gateway on its own, with routes from a JSON file (the control
// plane will feed the same Router later). SIGHUP reloads the file; SIGINT/SIGTERM stop.
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "gateway/gateway.h"
#include "gateway/routing.h"
#include "sim/csv.h"

namespace lepton::cli {
namespace {

struct GatewayFlags {
  std::string address = "127.0.0.1";
  int port = 8081;
  std::string routes;
  int threads = 0;
  int connect_timeout_ms = 3000;
  int first_byte_timeout_s = 60;
  int down_for_ms = 5000;
  int max_attempts = 3;
  std::vector<std::string> allowed_hosts;
  std::string metrics_token_file;
};

void run_gateway(const GatewayFlags& flags) {
  auto router = std::make_shared<gateway::Router>();
  if (!flags.routes.empty()) {
    Result<gateway::RouteSpec> spec = gateway::load_routes_file(flags.routes);
    if (!spec.is_ok()) fail(Status::invalid_argument("--routes " + spec.status().message()));
    if (Status s = router->update(*spec); !s.is_ok()) {
      fail(Status::invalid_argument("--routes " + flags.routes + ": " + s.message()));
    }
  }
  // Block the signals before the I/O threads start, so only sigwait below sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  gateway::GatewayOptions options{
      .address = flags.address,
      .port = static_cast<uint16_t>(flags.port),
      .io_threads = flags.threads,
      .connect_timeout = std::chrono::milliseconds(flags.connect_timeout_ms),
      .first_byte_timeout = std::chrono::seconds(flags.first_byte_timeout_s),
      .down_for = std::chrono::milliseconds(flags.down_for_ms),
      .max_attempts = flags.max_attempts,
  };
  options.allowed_hosts = flags.allowed_hosts;
  if (!flags.metrics_token_file.empty()) {
    auto token = sim::read_file(flags.metrics_token_file);
    if (!token.is_ok())
      fail(Status::invalid_argument("--metrics-token-file: " + token.status().message()));
    options.metrics_token = *token;
    while (!options.metrics_token.empty() &&
           (options.metrics_token.back() == '\n' || options.metrics_token.back() == ' ')) {
      options.metrics_token.pop_back();
    }
    if (options.metrics_token.empty()) {
      fail(Status::invalid_argument("--metrics-token-file " + flags.metrics_token_file +
                                    ": the file is empty"));
    }
  }
  auto gw = gateway::Gateway::start(options, router);
  if (!gw.is_ok()) fail(gw.status());
  std::cout << "gateway listening on http://" << flags.address << ":" << (*gw)->port()
            << " (routes: " << router->snapshot()->deployments.size() << " deployments)"
            << std::endl;
  while (true) {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig != SIGHUP) break;
    if (flags.routes.empty()) continue;
    Result<gateway::RouteSpec> spec = gateway::load_routes_file(flags.routes);
    Status s = spec.is_ok() ? router->update(*spec) : spec.status();
    if (s.is_ok()) {
      std::cout << "routes reloaded from " << flags.routes << std::endl;
    } else {
      std::cerr << "lepton: routes not reloaded, the old ones stay: " << s.message() << std::endl;
    }
  }
  (*gw)->stop();
}

}  // namespace

void register_gateway_command(CLI::App& app) {
  auto flags = std::make_shared<GatewayFlags>();
  CLI::App* cmd = app.add_subcommand(
      "gateway", "Reverse proxy for deployments: /d/NAME/... or Host NAME.* to a ready replica");
  cmd->add_option("--address", flags->address, "IP address to listen on");
  cmd->add_option("--port", flags->port, "Port (0: any free port; printed)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--routes", flags->routes,
                  "JSON file {\"NAME\": [\"host:port\", ...]}; SIGHUP reloads it")
      ->check(CLI::ExistingFile);
  cmd->add_option("--threads", flags->threads, "I/O threads (0: one per core)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--connect-timeout-ms", flags->connect_timeout_ms, "Connecting to a replica, ms")
      ->check(CLI::Range(1, 600000));
  cmd->add_option("--first-byte-timeout", flags->first_byte_timeout_s,
                  "Seconds a replica has to start its response (then 504)")
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--down-for-ms", flags->down_for_ms,
                  "How long a replica that failed is skipped, ms")
      ->check(CLI::Range(0, 3600000));
  cmd->add_option("--max-attempts", flags->max_attempts,
                  "Replicas tried for one request before the first byte")
      ->check(CLI::Range(1, 16));
  cmd->add_option("--allowed-host", flags->allowed_hosts,
                  "Host name answered besides IP addresses and localhost, repeatable: D allows D "
                  "and NAME.D (Host-based routing); other names get 421, so a web page cannot "
                  "reach deployments by DNS rebinding");
  cmd->add_option("--metrics-token-file", flags->metrics_token_file,
                  "File with the token /-/metrics needs (Authorization: Bearer TOKEN); without "
                  "it, /-/metrics is open");
  cmd->callback([flags] { run_gateway(*flags); });
}

}  // namespace lepton::cli
