#include "server/provisioning.h"

#include <gtest/gtest.h>

namespace lepton::server {
namespace {

cloud::Offer offer(std::string cloud, std::string type, std::string model, double gpus,
                   double price, std::optional<double> spot, std::string region = "us-east-1") {
  return {.cloud = std::move(cloud),
          .instance_type = std::move(type),
          .gpu_model = std::move(model),
          .gpu_count = gpus,
          .vcpus = 8 * gpus,
          .memory_gib = 64 * gpus,
          .price_per_hour = price,
          .spot_price_per_hour = spot,
          .region = std::move(region),
          .zone = ""};
}

JobSpec job(int gpus, std::vector<std::string> models = {}) {
  JobSpec s;
  s.name = "train";
  s.run = "true";
  s.resources.cpu_milli = 1000;
  s.resources.memory_mib = 1024;
  s.resources.gpu_count = gpus;
  s.resources.gpu_milli = 1000;
  s.gpu_models = std::move(models);
  return s;
}

const std::vector<cloud::Offer> kOffers = {
    offer("aws", "p4d.24xlarge", "A100", 8, 32.77, 12.0),
    offer("gcp", "a2-highgpu-1g", "A100", 1, 3.67, 1.10, "us-central1"),
    offer("lambda", "gpu_1x_a100", "A100", 1, 1.29, std::nullopt, "us-west-1"),
    offer("aws", "g5.xlarge", "A10G", 1, 1.01, 0.45),
    offer("gcp", "a2-highgpu-8g", "A100", 8, 29.39, std::nullopt, "us-central1"),
};

TEST(Provisioning, ABiggerMachineFirstWhenTheOtherWaitingJobsFillIt) {
  const std::vector<cloud::Offer> offers = {offer("aws", "one", "A10G", 1, 1.0, 0.4),
                                            offer("aws", "four", "A10G", 4, 2.0, 1.2)};
  FailureMemory memory(60'000);
  const JobSpec one = job(1);
  auto names = [](const std::vector<cloud::Offer>& c) {
    std::vector<std::string> n;
    for (const cloud::Offer& o : c) n.push_back(o.instance_type);
    return n;
  };
  auto ordered = [&](const JobSpec& spec, const std::vector<const JobSpec*>& others) {
    std::vector<cloud::Offer> c = candidate_offers(offers, spec, memory, 0);
    order_by_fill(c, 0, c.size(), spec.use_spot, spec, others);
    return names(c);
  };
  // Alone: the price order ($1 before $2).
  EXPECT_EQ(ordered(one, {}), (std::vector<std::string>{"one", "four"}));
  // With one more waiting: $2 for two GPUs used is $1 each, a tie; the cheaper machine stays first.
  EXPECT_EQ(ordered(one, {&one}), (std::vector<std::string>{"one", "four"}));
  // With three more: $0.50 per GPU used.
  EXPECT_EQ(ordered(one, {&one, &one, &one}), (std::vector<std::string>{"four", "one"}));
  // Jobs that would not fit the bigger machine do not count: another region, or on-demand jobs
  // for a spot machine.
  JobSpec elsewhere = job(1);
  elsewhere.regions = {"eu-west-1"};
  EXPECT_EQ(ordered(one, {&elsewhere, &elsewhere, &elsewhere}),
            (std::vector<std::string>{"one", "four"}));
  JobSpec spot = job(1);
  spot.use_spot = true;
  EXPECT_EQ(ordered(spot, {&one, &one, &one}), (std::vector<std::string>{"one", "four"}));
  EXPECT_EQ(ordered(spot, {&spot, &spot, &spot}), (std::vector<std::string>{"four", "one"}));
  // A spot job may use an on-demand machine's room.
  EXPECT_EQ(ordered(one, {&spot, &spot, &spot}), (std::vector<std::string>{"four", "one"}));
}

TEST(Provisioning, CheapestFittingOfferFirst) {
  FailureMemory memory(60'000);
  auto c = candidate_offers(kOffers, job(1, {"A100"}), memory, 0);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].instance_type, "gpu_1x_a100");
  EXPECT_EQ(c[1].instance_type, "a2-highgpu-1g");
  // 8 GPUs: only the 8-GPU machines, GCP's cheaper.
  c = candidate_offers(kOffers, job(8, {"A100"}), memory, 0);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].cloud, "gcp");
  // Any model: the A10G machine is cheapest.
  EXPECT_EQ(candidate_offers(kOffers, job(1), memory, 0)[0].instance_type, "g5.xlarge");
}

TEST(Provisioning, SpotCloudsAndRegionsAreHonoured) {
  FailureMemory memory(60'000);
  JobSpec s = job(1, {"A100"});
  s.use_spot = true;
  auto c = candidate_offers(kOffers, s, memory, 0);
  ASSERT_EQ(c.size(), 2u);  // Lambda has no spot
  EXPECT_EQ(c[0].cloud, "gcp");
  EXPECT_DOUBLE_EQ(offer_price(c[0], true), 1.10);
  s.clouds = {"aws"};
  c = candidate_offers(kOffers, s, memory, 0);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].instance_type, "p4d.24xlarge");
  s.clouds.clear();
  s.regions = {"us-central1"};
  EXPECT_EQ(candidate_offers(kOffers, s, memory, 0).size(), 1u);
  // CPU and memory are minimums a machine must meet.
  JobSpec big = job(1, {"A100"});
  big.resources.memory_mib = 200 * 1024;
  EXPECT_EQ(candidate_offers(kOffers, big, memory, 0).size(), 2u);
  // A job without GPUs gets no offer: the catalog sells GPU machines.
  EXPECT_TRUE(candidate_offers(kOffers, job(0), memory, 0).empty());
}

TEST(Provisioning, FailedPoolsAreSkippedUntilTheirTimeIsUp) {
  FailureMemory memory(60'000);
  memory.failed(cloud::offer_pool(kOffers[2], false), 1000);
  auto c = candidate_offers(kOffers, job(1, {"A100"}), memory, 2000);
  EXPECT_EQ(c[0].instance_type, "a2-highgpu-1g");
  EXPECT_EQ(memory.active(2000).size(), 1u);
  c = candidate_offers(kOffers, job(1, {"A100"}), memory, 61'000);
  EXPECT_EQ(c[0].instance_type, "gpu_1x_a100");
  EXPECT_TRUE(memory.active(61'000).empty());
  // Spot and on-demand are different pools.
  EXPECT_NE(cloud::offer_pool(kOffers[0], true), cloud::offer_pool(kOffers[0], false));
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

TEST(Provisioning, AJobTakesTheMachineRentedForItFirst) {
  std::vector<Room> rooms = {{"i-1", "j-1", kOffers[3], false, 1, 8000, 64 * 1024},
                             {"i-2", "j-2", kOffers[3], false, 1, 8000, 64 * 1024}};
  EXPECT_TRUE(take_room(rooms, job(1), "j-2"));
  EXPECT_DOUBLE_EQ(rooms[0].gpus, 1);
  EXPECT_DOUBLE_EQ(rooms[1].gpus, 0);
}

TEST(Provisioning, RoomOnLaunchingMachinesIsUsedFirst) {
  std::vector<Room> rooms = {{"i-1", "", kOffers[0], false, 8, 64'000, 512 * 1024}};
  EXPECT_TRUE(take_room(rooms, job(4, {"A100"}), "j-1"));
  EXPECT_TRUE(take_room(rooms, job(4, {"A100"}), "j-1"));
  EXPECT_FALSE(take_room(rooms, job(1, {"A100"}), "j-1"));  // full
  // A gang needs one machine per task, all or nothing.
  rooms = {{"i-2", "", kOffers[1], false, 1, 8000, 64 * 1024}};
  JobSpec gang = job(1, {"A100"});
  gang.num_nodes = 2;
  EXPECT_FALSE(take_room(rooms, gang, "j-1"));
  EXPECT_DOUBLE_EQ(rooms[0].gpus, 1);
  // On-demand work does not land on a spot machine; spot work may use on-demand room.
  rooms = {{"i-3", "", kOffers[3], true, 1, 8000, 64 * 1024}};
  EXPECT_FALSE(take_room(rooms, job(1), "j-1"));
  JobSpec spot = job(1);
  spot.use_spot = true;
  rooms[0].spot = false;
  EXPECT_TRUE(take_room(rooms, spot, "j-1"));
}

}  // namespace
}  // namespace lepton::server
