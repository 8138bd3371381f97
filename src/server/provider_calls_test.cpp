#include "server/provider_calls.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

namespace lepton::server {
namespace {

cloud::ProvisionRequest request(const std::string& key) {
  cloud::ProvisionRequest r;
  r.idempotency_key = key;
  return r;
}

// Answers each provision with one instance named after the request's idempotency key, once
// `answer` is set (a provider whose calls block) or at once.
class WaitingProvider : public cloud::Provider {
 public:
  explicit WaitingProvider(bool blocks) : blocks_(blocks) {}
  std::string_view name() const override { return "waiting"; }
  Result<std::vector<cloud::Offer>> offers(const cloud::OfferQuery&) const override {
    return std::vector<cloud::Offer>{};
  }
  Result<std::vector<cloud::Instance>> provision(const cloud::ProvisionRequest& r) override {
    started.fetch_add(1);
    if (blocks_) answer_future.wait();
    cloud::Instance i;
    i.id = r.idempotency_key;
    return std::vector<cloud::Instance>{i};
  }
  Status terminate(const std::vector<std::string>& ids) override {
    return ids.empty() ? Status::invalid_argument("ids: none") : Status::ok();
  }
  Result<std::vector<cloud::Instance>> list_instances() override {
    return std::vector<cloud::Instance>{};
  }
  Result<std::vector<cloud::InterruptionNotice>> interruption_notices() override {
    return std::vector<cloud::InterruptionNotice>{};
  }
  bool calls_block() const override { return blocks_; }

  void release() {
    std::call_once(released_, [&] { answer.set_value(); });
  }

  std::atomic<int> started{0};
  std::promise<void> answer;
  std::shared_future<void> answer_future = answer.get_future().share();

 private:
  bool blocks_;
  std::once_flag released_;
};

TEST(ProviderCalls, AProviderThatAnswersAtOnceIsCalledInline) {
  auto p = std::make_shared<WaitingProvider>(false);
  ProviderCalls calls({p});
  EXPECT_FALSE(calls.off_loop(0));
  const uint64_t id = calls.provision(0, request("k1"));
  EXPECT_TRUE(calls.busy(0));  // until its answer is taken
  auto outcome = calls.take(id);
  ASSERT_TRUE(outcome && outcome->is_ok());
  EXPECT_EQ(outcome->value()[0].id, "k1");
  EXPECT_FALSE(calls.busy(0));
  EXPECT_FALSE(calls.take(id));  // taken once
  auto refused = calls.take(calls.terminate(0, {}));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status().message(), "ids: none");
  EXPECT_TRUE(calls.take_ended().empty());
}

TEST(ProviderCalls, AProviderThatBlocksIsCalledOnItsOwnThreadOneCallAtATime) {
  auto p = std::make_shared<WaitingProvider>(true);
  ProviderCalls calls({p});
  // Released before `calls` joins its thread, also when an assertion below ends the test early.
  struct Release {
    WaitingProvider& p;
    ~Release() { p.release(); }
  } release{*p};
  EXPECT_TRUE(calls.off_loop(0));
  const uint64_t first = calls.provision(0, request("k1"));
  const uint64_t second = calls.provision(0, request("k2"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (p->started.load() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(p->started.load(), 1);  // the second waits for the first
  EXPECT_FALSE(calls.take(first));
  EXPECT_TRUE(calls.busy(0));
  p->release();
  std::vector<ProviderCalls::Ended> ended;
  while (ended.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    for (ProviderCalls::Ended& e : calls.take_ended()) ended.push_back(std::move(e));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[0].id, first);
  EXPECT_EQ(ended[1].id, second);
  EXPECT_EQ(ended[1].outcome.value()[0].id, "k2");
  EXPECT_FALSE(calls.busy(0));
}

}  // namespace
}  // namespace lepton::server
