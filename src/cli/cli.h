// The `lepton` command line: subcommands and their flags. Each group of subcommands lives in its
// own file and adds itself to the app through a register_* function called from run().
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace lepton::cli {

int run(int argc, char** argv);

void register_sim_commands(CLI::App& app);
void register_sim_cost_command(CLI::App& sim);  // `sim cost`, from register_sim_commands
void register_bench_commands(CLI::App& app);
void add_bench_agents_command(CLI::App& bench);  // `lepton bench agents` (bench_agents.cpp)
void register_control_commands(CLI::App& app);
void register_offers_command(CLI::App& app);
void register_queue_commands(CLI::App& app);
void register_deploy_commands(CLI::App& app);
void register_gateway_command(CLI::App& app);
void register_cloud_commands(CLI::App& app);  // `cloud` and `cost`
void register_ssh_commands(CLI::App& app);    // `node add` and `node remove`, after control

// Where the bundled data (traces, price catalogs) lives: $LEPTON_DATA_DIR, else `data/` next to
// or above the binary, else the source tree's `data/`.
std::string data_dir();
// The bundled Alibaba v2023 trace folder.
std::string default_trace_dir();

// "42..51" or "42,43,50" or "7".
Result<std::vector<uint64_t>> parse_seeds(const std::string& text);

// Prints "lepton: MESSAGE" on stderr and ends the command with `exit_code` (2: bad input such as
// flags, specs or unknown ids; 1: anything else). For use inside subcommand callbacks.
[[noreturn]] void fail(const std::string& message, int exit_code = 1);
// The same for a Status: invalid_argument exits 2, other errors 1.
[[noreturn]] void fail(const Status& status);

// Draws a progress bar on stderr when it is a terminal; a no-op otherwise.
void progress_bar(const std::string& label, size_t done, size_t total);

}  // namespace lepton::cli
