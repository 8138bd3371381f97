// The node agent process (`lepton agent`, and the embedded agent of `lepton up`): registers the
// node with the server, then heartbeats. Each heartbeat reports the state of this node's tasks
// and ships new log bytes; the reply says which tasks to start and stop. Tasks run under
// agent/executor, in directories under WORK_DIR/tasks, so they outlive an agent restart and are
// re-adopted by the next agent (and by a restarted server, which learns them from heartbeats).
//
// Threads: one loop thread; stopping a task (which may wait out a grace period) runs on a
// short-lived thread of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace lepton::server {

struct AgentOptions {
  std::string server_url;  // http://HOST:PORT
  std::string token;
  std::string name;        // unique node name
  std::string gpus;        // declared "MODEL:COUNT", "none", or empty for NVML discovery
  std::string work_dir;    // task directories and checkpoints
  int64_t cpu_milli = 0;   // 0: this machine's
  int64_t memory_mib = 0;  // 0: this machine's
  std::string address;     // how other nodes reach this one; empty: as the server sees it
  std::chrono::milliseconds stop_grace{10000};
  // Run an NVIDIA MPS daemon so fractional-GPU tasks are held to their memory and SM share.
  bool mps = false;
};

class AgentDaemon {
 public:
  // Discovers GPUs (errors are returned here, before any thread starts) and starts the loop.
  static Result<std::unique_ptr<AgentDaemon>> start(AgentOptions options);
  virtual ~AgentDaemon() = default;
  virtual void stop() = 0;  // idempotent; leaves tasks running
};

}  // namespace lepton::server
