#include "cloud/polled_provider.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace lepton::cloud {
namespace {

using namespace std::chrono_literals;

// A cloud whose listing the test sets; counts the calls that would go over the network.
class FakeCloud : public Provider {
 public:
  std::string_view name() const override { return "fake"; }
  Result<std::vector<Offer>> offers(const OfferQuery&) const override {
    return std::vector<Offer>{};
  }
  Result<std::vector<Instance>> provision(const ProvisionRequest&) override {
    Instance i;
    i.id = "i-" + std::to_string(++launched);
    return std::vector<Instance>{i};
  }
  Status terminate(const std::vector<std::string>&) override { return Status::ok(); }
  Result<std::vector<Instance>> list_instances() override {
    ++list_calls;
    std::lock_guard<std::mutex> lock(mu);
    if (fail) return Status(StatusCode::kUnavailable, "throttled");
    return listing;
  }
  Result<std::vector<InterruptionNotice>> interruption_notices() override {
    std::lock_guard<std::mutex> lock(mu);
    return notices;
  }
  void set(std::vector<Instance> l, bool f = false) {
    std::lock_guard<std::mutex> lock(mu);
    listing = std::move(l);
    fail = f;
  }

  std::atomic<int> list_calls{0};
  int launched = 0;
  std::mutex mu;
  std::vector<Instance> listing;
  std::vector<InterruptionNotice> notices;
  bool fail = false;
};

Instance running(const std::string& id) {
  Instance i;
  i.id = id;
  i.state = InstanceState::kRunning;
  return i;
}

// Waits (at most 5 s) until `p` has polled more than `n` times.
bool polled_after(const PolledProvider& p, int64_t n) {
  for (int i = 0; i < 1000 && p.polls() <= n; ++i) std::this_thread::sleep_for(5ms);
  return p.polls() > n;
}

TEST(PolledProvider, AnswersFromTheLastPollNotTheNetwork) {
  auto cloud = std::make_shared<FakeCloud>();
  cloud->set({running("i-9")});
  cloud->notices = {{"i-9", "Server.SpotInstanceTermination", ""}};
  PolledProvider p(cloud, 1h);
  for (int i = 0; i < 50; ++i) {
    auto list = p.list_instances();
    ASSERT_TRUE(list.is_ok());
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ((*list)[0].id, "i-9");
  }
  EXPECT_EQ(cloud->list_calls.load(), 1) << "one poll in an hour-long period";
  auto notices = p.interruption_notices();
  ASSERT_TRUE(notices.is_ok());
  ASSERT_EQ(notices->size(), 1u);
  EXPECT_EQ((*notices)[0].instance_id, "i-9");
  EXPECT_EQ(p.name(), "fake");
}

TEST(PolledProvider, AMachineJustLaunchedIsListedUntilAPollShowsIt) {
  auto cloud = std::make_shared<FakeCloud>();
  PolledProvider p(cloud, 1h);
  ASSERT_TRUE(p.list_instances().is_ok());
  const int64_t before = p.polls();
  auto launched = p.provision({});
  ASSERT_TRUE(launched.is_ok());
  // The launch starts a poll; the cloud does not list the machine yet, lepton still does.
  ASSERT_TRUE(polled_after(p, before));
  auto list = p.list_instances();
  ASSERT_TRUE(list.is_ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, "i-1");
  EXPECT_EQ((*list)[0].state, InstanceState::kPending);
  // Once the cloud lists it, its state is the cloud's; once the cloud drops it, so does lepton.
  cloud->set({running("i-1")});
  int64_t n = p.polls();
  ASSERT_TRUE(p.terminate({}).is_ok());  // any call through starts a poll
  ASSERT_TRUE(polled_after(p, n));
  list = p.list_instances();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, InstanceState::kRunning);
  cloud->set({});
  n = p.polls();
  ASSERT_TRUE(p.terminate({}).is_ok());
  ASSERT_TRUE(polled_after(p, n));
  EXPECT_TRUE(p.list_instances()->empty());
}

TEST(PolledProvider, ALaunchNeverListedIsDroppedAfterTheGrace) {
  auto cloud = std::make_shared<FakeCloud>();
  PolledProvider p(cloud, 1h, /*launch_grace=*/0ms);
  ASSERT_TRUE(p.list_instances().is_ok());
  const int64_t before = p.polls();
  ASSERT_TRUE(p.provision({}).is_ok());
  ASSERT_TRUE(polled_after(p, before));
  EXPECT_TRUE(p.list_instances()->empty());
}

TEST(PolledProvider, AFailedPollIsAnErrorNotAnEmptyList) {
  // The autoscaler ends machines a provider no longer lists: a failed poll must not look like
  // an empty cloud.
  auto cloud = std::make_shared<FakeCloud>();
  cloud->set({running("i-1")}, /*fail=*/true);
  PolledProvider p(cloud, 1h);
  auto list = p.list_instances();
  ASSERT_FALSE(list.is_ok());
  EXPECT_EQ(list.status().message(), "throttled");
  cloud->set({running("i-1")});
  const int64_t n = p.polls();
  ASSERT_TRUE(p.terminate({}).is_ok());
  ASSERT_TRUE(polled_after(p, n));
  ASSERT_TRUE(p.list_instances().is_ok());
  EXPECT_EQ(p.list_instances()->size(), 1u);
}

}  // namespace
}  // namespace lepton::cloud
