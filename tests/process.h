// Test helpers for end-to-end tests: start processes, run commands, wait with deadlines, pick free
// loopback ports, read files, and speak HTTP over raw sockets. The fixture that starts `lepton`
// itself (server or up, agents, the CLI against them) is LeptonTest, in tests/lepton_test.h.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace lepton::e2e {

// A child process with stdout and stderr appended to `log_path`.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      FILE* log = std::fopen(log_path.c_str(), "a");
      if (log) {
        dup2(fileno(log), 1);
        dup2(fileno(log), 2);
      }
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Process() { kill(SIGKILL); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  // Sends SIGTERM and waits (the graceful stop).
  void stop() { kill(SIGTERM); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Polls `ready` every 50 ms until it holds or `timeout` passes.
inline bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

// An empty directory TMP/lepton-KIND-PID-TEST for one test (removed first if left over).
inline std::filesystem::path fresh_test_dir(const std::string& kind, const std::string& test) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("lepton-" + kind + "-" + std::to_string(getpid()) + "-" + test);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A loopback port that was free a moment ago.
int free_port();

// Puts `dir` first on this process's PATH; the processes it starts (and their tasks) inherit it.
inline void put_first_on_path(const std::string& dir) {
  const char* path = std::getenv("PATH");
  setenv("PATH", (dir + ":" + (path ? path : "/usr/bin:/bin")).c_str(), 1);
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;  // stderr, when run_command keeps it apart
};
// Where run_command puts the command's stderr: after stdout in `out`, or apart in `err`.
enum class Stderr { kInOut, kApart };
// Runs a shell command line and captures its output.
CommandResult run_command(const std::string& command, Stderr where = Stderr::kInOut);
// The whole of a text file, such as a process's log ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);
// The lines of a text file, without their '\n' (none when it cannot be read).
std::vector<std::string> read_lines(const std::filesystem::path& path);

// An HTTP exchange over a raw socket, so a test sees when each byte arrives.
struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;  // de-chunked
  double first_body_ms = -1;
  double total_ms = 0;
  bool has_header(const std::string& line) const {
    return head.find("\r\n" + line + "\r\n") != std::string::npos;
  }
};

// A connected socket to 127.0.0.1:port (10 s receive timeout), or -1.
int connect_to(int port);
// Sends `raw` as is and reads the response until the connection closes (10 s idle at most).
RawResponse send_raw(int port, const std::string& raw);
// One request with Connection: close; `headers` are extra "Name: value\r\n" lines.
RawResponse request(int port, const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& host = "127.0.0.1",
                    const std::string& headers = "");

}  // namespace lepton::e2e
