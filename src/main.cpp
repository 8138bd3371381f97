#include "cli/cli.h"
#include "cli/experiments.h"

int main(int argc, char** argv) {
  const lepton::cli::Register experiments[] = {&lepton::cli::register_experiment_commands};
  return lepton::cli::run(argc, argv, experiments);
}
