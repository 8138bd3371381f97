// Private to the executor: the task state files and /proc (executor_procs.cpp) and the task
// cgroups (executor_cgroup.cpp) that starting, polling and terminating tasks (executor.cpp) use.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::agent::internal {

inline constexpr std::chrono::milliseconds kPollInterval{5};

// ---- state files and /proc (executor_procs.cpp) ----

std::string errno_text(int err);
std::string join(const std::string& dir, const char* name);
// The whole content of a small file, or nullopt when it cannot be read (missing).
std::optional<std::string> read_file(const std::string& path);
Status write_all(int fd, std::string_view data, const std::string& path);
// Writes `path` through a temporary file and rename(), so readers see all of it or nothing.
Status write_file_atomic(const std::string& path, const std::string& tmp, std::string_view data);
std::optional<int> parse_int(std::string_view s);
std::optional<int> read_exit_code(const std::string& dir);
std::optional<uint64_t> parse_u64(std::string_view s);

// What the agent needs from /proc/PID/stat.
struct ProcStat {
  char state = 0;
  uint64_t ppid = 0;
  uint64_t pgrp = 0;
  uint64_t start = 0;  // field 22, starttime: clock ticks after boot
};

// Parses the text of /proc/PID/stat without allocating, so the forked child may use it too.
bool parse_proc_stat(const char* s, size_t n, ProcStat* out);
// Reads and parses a /proc/.../stat file with open() and read() only (async-signal-safe).
bool read_proc_stat(const char* path, ProcStat* out);
bool read_proc_stat(pid_t pid, ProcStat* out);
bool live_state(char state);

// The wrapper as recorded in dir/pid.
struct PidRecord {
  pid_t pid = 0;
  uint64_t start = 0;
};

// dir/pid, when it holds a pid and a start time (see executor_procs.cpp for what is refused).
std::optional<PidRecord> read_pid_record(const std::string& dir);
// Whether the recorded wrapper is alive and is the wrapper of this task.
bool wrapper_alive(const PidRecord& rec, const std::string& dir);
// Reaps the wrapper when it is this process's child; ECHILD otherwise, which is fine.
void reap_leader(pid_t pid);

struct ProcEntry {
  pid_t pid;
  ProcStat stat;
};

// Every process that is not a zombie.
std::vector<ProcEntry> live_processes();
// Whether the process group has a process that is not a zombie.
bool group_alive(pid_t pgid);
// The live descendants of `root` through parent links.
std::vector<pid_t> descendants(pid_t root);

// ---- cgroup v2 (executor_cgroup.cpp) ----

// -1: not looked at yet; 0: no task cgroups; 1: task cgroups.
extern std::atomic<int> g_cgroups;

// The mount point of the cgroup v2 hierarchy, from /proc/self/mounts; empty when none.
std::string cgroup2_mount();
// This process's cgroup v2 path ("0::" line of /proc/self/cgroup), e.g. "/" or "/agent.slice".
std::optional<std::string> own_cgroup();
// DIR's canonical absolute path (symlinks resolved).
std::string canonical_dir(const std::string& dir);
// The leaf name of the task's cgroup.
std::string cgroup_leaf(const std::string& dir);
// The task's cgroup from dir/cgroup, when it names this task's cgroup; empty otherwise.
std::string recorded_cgroup(const std::string& dir);
// The pids in the cgroup; empty when it has none or no longer exists.
std::vector<pid_t> cgroup_pids(const std::string& cgroup);
// Whether the cgroup holds a live process.
bool cgroup_populated(const std::string& cgroup);
// Removes the (empty) cgroup, retrying while it is busy.
void remove_cgroup(const std::string& cgroup);
// Creates the cgroup a new task in `dir` will join; empty when tasks get no cgroup here.
std::string make_task_cgroup(const std::string& dir);

}  // namespace lepton::agent::internal
