// Readers for Alibaba's cluster-trace-gpu-v2023 ("openb") CSV files: the node list
// (sn, cpu_milli, memory_mib, gpu, model) and the pod lists (name, cpu_milli, memory_mib, num_gpu,
// gpu_milli, gpu_spec, qos, pod_phase, creation_time, deletion_time, scheduled_time).
//
// Columns are found by their header names, so extra columns and other orders are accepted. Every
// malformed row is reported as "FILE:LINE:COLUMN: field 'NAME': expected ..., got '...'".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/resources.h"
#include "core/status.h"
#include "sched/cluster_state.h"

namespace lepton::sim {

struct TracePod {
  std::string name;
  Resources res;                      // gpu_milli is per GPU; 0 when num_gpu is 0
  std::vector<std::string> gpu_spec;  // allowed GPU models; empty means any
  std::string qos;
  std::string phase;
  int64_t creation_time = 0;  // seconds
  std::optional<int64_t> deletion_time;
  std::optional<int64_t> scheduled_time;
};

// `file` is used only in error messages.
Result<std::vector<sched::NodeSpec>> parse_alibaba_nodes(std::string_view content,
                                                         std::string_view file);
Result<std::vector<TracePod>> parse_alibaba_pods(std::string_view content, std::string_view file);

Result<std::vector<sched::NodeSpec>> read_alibaba_nodes(const std::string& path);
Result<std::vector<TracePod>> read_alibaba_pods(const std::string& path);

}  // namespace lepton::sim
