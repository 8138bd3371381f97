// The node agent process (`lepton agent`, and the embedded agent of `lepton up`): registers the
// node with the server, then heartbeats. Each heartbeat reports the state of this node's tasks
// and ships new log bytes; the reply says which tasks to start and stop. Tasks run under
// agent/executor, in directories under WORK_DIR/tasks, so they outlive an agent restart and are
// re-adopted by the next agent (and by a restarted server, which learns them from heartbeats).
//
// Self-fencing: when the server's register and heartbeat replies carry "lease_ms", the agent
// stops every task it runs once it has had no answered (HTTP 200) heartbeat for that long,
// counted from when it sent the last one that was answered; its requests time out by then, so a
// hung request cannot delay it. A fenced task gets SIGTERM, at most min(stop_grace, 2 s), then
// SIGKILL, a line in its log and one on stderr, and is reported "FENCED" (with its exit_code) once
// none of its processes is left, until the server says stop. The lease and the last contact are
// kept in WORK_DIR/lease, so an agent restarted while the server is unreachable fences the tasks
// it adopts too. No lease_ms: no fencing.
//
// Threads: one loop thread; stopping a task (which may wait out a grace period) runs on a
// short-lived thread of its own. Nothing thrown in the loop (a malformed reply) ends it: it is
// reported once and the next heartbeat goes on.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace lepton::agent {

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

}  // namespace lepton::agent
