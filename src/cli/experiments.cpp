#include "cli/experiments.h"

namespace lepton::cli {

void register_experiment_commands(CLI::App& app) {
  register_sim_commands(app);
  register_bench_commands(app);
}

}  // namespace lepton::cli
