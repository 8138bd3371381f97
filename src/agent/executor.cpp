// Starting, polling and terminating tasks: spawning the wrapper, signalling and reaping it.
#include "agent/executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

#include "agent/executor_internal.h"

namespace lepton::agent {

using namespace internal;  // The executor's own helpers (executor_internal.h).

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kShell = "/bin/sh";
constexpr std::chrono::seconds kKillTimeout{5};

// Moves `fd` above the standard streams, so that the child's dup2() onto 0, 1 and 2 cannot
// clobber it (when the agent runs with a standard stream closed). Keeps O_CLOEXEC.
int above_stdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

Status validate_env(const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos) {
      return Status::invalid_argument("task env: expected a variable name without '=', got '" + k +
                                      "'");
    }
    if (v.find('\0') != std::string::npos) {
      return Status::invalid_argument("task env: value of " + k + " contains a NUL byte");
    }
  }
  return Status::ok();
}

// What the child reports through the exec pipe when it fails before execve().
struct ChildFailure {
  int step;
  int err;
};
enum ChildStep { kSetsid, kJoinCgroup, kChdir, kDup2, kReadStat, kWritePid, kExecve, kSteps };
constexpr const char* kChildSteps[] = {
    "setsid", "join cgroup", "chdir", "dup2", "read /proc/self/stat", "write pid file", "execve"};

// Formats `v` followed by '\n' into buf without allocating; returns the length.
size_t format_u64(char* buf, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (size_t i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  buf[n] = '\n';
  return n + 1;
}

struct ChildPlan {
  const char* work_dir;
  const char* cgroup_procs;  // nullptr: no cgroup
  const char* pid_path;
  const char* pid_tmp;
  char* const* argv;
  char* const* envp;
  int devnull_fd;
  int log_fd;
  int report_fd;
  int max_fd;
};

// Runs in the forked child of a possibly multithreaded process: async-signal-safe calls only.
[[noreturn]] void run_child(const ChildPlan& p) {
  auto fail = [&](int which) {
    ChildFailure f{which, errno};
    ssize_t ignored = write(p.report_fd, &f, sizeof f);
    (void)ignored;
    _exit(127);
  };
  if (setsid() < 0) fail(kSetsid);
  // Signals ignored or blocked in the agent would stay so in the task across execve().
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  char buf[64];
  // Joined before anything of the task runs, so that every process it ever makes is in it.
  if (p.cgroup_procs != nullptr) {
    size_t len = format_u64(buf, static_cast<uint64_t>(getpid()));
    int fd = open(p.cgroup_procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(kJoinCgroup);
    if (write(fd, buf, len) != static_cast<ssize_t>(len)) fail(kJoinCgroup);
    close(fd);
  }
  if (chdir(p.work_dir) != 0) fail(kChdir);
  // Both fds are above 2 (see above_stdio), so dup2 always makes a new descriptor without
  // O_CLOEXEC.
  if (dup2(p.devnull_fd, 0) != 0 || dup2(p.log_fd, 1) != 1 || dup2(p.log_fd, 2) != 2) fail(kDup2);
  // The start time goes beside the pid, so that a later reader can tell this process from one
  // that got the same pid after it ended (execve does not change it).
  ProcStat st;
  if (!read_proc_stat("/proc/self/stat", &st)) fail(kReadStat);
  size_t len = format_u64(buf, static_cast<uint64_t>(getpid()));
  len += format_u64(buf + len, st.start);
  int fd = open(p.pid_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(kWritePid);
  if (write(fd, buf, len) != static_cast<ssize_t>(len)) fail(kWritePid);
  close(fd);
  if (rename(p.pid_tmp, p.pid_path) != 0) fail(kWritePid);
  // Everything else is closed by execve(); the report pipe stays open until then.
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int i = 3; i < p.max_fd; ++i) {
      if (i != p.report_fd) fcntl(i, F_SETFD, FD_CLOEXEC);
    }
  }
  execve(kShell, p.argv, p.envp);
  fail(kExecve);
  _exit(127);
}

// Forks the child of `plan` and waits until it has exec'd the wrapper; its pid, or why not (with
// the step in `failed_step`).
Result<int> spawn(ChildPlan plan, const std::string& dir, int* failed_step) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Status::internal("pipe: " + errno_text(errno));
  plan.report_fd = report[1];
  pid_t pid = fork();
  if (pid == 0) run_child(plan);
  int fork_errno = errno;
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    return Status(StatusCode::kResourceExhausted, "fork: " + errno_text(fork_errno));
  }
  // EOF means execve() succeeded; a ChildFailure means the child gave up before it.
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(report[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n > 0) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    unlink(plan.pid_path);
    unlink(plan.pid_tmp);
    int step = failure.step >= 0 && failure.step < kSteps ? failure.step : kExecve;
    *failed_step = step;
    return Status::internal("starting task in " + dir + ": " + kChildSteps[step] + ": " +
                            errno_text(failure.err));
  }
  return static_cast<int>(pid);
}

}  // namespace

Result<int> start_task(const TaskLaunch& launch) {
  if (launch.dir.empty()) return Status::invalid_argument("task: expected a directory, got ''");
  LEPTON_RETURN_IF_ERROR(validate_env(launch.env));
  std::error_code ec;
  fs::path abs = fs::absolute(launch.dir, ec);
  if (!ec) fs::create_directories(abs / "work", ec);
  if (ec) return Status::internal("task directory " + launch.dir + ": " + ec.message());
  const std::string dir = canonical_dir(abs.string());
  const std::string work_dir = join(dir, "work");
  const std::string pid_path = join(dir, "pid");
  if (access(pid_path.c_str(), F_OK) == 0 || access(join(dir, "exit_code").c_str(), F_OK) == 0) {
    return Status(StatusCode::kAlreadyExists,
                  "task directory " + dir + " already holds a started task");
  }
  const std::string script_path = join(dir, "script.sh");
  LEPTON_RETURN_IF_ERROR(write_file_atomic(script_path, script_path + ".tmp", launch.script));

  // Everything the child needs is built here: after fork() it may not allocate.
  std::map<std::string, std::string> env;
  env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  for (const char* name : {"PATH", "HOME", "USER", "LANG"}) {
    if (const char* v = std::getenv(name)) env[name] = v;
  }
  for (const auto& [k, v] : launch.env) env[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  // The wrapper outlives a SIGTERM to the task (a trap, not an ignore: the script must still see
  // the default action) so that it can record how the script ended. It clears the way first when
  // the task put something at the temporary name (tested with the shell's own `[`, so a task
  // that did not costs no rm process), and its mv replaces an exit_code the task wrote itself. rm
  // and mv are resolved here so that the task's PATH cannot break the recording.
  auto tool = [](const char* name) {
    const std::string bin = std::string("/bin/") + name;
    return access(bin.c_str(), X_OK) == 0 ? bin : std::string("/usr/bin/") + name;
  };
  std::vector<std::string> args = {
      kShell,
      "-c",
      "trap : HUP INT TERM; " + std::string(kShell) +
          " \"$1\"; c=$?; if [ -e \"$2.tmp\" ] || [ -h \"$2.tmp\" ]; then \"$4\" -rf \"$2.tmp\"; "
          "fi; "
          "echo $c > \"$2.tmp\" && \"$3\" -f \"$2.tmp\" \"$2\"",
      "lepton-task",
      script_path,
      join(dir, "exit_code"),
      tool("mv"),
      tool("rm"),
  };
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const std::string log_path = join(dir, "log");
  const std::string pid_tmp = pid_path + ".tmp";
  int log_fd = above_stdio(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (log_fd < 0) return Status::internal("open " + log_path + ": " + errno_text(errno));
  int devnull_fd = above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull_fd < 0) {
    close(log_fd);
    return Status::internal("open /dev/null: " + errno_text(errno));
  }
  rlimit nofile{};
  int max_fd = 65536;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536) {
    max_fd = static_cast<int>(nofile.rlim_cur);
  }
  // The cgroup is recorded before the task can run, so that an agent that dies right after the
  // fork still finds it.
  const std::string cgroup_record = join(dir, "cgroup");
  std::string cgroup = make_task_cgroup(dir);
  if (!cgroup.empty() &&
      !write_file_atomic(cgroup_record, cgroup_record + ".tmp", cgroup + "\n").is_ok()) {
    remove_cgroup(cgroup);
    cgroup.clear();
  }
  std::string cgroup_procs = cgroup.empty() ? "" : cgroup + "/cgroup.procs";
  ChildPlan plan{work_dir.c_str(),
                 cgroup.empty() ? nullptr : cgroup_procs.c_str(),
                 pid_path.c_str(),
                 pid_tmp.c_str(),
                 argv.data(),
                 envp.data(),
                 devnull_fd,
                 log_fd,
                 -1,
                 max_fd};
  int failed_step = -1;
  Result<int> pid = spawn(plan, dir, &failed_step);
  if (!pid.is_ok() && failed_step == kJoinCgroup) {
    // The hierarchy let us make the cgroup but not move into it (not delegated to this user):
    // the child never ran the task, so starting it again without a cgroup is safe.
    g_cgroups.store(0);
    unlink(cgroup_record.c_str());
    remove_cgroup(cgroup);
    cgroup.clear();
    plan.cgroup_procs = nullptr;
    pid = spawn(plan, dir, &failed_step);
  }
  close(log_fd);
  close(devnull_fd);
  if (!pid.is_ok() && !cgroup.empty()) {
    unlink(cgroup_record.c_str());
    remove_cgroup(cgroup);
  }
  return pid;
}

TaskStatus poll_task(const std::string& task_dir) {
  const std::string dir = canonical_dir(task_dir);
  auto rec = read_pid_record(dir);
  if (rec) reap_leader(rec->pid);
  const bool wrapper = rec && wrapper_alive(*rec, dir);
  const std::string cgroup = recorded_cgroup(dir);
  if (!cgroup.empty() ? cgroup_populated(cgroup) : wrapper) {
    TaskStatus st{TaskStatus::kRunning, -1};
    st.leftovers = !wrapper && read_exit_code(dir).has_value();
    return st;
  }
  // Nothing of the task runs any more, so nothing of it can still write exit_code.
  if (auto code = read_exit_code(dir)) return {TaskStatus::kExited, *code};
  return {};
}

namespace {

// The processes of one task, found again on every look (they come and go while it is stopped).
class TaskProcesses {
 public:
  explicit TaskProcesses(const std::string& dir) : dir_(dir), cgroup_(recorded_cgroup(dir)) {
    auto rec = read_pid_record(dir);
    if (rec && wrapper_alive(*rec, dir)) rec_ = rec;
  }

  bool has_cgroup() const { return !cgroup_.empty(); }
  bool has_wrapper() const { return rec_.has_value(); }

  // Whether the recorded wrapper is still the live wrapper of this task.
  bool wrapper_lives() {
    if (!rec_) return false;
    reap_leader(rec_->pid);
    return wrapper_alive(*rec_, dir_);
  }

  // Whether any process of the task is left. Without a cgroup: the wrapper, its process group
  // (trusted for the rest of this call once the wrapper was verified at its start: a group id
  // cannot be reused while the group has members) and the wrapper's descendants.
  bool alive() {
    const bool wrapper = wrapper_lives();
    if (has_cgroup()) return cgroup_populated(cgroup_);
    return wrapper || (rec_ && group_alive(rec_->pid));
  }

  // Sends `sig` to every process of the task that can be found.
  void signal(int sig) {
    const bool wrapper = wrapper_lives();
    std::vector<pid_t> targets;
    if (has_cgroup()) targets = cgroup_pids(cgroup_);
    if (wrapper) {
      for (pid_t p : descendants(rec_->pid)) targets.push_back(p);
    }
    if (rec_ && (wrapper || group_alive(rec_->pid))) kill(-rec_->pid, sig);
    for (pid_t p : targets) {
      if (p > 1 && p != getpid()) kill(p, sig);
    }
  }

  // Kills everything at once where the kernel can (cgroup.kill, Linux 5.14+); else SIGKILL to
  // each process found (repeated by the caller while any is left, for those forked meanwhile).
  void kill_all() {
    if (has_cgroup()) {
      std::string path = cgroup_ + "/cgroup.kill";
      int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        bool killed = write(fd, "1", 1) == 1;
        close(fd);
        if (killed) return;
      }
    }
    signal(SIGKILL);
  }

  // Waits until no process of the task is left or `deadline` passes; returns whether none is.
  // With `keep_killing`, SIGKILLs again on every look.
  bool wait_gone(Clock::time_point deadline, bool keep_killing) {
    for (;;) {
      if (!alive()) return true;
      auto now = Clock::now();
      if (now >= deadline) return false;
      if (keep_killing) kill_all();
      std::this_thread::sleep_for(std::min<Clock::duration>(kPollInterval, deadline - now));
    }
  }

  void remove_cgroup_if_any() {
    if (has_cgroup()) remove_cgroup(cgroup_);
  }

  std::string describe() const {
    return has_cgroup() ? "cgroup " + cgroup_
                        : "process group " + std::to_string(rec_ ? rec_->pid : 0);
  }

 private:
  std::string dir_;
  std::string cgroup_;
  std::optional<PidRecord> rec_;  // set while verified as this task's wrapper
};

}  // namespace

Status terminate_task(const std::string& task_dir, std::chrono::milliseconds grace) {
  const std::string dir = canonical_dir(task_dir);
  TaskProcesses task(dir);
  if (!task.has_cgroup() && !task.has_wrapper()) {
    // Without its wrapper (ended, or the pid file does not name it), nothing can be trusted to
    // be the task's.
    if (access(join(dir, "pid").c_str(), F_OK) == 0 || read_exit_code(dir)) return Status::ok();
    return Status::not_found("task directory " + dir + ": no pid file");
  }
  Status result = Status::ok();
  if (task.alive()) {
    task.signal(SIGTERM);
    if (!task.wait_gone(Clock::now() + std::max(grace, std::chrono::milliseconds(0)), false)) {
      // Whether the wrapper is killed too, before it could record how the script ended.
      const bool wrapper = task.wrapper_lives();
      task.kill_all();
      if (!task.wait_gone(Clock::now() + kKillTimeout, true)) {
        return Status::internal(task.describe() + " still has live processes " +
                                std::to_string(kKillTimeout.count()) + " s after SIGKILL");
      }
      if (wrapper || !read_exit_code(dir)) {
        std::string path = join(dir, "exit_code");
        result = write_file_atomic(path, path + ".agent.tmp", std::to_string(128 + SIGKILL) + "\n");
      }
    }
  }
  task.remove_cgroup_if_any();
  return result;
}

Result<std::string> read_log(const std::string& dir, int64_t offset, size_t max_bytes) {
  if (offset < 0) {
    return Status::invalid_argument("log offset: expected >= 0, got " + std::to_string(offset));
  }
  const std::string path = join(dir, "log");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::not_found("no log at " + path);
    return Status::internal("open " + path + ": " + errno_text(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::internal("stat " + path + ": " + errno_text(err));
  }
  std::string out;
  if (offset < st.st_size) {
    out.resize(std::min<size_t>(max_bytes, static_cast<size_t>(st.st_size - offset)));
    size_t got = 0;
    while (got < out.size()) {
      ssize_t n = pread(fd, out.data() + got, out.size() - got, offset + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        close(fd);
        return Status::internal("read " + path + ": " + errno_text(err));
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
  }
  close(fd);
  return out;
}

int reap_children() {
  int reaped = 0;
  for (;;) {
    int st = 0;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p < 0 && errno == EINTR) continue;
    if (p <= 0) return reaped;
    ++reaped;
  }
}

bool task_cgroups_available() {
  if (g_cgroups.load() < 0) {
    char tmpl[] = "/tmp/lepton-cgroup-probe-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) {
      // Makes (and removes) a cgroup the way start_task would.
      const std::string cgroup = make_task_cgroup(tmpl);
      if (!cgroup.empty()) remove_cgroup(cgroup);
      rmdir(tmpl);
    }
  }
  return g_cgroups.load() == 1;
}

void use_task_cgroups(bool enabled) { g_cgroups.store(enabled ? -1 : 0); }

Status become_subreaper() {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return Status::internal("prctl(PR_SET_CHILD_SUBREAPER): " + errno_text(errno));
  }
  return Status::ok();
}

}  // namespace lepton::agent
