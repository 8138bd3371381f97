// What the cloud autoscaler remembers of providers' answers (provisioning.h). Which offer fits
// and which comes first, and room on machines already rented, are the renting policy's, tested in
// src/sched/renting_test.cpp.
#include "server/provisioning.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>

namespace lepton::server {
namespace {

cloud::Offer offer(std::string type, double price, std::optional<double> spot) {
  return {.cloud = "aws",
          .instance_type = std::move(type),
          .gpu_model = "A100",
          .gpu_count = 1,
          .vcpus = 8,
          .memory_gib = 64,
          .price_per_hour = price,
          .spot_price_per_hour = spot,
          .region = "us-east-1",
          .zone = ""};
}

TEST(Provisioning, AnOfferIsPricedAsLaunched) {
  EXPECT_DOUBLE_EQ(offer_price(offer("a", 3.67, 1.10), false), 3.67);
  EXPECT_DOUBLE_EQ(offer_price(offer("a", 3.67, 1.10), true), 1.10);
  // No spot price (Lambda sells no spot): it cannot be launched as spot.
  EXPECT_TRUE(std::isnan(offer_price(offer("b", 1.29, std::nullopt), true)));
}

TEST(Provisioning, FailedPoolsAreSkippedUntilTheirTimeIsUp) {
  FailureMemory memory(60'000);
  const std::string pool = cloud::offer_pool(offer("a", 1.0, 0.4), false);
  EXPECT_FALSE(memory.skip(pool, 1000));
  EXPECT_EQ(memory.failed(pool, 1000), 61'000);
  EXPECT_TRUE(memory.skip(pool, 2000));
  EXPECT_EQ(memory.active(2000), (std::map<std::string, int64_t>{{pool, 61'000}}));
  EXPECT_FALSE(memory.skip(pool, 61'000));
  EXPECT_TRUE(memory.active(61'000).empty());
  // A failure read back from the store never shortens one remembered here.
  memory.failed(pool, 100'000);
  memory.remember(pool, 120'000);
  EXPECT_TRUE(memory.skip(pool, 159'999));
  memory.remember(pool, 200'000);
  EXPECT_TRUE(memory.skip(pool, 199'999));
  EXPECT_FALSE(memory.skip(pool, 200'000));
  // Spot and on-demand are different pools.
  EXPECT_FALSE(memory.skip(cloud::offer_pool(offer("a", 1.0, 0.4), true), 150'000));
}

TEST(Provisioning, OnlyNoCapacityAndQuotaAreAnswersAboutCapacity) {
  EXPECT_TRUE(is_capacity_answer(Status(StatusCode::kUnavailable, "InsufficientInstanceCapacity")));
  EXPECT_TRUE(is_capacity_answer(Status(StatusCode::kResourceExhausted, "VcpuLimitExceeded")));
  EXPECT_FALSE(is_capacity_answer(Status(StatusCode::kInternal, "connection refused")));
  EXPECT_FALSE(is_capacity_answer(Status::ok()));
}

TEST(Provisioning, AProviderThatFailsToAnswerRestsLongerEachTimeUntilItAnswers) {
  ProviderBackoff backoff;
  EXPECT_FALSE(backoff.resting(0));
  const Status unreachable(StatusCode::kInternal, "connect: connection refused");
  backoff.record(unreachable, 1'000);
  EXPECT_TRUE(backoff.resting(1'000));
  EXPECT_EQ(backoff.rest_left(1'001), "15 s");  // rounded up
  EXPECT_EQ(backoff.last_error(), "connect: connection refused");
  EXPECT_FALSE(backoff.resting(16'000));
  // Each next failure doubles the rest, up to 5 minutes.
  int64_t now = 16'000;
  for (int64_t expected : {30'000, 60'000, 120'000, 240'000, 300'000, 300'000}) {
    backoff.record(unreachable, now);
    EXPECT_TRUE(backoff.resting(now + expected - 1)) << expected;
    EXPECT_FALSE(backoff.resting(now + expected)) << expected;
    now += expected;
  }
  // A capacity answer is an answer: the rest ends, and the next failure starts again at 15 s.
  backoff.record(Status(StatusCode::kUnavailable, "InsufficientInstanceCapacity"), now);
  EXPECT_FALSE(backoff.resting(now));
  backoff.record(unreachable, now);
  EXPECT_EQ(backoff.rest_left(now), "15 s");
  backoff.record(Status::ok(), now + 1);
  EXPECT_FALSE(backoff.resting(now + 1));
  EXPECT_EQ(backoff.last_error(), "");
}

}  // namespace
}  // namespace lepton::server
