#include "server/control_plane.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>

#include "core/testing/mutate.h"
#include "server/testing/agent_json.h"
#include "store/sqlite_store.h"
#include "store/testing/faulty_store.h"

namespace lepton::server {
namespace {

namespace fs = std::filesystem;

class ControlPlaneTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("lepton-cp-" + std::to_string(getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    open();
  }
  void TearDown() override {
    cp_.reset();
    fs::remove_all(dir_);
  }
  // Reopens over the same file through a FaultyStore, returned to make commits fail.
  store::testing::FaultyStore* open_faulty() {
    cp_.reset();
    auto sqlite = store::open_sqlite_store((dir_ / "lepton.db").string());
    EXPECT_TRUE(sqlite.is_ok());
    auto faulty = std::make_unique<store::testing::FaultyStore>(std::move(*sqlite));
    store::testing::FaultyStore* fault = faulty.get();
    auto cp = ControlPlane::open(std::move(faulty),
                                 {.data_dir = dir_.string(), .node_timeout_ms = 1000}, now_);
    EXPECT_TRUE(cp.is_ok());
    cp_ = std::move(*cp);
    return fault;
  }
  void open() {
    cp_.reset();
    auto store = store::open_sqlite_store((dir_ / "lepton.db").string());
    ASSERT_TRUE(store.is_ok()) << store.status().message();
    auto cp = ControlPlane::open(std::move(*store),
                                 {.data_dir = dir_.string(), .node_timeout_ms = 1000}, now_);
    ASSERT_TRUE(cp.is_ok()) << cp.status().message();
    cp_ = std::move(*cp);
  }
  void add_node(const std::string& name, int gpus, const std::string& model = "A100") {
    json body = {{"name", name},
                 {"cpu_milli", 8000},
                 {"memory_mib", 32768},
                 {"gpu_count", gpus},
                 {"gpu_model", gpus ? model : ""}};
    auto r = agent_json::register_agent(*cp_, body.dump(), "10.0.0." + std::to_string(nodes_++ + 1),
                                        now_);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
  }
  std::string submit(const std::string& spec_json) {
    auto r = cp_->submit_job(spec_json, now_);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? (*r)["id"].get<std::string>() : "";
  }
  json job(const std::string& id) { return cp_->get_job(id).value(); }
  json beat(const std::string& node, json tasks = json::array()) {
    auto r = agent_json::heartbeat(*cp_, node,
                                   json{{"tasks", tasks}, {"logs", json::array()}}.dump(), now_);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? *r : json();
  }
  static json report(const json& start, const std::string& state, int code = 0) {
    return {{"job_id", start["job_id"]},
            {"rank", start["rank"]},
            {"attempt", start["attempt"]},
            {"state", state},
            {"exit_code", code}};
  }
  void tick() { ASSERT_TRUE(cp_->tick(now_).is_ok()); }

  fs::path dir_;
  std::unique_ptr<ControlPlane> cp_;
  int64_t now_ = 1'000'000;
  int nodes_ = 0;
};

const char* kGpuJob =
    R"({"name":"train","resources":{"accelerators":"A100:2","cpus":2,"memory":4},"run":"true"})";

TEST_F(ControlPlaneTest, AJobRunsToSuccess) {
  std::string id = submit(kGpuJob);
  tick();
  EXPECT_EQ(job(id)["state"], "PENDING");
  EXPECT_EQ(job(id)["reason"], "0/0 nodes fit");
  add_node("gpu-1", 4);
  tick();
  EXPECT_EQ(job(id)["state"], "SCHEDULED");
  json reply = beat("gpu-1");
  ASSERT_EQ(reply["start"].size(), 1u);
  json start = reply["start"][0];
  EXPECT_EQ(start["env"]["CUDA_VISIBLE_DEVICES"], "0,1");
  EXPECT_EQ(start["env"]["LEPTON_NODE_RANK"], "0");
  EXPECT_EQ(start["env"]["MASTER_ADDR"], "10.0.0.1");
  EXPECT_EQ(job(id)["state"], "STARTING");
  beat("gpu-1", {report(start, "RUNNING")});
  EXPECT_EQ(job(id)["state"], "RUNNING");
  reply = beat("gpu-1", {report(start, "EXITED", 0)});
  EXPECT_EQ(job(id)["state"], "SUCCEEDED");
  EXPECT_NE(cp_->metrics().find("lepton_gpu_allocated_milli 0\n"), std::string::npos);
  // Acknowledged: the agent is told to forget the finished task.
  reply = beat("gpu-1", {report(start, "EXITED", 0)});
  ASSERT_EQ(reply["stop"].size(), 1u);
  EXPECT_TRUE(reply["start"].empty());
}

TEST_F(ControlPlaneTest, PendingReasonNamesTheFilters) {
  add_node("cpu-1", 0);
  add_node("t4-1", 2, "T4");
  std::string id = submit(kGpuJob);
  tick();
  EXPECT_EQ(job(id)["state"], "PENDING");
  EXPECT_EQ(job(id)["reason"], "0/2 nodes fit: 2 no gpu of an allowed model");
}

TEST_F(ControlPlaneTest, GangsTakeDistinctNodesAllOrNothing) {
  const char* gang =
      R"({"name":"gang","resources":{"accelerators":"A100:4","cpus":1,"memory":1},"num_nodes":3,"run":"true"})";
  add_node("a", 8);
  add_node("b", 8);
  std::string id = submit(gang);
  tick();
  EXPECT_EQ(job(id)["state"], "PENDING");  // two nodes for three ranks: nothing is held
  EXPECT_NE(job(id)["reason"].get<std::string>().find("rank 2 of 3"), std::string::npos);
  EXPECT_EQ(cp_->metrics().find("lepton_gpu_allocated_milli 0\n") != std::string::npos, true);
  add_node("c", 8);
  tick();
  json j = job(id);
  ASSERT_EQ(j["state"], "SCHEDULED");
  std::set<std::string> nodes;
  for (const json& t : j["tasks"]) nodes.insert(t["node"].get<std::string>());
  EXPECT_EQ(nodes.size(), 3u);
  json start = beat("b")["start"][0];
  EXPECT_EQ(start["env"]["LEPTON_NUM_NODES"], "3");
  EXPECT_EQ(start["env"]["WORLD_SIZE"], "3");
  EXPECT_EQ(start["env"]["LEPTON_NODE_IPS"].get<std::string>().size(), 26u);  // 3 IPs
}

TEST_F(ControlPlaneTest, FailuresRestartUpToMaxRestartsThenFail) {
  add_node("gpu-1", 4);
  std::string id = submit(
      R"({"name":"flaky","resources":{"accelerators":"A100:1"},"run":"false","max_restarts":1})");
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "EXITED", 3)});
  // Restarted, and placed again within the same heartbeat (the resources it freed are free).
  EXPECT_EQ(job(id)["state"], "SCHEDULED");
  EXPECT_EQ(job(id)["restarts"], 1);
  EXPECT_EQ(job(id)["tasks"][0]["attempt"], 1);
  json reply = beat("gpu-1", {report(start, "EXITED", 3)});  // the old attempt is stale
  ASSERT_EQ(reply["start"].size(), 1u);
  EXPECT_EQ(reply["start"][0]["attempt"], 1);
  EXPECT_EQ(reply["stop"].size(), 1u);
  beat("gpu-1", {report(reply["start"][0], "EXITED", 3)});
  EXPECT_EQ(job(id)["state"], "FAILED");
  EXPECT_EQ(job(id)["reason"], "rank 0 exited with code 3");
}

// Node timeout 1 s in these tests, so agents hold a lease of 2 s and a lost node's tasks move
// after 2 s + the 10 s fence margin.
constexpr int64_t kFenceMs = 12'000;

// Advances the clock in heartbeat-sized steps, with `node` beating and the loop ticking.
#define ADVANCE_WITH(node, ms)                       \
  for (int64_t left = (ms); left > 0; left -= 500) { \
    now_ += std::min<int64_t>(500, left);            \
    beat(node);                                      \
    tick();                                          \
  }

TEST_F(ControlPlaneTest, LostNodesRescheduleOnlyOnceTheirLeaseHasRunOut) {
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "RUNNING")});
  add_node("gpu-2", 4);
  // gpu-1 misses heartbeats; gpu-2 keeps beating. Lost (no new work) after the node timeout, but
  // its task may still run there until its agent's lease has run out: it stays put.
  ADVANCE_WITH("gpu-2", 1500);
  EXPECT_FALSE(cp_->list_nodes(now_)[0]["ready"].get<bool>());
  EXPECT_EQ(job(id)["state"], "RUNNING");
  EXPECT_EQ(job(id)["tasks"][0]["attempt"], 0);
  ADVANCE_WITH("gpu-2", kFenceMs - 1500);
  json j = job(id);
  EXPECT_EQ(j["restarts"], 0);  // a lost node is not the job's failure
  EXPECT_EQ(j["state"], "SCHEDULED");
  EXPECT_EQ(j["tasks"][0]["node"], "gpu-2");
  EXPECT_EQ(j["tasks"][0]["attempt"], 1);
  // gpu-1 comes back still running the old attempt: it is told to stop it.
  json reply = beat("gpu-1", {report(start, "RUNNING")});
  EXPECT_EQ(reply["stop"].size(), 1u);
}

TEST_F(ControlPlaneTest, ANodeBackWithinItsLeaseKeepsItsTasks) {
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  json first = beat("gpu-1", {report(start, "RUNNING")});
  EXPECT_EQ(first["lease_ms"], 2000);  // agents are told their lease
  for (int i = 0; i < 10; ++i) {       // 5 s of silence while the loop runs
    now_ += 500;
    tick();
  }
  EXPECT_FALSE(cp_->list_nodes(now_)[0]["ready"].get<bool>());
  json reply = beat("gpu-1", {report(start, "RUNNING")});
  EXPECT_TRUE(reply["stop"].empty());
  EXPECT_TRUE(cp_->list_nodes(now_)[0]["ready"].get<bool>());
  EXPECT_EQ(job(id)["state"], "RUNNING");
  EXPECT_EQ(job(id)["tasks"][0]["attempt"], 0);
}

// A server stopped (SIGSTOP, a long pause) hears no heartbeats; that silence is its own, and no
// node is lost for it.
TEST_F(ControlPlaneTest, TimeTheLoopDidNotRunDoesNotCountAgainstNodes) {
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "RUNNING")});
  now_ += 50;
  tick();
  now_ += 60'000;  // no tick, no heartbeat: the loop did not run
  tick();
  EXPECT_TRUE(cp_->list_nodes(now_)[0]["ready"].get<bool>());
  now_ += 500;
  tick();
  EXPECT_TRUE(cp_->list_nodes(now_)[0]["ready"].get<bool>());
  EXPECT_EQ(job(id)["state"], "RUNNING");
  EXPECT_EQ(job(id)["tasks"][0]["attempt"], 0);
  // Silence after the loop runs again counts.
  for (int i = 0; i < 4; ++i) {
    now_ += 500;
    tick();
  }
  EXPECT_FALSE(cp_->list_nodes(now_)[0]["ready"].get<bool>());
}

TEST_F(ControlPlaneTest, FencedTasksRestartWithoutUsingRestarts) {
  add_node("gpu-1", 4);
  std::string id = submit(R"({"name":"once","resources":{"cpus":1},"run":"true",
                              "max_restarts":0})");
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "RUNNING")});
  beat("gpu-1", {report(start, "FENCED", 137)});
  json j = job(id);
  EXPECT_EQ(j["restarts"], 0);
  EXPECT_NE(j["state"], "FAILED");
  EXPECT_EQ(j["tasks"][0]["attempt"], 1);
}

// A commit that fails after memory changed (a full disk) stops the control plane: it answers
// nothing more from memory the store does not have, and a restart finds the store as it was.
TEST_F(ControlPlaneTest, AFailedCommitStopsTheControlPlaneAndARestartFindsTheStore) {
  store::testing::FaultyStore* fault = open_faulty();
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "RUNNING")});
  // The disk fills: the cancel cannot be stored.
  fault->fail_from_commit(1);
  auto cancel = cp_->cancel_job(id, now_);
  EXPECT_EQ(cancel.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(cp_->store_failure().is_ok());
  // The disk has room again, but this control plane's memory is not the store's: a retry is
  // refused rather than answered "CANCELLED" from memory, and so is everything else.
  fault->heal();
  EXPECT_EQ(cp_->cancel_job(id, now_).status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(cp_->tick(now_).is_ok());
  EXPECT_FALSE(agent_json::heartbeat(*cp_, "gpu-1", "{}", now_).is_ok());
  EXPECT_FALSE(cp_->submit_job(kGpuJob, now_).is_ok());
  // Restarted from the store: the job still runs its first attempt, and the agent's report
  // keeps it so; the cancel, retried, now holds.
  open();
  EXPECT_EQ(job(id)["state"], "RUNNING");
  json reply = beat("gpu-1", {report(start, "RUNNING")});
  EXPECT_TRUE(reply["stop"].empty());
  EXPECT_TRUE(reply["start"].empty());
  ASSERT_TRUE(cp_->cancel_job(id, now_).is_ok());
  open();
  EXPECT_EQ(job(id)["state"], "CANCELLED");
}

// Group commits (the server's): every change since the last flush is stored by one commit at
// flush(), job numbers included; a failed flush is a store failure, and a restart finds none of
// what it held.
TEST_F(ControlPlaneTest, GroupCommitsStoreEverythingAtTheFlush) {
  store::testing::FaultyStore* fault = open_faulty();
  cp_->group_commits(true);
  fault->fail_from_commit(1);  // any commit fails: none may happen before the flush
  add_node("gpu-1", 4);
  const std::string a = submit(kGpuJob);
  const std::string b = submit(kGpuJob);
  tick();
  EXPECT_NE(a, b);
  EXPECT_EQ(fault->failed(), 0);
  EXPECT_TRUE(cp_->has_unflushed());
  EXPECT_FALSE(cp_->flush().is_ok());
  EXPECT_EQ(fault->failed(), 1);  // one commit for all of it
  EXPECT_FALSE(cp_->store_failure().is_ok());
  open();
  EXPECT_FALSE(cp_->get_job(a).is_ok());
  EXPECT_FALSE(cp_->get_job(b).is_ok());

  fault = open_faulty();
  cp_->group_commits(true);
  add_node("gpu-1", 4);
  const std::string c = submit(kGpuJob);
  const std::string d = submit(kGpuJob);
  ASSERT_TRUE(cp_->flush().is_ok());
  EXPECT_FALSE(cp_->has_unflushed());
  EXPECT_EQ(fault->failed(), 0);
  open();
  EXPECT_EQ(job(c)["state"], "PENDING");
  EXPECT_EQ(job(d)["state"], "PENDING");
  // The job counter was stored with them: the next job gets a new number.
  const std::string e = submit(kGpuJob);
  EXPECT_NE(e, c);
  EXPECT_NE(e, d);
}

// A failed commit of a task's end: after the restart the end is learned again from the agent,
// and the job is not run a second time.
TEST_F(ControlPlaneTest, AnEndThatWasNotStoredIsLearnedAgainNotRunAgain) {
  store::testing::FaultyStore* fault = open_faulty();
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "RUNNING")});
  fault->fail_from_commit(1);
  auto r = agent_json::heartbeat(*cp_, "gpu-1",
                                 json{{"tasks", {report(start, "EXITED", 0)}}}.dump(), now_);
  EXPECT_FALSE(r.is_ok());
  open();
  EXPECT_EQ(job(id)["state"], "RUNNING");
  json reply = beat("gpu-1", {report(start, "EXITED", 0)});
  EXPECT_TRUE(reply["start"].empty());
  json j = job(id);
  EXPECT_EQ(j["state"], "SUCCEEDED");
  EXPECT_EQ(j["tasks"][0]["attempt"], 0);
}

// A heartbeat that changes nothing writes nothing: liveness lives in memory.
TEST_F(ControlPlaneTest, QuietHeartbeatsWriteNothing) {
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "RUNNING")});
  tick();
  const std::string before = cp_->metrics();
  auto revision = [](const std::string& m) {
    const std::string key = "lepton_store_revision ";
    return m.substr(m.find(key) + key.size());
  };
  for (int i = 0; i < 20; ++i) {
    now_ += 300;
    beat("gpu-1", {report(start, "RUNNING")});
  }
  EXPECT_EQ(revision(cp_->metrics()), revision(before));
}

TEST_F(ControlPlaneTest, IdempotencyKeysGiveARetryTheFirstJob) {
  bool replayed = true;
  auto first = cp_->submit_job(kGpuJob, now_, "k-1", &replayed);
  ASSERT_TRUE(first.is_ok());
  EXPECT_FALSE(replayed);
  auto again = cp_->submit_job(kGpuJob, now_, "k-1", &replayed);
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(replayed);
  EXPECT_EQ((*again)["id"], (*first)["id"]);
  EXPECT_EQ(cp_->submit_job(R"({"name":"other","run":"true"})", now_, "k-1").status().code(),
            StatusCode::kConflict);
  EXPECT_EQ(cp_->submit_job(kGpuJob, now_, "bad key").status().code(),
            StatusCode::kInvalidArgument);
  open();  // kept in the store
  again = cp_->submit_job(kGpuJob, now_, "k-1", &replayed);
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(replayed);
  EXPECT_EQ((*again)["id"], (*first)["id"]);
  EXPECT_EQ(cp_->list_jobs().size(), 1u);
}

TEST_F(ControlPlaneTest, LogsOfOldJobsAreRemoved) {
  cp_.reset();
  auto store = store::open_sqlite_store((dir_ / "lepton.db").string());
  ASSERT_TRUE(store.is_ok());
  cp_ = std::move(*ControlPlane::open(
      std::move(*store),
      {.data_dir = dir_.string(), .log_retention_ms = 60'000, .node_timeout_ms = 1000}, now_));
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  json logs = {{{"job_id", id}, {"rank", 0}, {"attempt", 0}, {"offset", 0}, {"data", "hi\n"}}};
  json r = {report(start, "EXITED", 0)};
  r[0]["log_size"] = 3;
  ASSERT_TRUE(agent_json::heartbeat(*cp_, "gpu-1", json{{"tasks", r}, {"logs", logs}}.dump(), now_)
                  .is_ok());
  EXPECT_EQ(cp_->job_logs(id, 0, 0, 100).value()["data"], "hi\n");
  for (int i = 0; i < 4; ++i) {
    now_ += 20'000;
    beat("gpu-1");
    tick();
  }
  EXPECT_EQ(cp_->job_logs(id, 0, 0, 100).value()["data"], "");
  EXPECT_EQ(job(id)["state"], "SUCCEEDED");  // the job itself is kept
}

TEST_F(ControlPlaneTest, JobListsArePagedAndFiltered) {
  for (int i = 0; i < 5; ++i) submit(kGpuJob);
  ASSERT_TRUE(cp_->cancel_job("j-2", now_).is_ok());
  std::string next;
  json page = cp_->list_jobs({.limit = 2}, &next).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]["id"], "j-1");
  EXPECT_EQ(next, "j-2");
  page = cp_->list_jobs({.limit = 2, .after = next}, &next).value();
  EXPECT_EQ(page[0]["id"], "j-3");
  page = cp_->list_jobs({.limit = 2, .after = next}, &next).value();
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(next, "");
  page = cp_->list_jobs({.limit = 10, .newest_first = true, .state = "PENDING"}).value();
  ASSERT_EQ(page.size(), 4u);
  EXPECT_EQ(page[0]["id"], "j-5");
  EXPECT_EQ(cp_->list_jobs({.state = "DANCING"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cp_->list_jobs({.after = "j-99"}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ControlPlaneTest, FreedResourcesGoToPendingWorkInTheSameHeartbeat) {
  add_node("gpu-1", 2);
  std::string first = submit(kGpuJob), second = submit(kGpuJob);
  tick();
  EXPECT_EQ(job(second)["state"], "PENDING");  // both GPUs are taken by the first
  json start = beat("gpu-1")["start"][0];
  json reply = beat("gpu-1", {report(start, "EXITED", 0)});
  EXPECT_EQ(job(first)["state"], "SUCCEEDED");
  ASSERT_EQ(reply["start"].size(), 1u);
  EXPECT_EQ(reply["start"][0]["job_id"], second);
}

TEST_F(ControlPlaneTest, CancelStopsTheTasks) {
  add_node("gpu-1", 4);
  std::string id = submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  beat("gpu-1", {report(start, "RUNNING")});
  ASSERT_TRUE(cp_->cancel_job(id, now_).is_ok());
  EXPECT_EQ(job(id)["state"], "CANCELLED");
  EXPECT_EQ(beat("gpu-1", {report(start, "RUNNING")})["stop"].size(), 1u);
  EXPECT_NE(cp_->metrics().find("lepton_gpu_allocated_milli 0\n"), std::string::npos);
  EXPECT_EQ(cp_->cancel_job("j-999", now_).status().code(), StatusCode::kNotFound);
}

TEST_F(ControlPlaneTest, ARestartedControlPlaneKeepsEverything) {
  add_node("gpu-1", 4);
  std::string done = submit(kGpuJob);
  std::string running = submit(kGpuJob);
  tick();
  json reply = beat("gpu-1");
  ASSERT_EQ(reply["start"].size(), 2u);
  beat("gpu-1", {report(reply["start"][0], "EXITED", 0), report(reply["start"][1], "RUNNING")});
  open();  // as after kill -9: only the store survives
  EXPECT_EQ(job(done)["state"], "SUCCEEDED");
  EXPECT_EQ(job(running)["state"], "RUNNING");
  // The running task still holds its GPUs: a third 2-GPU job fits, a fourth does not.
  std::string third = submit(kGpuJob), fourth = submit(kGpuJob);
  tick();
  EXPECT_EQ(job(third)["state"], "SCHEDULED");
  EXPECT_EQ(job(fourth)["state"], "PENDING");
  // The agent reports the running task: nothing is started twice.
  reply = beat("gpu-1", {report(reply["start"][1], "RUNNING")});
  ASSERT_EQ(reply["start"].size(), 1u);
  EXPECT_EQ(reply["start"][0]["job_id"], third);
  EXPECT_TRUE(reply["stop"].empty());
  EXPECT_NE(submit(kGpuJob), third);  // ids are never reused
}

// Agent messages are untrusted input: random mutations of valid ones give a result or an error,
// never an exception.
TEST_F(ControlPlaneTest, MutatedAgentMessagesNeverThrow) {
  add_node("gpu-1", 4);
  submit(kGpuJob);
  tick();
  json start = beat("gpu-1")["start"][0];
  // A field of the wrong type is named in the error.
  json wrong = report(start, "EXITED", 0);
  wrong["log_size"] = "many";
  auto wrong_type = agent_json::heartbeat(*cp_, "gpu-1", json{{"tasks", {wrong}}}.dump(), now_);
  EXPECT_EQ(wrong_type.status().message(), "tasks.log_size: wrong type; expected an integer");
  // A message with one good and one bad report changes nothing.
  json bad_state = report(start, "DANCING", 0);
  auto half = agent_json::heartbeat(
      *cp_, "gpu-1", json{{"tasks", {report(start, "RUNNING"), bad_state}}}.dump(), now_);
  EXPECT_EQ(half.status().message(),
            "tasks.state: expected RUNNING, EXITED, GONE or FENCED, got 'DANCING'");
  EXPECT_EQ(job(start["job_id"])["state"], "STARTING");
  json valid = {{"tasks", {report(start, "EXITED", 0)}},
                {"logs",
                 {{{"job_id", start["job_id"]},
                   {"rank", 0},
                   {"attempt", 0},
                   {"offset", 0},
                   {"data", "hello"}}}}};
  valid["tasks"][0]["log_size"] = 5;
  const std::string base = valid.dump();
  const char alphabet[] = "{}[]\":,0123456789-.aetrunlfsEXITD ";
  std::mt19937 rng(3);
  int errors = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string body = lepton::test_util::mutate(base, alphabet, rng, 3);
    Result<json> r = json();
    EXPECT_NO_THROW(r = agent_json::heartbeat(*cp_, "gpu-1", body, now_)) << body;
    EXPECT_NO_THROW((void)agent_json::register_agent(*cp_, body, "", now_)) << body;
    errors += r.is_ok() ? 0 : 1;
  }
  EXPECT_GT(errors, 100);
}

// The heartbeat interval grows with the nodes so the server gets at most max_heartbeats_per_s;
// the node timeout and the lease grow with it, and a restarted server sizes it for the stored
// nodes (no agent may hold a longer lease than the server counts on).
TEST_F(ControlPlaneTest, TheHeartbeatIntervalGrowsWithTheNodes) {
  auto open_with_rate = [&] {
    cp_.reset();
    auto store = store::open_sqlite_store((dir_ / "lepton.db").string());
    ASSERT_TRUE(store.is_ok());
    auto cp = ControlPlane::open(std::move(*store),
                                 {.data_dir = dir_.string(),
                                  .node_timeout_ms = 1000,
                                  .heartbeat_interval_ms = 300,
                                  .max_heartbeats_per_s = 10},
                                 now_);
    ASSERT_TRUE(cp.is_ok()) << cp.status().message();
    cp_ = std::move(*cp);
  };
  open_with_rate();
  add_node("n-0", 0);
  EXPECT_EQ(beat("n-0")["heartbeat_ms"], 300);   // 1 node at 10/s: 100 ms, below the minimum
  EXPECT_EQ(beat("n-0")["lease_ms"], 2 * 1000);  // twice the node timeout (1 s > 3 intervals)
  for (int i = 1; i < 20; ++i) add_node("n-" + std::to_string(i), 0);
  json reply = beat("n-0");
  EXPECT_EQ(reply["heartbeat_ms"], 2000);      // 20 nodes at 10 heartbeats/s
  EXPECT_EQ(reply["lease_ms"], 2 * 3 * 2000);  // twice the node timeout of 3 intervals
  // A node silent for less than three intervals is not lost.
  now_ += 5000;
  for (int i = 1; i < 20; ++i) beat("n-" + std::to_string(i));
  tick();
  EXPECT_EQ(cp_->list_nodes(now_).size(), 20u);
  json nodes = cp_->list_nodes(now_);
  for (const json& n : nodes) EXPECT_TRUE(n.value("ready", false)) << n.dump();
  open_with_rate();
  EXPECT_EQ(beat("n-0")["heartbeat_ms"], 2000);
}

TEST_F(ControlPlaneTest, BadInputIsRejectedWithTheField) {
  auto bad = cp_->submit_job(R"({"name":"x","run":"true","gpus":2})", now_);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("gpus"), std::string::npos);
  EXPECT_FALSE(cp_->submit_job("not json", now_).is_ok());
  EXPECT_EQ(agent_json::heartbeat(*cp_, "ghost", "{}", now_).status().code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(agent_json::register_agent(*cp_, R"({"name":"n"})", "", now_).is_ok());
  add_node("gpu-1", 4);
  auto conflict = agent_json::register_agent(
      *cp_, R"({"name":"gpu-1","cpu_milli":1000,"memory_mib":1,"gpu_count":0,"gpu_model":""})", "",
      now_);
  EXPECT_EQ(conflict.status().code(), StatusCode::kConflict);
  EXPECT_EQ(cp_->list_jobs().size(), 0u);  // nothing half-written
}

// ---- deployments: the controller, driven with a stand-in for the gateway's observations

class DeploymentControllerTest : public ControlPlaneTest {
 protected:
  void SetUp() override {
    ControlPlaneTest::SetUp();
    add_node("cpu-1", 0);
  }
  static std::string spec(const std::string& extra) {
    return R"({"kind":"deployment","name":"chat","resources":{"cpus":0.5,"memory":0.5},)"
           R"("run":"serve","readiness":{"path":"/healthz"})" +
           extra + "}";
  }
  // Starts what the controller asked for and reports it running, as the agent would.
  void run_started() {
    json reply = beat("cpu-1", running_);
    for (const json& start : reply["start"]) running_.push_back(report(start, "RUNNING"));
    beat("cpu-1", running_);
  }
  // The gateway's view: the replicas the routes name, ready unless listed in `not_ready`, with
  // nothing in flight.
  void observe(const std::set<std::string>& not_ready = {}) {
    gateway::RouteTable table;
    gateway::Deployment& d = table.deployments["chat"];
    d.name = "chat";
    d.stats = stats_;
    const gateway::RouteSpec routes = cp_->routes();
    auto add = [&](const std::string& address, bool draining) {
      auto r = std::make_shared<gateway::Replica>();
      r->address = address;
      r->ready = !not_ready.count(address);
      r->draining = draining;
      d.replicas.push_back(r);
    };
    for (const std::string& a : routes.at("chat").replicas) add(a, false);
    for (const std::string& a : routes.at("chat").draining) add(a, true);
    cp_->observe_gateway(table, now_);
  }
  // One control-loop round 200 ms later: observations, then the tick, then the agent.
  void round(const std::set<std::string>& not_ready = {}) {
    now_ += 200;
    observe(not_ready);
    tick();
    run_started();
  }
  json deployment() { return cp_->get_deployment("chat", now_).value(); }
  // Replicas in service (not draining) and, of those, ready ones, by generation.
  std::pair<int, int> in_service(int generation) {
    int all = 0, ready = 0;
    const json d = deployment();
    for (const json& r : d["replicas"]) {
      if (r["draining"] || r["generation"] != generation) continue;
      ++all;
      ready += r["ready"].get<bool>() ? 1 : 0;
    }
    return {all, ready};
  }

  json running_ = json::array();
  std::shared_ptr<gateway::DeploymentStats> stats_ = std::make_shared<gateway::DeploymentStats>();
};

TEST_F(DeploymentControllerTest, LatencyPercentilesAreOfTheRequestsThatEnded) {
  ASSERT_TRUE(cp_->create_deployment(spec(R"(,"replicas":1)"), now_).is_ok());
  for (int i = 0; i < 5; ++i) round();
  EXPECT_EQ(deployment()["latency"], json::object());  // no requests yet
  // 12 requests arrived; 4 ended after about 2 ms, one after about 50 ms; 7 are still running.
  stats_->requests = 12;
  for (int i = 0; i < 4; ++i) stats_->record_latency(2'000);
  stats_->record_latency(50'000);
  for (int i = 0; i < 6; ++i) round();
  const json d = deployment();
  ASSERT_TRUE(d["latency"].contains("p50_ms")) << d.dump(2);
  EXPECT_GE(d["latency"]["p50_ms"].get<double>(), 2.0);
  EXPECT_LT(d["latency"]["p50_ms"].get<double>(), 3.0);
  EXPECT_GE(d["latency"]["p99_ms"].get<double>(), 50.0);
  EXPECT_LT(d["latency"]["p99_ms"].get<double>(), 70.0);
  EXPECT_GT(d["rps"].get<double>(), 0.0);
}

TEST_F(DeploymentControllerTest, ReplicasSpreadOverNodesWithRoom) {
  add_node("cpu-2", 0);
  add_node("cpu-3", 0);
  ASSERT_TRUE(cp_->create_deployment(spec(R"(,"replicas":3)"), now_).is_ok());
  for (int i = 0; i < 3; ++i) round();
  std::set<std::string> nodes;
  const json d = deployment();
  for (const json& r : d["replicas"]) nodes.insert(r.value("node", ""));
  EXPECT_EQ(nodes, (std::set<std::string>{"cpu-1", "cpu-2", "cpu-3"})) << deployment().dump(2);
}

TEST_F(DeploymentControllerTest, RollingUpdateKeepsTheDesiredCountReady) {
  ASSERT_TRUE(cp_->create_deployment(spec(R"(,"replicas":2)"), now_).is_ok());
  for (int i = 0; i < 5; ++i) round();
  ASSERT_EQ(deployment()["ready_replicas"], 2) << deployment().dump(2);
  ASSERT_TRUE(
      cp_->update_deployment("chat", spec(R"(,"replicas":2,"envs":{"V":"2"})"), now_).is_ok());
  bool surged = false;
  for (int i = 0; i < 60 && in_service(2).second < 2; ++i) {
    round();
    // Never fewer than 2 ready replicas in service, never more than 3 in service.
    const auto [old_all, old_ready] = in_service(1);
    const auto [new_all, new_ready] = in_service(2);
    EXPECT_GE(old_ready + new_ready, 2) << "round " << i << deployment().dump(2);
    EXPECT_LE(old_all + new_all, 3) << "round " << i;
    surged = surged || old_all + new_all == 3;
  }
  EXPECT_TRUE(surged);
  EXPECT_EQ(in_service(2), std::make_pair(2, 2));
  for (int i = 0; i < 10; ++i) round();  // the old ones drain and stop
  EXPECT_EQ(deployment()["replicas"].size(), 2u) << deployment().dump(2);
}

TEST_F(DeploymentControllerTest, ARestartMidRolloutTakesNothingAway) {
  ASSERT_TRUE(cp_->create_deployment(spec(R"(,"replicas":2)"), now_).is_ok());
  for (int i = 0; i < 5; ++i) round();
  ASSERT_TRUE(
      cp_->update_deployment("chat", spec(R"(,"replicas":2,"envs":{"V":"2"})"), now_).is_ok());
  round();  // the extra replica of generation 2 starts
  ASSERT_EQ(in_service(1).first + in_service(2).first, 3) << deployment().dump(2);
  open();  // kill -9; nothing is probed yet after the restart
  std::set<std::string> all;
  const json before = deployment();
  for (const json& r : before["replicas"]) all.insert(r["address"].get<std::string>());
  for (int i = 0; i < 10; ++i) {
    round(all);  // 2 s in which the gateway has not seen any replica ready
    EXPECT_EQ(in_service(1).first, 2) << "round " << i << deployment().dump(2);
    EXPECT_EQ(in_service(2).first, 1) << "round " << i;
  }
  for (int i = 0; i < 60 && in_service(2).second < 2; ++i) round();
  EXPECT_EQ(in_service(2), std::make_pair(2, 2)) << deployment().dump(2);
}

TEST_F(DeploymentControllerTest, AFixedPortIsHandedOverOneReplicaAtATime) {
  ASSERT_TRUE(cp_->create_deployment(spec(R"(,"replicas":1,"port":8000)"), now_).is_ok());
  for (int i = 0; i < 5; ++i) round();
  ASSERT_EQ(deployment()["ready_replicas"], 1);
  ASSERT_TRUE(
      cp_->update_deployment("chat", spec(R"(,"replicas":1,"port":8000,"envs":{"V":"2"})"), now_)
          .is_ok());
  for (int i = 0; i < 60 && in_service(2).second < 1; ++i) {
    round();
    // Never two replicas on port 8000 at once: the new one starts after the old one stopped.
    int live = 0;
    const json d = deployment();
    for (const json& r : d["replicas"]) live += r["state"] != "CANCELLED" ? 1 : 0;
    EXPECT_LE(live, 1) << "round " << i << deployment().dump(2);
  }
  EXPECT_EQ(in_service(2), std::make_pair(1, 1)) << deployment().dump(2);
}

}  // namespace
}  // namespace lepton::server
