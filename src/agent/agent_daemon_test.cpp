// The agent against a fake server: self-fencing when the server goes silent for its lease, the
// note in a task's log when the server stops an attempt, and hostile input (replies, task.json).
#include "agent/agent_daemon.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/executor.h"
#include "net/http.h"

namespace lepton::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// Alive and not a zombie.
bool alive(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// Answers the agent's register and heartbeat calls as the tests set it to.
class FakeServer {
 public:
  FakeServer() {
    auto http = net::HttpServer::start(
        {}, [this](net::HttpRequest req, net::Responder respond) { respond(handle(req)); });
    EXPECT_TRUE(http.is_ok()) << http.status().message();
    if (http.is_ok()) http_ = std::move(*http);
  }
  ~FakeServer() {
    if (http_) http_->stop();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_->port()); }

  // Every reply from now on is this status (200: the normal replies).
  void set_status(int status) {
    std::lock_guard lock(mu_);
    status_ = status;
  }
  void set_start(json start) {
    std::lock_guard lock(mu_);
    start_ = std::move(start);
  }
  void set_stop(json stop) {
    std::lock_guard lock(mu_);
    stop_ = std::move(stop);
  }
  // Replaces the whole heartbeat reply (null: the normal one).
  void set_raw_reply(std::string body) {
    std::lock_guard lock(mu_);
    raw_reply_ = std::move(body);
  }

  // The task entries of the last heartbeat answered with 200, and how many there were.
  json last_tasks() {
    std::lock_guard lock(mu_);
    return last_tasks_;
  }
  int answered() {
    std::lock_guard lock(mu_);
    return answered_;
  }

  // The state the last answered heartbeat reported for the job's task; "" when not reported.
  std::string state_of(const std::string& job_id, json* entry = nullptr) {
    for (const json& t : last_tasks()) {
      if (t.value("job_id", "") == job_id) {
        if (entry) *entry = t;
        return t.value("state", "");
      }
    }
    return "";
  }

 private:
  net::HttpResponse handle(const net::HttpRequest& req) {
    std::lock_guard lock(mu_);
    if (status_ != 200) return {status_, "application/json", R"({"error":{"message":"down"}})"};
    const json lease = {{"name", "node1"}, {"heartbeat_ms", 50}, {"lease_ms", 1500}};
    if (req.path == "/api/v1/agents/register") return {200, "application/json", lease.dump()};
    ++answered_;
    json body = json::parse(req.body, nullptr, false);
    last_tasks_ = body.is_object() ? body.value("tasks", json::array()) : json::array();
    if (!raw_reply_.empty()) return {200, "application/json", raw_reply_};
    json reply = lease;
    reply["start"] = start_;
    reply["stop"] = stop_;
    reply["log_offsets"] = json::array();
    return {200, "application/json", reply.dump()};
  }

  std::mutex mu_;
  int status_ = 200;
  json start_ = json::array();
  json stop_ = json::array();
  std::string raw_reply_;
  json last_tasks_ = json::array();
  int answered_ = 0;
  std::unique_ptr<net::HttpServer> http_;
};

class AgentDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lepton-agent-daemon-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    work_ = tmpl;
  }
  void TearDown() override {
    if (agent_) agent_->stop();
    agent_.reset();
    std::error_code ec;
    for (const auto& t : fs::directory_iterator(work_ / "tasks", ec)) {
      (void)terminate_task(t.path().string(), 0ms);
    }
    reap_children();
    fs::remove_all(work_, ec);
  }

  void start_agent(std::chrono::milliseconds stop_grace = 10000ms) {
    AgentOptions o;
    o.server_url = server_.url();
    o.name = "node1";
    o.gpus = "none";
    o.work_dir = work_.string();
    o.cpu_milli = 2000;
    o.memory_mib = 1024;
    o.stop_grace = stop_grace;
    auto a = AgentDaemon::start(o);
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    agent_ = std::move(*a);
  }

  static json task_start(const std::string& job_id, const std::string& script) {
    return {{"job_id", job_id},
            {"rank", 0},
            {"attempt", 1},
            {"script", script},
            {"env", {{"LEPTON_JOB_ID", job_id}}}};
  }

  fs::path task_dir(const std::string& job_id) const { return work_ / "tasks" / (job_id + "_0_1"); }

  pid_t wrapper_pid(const std::string& job_id) const {
    return std::atoi(slurp(task_dir(job_id) / "pid").c_str());
  }

  FakeServer server_;
  fs::path work_;
  std::unique_ptr<AgentDaemon> agent_;
};

TEST_F(AgentDaemonTest, StopsItsTasksWhenTheServerIsSilentForTheLease) {
  start_agent();
  server_.set_start(json::array({task_start("job1", "echo started\nsleep 30\n")}));
  ASSERT_TRUE(eventually([&] { return server_.state_of("job1") == "RUNNING"; }, 10s));
  server_.set_start(json::array());
  const pid_t pid = wrapper_pid("job1");
  ASSERT_GT(pid, 1);
  // While the server answers, the lease is renewed: the task runs on past it.
  std::this_thread::sleep_for(2000ms);
  ASSERT_EQ(server_.state_of("job1"), "RUNNING");
  ASSERT_TRUE(alive(pid));

  testing::internal::CaptureStderr();
  server_.set_status(503);
  const auto silent = Clock::now();
  // Lease (1.5 s) + the fencing grace (2 s) + SIGKILL, with room for a loaded machine.
  const bool stopped = eventually(
      [&] {
        return !alive(pid) && poll_task(task_dir("job1").string()).state != TaskStatus::kRunning;
      },
      15s);
  const auto took = Clock::now() - silent;
  std::string err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(stopped);
  // Not before the lease ran out: it counts from the last heartbeat that was answered, sent at
  // most one interval (50 ms) before the server went silent.
  EXPECT_GE(took, 1400ms);
  EXPECT_LT(took, 6000ms);  // sleep dies of the SIGTERM at once
  EXPECT_NE(err.find("lepton agent node1: no contact with the server for 1 s; stopping tasks job1 "
                     "rank 0 attempt 1 so they cannot run twice"),
            std::string::npos)
      << err;
  const std::string log = slurp(task_dir("job1") / "log");
  EXPECT_NE(log.find("lepton agent: no contact with the server for 1 s (lease 1500 ms): stopping "
                     "this task so that it cannot run twice"),
            std::string::npos)
      << log;

  // Back in contact: the server hears the task was fenced (and how it ended), until it says stop.
  const int before = server_.answered();
  server_.set_status(200);
  json entry;
  ASSERT_TRUE(eventually(
      [&] { return server_.answered() > before && server_.state_of("job1", &entry) == "FENCED"; },
      10s));
  EXPECT_EQ(entry.value("exit_code", 0), 128 + SIGTERM);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(server_.state_of("job1"), "FENCED");  // kept, not forgotten
  server_.set_stop(json::array({{{"job_id", "job1"}, {"rank", 0}, {"attempt", 1}}}));
  ASSERT_TRUE(eventually([&] { return server_.state_of("job1").empty(); }, 10s));
  EXPECT_TRUE(fs::exists(task_dir("job1") / "forgotten"));
}

TEST_F(AgentDaemonTest, AStopFromTheServerIsExplainedInTheTasksLog) {
  start_agent();
  server_.set_start(json::array({task_start("job2", "echo started\nsleep 30\n")}));
  ASSERT_TRUE(eventually([&] { return server_.state_of("job2") == "RUNNING"; }, 10s));
  const pid_t pid = wrapper_pid("job2");
  server_.set_start(json::array());
  testing::internal::CaptureStderr();
  server_.set_stop(json::array({{{"job_id", "job2"}, {"rank", 0}, {"attempt", 1}}}));
  ASSERT_TRUE(eventually([&] { return !alive(pid); }, 10s));
  std::string err = testing::internal::GetCapturedStderr();
  const std::string why =
      "the server stopped job2 rank 0 attempt 1: it no longer runs this attempt (cancelled, "
      "preempted or superseded by another attempt)";
  EXPECT_NE(slurp(task_dir("job2") / "log").find("lepton agent: " + why), std::string::npos);
  EXPECT_NE(err.find(why), std::string::npos) << err;
}

TEST_F(AgentDaemonTest, SurvivesHostileRepliesAndTaskFiles) {
  // Task directories with garbage where task.json should be, one naming a directory elsewhere.
  const std::vector<std::pair<std::string, std::string>> files = {
      {"bad1", "[1,2"},
      {"bad2", R"({"job_id": 5, "rank": "x"})"},
      {"bad3", R"(["job_id"])"},
      {"bad4", R"({"job_id": "j", "rank": 1e300, "attempt": -1})"},
      {"x_0_1", R"({"job_id": "../x", "rank": 0, "attempt": 1})"},
  };
  for (const auto& [dir, text] : files) {
    fs::create_directories(work_ / "tasks" / dir);
    std::ofstream(work_ / "tasks" / dir / "task.json") << text;
  }
  start_agent();
  ASSERT_TRUE(eventually([&] { return server_.answered() > 0; }, 10s));
  EXPECT_TRUE(server_.last_tasks().empty()) << server_.last_tasks().dump();
  // Replies that are not what the protocol says.
  for (const std::string& reply : {
           std::string("not json"),
           std::string("[1, 2]"),
           std::string(R"({"start": 5, "stop": "x", "log_offsets": null, "heartbeat_ms": "x"})"),
           std::string(R"({"start": [5, null, {"job_id": "../../escape", "script": "exit 0"},
                                     {"job_id": "ok", "rank": "zero"}, {"job_id": ["a"]}],
                           "stop": [{"job_id": 7}, {"job_id": "a", "grace_ms": "x"}],
                           "log_offsets": [{"job_id": "a", "offset": "x"}],
                           "heartbeat_ms": -5, "lease_ms": "soon"})"),
       }) {
    server_.set_raw_reply(reply);
    const int before = server_.answered();
    ASSERT_TRUE(eventually([&] { return server_.answered() >= before + 3; }, 10s)) << reply;
  }
  EXPECT_FALSE(fs::exists(work_ / "escape"));
  EXPECT_FALSE(fs::exists(work_.parent_path() / "escape"));
  // Still working: a valid start runs.
  server_.set_raw_reply("");
  server_.set_start(json::array({task_start("job3", "echo fine\n")}));
  json entry;
  ASSERT_TRUE(eventually([&] { return server_.state_of("job3", &entry) == "EXITED"; }, 10s));
  EXPECT_EQ(entry.value("exit_code", -1), 0);
}

}  // namespace
}  // namespace lepton::agent
