// The GPUs of the node an agent runs on: declared by the operator (--gpus A100-80GB:8) or
// discovered through NVML, which is loaded at run time so that the agent builds and runs on
// machines without an NVIDIA driver.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::agent {

struct GpuDevice {
  int index = 0;           // 0-based, as CUDA_VISIBLE_DEVICES counts them
  std::string model;       // canonical model, see canonical_gpu_model()
  std::string uuid;        // "GPU-..." from NVML; empty for declared GPUs
  int64_t memory_mib = 0;  // device memory; for declared GPUs the model's nominal size, or 0
  // The name NVML reports, e.g. "NVIDIA A100-SXM4-80GB"; empty for declared GPUs.
  std::string product_name;

  bool operator==(const GpuDevice&) const = default;
};

// Parses the --gpus flag: "MODEL:COUNT" such as "A100-80GB:8" gives COUNT devices of that model;
// "" and "none" give no devices. A node carries one model, so lists such as "T4:2,A10:1" are
// rejected. Errors name the flag and what was expected.
Result<std::vector<GpuDevice>> parse_declared_gpus(std::string_view spec);

// Maps a name as NVML reports it ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "Tesla T4")
// to a canonical model ("A100-80GB", "H100", "T4"). `memory_mib` (0 when unknown) tells apart
// variants of one product whose name may not carry the size (A100 40/80 GB, V100 16/32 GB).
// Unknown products keep their name without the vendor prefix, spaces turned into dashes
// ("NVIDIA GeForce RTX 4090" -> "GeForce-RTX-4090").
std::string model_from_nvml_name(std::string_view nvml_name, int64_t memory_mib = 0);

inline constexpr std::string_view kNvmlLibrary = "libnvidia-ml.so.1";

// Lists the GPUs NVML sees. Without the NVML library (no NVIDIA driver) this is a kUnavailable
// error; so is a driver that is installed but does not answer. `library` is the file to dlopen,
// replaceable for tests.
Result<std::vector<GpuDevice>> discover_nvml_gpus(std::string_view library = kNvmlLibrary);

// The node's GPUs: the declared ones when `declared` is not empty, else those NVML finds, else
// none (a CPU-only node; NVML errors other than a missing library are returned).
Result<std::vector<GpuDevice>> node_gpus(std::string_view declared);

}  // namespace lepton::agent
