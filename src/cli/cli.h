// The `lepton` command line: subcommands and their flags. Each group of subcommands lives in its
// own file and adds itself to the app through a register_* function called from run(). The
// experiment and benchmark drivers (`sim`, `bench`) are a target of their own (experiments.h),
// added by main.cpp, as RocksDB keeps db_bench beside ldb.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace lepton::cli {

using Register = void (*)(CLI::App& app);
// Parses the command line and runs the chosen subcommand: the product's commands, then `more`.
int run(int argc, char** argv, std::span<const Register> more = {});

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
