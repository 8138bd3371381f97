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
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
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
  return parse_int(*text).value_or(-1);  // Written before the wrapper exits: garbage is tampering.
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// What the agent needs from /proc/PID/stat.
struct ProcStat {
  char state = 0;
  uint64_t ppid = 0;
  uint64_t pgrp = 0;
  uint64_t start = 0;  // field 22, starttime: clock ticks after boot
};

// Parses the text of /proc/PID/stat without allocating, so the forked child may use it too.
// "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses, so fields are counted from
// the last ')'.
bool parse_proc_stat(const char* s, size_t n, ProcStat* out) {
  size_t i = n;
  while (i > 0 && s[i - 1] != ')') --i;
  if (i == 0) return false;
  int field = 2;  // comm
  while (field < 22) {
    if (i >= n || s[i] != ' ') return false;
    ++i;
    ++field;
    const size_t begin = i;
    uint64_t v = 0;
    bool digits = true;
    while (i < n && s[i] != ' ' && s[i] != '\n') {
      if (s[i] < '0' || s[i] > '9') digits = false;
      v = v * 10 + static_cast<uint64_t>(s[i] - '0');
      ++i;
    }
    if (i == begin) return false;
    if (field == 3) out->state = s[begin];
    if ((field == 4 || field == 5 || field == 22) && !digits) return false;
    if (field == 4) out->ppid = v;
    if (field == 5) out->pgrp = v;
    if (field == 22) out->start = v;
  }
  return true;
}

// Reads and parses a /proc/.../stat file with open() and read() only (async-signal-safe).
bool read_proc_stat(const char* path, ProcStat* out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  size_t len = 0;
  while (len < sizeof buf) {
    ssize_t n = read(fd, buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
  }
  close(fd);
  return parse_proc_stat(buf, len, out);
}

bool read_proc_stat(pid_t pid, ProcStat* out) {
  return read_proc_stat(("/proc/" + std::to_string(pid) + "/stat").c_str(), out);
}

bool live_state(char state) { return state != 'Z' && state != 'X' && state != 0; }

// The wrapper as recorded in dir/pid.
struct PidRecord {
  pid_t pid = 0;
  uint64_t start = 0;
};

// dir/pid, when it holds a pid and a start time. Values that would make kill() signal more than
// one group (0, 1, negative) or this process's own group are refused.
std::optional<PidRecord> read_pid_record(const std::string& dir) {
  auto text = read_file(join(dir, "pid"));
  if (!text) return std::nullopt;
  std::string_view t = *text;
  size_t nl = t.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  std::string_view second = t.substr(nl + 1);
  auto pid = parse_u64(t.substr(0, nl));
  auto start = parse_u64(second.substr(0, second.find('\n')));
  if (!pid || !start || *pid <= 1 || *pid > 0x3fffffff) return std::nullopt;
  if (static_cast<pid_t>(*pid) == getpgrp()) return std::nullopt;
  return PidRecord{static_cast<pid_t>(*pid), *start};
}

// Whether the recorded wrapper is alive and is the wrapper of this task: the same start time (a
// reused pid has another) and the wrapper's command line naming this task's script (a pid file
// the task rewrote to name another process, with that process's start time, fails here).
bool wrapper_alive(const PidRecord& rec, const std::string& dir) {
  ProcStat st;
  if (!read_proc_stat(rec.pid, &st) || !live_state(st.state) || st.start != rec.start) {
    return false;
  }
  auto cmdline = read_file("/proc/" + std::to_string(rec.pid) + "/cmdline");
  if (!cmdline) return false;
  std::vector<std::string_view> args;
  std::string_view rest = *cmdline;
  while (!rest.empty()) {
    size_t end = rest.find('\0');
    args.push_back(rest.substr(0, end));
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return args.size() >= 5 && args[3] == "lepton-task" && args[4] == join(dir, "script.sh");
}

// Reaps the wrapper when it is this process's child; ECHILD otherwise, which is fine.
void reap_leader(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, WNOHANG) < 0 && errno == EINTR) {
  }
}

struct ProcEntry {
  pid_t pid;
  ProcStat stat;
};

// Every process that is not a zombie.
std::vector<ProcEntry> live_processes() {
  std::vector<ProcEntry> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    ProcStat st;
    if (!read_proc_stat((std::string("/proc/") + e->d_name + "/stat").c_str(), &st)) continue;
    if (live_state(st.state)) out.push_back({static_cast<pid_t>(std::atoi(e->d_name)), st});
  }
  closedir(proc);
  return out;
}

// Whether the process group has a process that is not a zombie. kill(-pgid, 0) alone counts
// zombies, which linger when their parent (init in some containers) does not reap them.
bool group_alive(pid_t pgid) {
  if (kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  if (access("/proc/self/stat", R_OK) != 0) return true;  // Cannot tell zombies apart.
  for (const ProcEntry& p : live_processes()) {
    if (p.stat.pgrp == static_cast<uint64_t>(pgid)) return true;
  }
  return false;
}

// The live descendants of `root` through parent links (setsid'd ones included, while their
// parents live).
std::vector<pid_t> descendants(pid_t root) {
  std::vector<ProcEntry> procs = live_processes();
  std::set<uint64_t> found{static_cast<uint64_t>(root)};
  std::vector<pid_t> out;
  for (bool grew = true; grew;) {
    grew = false;
    for (const ProcEntry& p : procs) {
      if (found.count(p.stat.ppid) && found.insert(static_cast<uint64_t>(p.pid)).second) {
        out.push_back(p.pid);
        grew = true;
      }
    }
  }
  return out;
}

// ---- cgroup v2 ----

// -1: not looked at yet; 0: no task cgroups; 1: task cgroups.
std::atomic<int> g_cgroups{-1};

// The mount point of the cgroup v2 hierarchy, from /proc/self/mounts; empty when none.
std::string cgroup2_mount() {
  auto mounts = read_file("/proc/self/mounts");
  if (!mounts) return "";
  std::string_view rest = *mounts;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    // "SOURCE MOUNTPOINT TYPE OPTIONS ..."; a mount point with a space is escaped (\040): skipped.
    size_t a = line.find(' ');
    if (a == std::string_view::npos) continue;
    size_t b = line.find(' ', a + 1);
    if (b == std::string_view::npos) continue;
    size_t c = line.find(' ', b + 1);
    std::string_view point = line.substr(a + 1, b - a - 1);
    std::string_view type = line.substr(b + 1, c == std::string_view::npos ? c : c - b - 1);
    if (type == "cgroup2" && !point.empty() && point.front() == '/' &&
        point.find('\\') == std::string_view::npos) {
      return std::string(point == "/" ? "" : point);
    }
  }
  return "";
}

// This process's cgroup v2 path ("0::" line of /proc/self/cgroup), e.g. "/" or "/agent.slice".
std::optional<std::string> own_cgroup() {
  auto text = read_file("/proc/self/cgroup");
  if (!text) return std::nullopt;
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (line.substr(0, 3) != "0::") continue;
    std::string path(line.substr(3));
    // Outside our cgroup namespace's root ("/.."): not a place we can name.
    if (path.empty() || path.front() != '/' || path.find("/..") != std::string::npos) break;
    if (path.back() != '/') path += '/';
    return path;
  }
  return std::nullopt;
}

// DIR's canonical absolute path (symlinks resolved), so that every spelling of it finds the same
// cgroup and script.
std::string canonical_dir(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  std::string s = (ec ? fs::path(dir) : p).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// The leaf name of the task's cgroup: DIR's base name (for people) and a hash of its canonical
// path (so that no two task directories share a cgroup, and a task cannot point the agent at
// another task's cgroup).
std::string cgroup_leaf(const std::string& dir) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char ch : dir) h = (h ^ ch) * 1099511628211ULL;
  std::string name = fs::path(dir).filename().string().substr(0, 64);
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
      ch = '_';
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return name + "-" + hex;
}

// The task's cgroup from dir/cgroup, when it names this task's cgroup under a cgroup2 mount;
// empty otherwise (no cgroup, or a record the task rewrote).
std::string recorded_cgroup(const std::string& dir) {
  auto text = read_file(join(dir, "cgroup"));
  if (!text) return "";
  std::string path = text->substr(0, text->find('\n'));
  const std::string mount = cgroup2_mount();
  const std::string suffix = "/lepton-tasks/" + cgroup_leaf(dir);
  if (path.size() <= suffix.size() || path.compare(0, mount.size() + 1, mount + "/") != 0 ||
      path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0 ||
      path.find("/../") != std::string::npos || path.find("/./") != std::string::npos ||
      path.find("//") != std::string::npos) {
    return "";
  }
  return path;
}

// The pids in the cgroup; empty when it has none or no longer exists.
std::vector<pid_t> cgroup_pids(const std::string& cgroup) {
  std::vector<pid_t> out;
  auto text = read_file(cgroup + "/cgroup.procs");
  if (!text) return out;
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    if (auto v = parse_u64(rest.substr(0, nl)); v && *v > 1) out.push_back(static_cast<pid_t>(*v));
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
  }
  return out;
}

// Whether the cgroup holds a live process (zombies are not counted: they have left it).
bool cgroup_populated(const std::string& cgroup) {
  auto events = read_file(cgroup + "/cgroup.events");
  if (events) return events->find("populated 1") != std::string::npos;
  return !cgroup_pids(cgroup).empty();
}

// Removes the (empty) cgroup; a cgroup whose last process just exited may be busy for a moment.
void remove_cgroup(const std::string& cgroup) {
  for (int i = 0; i < 100; ++i) {
    if (rmdir(cgroup.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) return;
    std::this_thread::sleep_for(kPollInterval);
  }
}

// Creates the cgroup a new task in `dir` will join; empty when tasks get no cgroup here.
std::string make_task_cgroup(const std::string& dir) {
  if (g_cgroups.load() == 0) return "";
  const std::string mount = cgroup2_mount();
  auto own = own_cgroup();
  if (mount.empty() || !own) {
    g_cgroups.store(0);
    return "";
  }
  const std::string parent = mount + *own + "lepton-tasks";
  std::string path = parent + "/" + cgroup_leaf(dir);
  if ((mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) ||
      (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) ||
      access((path + "/cgroup.procs").c_str(), W_OK) != 0) {
    g_cgroups.store(0);  // read-only, not delegated to us, or no cgroup2 after all
    return "";
  }
  g_cgroups.store(1);
  return path;
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
  // the default action) so that it can record how the script ended. It clears the way first (the
  // task may have put something at the temporary name) and its mv replaces an exit_code the
  // task wrote itself. rm and mv are resolved here so that the task's PATH cannot break the
  // recording.
  auto tool = [](const char* name) {
    const std::string bin = std::string("/bin/") + name;
    return access(bin.c_str(), X_OK) == 0 ? bin : std::string("/usr/bin/") + name;
  };
  std::vector<std::string> args = {
      kShell,
      "-c",
      "trap : HUP INT TERM; " + std::string(kShell) +
          " \"$1\"; c=$?; \"$4\" -rf \"$2.tmp\"; echo $c > \"$2.tmp\" && \"$3\" -f \"$2.tmp\" "
          "\"$2\"",
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
