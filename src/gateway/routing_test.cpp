#include "gateway/routing.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

namespace lepton::gateway {
namespace {

// Replicas with no probe, token or holding, as a routes file gives them.
RouteSpec plain(const std::string& name, std::vector<std::string> replicas) {
  RouteSpec spec;
  spec[name].replicas = std::move(replicas);
  return spec;
}

TEST(RoutesJson, ParsesNamesAndAddresses) {
  auto spec = parse_routes_json(R"({"chat": ["127.0.0.1:9001", "127.0.0.1:9002"], "empty": []})");
  ASSERT_TRUE(spec.is_ok()) << spec.status().message();
  EXPECT_EQ(spec->at("chat").replicas.size(), 2u);
  EXPECT_TRUE(spec->at("empty").replicas.empty());
  EXPECT_TRUE(spec->at("chat").probe_path.empty());
}

TEST(RoutesJson, ErrorsNameTheField) {
  auto expect_error = [](const char* text, const std::string& needle) {
    auto spec = parse_routes_json(text);
    ASSERT_FALSE(spec.is_ok()) << text;
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(needle), std::string::npos) << spec.status().message();
  };
  expect_error("{", "not valid JSON");
  expect_error("[]", "expected an object");
  expect_error(R"({"chat": "127.0.0.1:9001"})", "routes.chat: expected an array");
  expect_error(R"({"chat": ["127.0.0.1:9001", 7]})", "routes.chat[1]: expected");
  expect_error(R"({"chat": ["127.0.0.1"]})", "routes.chat[0]: expected host:port");
  expect_error(R"({"chat": ["127.0.0.1:0"]})", "routes.chat[0]: bad port");
  expect_error(R"({"chat": ["127.0.0.1:70000"]})", "bad port");
  expect_error(R"({"a/b": []})", "routes.a/b:");
  expect_error(R"({"a.b": []})", "routes.a.b:");
}

TEST(SplitAddress, AcceptsIpv6InBrackets) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(split_address("[::1]:8080", host, port).is_ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
  EXPECT_FALSE(split_address("[::1:8080", host, port).is_ok());
}

TEST(Router, UpdateKeepsCountersOfReplicasThatStay) {
  Router router;
  ASSERT_TRUE(router.update(plain("chat", {"127.0.0.1:9001", "127.0.0.1:9002"})).is_ok());
  auto first = router.snapshot();
  const Deployment* d = first->find("chat");
  ASSERT_NE(d, nullptr);
  d->replicas[0]->in_flight = 3;
  d->stats->completion_tokens = 42;
  uint64_t version = router.version();

  ASSERT_TRUE(router.update(plain("chat", {"127.0.0.1:9001", "127.0.0.1:9003"})).is_ok());
  EXPECT_GT(router.version(), version);
  auto second = router.snapshot();
  const Deployment* d2 = second->find("chat");
  ASSERT_NE(d2, nullptr);
  ASSERT_EQ(d2->replicas.size(), 2u);
  EXPECT_EQ(d2->replicas[0]->in_flight, 3);
  EXPECT_EQ(d2->replicas[1]->in_flight, 0);
  EXPECT_EQ(d2->stats->completion_tokens, 42u);
  // The old snapshot stays valid for whoever still holds it.
  EXPECT_EQ(first->find("chat")->replicas[1]->address, "127.0.0.1:9002");
}

TEST(Router, NewReplicasOfAProbedDeploymentWaitForTheirProbe) {
  Router router;
  RouteSpec spec = plain("chat", {"127.0.0.1:9001"});
  spec["chat"].probe_path = "/healthz";
  ASSERT_TRUE(router.update(spec).is_ok());
  auto table = router.snapshot();
  const Deployment* d = table->find("chat");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->probe_path, "/healthz");
  std::minstd_rand rng(1);
  EXPECT_EQ(choose_replica(d->replicas, {}, 0, rng), nullptr) << "not probed yet";
  d->replicas[0]->ready = true;  // what the prober does on a 2xx
  EXPECT_EQ(choose_replica(d->replicas, {}, 0, rng), d->replicas[0].get());

  // A second replica joins: it starts not ready, the first stays ready.
  spec["chat"].replicas.push_back("127.0.0.1:9002");
  ASSERT_TRUE(router.update(spec).is_ok());
  auto table2 = router.snapshot();
  const Deployment* d2 = table2->find("chat");
  EXPECT_TRUE(d2->replicas[0]->ready);
  EXPECT_FALSE(d2->replicas[1]->ready);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(choose_replica(d2->replicas, {}, 0, rng), d2->replicas[0].get());
  }
}

TEST(Router, AReplicaCanBeProbedOnItsOwnPath) {
  Router router;
  RouteSpec spec = plain("chat", {"127.0.0.1:9001", "127.0.0.1:9002"});
  spec["chat"].probe_path = "/ready";
  spec["chat"].probe_paths["127.0.0.1:9001"] = "/healthz";  // an older generation's path
  ASSERT_TRUE(router.update(spec).is_ok());
  auto table = router.snapshot();
  const Deployment* d = table->find("chat");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->replicas[0]->probe_path, "/healthz");
  EXPECT_EQ(d->replicas[1]->probe_path, "");  // the deployment's
  EXPECT_FALSE(d->replicas[0]->ready);
}

TEST(DeploymentStats, LatencyBucketsGrowByACubeRootOfTwo) {
  EXPECT_EQ(latency_bucket_us(0), 100);
  EXPECT_EQ(latency_bucket_us(3), 200);
  EXPECT_EQ(latency_bucket_us(30), 102400);
  EXPECT_EQ(latency_bucket_us(1), 125);  // 100 * 2^(1/3), truncated
  DeploymentStats stats;
  stats.record_latency(0);
  stats.record_latency(100);
  stats.record_latency(101);
  stats.record_latency(int64_t{1} << 50);
  EXPECT_EQ(stats.latency[0], 2u);
  EXPECT_EQ(stats.latency[1], 1u);
  EXPECT_EQ(stats.latency[DeploymentStats::kLatencyBuckets - 1], 1u);
}

TEST(Router, DuplicateAddressesCollapse) {
  Router router;
  ASSERT_TRUE(router.update(plain("chat", {"127.0.0.1:9001", "127.0.0.1:9001"})).is_ok());
  EXPECT_EQ(router.snapshot()->find("chat")->replicas.size(), 1u);
}

TEST(Router, BadUpdateKeepsTheOldTable) {
  Router router;
  ASSERT_TRUE(router.update(plain("chat", {"127.0.0.1:9001"})).is_ok());
  EXPECT_FALSE(router.update(plain("chat", {"no-port"})).is_ok());
  EXPECT_NE(router.snapshot()->find("chat"), nullptr);
  EXPECT_FALSE(router.update(plain("chat", {"no-such-host.invalid:80"})).is_ok());
}

TEST(Router, SwapsWhileReadersRead) {
  Router router;
  ASSERT_TRUE(router.update(plain("a", {"127.0.0.1:1"})).is_ok());
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) {
      auto table = router.snapshot();
      for (const auto& [name, d] : table->deployments) {
        for (const auto& r : d.replicas) ASSERT_FALSE(r->address.empty());
      }
    }
  });
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(router.update(plain("a", {"127.0.0.1:" + std::to_string(1 + i % 7)})).is_ok());
  }
  stop = true;
  reader.join();
}

std::vector<std::shared_ptr<Replica>> replicas(int n) {
  std::vector<std::shared_ptr<Replica>> out;
  for (int i = 0; i < n; ++i) {
    auto r = std::make_shared<Replica>();
    r->address = "r" + std::to_string(i);
    out.push_back(r);
  }
  return out;
}

TEST(ChooseReplica, PrefersFewerInFlight) {
  auto rs = replicas(2);
  rs[0]->in_flight = 5;
  std::minstd_rand rng(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(choose_replica(rs, {}, 0, rng), rs[1].get());
}

TEST(ChooseReplica, NeverPicksTheMostLoadedOfMany) {
  auto rs = replicas(5);
  for (int i = 0; i < 5; ++i) rs[i]->in_flight = i;
  std::minstd_rand rng(7);
  std::map<Replica*, int> picks;
  for (int i = 0; i < 2000; ++i) ++picks[choose_replica(rs, {}, 0, rng)];
  EXPECT_EQ(picks.count(rs[4].get()), 0u);  // it loses every pair it is drawn in
  EXPECT_GT(picks[rs[0].get()], picks[rs[3].get()]);
}

TEST(ChooseReplica, SpreadsEvenLoad) {
  auto rs = replicas(4);
  std::minstd_rand rng(3);
  std::map<Replica*, int> picks;
  for (int i = 0; i < 4000; ++i) ++picks[choose_replica(rs, {}, 0, rng)];
  for (const auto& r : rs) EXPECT_NEAR(picks[r.get()], 1000, 150);
}

TEST(ChooseReplica, SkipsTriedAndDownReplicas) {
  auto rs = replicas(3);
  std::minstd_rand rng(5);
  rs[0]->down_until_ns = 100;
  std::vector<Replica*> tried{rs[1].get()};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(choose_replica(rs, tried, 50, rng), rs[2].get());
  // Down marks expire.
  tried = {rs[1].get(), rs[2].get()};
  EXPECT_EQ(choose_replica(rs, tried, 100, rng), rs[0].get());
}

TEST(ChooseReplica, FallsBackToDownReplicasAndEndsWhenAllTried) {
  auto rs = replicas(2);
  std::minstd_rand rng(5);
  rs[0]->down_until_ns = 1000;
  rs[1]->down_until_ns = 1000;
  EXPECT_NE(choose_replica(rs, {}, 0, rng), nullptr);
  std::vector<Replica*> tried{rs[0].get(), rs[1].get()};
  EXPECT_EQ(choose_replica(rs, tried, 0, rng), nullptr);
  EXPECT_EQ(choose_replica({}, {}, 0, rng), nullptr);
}

TEST(Metrics, PrometheusTextNamesDeployments) {
  Router router;
  ASSERT_TRUE(router.update(plain("chat", {"127.0.0.1:9001"})).is_ok());
  auto table = router.snapshot();
  table->find("chat")->stats->prompt_tokens = 12;
  GatewayStats stats;
  stats.unrouted = 2;
  std::string text = prometheus_text(*table, stats);
  EXPECT_NE(text.find("lepton_gateway_prompt_tokens_total{deployment=\"chat\"} 12\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lepton_gateway_unrouted_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE lepton_gateway_in_flight gauge"), std::string::npos);
}

}  // namespace
}  // namespace lepton::gateway
