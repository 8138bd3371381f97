#include "cloud/sim_provider.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace lepton::cloud {
namespace {

namespace fs = std::filesystem;

std::vector<Offer> tiny_catalog() {
  Offer a{.cloud = "aws",
          .instance_type = "g5.xlarge",
          .gpu_model = "A10G",
          .gpu_count = 1,
          .vcpus = 4,
          .memory_gib = 16,
          .price_per_hour = 1.0,
          .spot_price_per_hour = 0.4,
          .region = "us-east-1",
          .zone = ""};
  Offer b{.cloud = "gcp",
          .instance_type = "g2-standard-4",
          .gpu_model = "L4",
          .gpu_count = 1,
          .vcpus = 4,
          .memory_gib = 16,
          .price_per_hour = 0.7,
          .spot_price_per_hour = {},
          .region = "us-central1",
          .zone = ""};
  return {a, b};
}

class SimProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lepton-sim-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SimProvider> make(SimCloudOptions o) {
    o.state_dir = dir_.string();
    auto p = SimProvider::create(tiny_catalog(), o);
    EXPECT_TRUE(p.is_ok()) << p.status().message();
    return std::move(*p);
  }

  // The pid a booted instance's script wrote to pid.txt (0 when it did not within 10 s).
  pid_t booted_pid(const std::string& id) {
    const fs::path file = dir_ / "instances" / id / "pid.txt";
    if (!eventually([&] { return fs::exists(file) && fs::file_size(file) > 0; })) return 0;
    pid_t pid = 0;
    std::ifstream(file) >> pid;
    return pid;
  }

  // Waits up to 10 s for `pred`.
  template <class F>
  bool eventually(F pred) {
    for (int i = 0; i < 200; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
  }

  fs::path dir_;
};

ProvisionRequest request(const Offer& offer, bool spot, std::string script) {
  return {.offer = offer,
          .spot = spot,
          .count = 1,
          .bootstrap_script = std::move(script),
          .labels = {},
          .idempotency_key = ""};
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST_F(SimProviderTest, BootRunsTheScriptWithTheMachineInItsEnvironment) {
  // A lepton linked against libraries outside the system's needs its library path on the
  // emulated machine too (on a lent GPU machine the agent did not start without it); the
  // server's other variables stay behind.
  ::setenv("LD_LIBRARY_PATH", "/opt/lepton-libs", 1);
  ::setenv("LEPTON_SERVER_ONLY", "secret", 1);
  auto p = make({.boot_s = 0.1});
  auto launched = p->provision(request(tiny_catalog()[0], false,
                                       "echo \"$LEPTON_INSTANCE_ID $LEPTON_SIM_GPUS "
                                       "$LEPTON_SIM_CPUS $LEPTON_SIM_MEMORY_GIB "
                                       "$LD_LIBRARY_PATH [$LEPTON_SERVER_ONLY]\" > booted\n"));
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  ASSERT_EQ(launched->size(), 1u);
  const Instance& inst = launched->front();
  EXPECT_EQ(inst.state, InstanceState::kPending);
  EXPECT_EQ(inst.cloud, "aws");
  const fs::path booted = dir_ / "instances" / inst.id / "booted";
  ASSERT_TRUE(eventually([&] { return fs::exists(booted) && fs::file_size(booted) > 0; }));
  std::ifstream in(booted);
  std::string line;
  std::getline(in, line);
  ::unsetenv("LD_LIBRARY_PATH");
  ::unsetenv("LEPTON_SERVER_ONLY");
  EXPECT_EQ(line, inst.id + " A10G:1 4 16 /opt/lepton-libs []");
  auto listed = p->list_instances();
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().state, InstanceState::kRunning);
}

TEST_F(SimProviderTest, CapacityAndQuotaErrorsHaveTheirCodes) {
  SimCloudOptions o{.boot_s = 60, .capacity = 1};
  o.pool_capacity["gcp/us-central1/g2-standard-4"] = 0;
  o.quota_gpus["aws"] = 1;
  auto p = make(o);
  const auto offers = tiny_catalog();
  auto none = p->provision(request(offers[1], false, "true"));
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().code(), StatusCode::kUnavailable) << none.status().message();
  EXPECT_NE(none.status().message().find("insufficient capacity"), std::string::npos);
  ASSERT_TRUE(p->provision(request(offers[0], true, "true")).is_ok());
  // The spot pool is full; the on-demand pool has room, but aws's GPU quota is used up.
  auto full = p->provision(request(offers[0], true, "true"));
  EXPECT_EQ(full.status().code(), StatusCode::kUnavailable);
  auto quota = p->provision(request(offers[0], false, "true"));
  EXPECT_EQ(quota.status().code(), StatusCode::kResourceExhausted) << quota.status().message();
  // GCP's L4 has no spot price in this catalog.
  EXPECT_EQ(p->provision(request(offers[1], true, "true")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SimProviderTest, AnInterruptionPostsANoticeThenKillsTheInstance) {
  auto p = make({.boot_s = 0, .notice_s = 0.5});
  auto launched = p->provision(request(tiny_catalog()[0], true, "echo $$ > pid.txt\nsleep 60\n"));
  ASSERT_TRUE(launched.is_ok());
  const std::string id = launched->front().id;
  const pid_t pid = booted_pid(id);
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(alive(pid));
  EXPECT_FALSE(p->interrupt("nope").is_ok());
  ASSERT_TRUE(p->interrupt(id).is_ok());
  auto notices = p->interruption_notices();
  ASSERT_TRUE(notices.is_ok());
  ASSERT_EQ(notices->size(), 1u);
  EXPECT_EQ(notices->front().instance_id, id);
  ASSERT_TRUE(eventually([&] {
    auto l = p->list_instances();
    return l.is_ok() && l->front().state == InstanceState::kTerminated;
  }));
  EXPECT_TRUE(eventually([&] { return !alive(pid); }));
  EXPECT_TRUE(p->interruption_notices()->empty());
}

TEST_F(SimProviderTest, TerminateKillsTheInstanceAndFreesItsPool) {
  auto p = make({.boot_s = 0, .capacity = 1});
  auto launched = p->provision(request(tiny_catalog()[0], false, "echo $$ > pid.txt\nsleep 60\n"));
  ASSERT_TRUE(launched.is_ok());
  const std::string id = launched->front().id;
  const pid_t pid = booted_pid(id);
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(p->provision(request(tiny_catalog()[0], false, "true")).is_ok());
  EXPECT_FALSE(p->interrupt(id).is_ok());  // on demand
  ASSERT_TRUE(p->terminate({id}).is_ok());
  EXPECT_TRUE(eventually([&] { return !alive(pid); }));
  EXPECT_TRUE(p->provision(request(tiny_catalog()[0], false, "true")).is_ok());
  EXPECT_EQ(p->terminate({"sim-aws-99"}).code(), StatusCode::kNotFound);
}

TEST_F(SimProviderTest, IdsAreNotReusedByALaterRun) {
  std::string first;
  {
    auto p = make({.boot_s = 60});
    auto launched = p->provision(request(tiny_catalog()[0], false, "true"));
    ASSERT_TRUE(launched.is_ok());
    first = launched->front().id;
  }
  auto p = make({.boot_s = 60});
  auto launched = p->provision(request(tiny_catalog()[0], false, "true"));
  ASSERT_TRUE(launched.is_ok());
  EXPECT_EQ(first, "sim-aws-1");
  EXPECT_EQ(launched->front().id, "sim-aws-2");
  // The bootstrap script may hold the API token: only its owner reads it.
  const auto perms = fs::status(dir_ / "instances" / "sim-aws-2" / "bootstrap.sh").permissions();
  EXPECT_EQ(perms & (fs::perms::group_read | fs::perms::others_read), fs::perms::none);
}

TEST(SimCloudOptions, ReadsJsonAndNamesBadFields) {
  auto o = SimCloudOptions::from_json(
      R"({"boot_s": 1.5, "capacity": 2, "pool_capacity": {"aws/us-east-1/g5.xlarge/spot": 0},
          "quota_gpus": {"aws": 8}, "clouds": ["aws"], "seed": 7})");
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_DOUBLE_EQ(o->boot_s, 1.5);
  EXPECT_EQ(o->capacity, 2);
  EXPECT_EQ(o->pool_capacity.at("aws/us-east-1/g5.xlarge/spot"), 0);
  EXPECT_EQ(o->quota_gpus.at("aws"), 8);
  EXPECT_EQ(o->seed, 7u);
  EXPECT_NE(SimCloudOptions::from_json(R"({"boot_s": -1})").status().message().find("boot_s"),
            std::string::npos);
  EXPECT_NE(SimCloudOptions::from_json(R"({"quota_gpus": {"aws": 1.5}})")
                .status()
                .message()
                .find("quota_gpus.aws"),
            std::string::npos);
  EXPECT_NE(SimCloudOptions::from_json(R"({"bogus": 1})").status().message().find("bogus"),
            std::string::npos);
  EXPECT_FALSE(SimCloudOptions::from_json("[").is_ok());
}

}  // namespace
}  // namespace lepton::cloud
