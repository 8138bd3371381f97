// End-to-end faults and hostile input against a real `lepton up` (docs/control-plane.md,
// "Faults"): requests that once killed the server, a connection flood, a body announced without a
// token, a server stopped with SIGSTOP while a job runs, and a data dir whose file system fills.
// Each asserts the server keeps answering and no job runs twice.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/lepton_test.h"

namespace lepton::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// `lepton up` with no GPUs, its gateway on a port picked before the start.
class Faults : public LeptonTest {
 protected:
  Faults()
      : LeptonTest({.up = true,
                    .gateway = Gateway::kFreePort,
                    .wait = Wait::kReadyNode,
                    .wait_timeout = 30s}) {}
  void TearDown() override {
    stop_all();
    if (mounted_) run_command("umount -l " + data_dir().string() + " >/dev/null 2>&1");
    LeptonTest::TearDown();
  }

  bool healthy(int port, const std::string& path = "/healthz") {
    return request(port, "GET", path).status == 200;
  }

  bool mounted_ = false;
};

// Holds `count` idle connections to a port open (as a flood would), closing them at the end.
struct Flood {
  Flood(int port, int count) {
    for (int i = 0; i < count; ++i) {
      const int fd = connect_to(port);
      if (fd < 0) break;
      fds.push_back(fd);
    }
  }
  ~Flood() {
    for (int fd : fds) close(fd);
  }
  std::vector<int> fds;
};

TEST_F(Faults, HostileRequestsLeaveTheServerUp) {
  start();
  // Bytes that are not UTF-8 in the path once made the JSON error throw and abort the process.
  EXPECT_EQ(request(port_, "GET", "/%ff").status, 404);
  EXPECT_EQ(request(gateway_port_, "GET", "/d/%ff/").status, 404);
  EXPECT_TRUE(healthy(port_));
  EXPECT_TRUE(healthy(gateway_port_, "/-/healthz"));

  // A body announced without a token is refused on its head, at once, never waited for.
  RawResponse big = send_raw(port_,
                             "POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n");
  EXPECT_EQ(big.status, 401);
  EXPECT_LT(big.total_ms, 3000);

  // 3,000 idle connections on each port: both keep answering (the oldest idle ones give way).
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_max < 3300) {
    GTEST_SKIP() << "the descriptor limit (" << limit.rlim_max << ") is below 3,300";
  }
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  for (int port : {port_, gateway_port_}) {
    Flood flood(port, 3000);
    EXPECT_EQ(flood.fds.size(), 3000u);
    EXPECT_TRUE(wait_until([&] { return healthy(port_); }, 5s)) << port;
    EXPECT_TRUE(wait_until([&] { return healthy(gateway_port_, "/-/healthz"); }, 5s)) << port;
  }
  // The built-in agent lived through it: its node is ready and runs a job.
  const std::string id =
      submit("after", "name: after\nresources: {cpus: 1, memory: 0.1}\nrun: true\n");
  EXPECT_TRUE(wait_until([&] { return state(id) == "SUCCEEDED"; }, 30s)) << log();
  EXPECT_EQ(server_->pid() > 0 && ::kill(server_->pid(), 0) == 0, true) << log();
}

// A server that does not run for 15 s (SIGSTOP) hears no heartbeats, but that silence is its own:
// the job is neither declared lost nor started a second time.
TEST_F(Faults, AServerStoppedFor15SecondsRunsNoJobTwice) {
  start();
  const fs::path out = dir_ / "lines.txt";
  const std::string id = submit("once",
                                "name: once\nmax_restarts: 0\nresources: {cpus: 1, memory: "
                                "0.1}\nrun: echo ran >> " +
                                    out.string() + "; sleep 22\n");
  ASSERT_TRUE(wait_until([&] { return state(id) == "RUNNING"; }, 30s)) << log();
  ASSERT_EQ(::kill(server_->pid(), SIGSTOP), 0);
  std::this_thread::sleep_for(15s);
  ASSERT_EQ(::kill(server_->pid(), SIGCONT), 0);
  ASSERT_TRUE(wait_until([&] { return state(id) == "SUCCEEDED"; }, 40s)) << state(id) << "\n"
                                                                         << log();
  EXPECT_EQ(read_lines(out).size(), 1u);
}

// The data dir's file system fills for 8 s while jobs run, then has room again, and the server
// is restarted: each job ran exactly once. (A commit that fails stops the server rather than let
// memory run ahead of the store; its tasks keep running and the restarted agent adopts them.)
TEST_F(Faults, AFullDiskRunsNoJobTwice) {
  fs::create_directories(data_dir());
  if (run_command("mount -t tmpfs -o size=48m tmpfs " + data_dir().string() + " 2>&1").exit_code !=
      0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  }
  mounted_ = true;
  start();
  const fs::path marks = dir_ / "marks.txt";  // outside the full file system
  std::set<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.insert(submit("j" + std::to_string(i),
                      "name: disk\nmax_restarts: 0\nresources: {cpus: 0.25, memory: 0.1}\nrun: "
                      "echo $LEPTON_JOB_ID >> " +
                          marks.string() + "; sleep " + std::to_string(4 + i) + "\n"));
  }
  ASSERT_TRUE(wait_until(
      [&] {
        for (const std::string& id : ids) {
          if (state(id) != "RUNNING") return false;
        }
        return true;
      },
      30s))
      << log();
  // The jobs end while the disk is full: their ends cannot be stored. A submission meanwhile is
  // refused (or, if the server has stopped, not answered); it must not run either.
  run_command("dd if=/dev/zero of=" + (data_dir() / "fill").string() + " bs=1M >/dev/null 2>&1");
  cli("job run -f " + (dir_ / "j0.yaml").string());
  std::this_thread::sleep_for(8s);
  fs::remove(data_dir() / "fill");
  // Restarted on the same data dir: it stopped by itself (exit 75) when a commit failed, or, if
  // nothing had to be written meanwhile, it still runs.
  server_.reset();
  const std::string during = log();
  start();
  ASSERT_TRUE(wait_until(
      [&] {
        for (const std::string& id : ids) {
          const std::string s = state(id);
          if (s != "SUCCEEDED" && s != "FAILED" && s != "CANCELLED") return false;
        }
        return true;
      },
      60s))
      << log();
  std::vector<std::string> ran = read_lines(marks);
  EXPECT_EQ(std::set<std::string>(ran.begin(), ran.end()).size(), ran.size()) << during;
  // Each ran once. (Those that ended while the disk was full could not record their exit code:
  // they end FAILED, "the task's processes disappeared", and with max_restarts 0 are not run
  // again.)
  for (const std::string& id : ids) {
    EXPECT_EQ(std::count(ran.begin(), ran.end(), id), 1) << id << "\n" << during;
  }
}

}  // namespace
}  // namespace lepton::e2e
