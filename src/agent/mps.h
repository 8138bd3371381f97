// NVIDIA MPS (Multi-Process Service) for fractional GPUs. With an MPS control daemon running,
// CUDA processes that name its pipe directory share GPUs through it, and the daemon enforces
// each client's CUDA_MPS_PINNED_DEVICE_MEM_LIMIT (device memory) and
// CUDA_MPS_ACTIVE_THREAD_PERCENTAGE (SMs). The agent runs one daemon per node with its own pipe
// directory, so only the fractional tasks it points there use MPS; whole-GPU tasks do not.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"

namespace lepton::agent {

struct MpsDaemon {
  std::string binary;    // the nvidia-cuda-mps-control that started it
  std::string pipe_dir;  // CUDA_MPS_PIPE_DIRECTORY
  std::string log_dir;   // CUDA_MPS_LOG_DIRECTORY
};

// Starts `binary -d` (it daemonizes and returns) with pipe and log directories under `dir`.
// Fails with a clear message when the binary cannot be run or exits non-zero.
Result<MpsDaemon> start_mps(const std::string& dir,
                            const std::string& binary = "nvidia-cuda-mps-control");

// Asks the daemon to quit (`quit` on the control's stdin); running clients keep running.
Status stop_mps(const MpsDaemon& mps);

// The environment of a task that uses `fraction` (0 < fraction < 1) of one GPU with
// `gpu_memory_mib` of memory (0: unknown): LEPTON_GPU_MEMORY_MIB, and, when `mps` is running,
// its pipe and log directories and the per-client memory and SM limits. The task sees its GPU as
// device 0 (CUDA_VISIBLE_DEVICES names one GPU), so the memory limit is "0=<MiB>M".
std::map<std::string, std::string> fractional_gpu_env(double fraction, int64_t gpu_memory_mib,
                                                      const MpsDaemon* mps);

}  // namespace lepton::agent
