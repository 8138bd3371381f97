// `lepton cloud ls|interrupt` and `lepton cost`: the machines lepton rented for pending work
// (/api/v1/instances) and what they cost (/api/v1/cost). See docs/clouds.md.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli.h"
#include "cli/client.h"
#include "net/http.h"
#include "spec/json_text.h"

namespace lepton::cli {
namespace {

using nlohmann::json;

std::string dollars(double usd) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.2f", usd);
  return buf;
}

void register_cloud_ls(CLI::App* cloud) {
  auto f = std::make_shared<ClientFlags>();
  CLI::App* ls = cloud->add_subcommand("ls", "List the machines rented for pending work");
  add_client_flags(ls, *f);
  ls->add_flag("--json", f->json, "Print the listing as JSON");
  ls->callback([f] {
    Api api(*f);
    json instances = api.call_feature("cloud", "GET", "/api/v1/instances");
    if (f->json) {
      std::cout << spec::to_json_text(instances) << "\n";
      return;
    }
    if (instances.empty()) {
      std::printf(
          "No machines rented. Start the server with --demo-clouds to rent from the "
          "emulated clouds.\n");
      return;
    }
    std::printf("%s %s %s %s %s %s %s %s\n", pad("ID", 16).c_str(), pad("CLOUD", 7).c_str(),
                pad("ZONE", 16).c_str(), pad("TYPE", 22).c_str(), pad("GPUS", 10).c_str(),
                pad("PRICE/H", 12).c_str(), pad("STATE", 11).c_str(), "COST");
    for (const json& i : instances) {
      const std::string price =
          dollars(i.value("price_per_hour", 0.0)) + (i.value("spot", false) ? " spot" : "");
      std::string state = i.value("state", "");
      if (i.value("notice_ms", int64_t{0}) && i.value("ended_ms", int64_t{0}) == 0) {
        state = "notice";
      }
      char gpus[48];
      std::snprintf(gpus, sizeof gpus, "%s:%g", i.value("gpu_model", "").c_str(),
                    i.value("gpus", 0.0));
      std::printf("%s %s %s %s %s %s %s %s\n", pad(i.value("id", ""), 16).c_str(),
                  pad(i.value("cloud", ""), 7).c_str(),
                  pad(i.value("zone", "").empty() ? i.value("region", "") : i.value("zone", ""), 16)
                      .c_str(),
                  pad(i.value("instance_type", ""), 22).c_str(), pad(gpus, 10).c_str(),
                  pad(price, 12).c_str(), pad(state, 11).c_str(),
                  dollars(i.value("cost_usd", 0.0)).c_str());
    }
  });
}

void register_cloud_interrupt(CLI::App* cloud) {
  struct Flags {
    ClientFlags client;
    std::string id;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = cloud->add_subcommand(
      "interrupt", "Post a spot interruption notice for an emulated machine (--demo-clouds)");
  add_client_flags(cmd, f->client);
  cmd->add_option("id", f->id, "Instance id, from lepton cloud ls")->required();
  cmd->callback([f] {
    Api api(f->client);
    api.call_feature("cloud", "POST", "/api/v1/instances/" + net::url_encode(f->id) + "/interrupt");
    std::printf("interruption notice posted for %s: its work is being checkpointed and requeued\n",
                f->id.c_str());
  });
}

void register_cost(CLI::App& app) {
  struct Flags {
    ClientFlags client;
    std::string by = "job";
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("cost", "Spend on rented machines, by job, queue or cloud");
  add_client_flags(cmd, f->client);
  cmd->add_option("--by", f->by, "Group by job, queue, cloud or instance")
      ->capture_default_str()
      ->check(CLI::IsMember({"job", "queue", "cloud", "instance"}));
  cmd->add_flag("--json", f->client.json, "Print the report as JSON");
  cmd->callback([f] {
    Api api(f->client);
    json report = api.call_feature("cost", "GET", "/api/v1/cost?by=" + f->by);
    if (f->client.json) {
      std::cout << spec::to_json_text(report) << "\n";
      return;
    }
    std::printf("%s %s %s\n",
                pad(f->by == "job"     ? "JOB"
                    : f->by == "queue" ? "QUEUE"
                    : f->by == "cloud" ? "CLOUD"
                                       : "INSTANCE",
                    20)
                    .c_str(),
                pad("COST", 12).c_str(), "GPU-HOURS");
    for (const json& row : report.value("rows", json::array())) {
      char hours[32];
      std::snprintf(hours, sizeof hours, "%.3f", row.value("gpu_hours", 0.0));
      std::printf("%s %s %s\n", pad(row.value("key", ""), 20).c_str(),
                  pad(dollars(row.value("cost_usd", 0.0)), 12).c_str(), hours);
    }
    std::printf("total %s, of which idle machines %s\n",
                dollars(report.value("total_usd", 0.0)).c_str(),
                dollars(report.value("idle_usd", 0.0)).c_str());
  });
}

}  // namespace

void register_cloud_commands(CLI::App& app) {
  CLI::App* cloud = app.add_subcommand("cloud", "Machines rented from clouds for pending work");
  cloud->require_subcommand(1);
  register_cloud_ls(cloud);
  register_cloud_interrupt(cloud);
  register_cost(app);
}

}  // namespace lepton::cli
