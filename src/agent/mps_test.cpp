#include "agent/mps.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace lepton::agent {
namespace {

namespace fs = std::filesystem;

// A stand-in for nvidia-cuda-mps-control that records its arguments, environment and stdin.
std::string fake_control(const fs::path& dir, int exit_code = 0) {
  const fs::path bin = dir / "fake-mps-control";
  std::ofstream(bin)
      << "#!/bin/sh\n"
      << "echo \"args=$* pipe=$CUDA_MPS_PIPE_DIRECTORY log=$CUDA_MPS_LOG_DIRECTORY\" >> "
      << (dir / "calls").string() << "\n"
      << "if [ $# -eq 0 ]; then cat >> " << (dir / "calls").string() << "; fi\n"
      << "exit " << exit_code << "\n";
  chmod(bin.c_str(), 0755);
  return bin.string();
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Mps : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lepton-mps-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(Mps, StartsTheDaemonWithItsOwnDirectoriesAndStopsIt) {
  auto mps = start_mps((dir_ / "mps").string(), fake_control(dir_));
  ASSERT_TRUE(mps.is_ok()) << mps.status().message();
  EXPECT_EQ(mps->pipe_dir, (dir_ / "mps" / "pipe").string());
  EXPECT_TRUE(fs::is_directory(mps->pipe_dir));
  EXPECT_TRUE(fs::is_directory(mps->log_dir));
  ASSERT_TRUE(stop_mps(*mps).is_ok());
  EXPECT_EQ(read(dir_ / "calls"), "args=-d pipe=" + mps->pipe_dir + " log=" + mps->log_dir +
                                      "\nargs= pipe=" + mps->pipe_dir + " log=" + mps->log_dir +
                                      "\nquit\n");
}

TEST_F(Mps, ClearErrorsWhenTheDaemonCannotStart) {
  auto missing = start_mps((dir_ / "mps").string(), (dir_ / "no-such-binary").string());
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("--mps: cannot run"), std::string::npos);
  auto failing = start_mps((dir_ / "mps").string(), fake_control(dir_, 3));
  ASSERT_FALSE(failing.is_ok());
  EXPECT_NE(failing.status().message().find("exited with 3"), std::string::npos);
}

TEST(FractionalGpuEnv, LimitsMemoryAndSmsUnderMps) {
  MpsDaemon mps{"x", "/p", "/l"};
  auto env = fractional_gpu_env(0.25, 81559, &mps);
  EXPECT_EQ(env["LEPTON_GPU_MEMORY_MIB"], "20389");
  EXPECT_EQ(env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"], "0=20389M");
  EXPECT_EQ(env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], "25");
  EXPECT_EQ(env["CUDA_MPS_PIPE_DIRECTORY"], "/p");
  // Without MPS only the memory share is told; with unknown memory, nothing about memory.
  EXPECT_EQ(fractional_gpu_env(0.5, 1000, nullptr),
            (std::map<std::string, std::string>{{"LEPTON_GPU_MEMORY_MIB", "500"}}));
  EXPECT_FALSE(fractional_gpu_env(0.5, 0, &mps).count("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"));
}

}  // namespace
}  // namespace lepton::agent
