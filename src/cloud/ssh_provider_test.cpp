#include "cloud/ssh_provider.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace lepton::cloud::ssh {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(ParseSshTarget, UserHostAndPort) {
  auto t = parse_ssh_target("alice@gpu1.example.com:2222");
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->user, "alice");
  EXPECT_EQ(t->host, "gpu1.example.com");
  EXPECT_EQ(t->port, 2222);
  auto d = parse_ssh_target("root@10.0.0.7");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->port, 22);
  auto v6 = parse_ssh_target("ubuntu@[fe80::1]:22022");
  ASSERT_TRUE(v6.is_ok()) << v6.status().message();
  EXPECT_EQ(v6->host, "fe80::1");
  EXPECT_EQ(v6->port, 22022);
  EXPECT_EQ(format_ssh_target(*v6), "ubuntu@[fe80::1]:22022");
  EXPECT_EQ(format_ssh_target(*t), "alice@gpu1.example.com:2222");
}

TEST(ParseSshTarget, BadInputNamesTheFieldAndThePart) {
  struct Case {
    const char* text;
    const char* expected;
  };
  for (const Case& c : {
           Case{"gpu1", "no USER@ before the host"},
           Case{"@gpu1", "empty user"},
           Case{"alice@", "empty host"},
           Case{"-oProxyCommand=x@gpu1", "user '-oProxyCommand=x'"},
           Case{"alice@-oProxyCommand=touch", "host '-oProxyCommand=touch'"},
           Case{"alice@gpu 1", "host 'gpu 1'"},
           Case{"alice@gpu1;rm", "host 'gpu1;rm'"},
           Case{"al$ice@gpu1", "user 'al$ice'"},
           Case{"alice@gpu1:", "empty port"},
           Case{"alice@gpu1:0", "port '0'"},
           Case{"alice@gpu1:65536", "port '65536'"},
           Case{"alice@gpu1:22x", "port '22x'"},
           Case{"alice@[::1", "'[' without ']'"},
           Case{"alice@[gpu1]", "not an IPv6 address"},
           Case{"alice@[::1]22", "expected ':PORT' after ']'"},
       }) {
    auto t = parse_ssh_target(c.text, "--ssh");
    ASSERT_FALSE(t.is_ok()) << c.text;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = t.status().message();
    EXPECT_EQ(m.rfind("--ssh '" + std::string(c.text) + "': ", 0), 0u) << m;
    EXPECT_NE(m.find(c.expected), std::string::npos) << m;
    EXPECT_NE(m.find("expected USER@HOST or USER@HOST:PORT"), std::string::npos) << m;
  }
}

// What /bin/sh makes of a quoted word: the word itself, whatever it holds.
TEST(ShellQuote, RoundTripsThroughSh) {
  for (const std::string& s :
       {std::string(""), std::string("plain"), std::string("it's"), std::string("'"),
        std::string("''\\'"), std::string("$(touch /x) `id`"), std::string("a b\tc\nd"),
        std::string("\"$HOME\"; rm -rf ~ &"), std::string("*?[]{}!#~"), std::string("-n")}) {
    ProgramResult r =
        run_program({"sh", "-c", "printf '%s' " + shell_quote(s)}, "", "", std::chrono::seconds(5));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, s);
  }
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
}

TEST(NormalizeHost, FillsDefaultsAndCanonicalisesGpus) {
  SshHost h;
  h.target = {"alice", "gpu1.example.com", 22};
  h.gpus = "a100-80gb:8";
  auto n = normalize_host(h);
  ASSERT_TRUE(n.is_ok()) << n.status().message();
  EXPECT_EQ(n->name, "gpu1.example.com");
  EXPECT_EQ(n->gpus, "A100-80GB:8");
  EXPECT_EQ(n->remote_dir, ".lepton");
  h.gpus = "NONE";
  h.remote_dir = "~/lepton/";
  h.target.host = "fe80::1";
  h.name = "";
  n = normalize_host(h);
  ASSERT_TRUE(n.is_ok()) << n.status().message();
  EXPECT_EQ(n->gpus, "none");
  EXPECT_EQ(n->remote_dir, "lepton");
  EXPECT_EQ(n->name, "fe80--1");
}

TEST(NormalizeHost, BadFieldsAreNamed) {
  SshHost h;
  h.target = {"alice", "gpu1", 22};
  struct Case {
    std::string gpus, name, remote_dir, expected;
  };
  for (const Case& c : {
           Case{"A100", "", "", "--gpus 'A100': expected MODEL:COUNT"},
           Case{"A100:0", "", "", "--gpus 'A100:0': expected a whole GPU count"},
           Case{"A100:1.5", "", "", "--gpus 'A100:1.5': expected a whole GPU count"},
           Case{"A 100:1", "", "", "--gpus 'A 100:1': expected a GPU model"},
           Case{"", "../x", "", "--name '../x': expected 1 to 63"},
           Case{"", "a/b", "", "--name 'a/b'"},
           Case{"", "-x", "", "--name '-x'"},
           Case{"", std::string(64, 'a'), "", "--name '" + std::string(64, 'a') + "'"},
           Case{"", "", "-rf", "--remote-dir '-rf'"},
           Case{"", "", "~bob/x", "--remote-dir '~bob/x'"},
       }) {
    SshHost b = h;
    b.gpus = c.gpus;
    b.name = c.name;
    b.remote_dir = c.remote_dir;
    auto n = normalize_host(b, "--");
    ASSERT_FALSE(n.is_ok()) << c.expected;
    EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(n.status().message().rfind(c.expected, 0), 0u) << n.status().message();
  }
}

TEST(SshArgv, SafeOptionsAndTheHostAfterDoubleDash) {
  SshProviderOptions o;
  o.state_dir = "/var/lib/lepton/ssh";
  o.connect_timeout = std::chrono::seconds(7);
  SshHost h;
  h.target = {"alice", "gpu1", 2222};
  h.identity_file = "/keys/id_ed25519";
  auto argv = ssh_argv(o, h, "sh -s");
  auto has = [&](const std::string& a, const std::string& b) {
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == a && argv[i + 1] == b) return true;
    }
    return false;
  };
  EXPECT_EQ(argv.front(), "ssh");
  EXPECT_TRUE(has("-p", "2222"));
  EXPECT_TRUE(has("-l", "alice"));
  EXPECT_TRUE(has("-i", "/keys/id_ed25519"));
  EXPECT_TRUE(has("-o", "IdentitiesOnly=yes"));
  EXPECT_TRUE(has("-o", "BatchMode=yes"));
  EXPECT_TRUE(has("-o", "StrictHostKeyChecking=accept-new"));
  EXPECT_TRUE(has("-o", "UserKnownHostsFile=/var/lib/lepton/ssh/known_hosts"));
  EXPECT_TRUE(has("-o", "ConnectTimeout=7"));
  ASSERT_GE(argv.size(), 3u);
  EXPECT_EQ(argv[argv.size() - 3], "--");
  EXPECT_EQ(argv[argv.size() - 2], "gpu1");
  EXPECT_EQ(argv.back(), "sh -s");
}

TEST(RunProgram, StdinOutputExitCodeAndDeadline) {
  ProgramResult r = run_program({"sh", "-c", "cat; echo oops >&2; exit 3"}, "from stdin", "", 5s);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "from stdin");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_FALSE(r.timed_out);

  const auto start = std::chrono::steady_clock::now();
  // The background sleep holds the pipes open; the whole process group goes at the deadline.
  r = run_program({"sh", "-c", "sleep 30 & sleep 30"}, "", "", 300ms);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);

  r = run_program({"/nonexistent/ssh"}, "", "", 1s);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_NE(r.spawn_error.find("/nonexistent/ssh"), std::string::npos) << r.spawn_error;
}

// The provider end to end with a stand-in for ssh that runs the remote command locally (the real
// sshd is in tests/ssh_provider_test.cpp) and a stand-in for lepton: a shell script whose `agent`
// loops until killed.
class FakeSshProvider : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lepton-ssh-unit-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fake_ssh_ = write_script("fake-ssh", R"(#!/bin/sh
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
echo "$2" >> "$(dirname "$0")/ssh-hosts"
exec sh -c "$3"
)");
    fake_lepton_ = write_script("lepton", R"(#!/bin/sh
case $1 in
  --version) echo "lepton 0.0.0-fake" ;;
  agent) while :; do sleep 0.2; done ;;
esac
)");
  }
  void TearDown() override {
    // Whatever a failed test left running: the fake agent and task groups, by pid.
    for (const auto& pid_file : {dir_ / "remote/agents/h1/agent.pid", dir_ / "task.pid"}) {
      std::ifstream in(pid_file);
      int pid = 0;
      if (in >> pid && pid > 1) {
        ::kill(pid, SIGKILL);
        ::kill(-pid, SIGKILL);
      }
    }
    fs::remove_all(dir_);
  }

  std::string write_script(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }

  SshProviderOptions options() {
    SshProviderOptions o;
    SshHost h1;
    h1.target = {"alice", "gpu1", 22};
    h1.name = "h1";
    h1.gpus = "a100:2";
    h1.remote_dir = (dir_ / "remote").string();
    SshHost h2 = h1;
    h2.target.host = "gpu2";
    h2.name = "h2";
    h2.gpus = "T4:1";
    o.hosts = {h1, h2};
    o.state_dir = (dir_ / "state").string();
    o.lepton_binary = fake_lepton_;
    o.server_url = "http://10.0.0.1:8080";
    o.token = "tok'en $(x)";
    o.ssh_program = fake_ssh_;
    o.command_timeout = std::chrono::seconds(30);
    return o;
  }

  static bool alive(int pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string s;
    if (!std::getline(stat, s)) return false;
    return s.substr(s.rfind(')') + 2, 1) != "Z";
  }

  fs::path dir_;
  std::string fake_ssh_, fake_lepton_;
};

TEST_F(FakeSshProvider, OffersProvisionListTerminate) {
  std::vector<std::string> progress;
  SshProviderOptions o = options();
  o.progress = [&](const std::string& line) { progress.push_back(line); };
  auto p = SshProvider::create(o);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  SshProvider& provider = **p;

  auto offers = provider.offers({});
  ASSERT_TRUE(offers.is_ok());
  ASSERT_EQ(offers->size(), 2u);
  EXPECT_EQ((*offers)[0].cloud, "ssh");
  EXPECT_EQ((*offers)[0].price_per_hour, 0);
  OfferQuery a100;
  a100.gpu_model = "A100";
  offers = provider.offers(a100);
  ASSERT_EQ(offers->size(), 1u);
  EXPECT_EQ((*offers)[0].instance_type, "h1");
  EXPECT_EQ((*offers)[0].gpu_count, 2);
  EXPECT_EQ((*offers)[0].region, "alice@gpu1:22");

  ProvisionRequest req;
  req.offer = (*offers)[0];
  auto launched = provider.provision(req);
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  ASSERT_EQ(launched->size(), 1u);
  EXPECT_EQ((*launched)[0].id, "h1");
  EXPECT_EQ((*launched)[0].state, InstanceState::kPending);

  const fs::path agent_dir = dir_ / "remote/agents/h1";
  std::ifstream token(agent_dir / "token");
  std::string token_text;
  std::getline(token, token_text);
  EXPECT_EQ(token_text, "tok'en $(x)");
  EXPECT_EQ(fs::status(agent_dir / "token").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  int agent_pid = 0;
  std::ifstream(agent_dir / "agent.pid") >> agent_pid;
  ASSERT_GT(agent_pid, 1);
  EXPECT_TRUE(alive(agent_pid));
  std::ifstream cmdline("/proc/" + std::to_string(agent_pid) + "/cmdline");
  std::string args((std::istreambuf_iterator<char>(cmdline)), {});
  for (char& c : args) c = c == '\0' ? ' ' : c;
  EXPECT_NE(args.find("agent --server http://10.0.0.1:8080 --token-file " +
                      (agent_dir / "token").string() + " --name h1 --work-dir " +
                      (agent_dir / "work").string() + " --gpus A100:2"),
            std::string::npos)
      << args;
  EXPECT_TRUE(fs::exists(dir_ / "remote/bin/lepton"));
  EXPECT_NE(std::find(progress.begin(), progress.end(),
                      "h1: copying lepton (0 MiB) to " + (dir_ / "remote/bin/lepton").string()),
            progress.end());

  // h1 is taken: one offer left, and a second provision of h1 is refused.
  offers = provider.offers({});
  ASSERT_EQ(offers->size(), 1u);
  EXPECT_EQ((*offers)[0].instance_type, "h2");
  auto again = provider.provision(req);
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);

  // Another provider on the same state directory sees h1 in use.
  auto other = SshProvider::create(options());
  ASSERT_TRUE(other.is_ok());
  auto listed = (*other)->list_instances();
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, "h1");
  EXPECT_EQ((*listed)[0].state, InstanceState::kRunning);

  // A task of the agent: a process group led by the pid in work/tasks/ID/pid.
  const fs::path task = agent_dir / "work/tasks/job1-0";
  fs::create_directories(task);
  ProgramResult started =
      run_program({"sh", "-c",
                   "setsid sh -c 'echo $$ > \"$0\"; sleep 300 & wait' " + (task / "pid").string() +
                       " >/dev/null 2>&1 </dev/null &"},
                  "", "", 5s);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  int task_pid = 0;
  for (int i = 0; i < 50 && task_pid == 0; ++i) {
    std::this_thread::sleep_for(100ms);
    std::ifstream(task / "pid") >> task_pid;
  }
  ASSERT_GT(task_pid, 1);
  std::ofstream(dir_ / "task.pid") << task_pid;
  EXPECT_TRUE(alive(task_pid));

  // Terminate from the other provider: the agent and the task group are gone, h1 is free again.
  progress.clear();
  Status s = (*other)->terminate({"h1"});
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_FALSE(alive(agent_pid));
  EXPECT_FALSE(alive(task_pid));
  EXPECT_FALSE(fs::exists(agent_dir / "token"));
  EXPECT_TRUE(fs::exists(agent_dir / "agent.log"));
  EXPECT_EQ(provider.offers({})->size(), 2u);
  EXPECT_TRUE(provider.list_instances()->empty());

  // The binary is not copied again when it is the same.
  progress.clear();
  launched = provider.provision(req);
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  EXPECT_NE(std::find(progress.begin(), progress.end(),
                      "h1: lepton is up to date at " + (dir_ / "remote/bin/lepton").string()),
            progress.end());
  std::ifstream(agent_dir / "agent.pid") >> agent_pid;
  ASSERT_TRUE(provider.terminate({"h1"}).is_ok());
  EXPECT_FALSE(alive(agent_pid));

  Status unknown = provider.terminate({"nope"});
  EXPECT_EQ(unknown.code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.message().find("'nope'"), std::string::npos) << unknown.message();
  EXPECT_TRUE(provider.interruption_notices()->empty());
}

TEST_F(FakeSshProvider, BootstrapScriptStartsTheAgentInstead) {
  auto p = SshProvider::create(options());
  ASSERT_TRUE(p.is_ok());
  ProvisionRequest req;
  req.offer.instance_type = "h2";
  req.bootstrap_script =
      "echo \"$LEPTON_NODE_NAME $LEPTON_GPUS $LEPTON_SERVER\" > boot.txt\n"
      "setsid \"$LEPTON_BIN\" agent < /dev/null > /dev/null 2>&1 &\n"
      "echo $! > \"$LEPTON_AGENT_DIR/agent.pid\"\n";
  auto launched = (*p)->provision(req);
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  const fs::path agent_dir = dir_ / "remote/agents/h2";
  std::ifstream boot(agent_dir / "boot.txt");
  std::string line;
  std::getline(boot, line);
  EXPECT_EQ(line, "h2 T4:1 http://10.0.0.1:8080");
  int pid = 0;
  std::ifstream(agent_dir / "agent.pid") >> pid;
  ASSERT_GT(pid, 1);
  EXPECT_TRUE(alive(pid));
  ASSERT_TRUE((*p)->terminate({"h2"}).is_ok());
  EXPECT_FALSE(alive(pid));

  req.bootstrap_script = "echo broken >&2; exit 7";
  auto failed = (*p)->provision(req);
  ASSERT_FALSE(failed.is_ok());
  EXPECT_NE(failed.status().message().find("alice@gpu2:22"), std::string::npos)
      << failed.status().message();
  EXPECT_NE(failed.status().message().find("broken"), std::string::npos)
      << failed.status().message();
  EXPECT_TRUE((*p)->list_instances()->empty());  // the host went back to the pool
}

TEST_F(FakeSshProvider, AnUnreachableHostIsUnavailableAndNamed) {
  SshProviderOptions o = options();
  o.ssh_program = "ssh";  // the real client, to a port nothing listens on
  o.hosts.resize(1);
  o.hosts[0].target = {"alice", "127.0.0.1", 1};
  o.connect_timeout = std::chrono::seconds(5);
  auto p = SshProvider::create(o);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  ProvisionRequest req;
  auto launched = (*p)->provision(req);
  ASSERT_FALSE(launched.is_ok());
  EXPECT_EQ(launched.status().code(), StatusCode::kUnavailable);
  const std::string& m = launched.status().message();
  EXPECT_EQ(m.rfind("ssh alice@127.0.0.1:1: ", 0), 0u) << m;
  EXPECT_NE(m.find("Connection refused"), std::string::npos) << m;
  EXPECT_TRUE((*p)->list_instances()->empty());
}

TEST(SshProviderCreate, DuplicateHostsAndBadStateDirAreRefused) {
  SshProviderOptions o;
  o.state_dir = (fs::temp_directory_path() / "lepton-ssh-unit-create").string();
  SshHost h;
  h.target = {"alice", "gpu1", 22};
  o.hosts = {h, h};
  auto p = SshProvider::create(o);
  ASSERT_FALSE(p.is_ok());
  EXPECT_EQ(p.status().message(), "hosts[1].name 'gpu1': used by another host");
  o.hosts[1].name = "other";
  p = SshProvider::create(o);
  ASSERT_FALSE(p.is_ok());
  EXPECT_NE(p.status().message().find("the same machine as another host"), std::string::npos);
  o.hosts.resize(1);
  o.state_dir = "/tmp/with space";
  p = SshProvider::create(o);
  ASSERT_FALSE(p.is_ok());
  EXPECT_EQ(p.status().message().rfind("state_dir '/tmp/with space'", 0), 0u);
  fs::remove_all(fs::temp_directory_path() / "lepton-ssh-unit-create");
}

}  // namespace
}  // namespace lepton::cloud::ssh
