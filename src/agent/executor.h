// Runs task processes that outlive the agent. Each task owns a directory; everything needed to
// find the task again is kept there, so an agent that restarts re-adopts its tasks from their
// directories alone:
//
//   script.sh   the task's script, run with /bin/sh
//   pid         the pid of the wrapper shell, which leads the task's session and process group
//   log         the task's stdout and stderr (appended)
//   exit_code   the script's exit status (128+N when signal N killed it), written by the
//               wrapper shell itself, so it is recorded even while no agent runs
//
// The wrapper runs the script as a child and writes exit_code when it ends; it survives the
// SIGTERM sent to the group so it can record how the script ended. The process-group id is the
// wrapper's pid, which is what `pid` holds.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"

namespace lepton::agent {

struct TaskLaunch {
  std::string dir;     // the task's directory; created when missing; must not hold a started task
  std::string script;  // shell script, run with /bin/sh in `dir`
  // Set over a clean base environment of the agent's PATH, HOME, USER and LANG.
  std::map<std::string, std::string> env;
};

// Starts the task in its own session and process group, with stdin from /dev/null and
// stdout/stderr appended to dir/log. Returns the pid of the wrapper (= the process-group id),
// which is also in dir/pid by the time this returns.
Result<int> start_task(const TaskLaunch& launch);

struct TaskStatus {
  enum State {
    kRunning,  // the task's process group has live processes and no exit code yet
    kExited,   // exit_code is recorded; processes the script left in the background may remain
    kGone,     // no exit code and no live process: killed with the wrapper (SIGKILL) or never ran
  };
  State state = kGone;
  int exit_code = -1;  // valid when kExited
};

// The state of the task in `dir`, from the directory and the process table alone.
TaskStatus poll_task(const std::string& dir);

// SIGTERM to the task's whole process group; after `grace`, SIGKILL to what is left. Returns once
// no live process of the group remains (bounded: an error when SIGKILL did not take effect within
// a few seconds). When the group had to be killed and no exit code was recorded, records 137
// (128+SIGKILL). Also cleans up processes an exited script left behind; a no-op for a task whose
// processes are all gone.
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

}  // namespace lepton::agent
