// Runs task processes that outlive the agent. Each task owns a directory DIR; everything needed
// to find the task again is kept there, so an agent that restarts re-adopts its tasks from their
// directories alone:
//
//   script.sh   the task's script, run with /bin/sh
//   work/       the task's working directory (its cwd); the records below stay out of it
//   pid         "PID\nSTART\n": the wrapper shell's pid (it leads the task's session and process
//               group) and its start time (field 22 of /proc/PID/stat), so that a reused or
//               forged pid is not mistaken for the task
//   cgroup      the path of the task's cgroup v2, when it has one (see below)
//   log         the task's stdout and stderr (appended)
//   exit_code   the script's exit status (128+N when signal N killed it), written by the
//               wrapper shell itself as its last act, so it is recorded even while no agent runs
//
// The wrapper runs the script as a child and writes exit_code when it ends; it survives the
// SIGTERM sent to the task so it can record how the script ended.
//
// Tasks run as the agent's user for now, so a task can write these records: none is trusted
// blindly. The pid is used only while the process it names is the task's wrapper (same start
// time, same command line); exit_code is read only once no process of the task is left (a task
// cannot declare itself finished while it runs); the cgroup record must name this task's own
// cgroup (its leaf name is derived from DIR).
//
// Where a writable cgroup v2 hierarchy exists, each task runs in a cgroup of its own,
// CGROUP2_MOUNT/AGENT_CGROUP/lepton-tasks/NAME-HASH (NAME: DIR's base name, HASH: of DIR's
// canonical path, so that tasks of agents with different work dirs never share one). The
// forked child joins it before execve(), so every process of the task, including those that
// leave the process group or session (setsid), is in it: running means the cgroup is populated
// and stopping kills the whole cgroup. Without cgroups the agent falls back to the process group
// and the wrapper's descendants (see terminate_task for what that cannot catch).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"

namespace lepton::agent {

struct TaskLaunch {
  std::string dir;     // the task's directory; created when missing; must not hold a started task
  std::string script;  // shell script, run with /bin/sh in `dir`/work
  // Set over a clean base environment of the agent's PATH, HOME, USER and LANG.
  std::map<std::string, std::string> env;
};

// Starts the task in its own session, process group and (where available) cgroup, in dir/work,
// with stdin from /dev/null and stdout/stderr appended to dir/log. Returns the pid of the wrapper
// (= the process-group id), which is also in dir/pid by the time this returns.
Result<int> start_task(const TaskLaunch& launch);

struct TaskStatus {
  enum State {
    kRunning,  // the task has a live process (whatever exit_code says)
    kExited,   // no live process is left and exit_code is recorded
    kGone,     // no exit code and no live process: killed with the wrapper (SIGKILL) or never ran
  };
  State state = kGone;
  int exit_code = -1;  // valid when kExited
  // kRunning only: the script and its wrapper have ended (exit_code is written) but processes it
  // left behind still run (only seen with a cgroup). The task is over; terminate_task ends them.
  bool leftovers = false;
};

// The state of the task in `dir`, from the directory, its cgroup and the process table alone.
TaskStatus poll_task(const std::string& dir);

// SIGTERM to every process of the task; after `grace`, SIGKILL to what is left. Returns once no
// live process of the task remains (bounded: an error when SIGKILL did not take effect within a
// few seconds), and removes the task's cgroup. When the wrapper itself had to be killed, records
// 137 (128+SIGKILL) as the exit code (over whatever the task wrote there). Also cleans up
// processes an exited script left behind; a no-op for a task whose processes are all gone.
//
// With a cgroup, "every process" is every process in it. Without one (the fallback), it is the
// wrapper's process group while the wrapper is verifiably alive (same start time and command
// line as recorded) and the wrapper's descendants found through /proc parent links. The fallback
// cannot catch a process that left the group (setsid) and whose parent chain to the wrapper is
// broken (its parent exited, so it was reparented to the agent or to init), nor anything left
// behind once the wrapper has ended: the group is not trusted without its leader, because the
// pid file could name any group.
Status terminate_task(const std::string& dir, std::chrono::milliseconds grace);

// Up to `max_bytes` of dir/log from byte `offset`; empty at or past the end.
Result<std::string> read_log(const std::string& dir, int64_t offset, size_t max_bytes);

// Reaps every exited child of this process (waitpid(-1, WNOHANG)); returns how many. The agent
// calls it periodically: task wrappers are its children, and so are orphaned task processes
// when it is a subreaper.
int reap_children();

// Makes this process the reaper of orphaned descendants (PR_SET_CHILD_SUBREAPER), so processes a
// task leaves behind are reparented to the agent rather than to init, which in containers may
// never reap them. Pair with reap_children().
Status become_subreaper();

// Whether new tasks get a cgroup: a writable cgroup v2 hierarchy was found (and joining it has not
// failed). Tasks already started keep what they were started with.
bool task_cgroups_available();
// With false, later tasks start without a cgroup, as on a machine without a writable cgroup v2
// (for tests of the fallback); with true, cgroup v2 is looked for again.
void use_task_cgroups(bool enabled);

}  // namespace lepton::agent
