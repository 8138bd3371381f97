// `lepton sim ...`: trace-driven experiments that run the scheduler's own code. The subcommands
// are in files of their own (sim_commands.h); here are `sim` itself and the helpers they share.
#include "cli/sim_commands.h"

#include <filesystem>
#include <fstream>

#include "cli/experiments.h"

namespace lepton::cli {
namespace sim_internal {

std::string workload_name(const std::string& pods_path) {
  return std::filesystem::path(pods_path).stem().string();
}

void write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path);
  out << content;
  if (!out) fail(Status::internal(path.string() + ": cannot write"));
}

}  // namespace sim_internal

void register_sim_commands(CLI::App& app) {
  CLI::App* sim = app.add_subcommand("sim", "Replay cluster traces through the scheduler");
  sim->require_subcommand(1);

  register_sim_alloc_command(*sim);
  register_sim_queues_command(*sim);
  register_sim_cost_command(*sim);
}

}  // namespace lepton::cli
