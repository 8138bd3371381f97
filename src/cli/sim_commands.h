// `lepton sim`'s subcommands, one file each (sim_alloc_command.cpp, sim_queues_command.cpp,
// sim_cost_command.cpp), and the helpers they share (sim_commands.cpp).
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <string>
#include <utility>

#include "cli/cli.h"
#include "core/status.h"

namespace lepton::cli::sim_internal {

template <typename T>
T take(Result<T> r) {
  if (!r.is_ok()) fail(r.status());
  return std::move(r.value());
}

std::string workload_name(const std::string& pods_path);
void write_file(const std::filesystem::path& path, const std::string& content);

}  // namespace lepton::cli::sim_internal

namespace lepton::cli {

void register_sim_alloc_command(CLI::App& sim);   // `sim alloc` (sim_alloc_command.cpp)
void register_sim_queues_command(CLI::App& sim);  // `sim queues` (sim_queues_command.cpp)

}  // namespace lepton::cli
