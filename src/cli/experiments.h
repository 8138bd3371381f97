// The experiment and benchmark drivers of the `lepton` binary: `lepton sim` (replays of public
// cluster traces through the scheduler, the cost replay) and `lepton bench` (the scheduler,
// the API, many agents). A target of its own (lepton_cli_experiments) beside the product's
// command line, which main.cpp adds them to.
#pragma once

#include <CLI/CLI.hpp>

namespace lepton::cli {

// `sim` and `bench`.
void register_experiment_commands(CLI::App& app);

void register_sim_commands(CLI::App& app);
void register_sim_cost_command(CLI::App& sim);  // `sim cost`, from register_sim_commands
void register_bench_commands(CLI::App& app);
void add_bench_agents_command(CLI::App& bench);  // `lepton bench agents` (bench_agents.cpp)

}  // namespace lepton::cli
