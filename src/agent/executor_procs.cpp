// The executor's task state files (pid, exit_code) and /proc: reading and writing them, and
// finding a task's processes (its wrapper, process group and descendants).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <set>

#include "agent/executor_internal.h"

namespace lepton::agent::internal {

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

}  // namespace lepton::agent::internal
