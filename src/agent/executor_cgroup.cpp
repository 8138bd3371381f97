// The executor's task cgroups (cgroup v2): finding the hierarchy, making, reading and removing
// the cgroup each task runs in.
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "agent/executor_internal.h"

namespace lepton::agent::internal {

namespace fs = std::filesystem;

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

}  // namespace lepton::agent::internal
