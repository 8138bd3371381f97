#include "cli/cli.h"

int main(int argc, char** argv) { return lepton::cli::run(argc, argv); }
