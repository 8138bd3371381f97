// Reading the simulator's input files (CSV traces and curves, parsed with core/csv.h).
#pragma once

#include <string>

#include "core/status.h"

namespace lepton::sim {

// Reads a whole file; the error names the path.
Result<std::string> read_file(const std::string& path);

}  // namespace lepton::sim
