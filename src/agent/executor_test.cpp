#include "agent/executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string_view>
#include <thread>

namespace lepton::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Polls `done` every few milliseconds until it holds or `limit` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = Clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

// The file's content; what was read before an error (a /proc file of a process that just exited
// fails with ESRCH, which std::ifstream would turn into an exception).
std::string slurp(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// The processes of group `pgid` that are not zombies; only those running `comm` when given.
int live_members(pid_t pgid, std::string_view comm = {}) {
  int n = 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    std::string stat = slurp(std::string("/proc/") + e->d_name + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size()) continue;
    long ppid = 0;
    long pgrp = 0;
    if (std::sscanf(stat.c_str() + paren + 3, "%ld %ld", &ppid, &pgrp) != 2) continue;
    size_t open = stat.find('(');
    if (!comm.empty() && stat.substr(open + 1, paren - open - 1) != comm) continue;
    if (pgrp == pgid && stat[paren + 2] != 'Z') ++n;
  }
  closedir(proc);
  return n;
}

// The group is gone in the strict sense: kill() finds no process, zombies included.
bool group_gone(pid_t pgid) {
  reap_children();
  return kill(-pgid, 0) == -1 && errno == ESRCH;
}

class AgentExecutor : public ::testing::Test {
 protected:
  void SetUp() override {
    // Orphaned task processes come to this process, which reaps them; init in a container may not.
    ASSERT_TRUE(become_subreaper().is_ok());
    char tmpl[] = "/tmp/lepton-agent-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& dir : dirs_) (void)terminate_task(dir, 0ms);
    reap_children();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  std::string task_dir(const std::string& name) {
    dirs_.push_back(root_ + "/" + name);
    return dirs_.back();
  }

  int start(const std::string& dir, const std::string& script,
            std::map<std::string, std::string> env = {}) {
    auto r = start_task({dir, script, std::move(env)});
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? *r : -1;
  }

  TaskStatus wait_done(const std::string& dir) {
    TaskStatus st;
    eventually([&] {
      st = poll_task(dir);
      return st.state != TaskStatus::kRunning;
    });
    return st;
  }

  bool wait_log(const std::string& dir, const std::string& text) {
    return eventually([&] { return slurp(dir + "/log").find(text) != std::string::npos; });
  }

  std::string root_;
  std::vector<std::string> dirs_;
};

TEST_F(AgentExecutor, ScriptSeesItsEnvironmentOnly) {
  setenv("LEPTON_AGENT_SECRET", "leak", 1);
  std::string dir = task_dir("env");
  int pid = start(dir,
                  "echo \"cvd=$CUDA_VISIBLE_DEVICES\"\n"
                  "echo \"secret=[$LEPTON_AGENT_SECRET]\"\n"
                  "echo \"path=$PATH\"\n"
                  "echo \"pwd=$(pwd)\"\n"
                  "echo \"stdin=$(readlink /proc/$$/fd/0)\"\n",
                  {{"CUDA_VISIBLE_DEVICES", "0,1"}, {"PATH", "/usr/bin:/bin"}});
  unsetenv("LEPTON_AGENT_SECRET");
  ASSERT_GT(pid, 1);
  // The pid and, on the next line, the wrapper's start time.
  EXPECT_EQ(slurp(dir + "/pid").substr(0, std::to_string(pid).size() + 1),
            std::to_string(pid) + "\n");
  TaskStatus st = wait_done(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 0);
  std::string log = slurp(dir + "/log");
  EXPECT_NE(log.find("cvd=0,1\n"), std::string::npos) << log;
  EXPECT_NE(log.find("secret=[]\n"), std::string::npos) << log;
  EXPECT_NE(log.find("path=/usr/bin:/bin\n"), std::string::npos) << log;
  // Beside the agent's records, not among them.
  EXPECT_NE(log.find("pwd=" + dir + "/work\n"), std::string::npos) << log;
  EXPECT_NE(log.find("stdin=/dev/null\n"), std::string::npos) << log;
  EXPECT_EQ(slurp(dir + "/script.sh").substr(0, 4), "echo");
}

TEST_F(AgentExecutor, RecordsExitCodeAndBothStreams) {
  std::string dir = task_dir("exit3");
  start(dir, "echo to-stdout\necho to-stderr >&2\nexit 3\n");
  TaskStatus st = wait_done(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 3);
  EXPECT_EQ(slurp(dir + "/exit_code"), "3\n");
  EXPECT_EQ(slurp(dir + "/log"), "to-stdout\nto-stderr\n");
  // Terminating a finished task changes nothing.
  EXPECT_TRUE(terminate_task(dir, 100ms).is_ok());
  EXPECT_EQ(poll_task(dir).exit_code, 3);
}

TEST_F(AgentExecutor, TerminateKillsTheWholeProcessTree) {
  std::string dir = task_dir("tree");
  int pid = start(dir, "sleep 1000 &\nsleep 1000 &\necho started\nsleep 1000\n");
  ASSERT_TRUE(wait_log(dir, "started"));
  // Three sleeps, each past its exec (a forked child holds the script's traps until then), the
  // wrapper and the script shell.
  ASSERT_TRUE(eventually([&] { return live_members(pid, "sleep") == 3; }));
  EXPECT_EQ(live_members(pid), 5);
  EXPECT_EQ(getsid(pid), pid);
  EXPECT_EQ(getpgid(pid), pid);
  EXPECT_EQ(poll_task(dir).state, TaskStatus::kRunning);
  auto t0 = Clock::now();
  Status s = terminate_task(dir, 3000ms);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_LT(Clock::now() - t0, 2500ms);  // SIGTERM was enough
  EXPECT_EQ(live_members(pid), 0);
  EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
  TaskStatus st = poll_task(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 128 + SIGTERM);  // recorded by the wrapper shell
}

TEST_F(AgentExecutor, TerminateEscalatesToSigkill) {
  std::string dir = task_dir("stubborn");
  int pid = start(dir, "trap '' TERM\nsleep 1000\n");
  ASSERT_TRUE(eventually([&] { return live_members(pid, "sleep") == 1; }));
  auto t0 = Clock::now();
  Status s = terminate_task(dir, 200ms);
  ASSERT_TRUE(s.is_ok()) << s.message();
  auto took = Clock::now() - t0;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 3000ms);
  EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
  TaskStatus st = poll_task(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 128 + SIGKILL);  // recorded by terminate_task
}

TEST_F(AgentExecutor, TaskThatTrapsTermRecordsItsOwnExitCode) {
  std::string dir = task_dir("trap");
  int pid = start(dir, "trap 'echo got-term; exit 0' TERM\nsleep 1000 &\nwait\n");
  ASSERT_TRUE(eventually([&] { return live_members(pid, "sleep") == 1; }));
  auto t0 = Clock::now();
  Status s = terminate_task(dir, 3000ms);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_LT(Clock::now() - t0, 2500ms);
  TaskStatus st = poll_task(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 0);
  EXPECT_NE(slurp(dir + "/log").find("got-term"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
}

TEST_F(AgentExecutor, ReadoptsARunningTaskFromItsDirectory) {
  std::string dir = task_dir("readopt");
  {
    auto r = start_task({dir, "echo ready\nwhile [ ! -e go ]; do sleep 0.02; done\nexit 7\n", {}});
    ASSERT_TRUE(r.is_ok()) << r.status().message();
  }  // The pid is forgotten, as after an agent restart: only the directory is left.
  ASSERT_TRUE(wait_log(dir, "ready"));
  const std::string again = root_ + "/readopt";
  EXPECT_EQ(poll_task(again).state, TaskStatus::kRunning);
  std::ofstream(again + "/work/go").put('\n');
  TaskStatus st = wait_done(again);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 7);
}

int thread_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

TEST_F(AgentExecutor, TaskOutlivesTheAgentThatStartedIt) {
  // Calling start_task in a forked child is only safe while this process has one thread.
  if (thread_count() != 1) GTEST_SKIP() << "test process has " << thread_count() << " threads";
  std::string dir = task_dir("outlive");
  pid_t agent = fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {
    auto r = start_task({dir, "echo ready\nwhile [ ! -e go ]; do sleep 0.02; done\nexit 9\n", {}});
    _exit(r.is_ok() ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(waitpid(agent, &st, 0), agent);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  // The agent is gone; the task runs on and a new agent (this process) finds it.
  ASSERT_TRUE(wait_log(dir, "ready"));
  EXPECT_EQ(poll_task(dir).state, TaskStatus::kRunning);
  std::ofstream(dir + "/work/go").put('\n');
  TaskStatus done = wait_done(dir);
  EXPECT_EQ(done.state, TaskStatus::kExited);
  EXPECT_EQ(done.exit_code, 9);
}

TEST_F(AgentExecutor, GoneWhenTheWholeGroupIsKilledFromOutside) {
  std::string dir = task_dir("killed");
  int pid = start(dir, "echo ready\nsleep 1000\n");
  ASSERT_TRUE(wait_log(dir, "ready"));
  ASSERT_EQ(kill(-pid, SIGKILL), 0);
  TaskStatus st = wait_done(dir);
  EXPECT_EQ(st.state, TaskStatus::kGone);
  EXPECT_FALSE(exists(dir + "/exit_code"));
  EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
}

TEST_F(AgentExecutor, TerminateCleansUpWhatAnExitedScriptLeftBehind) {
  std::string dir = task_dir("straggler");
  int pid = start(dir, "sleep 1000 &\necho bg\nexit 0\n");
  if (task_cgroups_available()) {
    // The task is not over while a process of it runs: it could still write exit_code. But
    // poll_task says the script has ended, so the agent can end the rest.
    ASSERT_TRUE(eventually([&] { return poll_task(dir).leftovers; }));
    EXPECT_EQ(poll_task(dir).state, TaskStatus::kRunning);
  } else {
    // Without a cgroup, what the script leaves behind is not seen once the wrapper has ended.
    EXPECT_EQ(wait_done(dir).state, TaskStatus::kExited);
  }
  // The background sleep stays (the wrapper may still be exiting when exit_code appears).
  EXPECT_TRUE(eventually([&] { return live_members(pid) == 1; })) << live_members(pid);
  EXPECT_EQ(live_members(pid, "sleep"), 1);
  ASSERT_TRUE(terminate_task(dir, 1000ms).is_ok());
  if (task_cgroups_available()) {
    EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
  } else {
    (void)kill(-pid, SIGKILL);  // the fallback leaves it (see terminate_task)
  }
  TaskStatus st = poll_task(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 0);
}

TEST_F(AgentExecutor, TaskGetsDefaultSignalsAndNoInheritedFds) {
  int null_fd = open("/dev/null", O_RDONLY);
  int leaked = fcntl(null_fd, F_DUPFD, 20);  // deliberately without O_CLOEXEC
  close(null_fd);
  ASSERT_GE(leaked, 20);
  struct sigaction ignore {};
  struct sigaction old {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGUSR1, &ignore, &old);
  std::string dir = task_dir("hygiene");
  start(dir,
        "if [ -e /proc/$$/fd/" + std::to_string(leaked) +
            " ]; then echo fd=leaked; else echo fd=closed; fi\nkill -USR1 $$\necho survived\n");
  sigaction(SIGUSR1, &old, nullptr);
  close(leaked);
  TaskStatus st = wait_done(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 128 + SIGUSR1);
  // The wrapper shell adds a line naming the signal.
  std::string log = slurp(dir + "/log");
  EXPECT_EQ(log.substr(0, 10), "fd=closed\n");
  EXPECT_EQ(log.find("survived"), std::string::npos);
}

TEST_F(AgentExecutor, RejectsBadLaunches) {
  std::string dir = task_dir("twice");
  start(dir, "exit 0\n");
  auto again = start_task({dir, "exit 0\n", {}});
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  wait_done(dir);
  EXPECT_EQ(start_task({dir, "exit 0\n", {}}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(start_task({"", "exit 0\n", {}}).status().code(), StatusCode::kInvalidArgument);
  auto bad_env = start_task({task_dir("env"), "exit 0\n", {{"A=B", "1"}}});
  EXPECT_EQ(bad_env.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(terminate_task(root_ + "/never-started", 10ms).code(), StatusCode::kNotFound);
  EXPECT_EQ(poll_task(root_ + "/never-started").state, TaskStatus::kGone);
}

TEST_F(AgentExecutor, ReadsLogSlices) {
  std::string dir = task_dir("log");
  EXPECT_EQ(read_log(dir, 0, 10).status().code(), StatusCode::kNotFound);
  start(dir, "printf 'hello world'\n");
  wait_done(dir);
  auto all = read_log(dir, 0, 1 << 20);
  ASSERT_TRUE(all.is_ok()) << all.status().message();
  EXPECT_EQ(*all, "hello world");
  EXPECT_EQ(*read_log(dir, 6, 3), "wor");
  EXPECT_EQ(*read_log(dir, 6, 100), "world");
  EXPECT_EQ(*read_log(dir, 11, 100), "");
  EXPECT_EQ(*read_log(dir, 1000, 100), "");
  EXPECT_EQ(read_log(dir, -1, 10).status().code(), StatusCode::kInvalidArgument);
}

// Alive and not a zombie.
bool alive(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// Field 22 of /proc/PID/stat.
std::string start_time(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  std::string rest = stat.substr(stat.rfind(')') + 2);
  for (int field = 3; field < 22; ++field) rest = rest.substr(rest.find(' ') + 1);
  return rest.substr(0, rest.find(' '));
}

// Runs the test body with task cgroups as found on this machine, then without (the fallback).
class AgentExecutorModes : public AgentExecutor, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    AgentExecutor::SetUp();
    if (GetParam() && !task_cgroups_available()) {
      GTEST_SKIP() << "no writable cgroup v2 hierarchy here (the fallback runs in the other mode)";
    }
    use_task_cgroups(GetParam());
  }
  void TearDown() override {
    AgentExecutor::TearDown();
    use_task_cgroups(true);
  }
};

INSTANTIATE_TEST_SUITE_P(Cgroups, AgentExecutorModes, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "cgroup" : "fallback";
                         });

TEST_P(AgentExecutorModes, ForgedPidFileDoesNotKillAnUnrelatedProcess) {
  // An unrelated process in a group of its own, as the task might name in its pid file.
  pid_t victim = fork();
  ASSERT_GE(victim, 0);
  if (victim == 0) {
    setpgid(0, 0);
    execl("/bin/sleep", "sleep", "1000", nullptr);
    _exit(127);
  }
  ASSERT_TRUE(eventually([&] { return getpgid(victim) == victim && start_time(victim) != ""; }));
  ASSERT_TRUE(
      eventually([&] { return slurp("/proc/" + std::to_string(victim) + "/comm") == "sleep\n"; }));
  std::string dir = task_dir("forged-pid");
  int pid = start(dir, "echo ready\nsleep 1000\n");
  ASSERT_TRUE(wait_log(dir, "ready"));
  // The victim's pid alone, then with its true start time (read from /proc as a task could).
  for (const std::string& forged :
       {std::to_string(victim) + "\n", std::to_string(victim) + "\n" + start_time(victim) + "\n"}) {
    std::ofstream(dir + "/pid") << forged;
    (void)poll_task(dir);
    Status s = terminate_task(dir, 100ms);
    EXPECT_TRUE(s.is_ok()) << s.message();
    EXPECT_TRUE(alive(victim)) << "forged pid file: " << forged;
  }
  if (GetParam()) {
    // The task itself is found through its cgroup all the same.
    EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
  } else {
    (void)kill(-pid, SIGKILL);  // without a cgroup the forged record hides it (see terminate_task)
  }
  kill(victim, SIGKILL);
  int st = 0;
  waitpid(victim, &st, 0);
}

TEST_P(AgentExecutorModes, ForgedExitCodeIsIgnoredWhileTheTaskRuns) {
  std::string dir = task_dir("forged-exit");
  // It also blocks the wrapper's temporary file, which must not keep the forged code in place.
  start(dir,
        "mkdir ../exit_code.tmp\necho 0 > ../exit_code\necho forged\n"
        "while [ ! -e go ]; do sleep 0.02; done\nexit 5\n");
  ASSERT_TRUE(wait_log(dir, "forged"));
  EXPECT_EQ(slurp(dir + "/exit_code"), "0\n");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(poll_task(dir).state, TaskStatus::kRunning);
    std::this_thread::sleep_for(20ms);
  }
  std::ofstream(dir + "/work/go").put('\n');
  TaskStatus st = wait_done(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 5);  // the real code, written over the forged one
}

TEST_P(AgentExecutorModes, ForgedExitCodeIsReplacedWhenTheTaskIsKilled) {
  std::string dir = task_dir("forged-kill");
  int pid = start(dir, "trap '' TERM\necho 0 > ../exit_code\necho forged\nsleep 1000\n");
  ASSERT_TRUE(wait_log(dir, "forged"));
  EXPECT_EQ(poll_task(dir).state, TaskStatus::kRunning);
  ASSERT_TRUE(terminate_task(dir, 100ms).is_ok());
  EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
  TaskStatus st = poll_task(dir);
  EXPECT_EQ(st.state, TaskStatus::kExited);
  EXPECT_EQ(st.exit_code, 128 + SIGKILL);
}

TEST_P(AgentExecutorModes, TamperedRecordsAreNotTrusted) {
  std::string dir = task_dir("tampered");
  int pid = start(dir, "echo ready\nsleep 1000\n");
  ASSERT_TRUE(wait_log(dir, "ready"));
  const std::string cgroup = slurp(dir + "/cgroup");
  EXPECT_EQ(!cgroup.empty(), GetParam());
  // A cgroup record naming another cgroup (here the one this test runs in, or a parent of the
  // task's) is ignored; so is garbage.
  for (const std::string& forged : {std::string("/sys/fs/cgroup\n"), std::string("\x01garbage"),
                                    cgroup.substr(0, cgroup.rfind('/')) + "/../x\n"}) {
    std::ofstream(dir + "/cgroup") << forged;
    EXPECT_NE(poll_task(dir).state, TaskStatus::kExited);
  }
  std::ofstream(dir + "/cgroup") << cgroup;
  std::ofstream(dir + "/pid") << "not a pid\n";
  if (GetParam()) {
    EXPECT_EQ(poll_task(dir).state, TaskStatus::kRunning);
  }
  ASSERT_TRUE(terminate_task(dir, 100ms).is_ok());
  if (!GetParam()) (void)kill(-pid, SIGKILL);
  EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
}

TEST_F(AgentExecutor, TerminateKillsProcessesThatLeftTheSession) {
  if (!task_cgroups_available()) {
    GTEST_SKIP() << "no writable cgroup v2 hierarchy (a cgroup2 mount in /proc/self/mounts where "
                    "this process may make cgroups): setsid'd processes escape the fallback";
  }
  std::string dir = task_dir("setsid");
  int pid = start(dir, "setsid sleep 1000 &\necho bg=$!\nsleep 1000\n");
  ASSERT_TRUE(wait_log(dir, "bg="));
  std::string log = slurp(dir + "/log");
  const pid_t bg = std::atoi(log.c_str() + log.find("bg=") + 3);
  ASSERT_GT(bg, 1);
  ASSERT_TRUE(eventually([&] { return getsid(bg) == bg; }));  // in a session of its own
  const std::string cgroup = slurp(dir + "/cgroup").substr(0, slurp(dir + "/cgroup").find('\n'));
  ASSERT_TRUE(exists(cgroup));
  Status s = terminate_task(dir, 1000ms);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_TRUE(eventually([&] {
    reap_children();
    return !alive(bg);
  }));
  EXPECT_TRUE(eventually([&] { return group_gone(pid); }));
  EXPECT_FALSE(exists(cgroup));  // removed once empty
  EXPECT_NE(poll_task(dir).state, TaskStatus::kRunning);
}

}  // namespace
}  // namespace lepton::agent
