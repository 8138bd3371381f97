// The agent protocol's typed messages and their one codec, used by both ends: the agent
// (server/agent_daemon, the simulated agents of `lepton bench agents`) encodes registrations and
// heartbeats and decodes the replies; the server decodes the former and encodes the latter.
//
//   POST /api/v1/agents/register          AgentRegistration -> RegistrationReply
//   POST /api/v1/agents/{name}/heartbeat  Heartbeat         -> HeartbeatReply
//
// Every message is a JSON object. Decoding reads the whole message before returning, so a bad one
// changes nothing; errors name the field ("tasks.state: expected RUNNING, EXITED, GONE or FENCED,
// got 'DANCING'"). Unknown fields are ignored (an older agent talks to a newer server). A task is
// named by (job_id, rank, attempt); a job id is 1-128 characters of [A-Za-z0-9._-], not starting
// with '.', so an agent can use it in a directory name.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::spec {

// Messages larger than this are refused before parsing (a heartbeat ships at most 1 MiB of log).
inline constexpr size_t kMaxAgentMessageBytes = size_t{8} << 20;

struct TaskRef {
  std::string job_id;
  int rank = 0;
  int attempt = 0;
  auto operator<=>(const TaskRef&) const = default;
};

// True when `job_id` may name a task (see above).
bool is_valid_job_id(std::string_view job_id);

struct AgentRegistration {
  std::string name;  // 1 to 253 characters
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int gpu_count = 0;
  std::string gpu_model;
  std::string address;  // empty: as the server sees the agent
};

// How often to heartbeat (0 in a decoded reply: it did not say), and the lease: a node the server
// has not heard from for lease_ms may have its tasks started elsewhere, so the agent stops them
// itself by then (0: no lease).
struct AgentTiming {
  int64_t heartbeat_ms = 0;
  int64_t lease_ms = 0;
};

struct RegistrationReply {
  std::string name;
  AgentTiming timing;
};

struct TaskReport {
  enum class State { kRunning, kExited, kGone, kFenced };
  TaskRef task;
  State state = State::kRunning;
  int exit_code = -1;    // kExited, kFenced
  int64_t log_size = 0;  // bytes of output the task has written
};

std::string_view task_report_state_name(TaskReport::State state);  // "RUNNING", ...

struct LogChunk {
  TaskRef task;
  int64_t offset = 0;
  std::string data;
};

struct Heartbeat {
  std::vector<TaskReport> tasks;
  std::vector<LogChunk> logs;
};

struct TaskStart {
  TaskRef task;
  std::string script;
  std::map<std::string, std::string> env;
};

struct TaskStop {
  TaskRef task;
  std::optional<int64_t> grace_ms;  // the server's grace period (a preemption); else the agent's
  bool notice = false;              // the node is going away: tell the task before SIGTERM
};

struct LogOffset {
  TaskRef task;
  int64_t offset = 0;  // where the next chunk of this task's output starts
};

struct HeartbeatReply {
  AgentTiming timing;
  std::vector<TaskStart> start;
  std::vector<TaskStop> stop;
  std::vector<LogOffset> log_offsets;
};

std::string encode(const AgentRegistration& message);
std::string encode(const RegistrationReply& message);
std::string encode(const Heartbeat& message);
std::string encode(const HeartbeatReply& message);

Result<AgentRegistration> decode_agent_registration(std::string_view text);
Result<RegistrationReply> decode_registration_reply(std::string_view text);
Result<Heartbeat> decode_heartbeat(std::string_view text);
Result<HeartbeatReply> decode_heartbeat_reply(std::string_view text);

}  // namespace lepton::spec
