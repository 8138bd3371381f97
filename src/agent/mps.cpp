#include "agent/mps.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <vector>

namespace lepton::agent {
namespace {

namespace fs = std::filesystem;

// Runs `binary args...` with the MPS directories in its environment and `input` on its stdin;
// returns its exit status (127: could not be run).
Result<int> run_control(const MpsDaemon& mps, const std::vector<std::string>& args,
                        const std::string& input) {
  int in[2];
  if (pipe(in) != 0) return Status::internal("mps: pipe failed");
  const pid_t pid = fork();
  if (pid < 0) {
    close(in[0]);
    close(in[1]);
    return Status::internal("mps: fork failed");
  }
  if (pid == 0) {
    dup2(in[0], 0);
    close(in[0]);
    close(in[1]);
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    setenv("CUDA_MPS_PIPE_DIRECTORY", mps.pipe_dir.c_str(), 1);
    setenv("CUDA_MPS_LOG_DIRECTORY", mps.log_dir.c_str(), 1);
    std::vector<char*> argv{const_cast<char*>(mps.binary.c_str())};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(in[0]);
  if (!input.empty()) (void)!write(in[1], input.data(), input.size());
  close(in[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Status::internal("mps: waitpid failed");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

Result<MpsDaemon> start_mps(const std::string& dir, const std::string& binary) {
  MpsDaemon mps{binary, dir + "/pipe", dir + "/log"};
  std::error_code ec;
  fs::create_directories(mps.pipe_dir, ec);
  fs::create_directories(mps.log_dir, ec);
  if (ec) return Status::invalid_argument("--mps: cannot create " + dir + ": " + ec.message());
  auto rc = run_control(mps, {"-d"}, "");
  if (!rc.is_ok()) return rc.status();
  if (*rc == 127) {
    return Status::invalid_argument("--mps: cannot run " + binary +
                                    " (it comes with the NVIDIA driver; is it on PATH?)");
  }
  if (*rc != 0) {
    return Status::invalid_argument("--mps: " + binary + " -d exited with " + std::to_string(*rc) +
                                    "; see " + mps.log_dir + "/control.log");
  }
  return mps;
}

Status stop_mps(const MpsDaemon& mps) {
  auto rc = run_control(mps, {}, "quit\n");
  if (!rc.is_ok()) return rc.status();
  if (*rc != 0) return Status::internal("mps: quit exited with " + std::to_string(*rc));
  return Status::ok();
}

std::map<std::string, std::string> fractional_gpu_env(double fraction, int64_t gpu_memory_mib,
                                                      const MpsDaemon* mps) {
  std::map<std::string, std::string> env;
  const int64_t memory =
      static_cast<int64_t>(std::floor(fraction * static_cast<double>(gpu_memory_mib)));
  if (memory > 0) env["LEPTON_GPU_MEMORY_MIB"] = std::to_string(memory);
  if (mps == nullptr) return env;
  env["CUDA_MPS_PIPE_DIRECTORY"] = mps->pipe_dir;
  env["CUDA_MPS_LOG_DIRECTORY"] = mps->log_dir;
  env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] =
      std::to_string(std::max(1, static_cast<int>(std::lround(fraction * 100))));
  if (memory > 0) env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = "0=" + std::to_string(memory) + "M";
  return env;
}

}  // namespace lepton::agent
