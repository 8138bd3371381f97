// agent_gpu_probe [LIBRARY]: prints the GPUs NVML finds, one JSON object a line, or one line
// {"error": ..., "code": ...} and exit status 2 when NVML is unavailable (1 for other errors).
// LIBRARY replaces libnvidia-ml.so.1.
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "agent/gpu_discovery.h"

int main(int argc, char** argv) try {
  using lepton::agent::discover_nvml_gpus;
  auto gpus = argc > 1 ? discover_nvml_gpus(argv[1]) : discover_nvml_gpus();
  if (!gpus.is_ok()) {
    nlohmann::json err = {{"error", gpus.status().message()},
                          {"code", lepton::status_code_name(gpus.status().code())}};
    std::printf("%s\n", err.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return gpus.status().code() == lepton::StatusCode::kUnavailable ? 2 : 1;
  }
  for (const lepton::agent::GpuDevice& g : *gpus) {
    nlohmann::json line = {{"index", g.index},
                           {"model", g.model},
                           {"uuid", g.uuid},
                           {"memory_mib", g.memory_mib},
                           {"product_name", g.product_name}};
    // Invalid UTF-8 from a driver is replaced rather than thrown.
    std::printf("%s\n",
                line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  std::fprintf(stderr, "agent_gpu_probe: %zu GPU(s)\n", gpus->size());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "agent_gpu_probe: %s\n", e.what());
  return 1;
}
