// The ssh command runner: the argv of one ssh run, running a program under a deadline with its
// output captured, and one ssh run of a command on a host with its failures told apart.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "cloud/ssh_internal.h"
#include "cloud/ssh_provider.h"

extern char** environ;

namespace lepton::cloud::ssh {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

std::vector<std::string> ssh_argv(const SshProviderOptions& o, const SshHost& h,
                                  const std::string& remote_command) {
  std::vector<std::string> argv{o.ssh_program, "-T",         "-p", std::to_string(h.target.port),
                                "-l",          h.target.user};
  if (!h.identity_file.empty()) {
    argv.insert(argv.end(), {"-i", h.identity_file, "-o", "IdentitiesOnly=yes"});
  }
  for (const std::string& opt :
       {std::string("BatchMode=yes"), std::string("StrictHostKeyChecking=accept-new"),
        "UserKnownHostsFile=" + o.state_dir + "/known_hosts",
        "ConnectTimeout=" + std::to_string(o.connect_timeout.count()),
        std::string("ServerAliveInterval=5"), std::string("ServerAliveCountMax=3"),
        std::string("LogLevel=ERROR")}) {
    argv.insert(argv.end(), {"-o", opt});
  }
  argv.insert(argv.end(), {"--", h.target.host, remote_command});
  return argv;
}

// --- running programs ---

ProgramResult run_program(const std::vector<std::string>& argv, std::string_view stdin_data,
                          const std::string& stdin_path, std::chrono::milliseconds timeout) {
  ProgramResult r;
  if (argv.empty()) {
    r.spawn_error = "no program";
    return r;
  }
  int in_fd = -1;
  if (!stdin_path.empty()) {
    in_fd = open(stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  } else {
    in_fd = memfd_create("lepton-stdin", MFD_CLOEXEC);
    size_t done = 0;
    while (in_fd >= 0 && done < stdin_data.size()) {
      ssize_t n = write(in_fd, stdin_data.data() + done, stdin_data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (in_fd >= 0) lseek(in_fd, 0, SEEK_SET);
  }
  if (in_fd < 0) {
    r.spawn_error =
        "stdin " + (stdin_path.empty() ? "(memfd)" : stdin_path) + ": " + std::strerror(errno);
    return r;
  }
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.spawn_error = std::string("pipe: ") + std::strerror(errno);
    for (int fd : {in_fd, out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      if (fd >= 0) close(fd);
    }
    return r;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group (killed whole at the deadline), no blocked signals and default
  // handlers: the caller may block SIGTERM or ignore SIGPIPE.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in_fd);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    r.spawn_error = argv[0] + ": " + std::strerror(rc);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return r;
  }
  constexpr size_t kMaxOutput = size_t{1} << 20;
  const auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[8192];
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      r.timed_out = true;
      break;
    }
    const int n = poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2 && n > 0; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        if (sinks[i]->size() < kMaxOutput) sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  // Both pipes closed (or the deadline passed): wait for the exit, up to the deadline.
  int status = 0;
  while (true) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) break;
    if (r.timed_out || Clock::now() >= deadline) {
      r.timed_out = true;
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.exit_code = 128 + WTERMSIG(status);
  }
  return r;
}

namespace internal {

// The last `max` bytes of `s`, trimmed of surrounding white space.
std::string trimmed_tail(const std::string& s, size_t max) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  std::string t = s.substr(b, e - b + 1);
  if (t.size() > max) t = "..." + t.substr(t.size() - max);
  return t;
}

// One ssh run of `command` on `h`; `what` names the step in errors.
Result<std::string> ssh_run(const SshProviderOptions& o, const SshHost& h, const std::string& what,
                            const std::string& command, std::string_view stdin_data,
                            const std::string& stdin_path, std::chrono::seconds timeout) {
  ProgramResult r = run_program(ssh_argv(o, h, command), stdin_data, stdin_path, timeout);
  const std::string where = "ssh " + format_ssh_target(h.target) + ": " + what + ": ";
  if (!r.spawn_error.empty()) {
    return Status(StatusCode::kInternal,
                  where + "cannot run " + r.spawn_error + " (is openssh-client installed?)");
  }
  if (r.timed_out) {
    std::string msg =
        where + "no answer within " + std::to_string(timeout.count()) + " s; stopped it";
    if (!trimmed_tail(r.err).empty()) msg += ": " + trimmed_tail(r.err);
    return Status(StatusCode::kUnavailable, msg);
  }
  if (r.exit_code == 255) {
    return Status(StatusCode::kUnavailable,
                  where + "cannot connect or log in: " +
                      (trimmed_tail(r.err).empty() ? "ssh exited with 255" : trimmed_tail(r.err)));
  }
  if (r.exit_code != 0) {
    return Status(StatusCode::kInternal,
                  where + "failed (exit " + std::to_string(r.exit_code) + ")" +
                      (trimmed_tail(r.err).empty() ? "" : ": " + trimmed_tail(r.err)));
  }
  return std::move(r.out);
}

}  // namespace internal
}  // namespace lepton::cloud::ssh
