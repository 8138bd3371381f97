// Resource quantities. CPU is in milli-cores, memory in MiB, GPUs in milli-GPUs per device:
// a request for 0.25 GPU is {gpu_count = 1, gpu_milli = 250}; a request for 8 whole GPUs is
// {gpu_count = 8, gpu_milli = 1000}. Each requested device must be a distinct physical GPU.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace lepton {

inline constexpr int32_t kMilliPerGpu = 1000;

struct Resources {
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int32_t gpu_count = 0;  // distinct GPUs requested
  int32_t gpu_milli = 0;  // share of each requested GPU, 1..1000; 0 when gpu_count is 0

  // Total GPU capacity requested, in milli-GPUs.
  int64_t total_gpu_milli() const { return int64_t{gpu_count} * gpu_milli; }
  bool fractional() const { return gpu_count == 1 && gpu_milli < kMilliPerGpu; }
  bool operator==(const Resources&) const = default;

  // Checks the invariants above; names the offending field.
  Status validate() const;
  // "cpu=4000m mem=16384Mi gpu=1x250m"
  std::string to_string() const;
};

// Parses a GPU amount as users write it: "0.25", "1", "8". Fractions are allowed only below one
// GPU and must be a whole number of milli-GPUs.
Result<Resources> parse_gpu_amount(std::string_view text);

}  // namespace lepton
