// End-to-end: `lepton node add --ssh` against a real OpenSSH server (Debian's openssh-server,
// /usr/sbin/sshd) on 127.0.0.1, run as the current user with its own host key, authorized_keys
// and config in a temp dir, and a real `lepton server`. The "remote" machine is this one: the
// agent is started through sshd exactly as on another host, with its files under a temp
// --remote-dir.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/lepton_test.h"

namespace lepton::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSshd = "/usr/sbin/sshd";

int read_pid(const fs::path& p) {
  int pid = 0;
  std::ifstream(p) >> pid;
  return pid;
}

// Alive and not a zombie (an orphan's zombie may linger when PID 1 does not reap).
bool alive(int pid) {
  if (pid <= 1) return false;
  std::string s = read_text("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = s.rfind(')');
  return paren != std::string::npos && paren + 2 < s.size() && s[paren + 2] != 'Z';
}

// Some live, non-zombie process is in process group `pgid`.
bool group_alive(int pgid) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string s = read_text(e.path() / "stat");
    size_t paren = s.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(s.substr(paren + 2));
    std::string state;
    int ppid = 0, pgrp = 0;
    fields >> state >> ppid >> pgrp;
    if (state != "Z" && pgrp == pgid) return true;
  }
  return false;
}

// A real sshd on 127.0.0.1 and `lepton server` (nodes lost after 2 s without heartbeats, no
// gateway), both started before each test; the CLI keeps its records under a HOME of its own.
class SshNode : public LeptonTest {
 protected:
  SshNode() : LeptonTest({.gateway = Gateway::kNone, .node_timeout_s = 2, .own_home = true}) {}
  void SetUp() override {
    // Not a skip: CI must have sshd, or this test says why it cannot run.
    ASSERT_TRUE(fs::exists(kSshd)) << kSshd
                                   << " is missing: install Debian's openssh-server "
                                      "(scripts/install-deps does) to run the ssh provider test";
    LeptonTest::SetUp();
    const passwd* pw = getpwuid(geteuid());
    ASSERT_NE(pw, nullptr);
    user_ = pw->pw_name;
    if (geteuid() == 0) {
      // With UsePAM no, an sshd that can read /etc/shadow (one started by root) refuses accounts
      // whose password is locked ('!'); one started by another user cannot read it and lets in.
      std::ifstream shadow("/etc/shadow");
      for (std::string line; std::getline(shadow, line);) {
        ASSERT_FALSE(line.rfind(user_ + ":!", 0) == 0)
            << "the " << user_ << " account is locked ('!' in /etc/shadow), so sshd with UsePAM no "
            << "refuses it: run this test as another user, or unlock the account without a "
            << "password (usermod -p '*' " << user_ << ")";
      }
      // sshd started by root insists on its privilege-separation directory.
      std::error_code ec;
      fs::create_directories("/run/sshd", ec);
      chmod("/run/sshd", 0755);
    }
    for (const char* key : {"host_key", "client_key", "stranger_key"}) {
      auto r =
          run_command("ssh-keygen -q -t ed25519 -N '' -C lepton-test -f " + (dir_ / key).string());
      ASSERT_EQ(r.exit_code, 0) << r.out;
    }
    fs::copy_file(dir_ / "client_key.pub", dir_ / "authorized_keys");
    ssh_port_ = free_port();
    std::ofstream(dir_ / "sshd_config")
        << "ListenAddress 127.0.0.1:" << ssh_port_ << "\n"
        << "HostKey " << (dir_ / "host_key").string() << "\n"
        << "PidFile " << (dir_ / "sshd.pid").string() << "\n"
        << "AuthorizedKeysFile " << (dir_ / "authorized_keys").string() << "\n"
        << "AllowUsers " << user_ << "\n"
        << "UsePAM no\nStrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        << "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nPrintMotd no\n"
        << "LogLevel VERBOSE\n";
    start_process("sshd", {kSshd, "-D", "-e", "-f", (dir_ / "sshd_config").string()});
    ASSERT_TRUE(wait_until(
        [&] {
          int fd = connect_to(ssh_port_);
          if (fd >= 0) close(fd);
          return fd >= 0;
        },
        10s))
        << "sshd did not listen on 127.0.0.1:" << ssh_port_ << ":\n"
        << log("sshd");

    start();
  }

  void TearDown() override {
    if (dir_.empty()) return;  // SetUp stopped before making anything
    // Whatever a failed test left running on the "remote": the agent and its tasks, by pid.
    const fs::path agent_dir = remote_dir() / "agents" / "ssh-node";
    if (int pid = read_pid(agent_dir / "agent.pid"); alive(pid)) ::kill(pid, SIGKILL);
    std::error_code ec;
    if (fs::is_directory(agent_dir / "work" / "tasks")) {
      for (const auto& t : fs::directory_iterator(agent_dir / "work" / "tasks", ec)) {
        if (int pgid = read_pid(t.path() / "pid"); pgid > 1) ::kill(-pgid, SIGKILL);
      }
    }
    stop_all();
    if (HasFailure()) {
      std::cerr << "sshd log:\n"
                << log("sshd") << "\nagent log:\n"
                << read_text(agent_dir / "agent.log");
    }
    LeptonTest::TearDown();
  }

  fs::path remote_dir() const { return dir_ / "remote"; }

  std::string target() const { return user_ + "@127.0.0.1:" + std::to_string(ssh_port_); }
  CommandResult add_node(const std::string& key = "client_key") {
    return cli("node add --ssh " + target() + " -i " + (dir_ / key).string() +
               " --name ssh-node --gpus a100:2 --remote-dir " + remote_dir().string());
  }

  json node(const std::string& name) {
    auto r = cli("node ls --json");
    if (r.exit_code != 0) return nullptr;
    for (const json& n : json::parse(r.out, nullptr, false)) {
      if (n.value("name", "") == name) return n;
    }
    return nullptr;
  }

  std::string user_;
  int ssh_port_ = 0;
};

TEST_F(SshNode, AddRunAJobAndRemove) {
  auto added = add_node();
  ASSERT_EQ(added.exit_code, 0) << added.out;
  EXPECT_NE(added.out.find("ssh-node: connecting to " + target()), std::string::npos) << added.out;
  EXPECT_NE(added.out.find("ssh-node: copying lepton"), std::string::npos) << added.out;
  EXPECT_NE(added.out.find("ssh-node: joined, 2x A100"), std::string::npos) << added.out;

  json n = node("ssh-node");
  ASSERT_TRUE(n.is_object()) << cli("node ls").out;
  EXPECT_TRUE(n.value("ready", false));
  EXPECT_EQ(n.value("gpu_count", 0), 2);
  EXPECT_EQ(n.value("gpu_model", ""), "A100");

  const fs::path agent_dir = remote_dir() / "agents" / "ssh-node";
  const int agent_pid = read_pid(agent_dir / "agent.pid");
  ASSERT_TRUE(alive(agent_pid));
  EXPECT_TRUE(fs::exists(remote_dir() / "bin" / "lepton"));
  EXPECT_EQ(fs::status(agent_dir / "token").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);

  // A job runs on the node, through the agent that ssh started.
  const std::string hello =
      submit("hello",
             "name: hello\nresources: {accelerators: A100:1, cpus: 1, memory: 0.1}\n"
             "run: echo \"hello from $LEPTON_JOB_ID on GPU $CUDA_VISIBLE_DEVICES\"\n");
  ASSERT_TRUE(wait_until([&] { return state(hello) == "SUCCEEDED"; }, 30s))
      << cli("job get " + hello).out;
  auto logs = cli("job logs " + hello);
  EXPECT_NE(logs.out.find("hello from " + hello + " on GPU "), std::string::npos) << logs.out;
  EXPECT_NE(cli("job get " + hello).out.find("ssh-node"), std::string::npos);

  // Adding it again while it is in the cluster is refused.
  auto twice = add_node();
  EXPECT_EQ(twice.exit_code, 2) << twice.out;
  EXPECT_NE(twice.out.find("already in the cluster"), std::string::npos) << twice.out;

  // A long job is running when the node is removed: the agent and the task both go.
  const std::string sleeper =
      submit("sleeper",
             "name: sleeper\nresources: {accelerators: A100:1, cpus: 1, memory: 0.1}\n"
             "run: sleep 600\n");
  ASSERT_TRUE(wait_until([&] { return state(sleeper) == "RUNNING"; }, 30s))
      << cli("job get " + sleeper).out;
  int task_pgid = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        std::error_code ec;
        for (const auto& t : fs::directory_iterator(agent_dir / "work" / "tasks", ec)) {
          if (t.path().filename().string().find(sleeper) == std::string::npos) continue;
          task_pgid = read_pid(t.path() / "pid");
        }
        return group_alive(task_pgid);
      },
      10s));

  auto removed = lepton("node remove ssh-node");
  ASSERT_EQ(removed.exit_code, 0) << removed.out;
  EXPECT_NE(removed.out.find("ssh-node: removed"), std::string::npos) << removed.out;
  EXPECT_FALSE(alive(agent_pid));
  EXPECT_FALSE(group_alive(task_pgid));
  EXPECT_FALSE(fs::exists(agent_dir / "token"));
  EXPECT_TRUE(wait_until([&] { return !node("ssh-node").value("ready", true); }, 15s))
      << cli("node ls").out;

  auto again = lepton("node remove ssh-node");
  EXPECT_EQ(again.exit_code, 2) << again.out;
  EXPECT_NE(again.out.find("was not added with `lepton node add`"), std::string::npos) << again.out;

  // Added back: the binary is already there, and the node is ready again.
  auto back = add_node();
  ASSERT_EQ(back.exit_code, 0) << back.out;
  EXPECT_NE(back.out.find("lepton is up to date"), std::string::npos) << back.out;
  EXPECT_TRUE(node("ssh-node").value("ready", false));
  ASSERT_EQ(lepton("node remove ssh-node").exit_code, 0);
}

TEST_F(SshNode, FailuresNameTheHostAndSayWhy) {
  // A key sshd does not accept.
  auto denied = add_node("stranger_key");
  EXPECT_EQ(denied.exit_code, 1) << denied.out;
  EXPECT_NE(denied.out.find("ssh " + target() + ": "), std::string::npos) << denied.out;
  EXPECT_NE(denied.out.find("Permission denied"), std::string::npos) << denied.out;

  // Nothing listens there.
  const int closed = free_port();
  auto refused = cli("node add --ssh " + user_ + "@127.0.0.1:" + std::to_string(closed) + " -i " +
                     (dir_ / "client_key").string() + " --name ssh-node");
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.out.find("127.0.0.1:" + std::to_string(closed)), std::string::npos)
      << refused.out;
  EXPECT_NE(refused.out.find("Connection refused"), std::string::npos) << refused.out;

  // Bad flags: exit 2, the flag named.
  auto bad_target = cli("node add --ssh 127.0.0.1 -i " + (dir_ / "client_key").string());
  EXPECT_EQ(bad_target.exit_code, 2);
  EXPECT_NE(bad_target.out.find("--ssh '127.0.0.1': no USER@"), std::string::npos)
      << bad_target.out;
  auto bad_gpus =
      cli("node add --ssh " + target() + " -i " + (dir_ / "client_key").string() + " --gpus A100");
  EXPECT_EQ(bad_gpus.exit_code, 2);
  EXPECT_NE(bad_gpus.out.find("--gpus 'A100': expected MODEL:COUNT"), std::string::npos)
      << bad_gpus.out;
  auto no_key = cli("node add --ssh " + target() + " -i " + (dir_ / "missing").string());
  EXPECT_EQ(no_key.exit_code, 2);
  EXPECT_NE(no_key.out.find("--identity " + (dir_ / "missing").string() + ": no such file"),
            std::string::npos)
      << no_key.out;
  auto far =
      lepton("node add --ssh " + user_ + "@gpu1.example.com -i " + (dir_ / "client_key").string() +
             " --server " + url_ + " --token-file " + (dir_ / "server" / "token").string());
  EXPECT_EQ(far.exit_code, 2);
  EXPECT_NE(far.out.find("is a loopback address, which gpu1.example.com cannot reach"),
            std::string::npos)
      << far.out;

  // None of this left a host marked in use.
  EXPECT_EQ(lepton("node remove ssh-node").exit_code, 2);
}

}  // namespace
}  // namespace lepton::e2e
