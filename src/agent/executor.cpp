#include "agent/executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

namespace lepton::agent {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kShell = "/bin/sh";
constexpr std::chrono::milliseconds kPollInterval{5};
constexpr std::chrono::seconds kKillTimeout{5};

std::string errno_text(int err) { return std::strerror(err); }

std::string join(const std::string& dir, const char* name) { return dir + "/" + name; }

// The whole content of a small file, or nullopt when it cannot be read (missing).
std::optional<std::string> read_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::internal("write " + path + ": " + errno_text(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

// Writes `path` through a temporary file and rename(), so readers see all of it or nothing.
Status write_file_atomic(const std::string& path, const std::string& tmp, std::string_view data) {
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::internal("create " + tmp + ": " + errno_text(errno));
  Status s = write_all(fd, data, tmp);
  close(fd);
  if (s.is_ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::internal("rename " + tmp + " to " + path + ": " + errno_text(errno));
  }
  if (!s.is_ok()) unlink(tmp.c_str());
  return s;
}

std::optional<int> parse_int(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int> read_exit_code(const std::string& dir) {
  auto text = read_file(join(dir, "exit_code"));
  if (!text) return std::nullopt;
  return parse_int(*text).value_or(-1);  // Written atomically, so garbage means tampering.
}

// The task's process-group id from dir/pid. Values that would make kill() signal more than one
// group (0, 1, negative) or this process's own group are refused.
std::optional<pid_t> read_pgid(const std::string& dir) {
  auto text = read_file(join(dir, "pid"));
  if (!text) return std::nullopt;
  auto v = parse_int(*text);
  if (!v || *v <= 1 || *v == getpgrp()) return std::nullopt;
  return static_cast<pid_t>(*v);
}

// Reaps the wrapper when it is this process's child; ECHILD otherwise, which is fine.
void reap_leader(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, WNOHANG) < 0 && errno == EINTR) {
  }
}

// Whether the process group has a process that is not a zombie. kill(-pgid, 0) alone counts
// zombies, which linger when their parent (init in some containers) does not reap them.
bool group_alive(pid_t pgid) {
  if (kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return true;  // Cannot tell zombies apart; trust kill().
  bool alive = false;
  while (!alive) {
    dirent* e = readdir(proc);
    if (e == nullptr) break;
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    auto stat = read_file(std::string("/proc/") + e->d_name + "/stat");
    if (!stat) continue;
    // "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses, so parse after the last
    // ')'.
    size_t paren = stat->rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat->size()) continue;
    char state = (*stat)[paren + 2];
    long ppid = 0;
    long pgrp = 0;
    if (std::sscanf(stat->c_str() + paren + 3, "%ld %ld", &ppid, &pgrp) != 2) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') alive = true;
  }
  closedir(proc);
  return alive;
}

// Waits until the group has no live process or `deadline` passes; returns whether it is gone.
bool wait_group_gone(pid_t pgid, Clock::time_point deadline) {
  for (;;) {
    reap_leader(pgid);
    if (!group_alive(pgid)) return true;
    auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(kPollInterval, deadline - now));
  }
}

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
constexpr const char* kChildSteps[] = {"setsid", "chdir", "dup2", "write pid file", "execve"};

// Formats `v` (> 0) followed by '\n' into buf without allocating; returns the length.
size_t format_pid(char* buf, pid_t v) {
  char tmp[16];
  size_t n = 0;
  while (v > 0) {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  for (size_t i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  buf[n] = '\n';
  return n + 1;
}

struct ChildPlan {
  const char* dir;
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
  int step = 0;
  auto fail = [&](int which) {
    ChildFailure f{which, errno};
    ssize_t ignored = write(p.report_fd, &f, sizeof f);
    (void)ignored;
    _exit(127);
  };
  if (setsid() < 0) fail(step);
  ++step;
  // Signals ignored or blocked in the agent would stay so in the task across execve().
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (chdir(p.dir) != 0) fail(step);
  ++step;
  // Both fds are above 2 (see above_stdio), so dup2 always makes a new descriptor without
  // O_CLOEXEC.
  if (dup2(p.devnull_fd, 0) != 0 || dup2(p.log_fd, 1) != 1 || dup2(p.log_fd, 2) != 2) fail(step);
  ++step;
  char buf[24];
  size_t len = format_pid(buf, getpid());
  int fd = open(p.pid_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(step);
  if (write(fd, buf, len) != static_cast<ssize_t>(len)) fail(step);
  close(fd);
  if (rename(p.pid_tmp, p.pid_path) != 0) fail(step);
  ++step;
  // Everything else is closed by execve(); the report pipe stays open until then.
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int i = 3; i < p.max_fd; ++i) {
      if (i != p.report_fd) fcntl(i, F_SETFD, FD_CLOEXEC);
    }
  }
  execve(kShell, p.argv, p.envp);
  fail(step);
  _exit(127);
}

}  // namespace

Result<int> start_task(const TaskLaunch& launch) {
  if (launch.dir.empty()) return Status::invalid_argument("task: expected a directory, got ''");
  LEPTON_RETURN_IF_ERROR(validate_env(launch.env));
  std::error_code ec;
  fs::path abs = fs::absolute(launch.dir, ec);
  if (!ec) fs::create_directories(abs, ec);
  if (ec) return Status::internal("task directory " + launch.dir + ": " + ec.message());
  const std::string dir = abs.lexically_normal().string();
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

  // The wrapper outlives a SIGTERM to the group (a trap, not an ignore: the script must still
  // see the default action) so that it can record how the script ended. mv is resolved here so
  // that the task's PATH cannot break the recording.
  const std::string mv = access("/bin/mv", X_OK) == 0 ? "/bin/mv" : "/usr/bin/mv";
  std::vector<std::string> args = {
      kShell,
      "-c",
      "trap : HUP INT TERM; " + std::string(kShell) +
          " \"$1\"; echo $? > \"$2.tmp\" && \"$3\" -f \"$2.tmp\" \"$2\"",
      "lepton-task",
      script_path,
      join(dir, "exit_code"),
      mv,
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
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    close(log_fd);
    close(devnull_fd);
    return Status::internal("pipe: " + errno_text(errno));
  }
  rlimit nofile{};
  int max_fd = 65536;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536) {
    max_fd = static_cast<int>(nofile.rlim_cur);
  }
  ChildPlan plan{dir.c_str(), pid_path.c_str(), pid_tmp.c_str(), argv.data(), envp.data(),
                 devnull_fd,  log_fd,           report[1],       max_fd};

  pid_t pid = fork();
  if (pid == 0) run_child(plan);
  int fork_errno = errno;
  close(report[1]);
  close(log_fd);
  close(devnull_fd);
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
    unlink(pid_path.c_str());
    unlink(pid_tmp.c_str());
    int step = failure.step >= 0 && failure.step < 5 ? failure.step : 4;
    return Status::internal("starting task in " + dir + ": " + kChildSteps[step] + ": " +
                            errno_text(failure.err));
  }
  return static_cast<int>(pid);
}

TaskStatus poll_task(const std::string& dir) {
  if (auto code = read_exit_code(dir)) return {TaskStatus::kExited, *code};
  auto pgid = read_pgid(dir);
  if (!pgid) return {};
  reap_leader(*pgid);
  if (group_alive(*pgid)) return {TaskStatus::kRunning, -1};
  // The wrapper may have recorded the code and exited between the two looks.
  if (auto code = read_exit_code(dir)) return {TaskStatus::kExited, *code};
  return {};
}

Status terminate_task(const std::string& dir, std::chrono::milliseconds grace) {
  auto pgid = read_pgid(dir);
  if (!pgid) {
    if (read_exit_code(dir)) return Status::ok();
    return Status::not_found("task directory " + dir + ": no valid pid file");
  }
  if (!wait_group_gone(*pgid, Clock::now())) {
    if (kill(-*pgid, SIGTERM) != 0 && errno != ESRCH) {
      return Status(StatusCode::kPermissionDenied,
                    "SIGTERM to process group " + std::to_string(*pgid) + ": " + errno_text(errno));
    }
    if (!wait_group_gone(*pgid, Clock::now() + std::max(grace, std::chrono::milliseconds(0)))) {
      if (kill(-*pgid, SIGKILL) != 0 && errno != ESRCH) {
        return Status(
            StatusCode::kPermissionDenied,
            "SIGKILL to process group " + std::to_string(*pgid) + ": " + errno_text(errno));
      }
      if (!wait_group_gone(*pgid, Clock::now() + kKillTimeout)) {
        return Status::internal("process group " + std::to_string(*pgid) +
                                " still has live processes " +
                                std::to_string(kKillTimeout.count()) + " s after SIGKILL");
      }
      if (!read_exit_code(dir)) {
        std::string path = join(dir, "exit_code");
        return write_file_atomic(path, path + ".agent.tmp", std::to_string(128 + SIGKILL) + "\n");
      }
    }
  }
  return Status::ok();
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

Status become_subreaper() {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return Status::internal("prctl(PR_SET_CHILD_SUBREAPER): " + errno_text(errno));
  }
  return Status::ok();
}

}  // namespace lepton::agent
