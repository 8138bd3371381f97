// The cloud autoscaler inside ControlPlane, with a provider fake kept in this process (the
// end-to-end tests in tests/cloud_test.cpp use the emulated clouds and real agents).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "server/control_plane.h"
#include "server/testing/agent_json.h"
#include "store/sqlite_store.h"

namespace lepton::server {
namespace {

namespace fs = std::filesystem;

// Launches nothing: instances appear in list_instances() as the test says.
class FakeProvider : public cloud::Provider {
 public:
  std::vector<cloud::Offer> catalog;
  std::set<std::string> no_capacity;  // offer_pool() keys that fail with kUnavailable
  std::vector<std::string> tried;     // offer_pool() of every provision call
  std::vector<std::string> terminated;
  std::map<std::string, cloud::Instance> instances;
  std::vector<cloud::InterruptionNotice> notices;
  std::optional<Status> broken;  // provision and terminate fail so (a provider not reached)

  std::string_view name() const override { return "fake"; }
  Result<std::vector<cloud::Offer>> offers(const cloud::OfferQuery& query) const override {
    return cloud::find_offers(catalog, query);
  }
  Result<std::vector<cloud::Instance>> provision(const cloud::ProvisionRequest& r) override {
    const std::string pool = cloud::offer_pool(r.offer, r.spot);
    tried.push_back(pool);
    if (broken) return *broken;
    if (no_capacity.count(pool)) return Status(StatusCode::kUnavailable, "no capacity");
    std::vector<cloud::Instance> out;
    for (int i = 0; i < r.count; ++i) {
      cloud::Instance inst;
      inst.id = "i-" + std::to_string(instances.size() + 1);
      inst.cloud = r.offer.cloud;
      inst.instance_type = r.offer.instance_type;
      inst.region = r.offer.region;
      inst.spot = r.spot;
      inst.state = cloud::InstanceState::kRunning;
      instances[inst.id] = inst;
      out.push_back(inst);
    }
    return out;
  }
  Status terminate(const std::vector<std::string>& ids) override {
    if (broken) return *broken;
    for (const std::string& id : ids) {
      terminated.push_back(id);
      instances[id].state = cloud::InstanceState::kTerminated;
    }
    return Status::ok();
  }
  Result<std::vector<cloud::Instance>> list_instances() override {
    std::vector<cloud::Instance> out;
    for (const auto& [id, i] : instances) out.push_back(i);
    return out;
  }
  Result<std::vector<cloud::InterruptionNotice>> interruption_notices() override { return notices; }
};

// A provider whose launches and terminations block (as EC2's HTTPS calls do) until the test opens
// its gate; the server must make them off the control loop. A gate not opened within 10 s opens
// by itself and says so, so a server that waits for the call fails instead of hanging.
class GatedProvider : public FakeProvider {
 public:
  bool calls_block() const override { return true; }
  Result<std::vector<cloud::Instance>> provision(const cloud::ProvisionRequest& r) override {
    std::unique_lock lock(mu_);
    pass_gate(lock);
    return FakeProvider::provision(r);
  }
  Status terminate(const std::vector<std::string>& ids) override {
    std::unique_lock lock(mu_);
    pass_gate(lock);
    return FakeProvider::terminate(ids);
  }
  Result<std::vector<cloud::Instance>> list_instances() override {
    std::lock_guard lock(mu_);
    return FakeProvider::list_instances();
  }
  void open_gate() {
    std::lock_guard lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  void close_gate() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  // Waits (10 s at most) until `n` calls have reached the gate.
  bool wait_for_calls(int n) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return calls_ >= n; });
  }
  // Waits (10 s at most) until `n` calls have passed the gate and returned.
  bool wait_for_answers(int n) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return answered_ >= n; });
  }
  std::vector<std::string> tried_now() {
    std::lock_guard lock(mu_);
    return tried;
  }
  bool opened_by_itself() {
    std::lock_guard lock(mu_);
    return opened_by_itself_;
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  // Called with mu_ held; the call itself runs with it held too, so it ends before the count.
  void pass_gate(std::unique_lock<std::mutex>& lock) {
    ++calls_;
    changed_.notify_all();
    if (!changed_.wait_for(lock, std::chrono::seconds(10), [&] { return open_; })) {
      opened_by_itself_ = true;
    }
    ++answered_;  // counted before the answer returns; wait_for_answers then waits for take-up
    changed_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable changed_;
  bool open_ = false, opened_by_itself_ = false;
  int calls_ = 0, answered_ = 0;
};

cloud::Offer offer(std::string type, double gpus, double price, double spot) {
  return {.cloud = "aws",
          .instance_type = std::move(type),
          .gpu_model = "A100",
          .gpu_count = gpus,
          .vcpus = 8 * gpus,
          .memory_gib = 32 * gpus,
          .price_per_hour = price,
          .spot_price_per_hour = spot,
          .region = "us-east-1",
          .zone = ""};
}

class CloudAutoscalerTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("lepton-cas-" + std::to_string(getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    provider_ = std::make_shared<FakeProvider>();
    provider_->catalog = {offer("one", 1, 1.0, 0.4), offer("two", 2, 3.0, 1.0)};
    open();
  }
  void TearDown() override {
    cp_.reset();
    fs::remove_all(dir_);
  }
  void open() {
    cp_.reset();
    auto store = store::open_sqlite_store((dir_ / "lepton.db").string());
    ASSERT_TRUE(store.is_ok()) << store.status().message();
    auto cp = ControlPlane::open(std::move(*store),
                                 {.data_dir = dir_.string(),
                                  .node_timeout_ms = 600'000,
                                  .cloud_idle_ms = 60'000,
                                  .failover_ttl_ms = 600'000},
                                 now_);
    ASSERT_TRUE(cp.is_ok()) << cp.status().message();
    cp_ = std::move(*cp);
    cp_->set_clouds({provider_}, [] { return std::string("true"); });
  }
  // One second later: a cloud round runs.
  void tick() {
    now_ += 1000;
    ASSERT_TRUE(cp_->tick(now_).is_ok());
  }
  std::string submit(const std::string& spec_json) {
    auto r = cp_->submit_job(spec_json, now_);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? (*r)["id"].get<std::string>() : "";
  }
  // The machine's agent joins, as the bootstrap script would make it.
  void join(const std::string& id, int gpus) {
    json body = {{"name", id},
                 {"cpu_milli", 8000 * gpus},
                 {"memory_mib", 32768 * gpus},
                 {"gpu_count", gpus},
                 {"gpu_model", "A100"}};
    ASSERT_TRUE(agent_json::register_agent(*cp_, body.dump(), "127.0.0.1", now_).is_ok());
  }
  json beat(const std::string& node, json tasks = json::array()) {
    auto r = agent_json::heartbeat(*cp_, node, json{{"tasks", tasks}}.dump(), now_);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? *r : json();
  }
  std::string state(const std::string& job) { return cp_->get_job(job)->value("state", ""); }
  // A deployment "chat" of one-GPU replicas (on spot machines when `spot`).
  void deploy_chat(int replicas, bool spot) {
    const std::string spec =
        R"({"kind":"deployment","name":"chat","resources":{"accelerators":"A100:1"},"run":"serve",)"
        R"("use_spot":)" +
        std::string(spot ? "true" : "false") + R"(,"replicas":)" + std::to_string(replicas) + "}";
    auto r = cp_->create_deployment(spec, now_);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
  }
  // Rounds (with a little real time between them for calls made off the loop, 1 s at most)
  // until the server has recorded `n` machines; returns them.
  json tick_until_machines(size_t n) {
    for (int i = 0; i < 100 && cp_->list_instances(now_).size() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      tick();
    }
    return cp_->list_instances(now_);
  }
  // The pools provision was called for, sorted.
  std::vector<std::string> sorted_tried() const {
    std::vector<std::string> tried = provider_->tried;
    std::sort(tried.begin(), tried.end());
    return tried;
  }

  fs::path dir_;
  std::shared_ptr<FakeProvider> provider_;
  std::unique_ptr<ControlPlane> cp_;
  int64_t now_ = 1'000'000'000;
};

const char* kOneGpu =
    R"({"name":"a","resources":{"accelerators":"A100:1","cpus":1,"memory":1},"run":"true"})";

TEST_F(CloudAutoscalerTest, FailsOverAtOnceAndRemembersTheFailedPool) {
  provider_->no_capacity.insert("aws/us-east-1/one");
  const std::string a = submit(kOneGpu);
  tick();
  EXPECT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/one", "aws/us-east-1/two"}));
  // A second job: the failed pool is skipped, and the room left on the two-GPU machine is used.
  submit(kOneGpu);
  tick();
  EXPECT_EQ(provider_->tried.size(), 2u);
  // A third needs a machine: still not the remembered pool.
  submit(kOneGpu);
  tick();
  ASSERT_EQ(provider_->tried.size(), 3u);
  EXPECT_EQ(provider_->tried[2], "aws/us-east-1/two");
  // Ten minutes later the pool is tried again.
  now_ += 600'000;
  submit(kOneGpu);
  tick();
  EXPECT_EQ(provider_->tried.back(), "aws/us-east-1/one");
  EXPECT_EQ(state(a), "PENDING");
}

TEST_F(CloudAutoscalerTest, ARestartedServerStillSkipsTheFailedPool) {
  // Two one-GPU jobs: "one" has no capacity, so they share a two-GPU machine.
  provider_->no_capacity.insert("aws/us-east-1/one");
  submit(kOneGpu);
  submit(kOneGpu);
  tick();
  ASSERT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/one", "aws/us-east-1/two"}));
  // The server restarts a minute later; the next job needs a machine, and still skips "one".
  now_ += 60'000;
  open();
  submit(kOneGpu);
  tick();
  ASSERT_EQ(provider_->tried.size(), 3u);
  EXPECT_EQ(provider_->tried[2], "aws/us-east-1/two");
  // (That it is tried again once its time is up: FailsOverAtOnceAndRemembersTheFailedPool.)
}

TEST_F(CloudAutoscalerTest, AProviderThatDoesNotAnswerRestsInsteadOfBeingCalledEveryRound) {
  provider_->broken = Status(StatusCode::kInternal, "aws ec2 RunInstances: connect: timed out");
  const std::string a = submit(kOneGpu);
  tick();
  // One call, not one per offer, and not taken as "no capacity" (the pool is not skipped).
  ASSERT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/one"}));
  std::string reason = cp_->get_job(a)->value("reason", "");
  EXPECT_NE(reason.find("connect: timed out; fake is tried again in 15 s"), std::string::npos)
      << reason;
  for (int i = 0; i < 14; ++i) tick();
  EXPECT_EQ(provider_->tried.size(), 1u);
  reason = cp_->get_job(a)->value("reason", "");
  EXPECT_NE(reason.find("cannot rent from fake until it answers again (tried again in 1 s)"),
            std::string::npos)
      << reason;
  // 15 s on it is called again; a second failure doubles the rest.
  tick();
  ASSERT_EQ(provider_->tried.size(), 2u);
  EXPECT_EQ(provider_->tried[1], "aws/us-east-1/one");
  for (int i = 0; i < 29; ++i) tick();
  EXPECT_EQ(provider_->tried.size(), 2u);
  // It answers again: the machine is rented, from the cheapest offer as ever.
  provider_->broken.reset();
  tick();
  ASSERT_EQ(provider_->tried.size(), 3u);
  EXPECT_EQ(provider_->instances.size(), 1u);
  EXPECT_EQ(provider_->tried[2], "aws/us-east-1/one");
}

TEST_F(CloudAutoscalerTest, ALaunchThatBlocksIsMadeOffTheControlLoop) {
  auto gated = std::make_shared<GatedProvider>();
  gated->catalog = provider_->catalog;
  cp_->set_clouds({gated}, [] { return std::string("true"); });
  const std::string a = submit(kOneGpu);
  tick();
  ASSERT_TRUE(gated->wait_for_calls(1));
  // The call is still waiting at the gate: rounds go on, and the API answers.
  for (int i = 0; i < 3; ++i) tick();
  EXPECT_FALSE(gated->opened_by_itself());
  std::string reason = cp_->get_job(a)->value("reason", "");
  EXPECT_NE(reason.find("waiting for fake to answer the launch of 1 x aws/us-east-1/one (3 s)"),
            std::string::npos)
      << reason;
  // One call at a time: a second job waits for the provider instead of a second call.
  const std::string b = submit(kOneGpu);
  tick();
  reason = cp_->get_job(b)->value("reason", "");
  EXPECT_NE(reason.find("waiting for fake to answer an earlier call"), std::string::npos) << reason;
  EXPECT_EQ(gated->calls(), 1);
  EXPECT_TRUE(cp_->list_instances(now_).empty());
  // The answer comes: the next round records the machine for `a`, and launches for `b`.
  gated->open_gate();
  ASSERT_TRUE(gated->wait_for_answers(1));
  const json machines = tick_until_machines(2);
  ASSERT_EQ(machines.size(), 2u) << machines.dump(2);
  EXPECT_EQ(machines[0].value("for_job", ""), a);
  EXPECT_EQ(machines[1].value("for_job", ""), b);
  EXPECT_EQ(gated->tried_now(),
            (std::vector<std::string>{"aws/us-east-1/one", "aws/us-east-1/one"}));
  EXPECT_FALSE(gated->opened_by_itself());
}

TEST_F(CloudAutoscalerTest, ANoCapacityAnswerOffTheLoopFailsOverOnTheNextRound) {
  auto gated = std::make_shared<GatedProvider>();
  gated->catalog = provider_->catalog;
  gated->no_capacity.insert("aws/us-east-1/one");
  gated->open_gate();
  cp_->set_clouds({gated}, [] { return std::string("true"); });
  submit(kOneGpu);
  const json machines = tick_until_machines(1);
  ASSERT_EQ(machines.size(), 1u);
  EXPECT_EQ(machines[0].value("instance_type", ""), "two");
  EXPECT_EQ(gated->tried_now(),
            (std::vector<std::string>{"aws/us-east-1/one", "aws/us-east-1/two"}));
}

TEST_F(CloudAutoscalerTest, AMachineReturnedOffTheLoopTakesNoWorkMeanwhile) {
  auto gated = std::make_shared<GatedProvider>();
  gated->catalog = provider_->catalog;
  gated->open_gate();
  cp_->set_clouds({gated}, [] { return std::string("true"); });
  const std::string a = submit(kOneGpu);
  ASSERT_EQ(tick_until_machines(1).size(), 1u);
  join("i-1", 1);
  tick();
  json reply = beat("i-1");
  ASSERT_EQ(reply["start"].size(), 1u);
  const json& start = reply["start"][0];
  beat("i-1", json::array({{{"job_id", start["job_id"]},
                            {"rank", 0},
                            {"attempt", start["attempt"]},
                            {"state", "EXITED"},
                            {"exit_code", 0}}}));
  ASSERT_EQ(state(a), "SUCCEEDED");
  // Idle for a minute: the machine is being returned, and the call waits at the gate.
  gated->close_gate();
  for (int i = 0; i < 62; ++i) {
    beat("i-1");
    tick();
  }
  ASSERT_TRUE(gated->wait_for_calls(2));
  // A job that would fit the machine is not put on it while it is being returned, also when its
  // agent registers again meanwhile.
  join("i-1", 1);
  const std::string b = submit(kOneGpu);
  for (int i = 0; i < 3; ++i) {
    beat("i-1");
    tick();
  }
  EXPECT_EQ(state(b), "PENDING");
  EXPECT_TRUE(beat("i-1")["start"].empty());
  // The provider answers: the machine ends, and `b` gets a machine of its own.
  gated->open_gate();
  ASSERT_TRUE(gated->wait_for_answers(2));
  const json machines = tick_until_machines(2);
  ASSERT_EQ(machines.size(), 2u) << machines.dump(2);
  EXPECT_NE(machines[0].value("end_reason", "").find("idle for"), std::string::npos)
      << machines.dump(2);
  EXPECT_EQ(machines[1].value("for_job", ""), b);
  EXPECT_FALSE(gated->opened_by_itself());
}

TEST_F(CloudAutoscalerTest, AMachineTheProviderDidNotTakeBackServesAgain) {
  auto gated = std::make_shared<GatedProvider>();
  gated->catalog = provider_->catalog;
  gated->open_gate();
  cp_->set_clouds({gated}, [] { return std::string("true"); });
  submit(kOneGpu);
  ASSERT_EQ(tick_until_machines(1).size(), 1u);
  join("i-1", 1);
  tick();
  json reply = beat("i-1");
  ASSERT_EQ(reply["start"].size(), 1u);
  beat("i-1", json::array({{{"job_id", reply["start"][0]["job_id"]},
                            {"rank", 0},
                            {"attempt", reply["start"][0]["attempt"]},
                            {"state", "EXITED"},
                            {"exit_code", 0}}}));
  gated->close_gate();
  gated->broken = Status(StatusCode::kInternal, "aws ec2 TerminateInstances: connect: timed out");
  for (int i = 0; i < 62; ++i) {
    beat("i-1");
    tick();
  }
  ASSERT_TRUE(gated->wait_for_calls(2));
  const std::string b = submit(kOneGpu);
  tick();
  EXPECT_EQ(state(b), "PENDING");
  // The termination fails: the machine is still ours, and takes the job.
  gated->open_gate();
  ASSERT_TRUE(gated->wait_for_answers(2));
  for (int i = 0; i < 100 && state(b) == "PENDING"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    now_ += 100;  // rounds of the scheduler, not of the clouds (the provider now rests)
    ASSERT_TRUE(cp_->tick(now_).is_ok());
  }
  EXPECT_EQ(state(b), "SCHEDULED");
  const json machines = cp_->list_instances(now_);
  ASSERT_EQ(machines.size(), 1u);
  EXPECT_EQ(machines[0].value("ended_ms", int64_t{1}), 0);
}

TEST_F(CloudAutoscalerTest, AStopWaitsForTheLaunchBeingMadeAndRecordsIt) {
  auto gated = std::make_shared<GatedProvider>();
  gated->catalog = provider_->catalog;
  cp_->set_clouds({gated}, [] { return std::string("true"); });
  submit(kOneGpu);
  tick();
  ASSERT_TRUE(gated->wait_for_calls(1));
  std::thread stopping([&] { EXPECT_TRUE(cp_->stop_clouds(now_).is_ok()); });
  gated->open_gate();
  stopping.join();
  ASSERT_EQ(cp_->list_instances(now_).size(), 1u);
  // In the store too: the next server knows the machine.
  open();
  const json machines = cp_->list_instances(now_);
  ASSERT_EQ(machines.size(), 1u);
  EXPECT_EQ(machines[0].value("id", ""), "i-1");
  EXPECT_FALSE(gated->opened_by_itself());
}

TEST_F(CloudAutoscalerTest, AMachineTakesItsJobAndIsReturnedOnlyWhenIdle) {
  const std::string a = submit(kOneGpu);
  tick();
  ASSERT_EQ(provider_->instances.size(), 1u);
  join("i-1", 1);
  tick();
  EXPECT_EQ(state(a), "SCHEDULED");
  json reply = beat("i-1");
  ASSERT_EQ(reply["start"].size(), 1u);
  json start = reply["start"][0];
  json running = {{"job_id", start["job_id"]},
                  {"rank", 0},
                  {"attempt", start["attempt"]},
                  {"state", "RUNNING"}};
  beat("i-1", json::array({running}));
  // Two hours of work: busy machines are never returned.
  for (int i = 0; i < 120; ++i) {
    now_ += 59'000;
    beat("i-1", json::array({running}));
    tick();
  }
  EXPECT_TRUE(provider_->terminated.empty());
  json exited = running;
  exited["state"] = "EXITED";
  exited["exit_code"] = 0;
  beat("i-1", json::array({exited}));
  EXPECT_EQ(state(a), "SUCCEEDED");
  for (int i = 0; i < 59; ++i) tick();
  EXPECT_TRUE(provider_->terminated.empty());  // idle for less than a minute
  tick();
  tick();
  EXPECT_EQ(provider_->terminated, (std::vector<std::string>{"i-1"}));
  // Charged: the job two hours (120 x 60 s) of one GPU at $1/h; the rest of the bill is idle.
  auto cost = cp_->cost("job", now_);
  ASSERT_TRUE(cost.is_ok());
  ASSERT_EQ((*cost)["rows"].size(), 1u);
  EXPECT_NEAR((*cost)["rows"][0].value("cost_usd", 0.0), 2.0, 0.01);
  EXPECT_NEAR(cost->value("total_usd", 0.0), cost->value("idle_usd", 0.0) + 2.0, 1e-9);
  EXPECT_GT(cost->value("idle_usd", 0.0), 0.0);
  EXPECT_EQ(cp_->cost("team", now_).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CloudAutoscalerTest, OnDemandWorkStaysOffSpotMachinesAcrossARestart) {
  submit(R"({"name":"s","resources":{"accelerators":"A100:1","cpus":1,"memory":1},
             "use_spot":true,"run":"true"})");
  tick();
  ASSERT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/one/spot"}));
  open();  // the control plane restarts before the machine joins
  EXPECT_EQ(cp_->list_instances(now_).size(), 1u);
  join("i-1", 1);
  // An on-demand job does not take the spot machine: it gets a machine of its own.
  const std::string od = submit(kOneGpu);
  tick();
  tick();
  EXPECT_EQ(provider_->tried.back(), "aws/us-east-1/one");
  EXPECT_NE(cp_->get_job(od)->dump().find("not of an accepted kind"), std::string::npos)
      << cp_->get_job(od)->dump();
}

TEST_F(CloudAutoscalerTest, AMachineNoticedBeforeItJoinsTakesNoWork) {
  const char* spot = R"({"name":"s","resources":{"accelerators":"A100:1","cpus":1,"memory":1},
                         "use_spot":true,"run":"true"})";
  const std::string a = submit(spot);
  tick();
  ASSERT_EQ(provider_->instances.size(), 1u);
  provider_->notices.push_back({"i-1", "Server.SpotInstanceTermination", ""});
  tick();
  join("i-1", 1);
  tick();
  EXPECT_EQ(state(a), "PENDING");              // not on the machine that is going away
  EXPECT_EQ(provider_->instances.size(), 2u);  // a replacement was rented
  join("i-2", 1);
  tick();
  EXPECT_EQ(state(a), "SCHEDULED");
}

TEST_F(CloudAutoscalerTest, PoolLimitsBoundAndKeepMachines) {
  // At most one machine of "one", and one of "two" kept even when idle.
  auto store = store::open_sqlite_store((dir_ / "limits.db").string());
  ASSERT_TRUE(store.is_ok());
  ControlPlaneOptions o{.data_dir = dir_.string(), .cloud_idle_ms = 1000};
  o.pool_limits["aws/us-east-1/one"] = {.min = 0, .max = 1};
  o.pool_limits["aws/us-east-1/two"] = {.min = 1, .max = 4};
  auto cp = ControlPlane::open(std::move(*store), o, now_);
  ASSERT_TRUE(cp.is_ok());
  cp_ = std::move(*cp);
  cp_->set_clouds({provider_}, [] { return std::string("true"); });
  tick();
  EXPECT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/two"}));  // the minimum
  join("i-1", 2);
  for (int i = 0; i < 5; ++i) tick();
  EXPECT_TRUE(provider_->terminated.empty());  // idle, but the pool's minimum
  // Two jobs of two GPUs: the first runs on the kept machine, the second rents another "two"
  // (a "one" machine is too small).
  const char* two_gpus =
      R"({"name":"b","resources":{"accelerators":"A100:2","cpus":1,"memory":1},"run":"true"})";
  submit(two_gpus);
  submit(two_gpus);
  tick();
  tick();
  EXPECT_EQ(provider_->tried.size(), 2u);
  // One-GPU jobs: "one" is capped at one machine, then "two" is used.
  submit(kOneGpu);
  submit(kOneGpu);
  submit(kOneGpu);
  tick();
  std::map<std::string, int> per_pool;
  for (const std::string& p : provider_->tried) ++per_pool[p];
  EXPECT_EQ(per_pool["aws/us-east-1/one"], 1);
}

TEST_F(CloudAutoscalerTest, APoolMinimumWaitsOutAProviderThatDoesNotAnswerWithoutSkippingThePool) {
  // A minimum of one "two" machine, while the provider cannot be reached.
  auto store = store::open_sqlite_store((dir_ / "minimum.db").string());
  ASSERT_TRUE(store.is_ok());
  ControlPlaneOptions o{.data_dir = dir_.string(), .failover_ttl_ms = 600'000};
  o.pool_limits["aws/us-east-1/two"] = {.min = 1, .max = 4};
  auto cp = ControlPlane::open(std::move(*store), o, now_);
  ASSERT_TRUE(cp.is_ok());
  cp_ = std::move(*cp);
  cp_->set_clouds({provider_}, [] { return std::string("true"); });
  provider_->broken = Status(StatusCode::kInternal, "aws ec2 RunInstances: connect: timed out");
  tick();
  EXPECT_EQ(provider_->tried.size(), 1u);
  for (int i = 0; i < 10; ++i) tick();
  EXPECT_EQ(provider_->tried.size(), 1u);  // resting, not called every second
  // It answers again: 15 s after the failure, not the 10 minutes of a pool without capacity.
  provider_->broken.reset();
  for (int i = 0; i < 5; ++i) tick();
  EXPECT_EQ(provider_->tried.size(), 2u);
  EXPECT_EQ(provider_->instances.size(), 1u);
}

TEST_F(CloudAutoscalerTest, MachinesOfAProviderNotAttachedEndAndStopBilling) {
  submit(kOneGpu);
  tick();
  ASSERT_EQ(cp_->list_instances(now_).size(), 1u);
  // The server restarts without clouds: the machine can be neither watched nor returned.
  cp_.reset();
  auto store = store::open_sqlite_store((dir_ / "lepton.db").string());
  ASSERT_TRUE(store.is_ok());
  auto cp = ControlPlane::open(std::move(*store), {.data_dir = dir_.string()}, now_);
  ASSERT_TRUE(cp.is_ok());
  cp_ = std::move(*cp);
  tick();
  json listed = cp_->list_instances(now_);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].value("state", ""), "terminated");
  EXPECT_NE(listed[0].value("end_reason", "").find("provider (fake) is not attached"),
            std::string::npos)
      << listed.dump();
  const double billed = listed[0].value("cost_usd", 0.0);
  now_ += 3'600'000;
  EXPECT_DOUBLE_EQ(cp_->list_instances(now_)[0].value("cost_usd", 0.0), billed);
}

TEST_F(CloudAutoscalerTest, ASpentBudgetStopsRenting) {
  auto q = cp_->create_queue(R"({"name":"team","budget_usd":0})", now_);
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  const std::string a =
      submit(R"({"name":"a","queue":"team","resources":{"accelerators":"A100:1"},"run":"true"})");
  tick();
  tick();
  EXPECT_TRUE(provider_->tried.empty());
  EXPECT_NE(cp_->get_job(a)->value("reason", "").find("queue team has spent $0.00 of its $0.00"),
            std::string::npos);
}

TEST_F(CloudAutoscalerTest, AMachineRentedForAWaitingGangIsHeldForIt) {
  // A gang of two rents two machines; the first joins alone. A one-GPU job that arrives then
  // must not take it (the gang would have to rent again): it rents its own.
  const std::string gang = submit(
      R"({"name":"g","num_nodes":2,"resources":{"accelerators":"A100:1","cpus":1,"memory":1},)"
      R"("run":"true"})");
  tick();
  ASSERT_EQ(provider_->instances.size(), 2u);
  join("i-1", 1);
  tick();
  EXPECT_EQ(state(gang), "PENDING");
  const std::string single = submit(kOneGpu);
  for (int i = 0; i < 3; ++i) tick();
  json task = (*cp_->get_job(single))["tasks"][0];
  EXPECT_NE(task.value("node", ""), "i-1") << "the gang's machine was taken";
  ASSERT_EQ(provider_->instances.size(), 3u) << "the single job rents its own machine";
  join("i-2", 1);
  join("i-3", 1);
  tick();
  EXPECT_EQ(state(gang), "SCHEDULED");
  EXPECT_EQ(state(single), "SCHEDULED");
  std::set<std::string> gang_nodes;
  const json gang_job = *cp_->get_job(gang);
  for (const json& t : gang_job["tasks"]) gang_nodes.insert(t.value("node", ""));
  EXPECT_EQ(gang_nodes, (std::set<std::string>{"i-1", "i-2"}));
  EXPECT_EQ((*cp_->get_job(single))["tasks"][0].value("node", ""), "i-3");
  // One call for the gang's two machines, one for the single job's: nothing rented twice.
  EXPECT_EQ(provider_->tried.size(), 2u);
}

TEST_F(CloudAutoscalerTest, AGangThatLosesOneMachineRentsOnlyThatOne) {
  const std::string gang =
      submit(R"({"name":"g","num_nodes":2,"use_spot":true,)"
             R"("resources":{"accelerators":"A100:1","cpus":1,"memory":1},"run":"true"})");
  tick();
  ASSERT_EQ(provider_->instances.size(), 2u);
  join("i-1", 1);
  join("i-2", 1);
  tick();
  ASSERT_EQ(state(gang), "SCHEDULED");
  std::map<std::string, json> running;
  for (const std::string node : {"i-1", "i-2"}) {
    json reply = beat(node);
    ASSERT_EQ(reply["start"].size(), 1u) << node;
    const json start = reply["start"][0];
    running[node] = {{"job_id", start["job_id"]},
                     {"rank", start["rank"]},
                     {"attempt", start["attempt"]},
                     {"state", "RUNNING"}};
    beat(node, json::array({running[node]}));
  }
  ASSERT_EQ(state(gang), "RUNNING");
  // i-1 is being taken away: the gang is stopped and requeued, and one machine is rented for
  // it, not two; i-2 is still there.
  provider_->notices.push_back({"i-1", "Server.SpotInstanceTermination", ""});
  tick();
  for (const std::string node : {"i-1", "i-2"}) {
    beat(node, json::array({running[node]}));  // told to stop its task
    beat(node);                                // stopped
  }
  tick();
  EXPECT_EQ(state(gang), "PENDING");
  EXPECT_EQ(provider_->instances.size(), 3u) << "rented " << provider_->instances.size() - 2;
  join("i-3", 1);
  // Once the stopped tasks' grace is over, the gang starts on the machine it kept and the new one.
  for (int i = 0; i < 60 && state(gang) != "SCHEDULED"; ++i) tick();
  EXPECT_EQ(state(gang), "SCHEDULED");
  EXPECT_EQ(provider_->instances.size(), 3u);
  std::set<std::string> nodes;
  const json g = *cp_->get_job(gang);
  for (const json& t : g["tasks"]) nodes.insert(t.value("node", ""));
  EXPECT_EQ(nodes, (std::set<std::string>{"i-2", "i-3"}));
}

TEST_F(CloudAutoscalerTest, FourWaitingJobsShareOneBiggerMachineThatCostsLessPerGpu) {
  // Four one-GPU jobs: one 4-GPU machine at $2/h, not four 1-GPU machines at $1/h.
  provider_->catalog = {offer("one", 1, 1.0, 0.4), offer("four", 4, 2.0, 1.0)};
  std::vector<std::string> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(submit(kOneGpu));
  tick();
  EXPECT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/four"}));
  join("i-1", 4);
  tick();
  for (const std::string& id : jobs) {
    EXPECT_EQ(state(id), "SCHEDULED") << id;
    EXPECT_EQ((*cp_->get_job(id))["tasks"][0].value("node", ""), "i-1");
  }
  // One job alone still gets the cheapest machine for itself.
  const std::string alone = submit(kOneGpu);
  tick();
  EXPECT_EQ(provider_->tried.back(), "aws/us-east-1/one");
  EXPECT_EQ(provider_->tried.size(), 2u);
  (void)alone;
}

TEST_F(CloudAutoscalerTest, TwoWaitingHalfGpuJobsRentOneMachine) {
  // Room is counted in milli-GPUs, as the scheduler binds work: the second half takes the rest
  // of the GPU rented for the first, instead of a machine of its own.
  const char* half =
      R"({"name":"h","resources":{"accelerators":"A100:0.5","cpus":1,"memory":1},"run":"true"})";
  const std::string a = submit(half), b = submit(half);
  tick();
  EXPECT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/one"}));
  tick();  // the launching machine's room still holds both
  EXPECT_EQ(provider_->tried.size(), 1u);
  join("i-1", 1);
  tick();
  EXPECT_EQ(state(a), "SCHEDULED");
  EXPECT_EQ(state(b), "SCHEDULED");
  EXPECT_EQ((*cp_->get_job(a))["tasks"][0].value("node", ""), "i-1");
  EXPECT_EQ((*cp_->get_job(b))["tasks"][0].value("node", ""), "i-1");
  tick();
  EXPECT_EQ(provider_->tried.size(), 1u);
  // A third half does not fit the GPU the two share: it rents.
  submit(half);
  tick();
  EXPECT_EQ(provider_->tried.size(), 2u);
}

TEST_F(CloudAutoscalerTest, AJobRunningAcrossARestartIsChargedUntilItEnds) {
  const std::string a = submit(kOneGpu);
  tick();
  join("i-1", 1);
  tick();
  json reply = beat("i-1");
  ASSERT_EQ(reply["start"].size(), 1u);
  const json running = {
      {"job_id", a}, {"rank", 0}, {"attempt", reply["start"][0]["attempt"]}, {"state", "RUNNING"}};
  beat("i-1", json::array({running}));
  now_ += 3'600'000;
  beat("i-1", json::array({running}));
  open();  // the server restarts while the job runs: its cost record stays open
  for (int i = 0; i < 60; ++i) {
    now_ += 59'000;
    beat("i-1", json::array({running}));
    tick();
  }
  json exited = running;
  exited["state"] = "EXITED";
  exited["exit_code"] = 0;
  beat("i-1", json::array({exited}));
  ASSERT_EQ(state(a), "SUCCEEDED");
  // Half an hour later, the machine not yet returned: the job was charged the two hours it ran
  // (one GPU at $1/h), not the time since, and so was its queue.
  now_ += 1'800'000;
  auto cost = cp_->cost("job", now_);
  ASSERT_TRUE(cost.is_ok());
  ASSERT_EQ((*cost)["rows"].size(), 1u);
  EXPECT_NEAR((*cost)["rows"][0].value("cost_usd", 0.0), 2.0, 0.01);
  EXPECT_NEAR(cost->value("idle_usd", 0.0), 0.5, 0.01);
  auto by_queue = cp_->cost("queue", now_);
  ASSERT_TRUE(by_queue.is_ok());
  EXPECT_EQ((*by_queue)["rows"][0].value("key", ""), "default");
  EXPECT_NEAR((*by_queue)["rows"][0].value("cost_usd", 0.0), 2.0, 0.01);
}

TEST_F(CloudAutoscalerTest, AReplicaIsPlacedInTheRegionWithFewerOfItsReplicas) {
  // Three idle machines, two in us-east-1 and one in us-west-2 (rented for batch jobs that ran):
  // two replicas go one to each region, not to two machines of one region.
  cloud::Offer west = offer("one", 1, 1.0, 0.5);
  west.region = "us-west-2";
  provider_->catalog = {offer("one", 1, 1.0, 0.4), west};
  auto in_region = [](const std::string& region) {
    return R"({"name":"b","regions":[")" + region +
           R"("],"resources":{"accelerators":"A100:1","cpus":1,"memory":1},"run":"true"})";
  };
  submit(in_region("us-east-1"));
  submit(in_region("us-east-1"));
  submit(in_region("us-west-2"));
  tick();
  ASSERT_EQ(provider_->instances.size(), 3u);
  for (const std::string node : {"i-1", "i-2", "i-3"}) join(node, 1);
  tick();
  for (const std::string node : {"i-1", "i-2", "i-3"}) {
    json reply = beat(node);
    ASSERT_EQ(reply["start"].size(), 1u) << node;
    json done = {{"job_id", reply["start"][0]["job_id"]},
                 {"rank", 0},
                 {"attempt", reply["start"][0]["attempt"]},
                 {"state", "EXITED"},
                 {"exit_code", 0}};
    beat(node, json::array({done}));
  }
  deploy_chat(2, false);
  tick();
  std::set<std::string> regions;
  const json d = *cp_->get_deployment("chat", now_);
  for (const json& r : d["replicas"]) {
    const std::string node = r.value("node", "");
    ASSERT_TRUE(provider_->instances.count(node)) << d.dump(2);
    regions.insert(provider_->instances[node].region);
  }
  EXPECT_EQ(regions, (std::set<std::string>{"us-east-1", "us-west-2"})) << d.dump(2);
  EXPECT_EQ(provider_->instances.size(), 3u) << "the idle machines were used";
}

TEST_F(CloudAutoscalerTest, ReplicasSpreadOverRegions) {
  // The same machine in two regions, one a little dearer: a batch job's machines all go to the
  // cheaper, a deployment's replicas go one to each region, then back to the cheaper.
  cloud::Offer west = offer("one", 1, 1.0, 0.5);
  west.region = "us-west-2";
  provider_->catalog = {offer("one", 1, 1.0, 0.4), west};
  deploy_chat(3, true);
  for (int i = 0; i < 3; ++i) tick();
  EXPECT_EQ(sorted_tried(),
            (std::vector<std::string>{"aws/us-east-1/one/spot", "aws/us-east-1/one/spot",
                                      "aws/us-west-2/one/spot"}));
  // A replica placed on a node: it goes to the region with fewer replicas.
  for (const auto& [id, inst] : provider_->instances) join(id, 1);
  tick();
  std::map<std::string, int> per_region;
  const json d = *cp_->get_deployment("chat", now_);
  for (const json& r : d["replicas"]) {
    const std::string node = r.value("node", "");
    ASSERT_TRUE(provider_->instances.count(node)) << d.dump(2);
    ++per_region[provider_->instances[node].region];
  }
  EXPECT_EQ(per_region, (std::map<std::string, int>{{"us-east-1", 2}, {"us-west-2", 1}}));

  // A batch job is not spread: two of them rent in the cheaper region.
  provider_->tried.clear();
  submit(kOneGpu);
  submit(kOneGpu);
  tick();
  EXPECT_EQ(provider_->tried, (std::vector<std::string>{"aws/us-east-1/one", "aws/us-east-1/one"}));
}

TEST_F(CloudAutoscalerTest, ReplicasSpreadOverZonesWithinARegion) {
  // One region, two zones, the second a little dearer: the replicas go one to each zone.
  cloud::Offer a = offer("one", 1, 1.0, 0.4);
  a.zone = "us-east-1a";
  cloud::Offer b = offer("one", 1, 1.0, 0.5);
  b.zone = "us-east-1b";
  provider_->catalog = {a, b};
  deploy_chat(2, true);
  for (int i = 0; i < 2; ++i) tick();
  EXPECT_EQ(sorted_tried(), (std::vector<std::string>{"aws/us-east-1/us-east-1a/one/spot",
                                                      "aws/us-east-1/us-east-1b/one/spot"}));
  // A third replica: both zones hold one, so the cheaper zone.
  ASSERT_TRUE(cp_->scale_deployment("chat", R"({"min": 3, "max": 3})", now_).is_ok());
  tick();
  ASSERT_EQ(provider_->tried.size(), 3u);
  EXPECT_EQ(provider_->tried.back(), "aws/us-east-1/us-east-1a/one/spot");
}

}  // namespace
}  // namespace lepton::server
