#include "spec/queue_json.h"

#include <gtest/gtest.h>

#include <random>

#include "core/testing/mutate.h"

namespace lepton::spec {
namespace {

using nlohmann::json;

std::string error(std::string_view body) {
  auto r = queue_spec_from_json(body);
  if (r.is_ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

QueueSpec parse(std::string_view body) {
  auto r = queue_spec_from_json(body);
  EXPECT_TRUE(r.is_ok()) << body << ": " << r.status().message();
  return r.is_ok() ? *r : QueueSpec{};
}

QueueSpec named(std::string name) {
  QueueSpec q;
  q.name = std::move(name);
  return q;
}

QueueSpec team_a() {
  QueueSpec q;
  q.name = "team-a";
  q.parent = "research";
  q.guaranteed = {4000, 16000, 65536};
  q.weight = 2;
  q.limit = Quota{8000, kUnlimited, kUnlimited};
  return q;
}

std::string error_updating(const QueueSpec& current, std::string_view body) {
  auto r = update_queue_spec(current, body);
  if (r.is_ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

QueueSpec updated(const QueueSpec& current, std::string_view body) {
  auto r = update_queue_spec(current, body);
  EXPECT_TRUE(r.is_ok()) << body << ": " << r.status().message();
  return r.is_ok() ? *r : QueueSpec{};
}

TEST(SpecQueueJson, ReadsTheApiForm) {
  QueueSpec q =
      parse(R"({"name":"team-a","parent":"","guaranteed":{"gpus":4,"cpus":16,"memory_mib":65536},)"
            R"("weight":1,"limit":{"gpus":8}})");
  EXPECT_EQ(q.name, "team-a");
  EXPECT_EQ(q.parent, "");
  EXPECT_EQ(q.guaranteed, (Quota{4000, 16000, 65536}));
  EXPECT_EQ(q.weight, 1.0);
  ASSERT_TRUE(q.limit.has_value());
  EXPECT_EQ(*q.limit, (Quota{8000, kUnlimited, kUnlimited}));
}

TEST(SpecQueueJson, DefaultsForAbsentAndNullFields) {
  QueueSpec q = parse(R"({"name":"a"})");
  EXPECT_EQ(q, (named("a")));
  EXPECT_EQ(q.weight, 1.0);
  EXPECT_TRUE(q.guaranteed.is_zero());
  EXPECT_FALSE(q.limit.has_value());

  EXPECT_EQ(parse(R"({"name":"a","parent":null,"guaranteed":null,"weight":null,"limit":null})"),
            (named("a")));
  // In `guaranteed` an absent (or null) dimension is 0; in `limit` it is uncapped.
  q = parse(R"({"name":"a","guaranteed":{"cpus":2,"gpus":null},"limit":{"cpus":4,"gpus":null}})");
  EXPECT_EQ(q.guaranteed, (Quota{0, 2000, 0}));
  EXPECT_EQ(*q.limit, (Quota{kUnlimited, 4000, kUnlimited}));
  // A limit that caps nothing is no limit.
  EXPECT_FALSE(parse(R"({"name":"a","limit":{}})").limit.has_value());
  EXPECT_FALSE(parse(R"({"name":"a","limit":{"gpus":null}})").limit.has_value());
  // An explicit zero is a cap.
  EXPECT_EQ(*parse(R"({"name":"a","limit":{"memory_mib":0}})").limit,
            (Quota{kUnlimited, kUnlimited, 0}));
}

TEST(SpecQueueJson, FractionalAmountsInMilliUnits) {
  QueueSpec q =
      parse(R"({"name":"a","guaranteed":{"gpus":0.5,"cpus":0.25},"limit":{"gpus":2.125}})");
  EXPECT_EQ(q.guaranteed.gpu_milli, 500);
  EXPECT_EQ(q.guaranteed.cpu_milli, 250);
  EXPECT_EQ(q.limit->gpu_milli, 2125);
  EXPECT_EQ(parse(R"({"name":"a","guaranteed":{"gpus":0.001}})").guaranteed.gpu_milli, 1);
  EXPECT_EQ(parse(R"({"name":"a","guaranteed":{"gpus":1e-3}})").guaranteed.gpu_milli, 1);
  EXPECT_EQ(parse(R"({"name":"a","guaranteed":{"gpus":4.0}})").guaranteed.gpu_milli, 4000);
  EXPECT_EQ(parse(R"({"name":"a","guaranteed":{"gpus":-0.0}})").guaranteed.gpu_milli, 0);
  EXPECT_EQ(parse(R"({"name":"a","guaranteed":{"gpus":999999.999}})").guaranteed.gpu_milli,
            999'999'999);
  EXPECT_EQ(parse(R"({"name":"a","guaranteed":{"cpus":1000000}})").guaranteed.cpu_milli,
            1'000'000'000);
  EXPECT_EQ(
      parse(R"({"name":"a","guaranteed":{"memory_mib":1099511627776}})").guaranteed.memory_mib,
      int64_t{1} << 40);
  EXPECT_EQ(parse(R"({"name":"a","weight":0.25})").weight, 0.25);
  EXPECT_EQ(parse(R"({"name":"a","weight":1000000})").weight, 1e6);
}

TEST(SpecQueueJson, WritesTheCanonicalForm) {
  // nlohmann::json orders keys by name.
  EXPECT_EQ(queue_spec_to_json(team_a()).dump(),
            R"({"budget_usd":null,"guaranteed":{"cpus":16,"gpus":4,"memory_mib":65536},)"
            R"("limit":{"gpus":8},"name":"team-a","parent":"research","weight":2})");
  EXPECT_EQ(queue_spec_to_json(named("a")).dump(),
            R"({"budget_usd":null,"guaranteed":{"cpus":0,"gpus":0,"memory_mib":0},"limit":null,)"
            R"("name":"a","parent":"","weight":1})");
  EXPECT_EQ(quota_to_json(Quota{2500, 8000, 32768}).dump(),
            R"({"cpus":8,"gpus":2.5,"memory_mib":32768})");
  EXPECT_EQ(quota_to_json(Quota{1, 1500, 0}).dump(), R"({"cpus":1.5,"gpus":0.001,"memory_mib":0})");
  EXPECT_EQ(quota_to_json(Quota{kUnlimited, kUnlimited, kUnlimited}).dump(), "{}");
  EXPECT_EQ(quota_to_json(Quota{kUnlimited + 5, 3000, kUnlimited}).dump(), R"({"cpus":3})");
  QueueSpec q = team_a();
  q.weight = 0.5;
  EXPECT_EQ(queue_spec_to_json(q)["weight"].dump(), "0.5");
  q.limit = Quota{kUnlimited, kUnlimited, kUnlimited};  // caps nothing: written as no limit
  EXPECT_TRUE(queue_spec_to_json(q)["limit"].is_null());
}

TEST(SpecQueueJson, RoundTrips) {
  std::vector<QueueSpec> specs = {named("a"), team_a()};
  QueueSpec fractions;
  fractions.name = "z-0";
  fractions.guaranteed = {1, 1, 1};
  fractions.weight = 0.001;
  fractions.limit = Quota{999'999'999, 1'000'000'000, int64_t{1} << 40};
  specs.push_back(fractions);
  QueueSpec zero_limit;
  zero_limit.name = std::string(63, 'q');
  zero_limit.weight = 1e6;
  zero_limit.limit = Quota{0, 0, 0};
  specs.push_back(zero_limit);
  QueueSpec odd;
  odd.name = "odd";
  odd.parent = "dept";
  odd.guaranteed = {1234, 5678, 9};
  odd.weight = 3.14159;
  odd.limit = Quota{kUnlimited, 6000, kUnlimited};
  specs.push_back(odd);
  for (const QueueSpec& s : specs) {
    ASSERT_TRUE(validate_queue_spec(s).is_ok()) << s.name;
    const std::string text = queue_spec_to_json(s).dump();
    auto back = queue_spec_from_json(text);
    ASSERT_TRUE(back.is_ok()) << text << ": " << back.status().message();
    EXPECT_EQ(*back, s) << text;
    EXPECT_EQ(queue_spec_to_json(*back).dump(), text);
    // The whole object is also a valid PATCH that changes nothing.
    EXPECT_EQ(updated(s, text), s) << text;
  }
}

TEST(SpecQueueJson, RandomSpecsRoundTrip) {
  std::mt19937_64 rng(7);
  auto amount = [&](int64_t max) {
    switch (rng() % 4) {
      case 0:
        return int64_t{0};
      case 1:
        return max;
      default:
        return static_cast<int64_t>(rng() % static_cast<uint64_t>(max + 1));
    }
  };
  for (int i = 0; i < 2000; ++i) {
    QueueSpec s;
    s.name = "q" + std::to_string(i);
    if (rng() % 2) s.parent = "p" + std::to_string(rng() % 10);
    s.guaranteed = {amount(1'000'000'000), amount(1'000'000'000), amount(int64_t{1} << 40)};
    s.weight = rng() % 2 ? static_cast<double>(1 + rng() % 1000)
                         : static_cast<double>(1 + rng() % 1'000'000) / 1000;
    if (rng() % 2) {
      Quota limit = s.guaranteed;
      if (rng() % 2) limit.gpu_milli = rng() % 2 ? kUnlimited : 1'000'000'000;
      if (rng() % 2) limit.cpu_milli = kUnlimited;
      if (rng() % 2) limit.memory_mib = kUnlimited;
      if (!(limit == Quota{kUnlimited, kUnlimited, kUnlimited})) s.limit = limit;
    }
    ASSERT_TRUE(validate_queue_spec(s).is_ok()) << queue_spec_to_json(s).dump();
    const std::string text = queue_spec_to_json(s).dump();
    auto back = queue_spec_from_json(text);
    ASSERT_TRUE(back.is_ok()) << text << ": " << back.status().message();
    EXPECT_EQ(*back, s) << text;
  }
}

TEST(SpecQueueJson, Budgets) {
  auto q = queue_spec_from_json(R"({"name":"a","budget_usd":250.5})");
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  EXPECT_EQ(q->budget_usd, 250.5);
  EXPECT_EQ(queue_spec_to_json(*q)["budget_usd"].dump(), "250.5");
  auto cleared = update_queue_spec(*q, R"({"budget_usd":null})");
  ASSERT_TRUE(cleared.is_ok());
  EXPECT_FALSE(cleared->budget_usd.has_value());
  EXPECT_EQ(error(R"({"name":"a","budget_usd":-1})"),
            "budget_usd: expected dollars from 0 to 1e12, or null for no budget, got -1");
  EXPECT_EQ(error(R"({"name":"a","budget_usd":"10"})"),
            R"(budget_usd: expected dollars from 0 to 1e12, or null for no budget, got "10")");
}

TEST(SpecQueueJson, ErrorsNameTheField) {
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":"x"}})"),
            R"(guaranteed.gpus: expected a number >= 0, got "x")");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":-1}})"),
            "guaranteed.gpus: expected a number >= 0, got -1");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"cpus":-0.5}})"),
            "guaranteed.cpus: expected a number >= 0, got -0.5");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":true}})"),
            "guaranteed.gpus: expected a number >= 0, got true");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":[1]}})"),
            "guaranteed.gpus: expected a number >= 0, got an array");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":0.0005}})"),
            "guaranteed.gpus: expected a multiple of 0.001, got 0.0005");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":1000001}})"),
            "guaranteed.gpus: expected at most 1000000, got 1000001");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":1e300}})"),
            "guaranteed.gpus: expected at most 1000000, got 1e+300");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":18446744073709551615}})"),
            "guaranteed.gpus: expected at most 1000000, got 18446744073709551615");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":-9223372036854775808}})"),
            "guaranteed.gpus: expected a number >= 0, got -9223372036854775808");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"memory_mib":1.5}})"),
            "guaranteed.memory_mib: expected an integer >= 0, got 1.5");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"memory_mib":-1}})"),
            "guaranteed.memory_mib: expected an integer >= 0, got -1");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"memory_mib":"1"}})"),
            R"(guaranteed.memory_mib: expected an integer >= 0, got "1")");
  EXPECT_EQ(error(R"({"name":"a","limit":{"memory_mib":1099511627777}})"),
            "limit.memory_mib: expected at most 1099511627776, got 1099511627777");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpu":1}})"),
            "guaranteed.gpu: unknown field, expected one of gpus, cpus, memory_mib");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":4})"),
            "guaranteed: expected an object of gpus, cpus, memory_mib, got 4");
  EXPECT_EQ(error(R"({"name":"a","limit":"none"})"),
            R"(limit: expected an object of gpus, cpus, memory_mib, got "none")");
  EXPECT_EQ(
      error(R"({"name":"a","quota":{}})"),
      "quota: unknown field, expected one of name, parent, guaranteed, weight, limit, budget_usd");
  EXPECT_EQ(error(R"({"name":"a","weight":0})"),
            "weight: expected a number > 0 and <= 1000000, got 0");
  EXPECT_EQ(error(R"({"name":"a","weight":-2})"),
            "weight: expected a number > 0 and <= 1000000, got -2");
  EXPECT_EQ(error(R"({"name":"a","weight":1000001})"),
            "weight: expected a number > 0 and <= 1000000, got 1000001");
  EXPECT_EQ(error(R"({"name":"a","weight":"2"})"),
            R"(weight: expected a number > 0 and <= 1000000, got "2")");
  EXPECT_EQ(error(R"({"name":5})"), "name: expected a string, got 5");
  EXPECT_EQ(error(R"({"parent":"a"})"),
            "name: expected a queue name (the field is required), got nothing");
  EXPECT_EQ(error(R"({"name":null})"),
            "name: expected a queue name (the field is required), got nothing");
  EXPECT_EQ(error(R"({"name":"a","parent":{}})"),
            R"(parent: expected a queue name, or "" for none, got an object)");
}

TEST(SpecQueueJson, ValidationErrors) {
  EXPECT_EQ(error(R"({"name":"Team A"})"),
            "name: expected 1 to 63 characters of a-z, 0-9 and '-', starting with a letter");
  EXPECT_EQ(error(R"({"name":""})"),
            "name: expected 1 to 63 characters of a-z, 0-9 and '-', starting with a letter");
  EXPECT_EQ(error(R"({"name":"a","parent":"A"})"),
            "parent: expected 1 to 63 characters of a-z, 0-9 and '-', starting with a letter");
  EXPECT_EQ(error(R"({"name":"a","parent":"a"})"), "parent: a queue cannot be its own parent");
  EXPECT_EQ(error(R"({"name":"a","guaranteed":{"gpus":4},"limit":{"gpus":2}})"),
            "limit: must hold the guarantee (gpu=4 cpu=0 mem=0Mi)");
}

TEST(SpecQueueJson, DocumentErrors) {
  EXPECT_EQ(error(""), "expected a queue (a JSON object), got an empty document");
  EXPECT_EQ(error(" \n"), "expected a queue (a JSON object), got an empty document");
  EXPECT_EQ(error("[]"), "expected a queue (a JSON object), got array");
  EXPECT_EQ(error("\"a\""), "expected a queue (a JSON object), got string");
  EXPECT_EQ(error("team-a").rfind("expected JSON, got parse error", 0), 0u) << error("team-a");
  EXPECT_EQ(error(R"({"name":"a")").rfind("expected JSON, got parse error", 0), 0u);
  EXPECT_EQ(error(R"({"name":"a"} {})").rfind("expected JSON, got parse error", 0), 0u);
  EXPECT_EQ(error("{\"name\":\"\xff\"}").rfind("expected JSON, got parse error", 0), 0u);
  EXPECT_EQ(error(R"({"name":"a","name":"b"})"), "name: expected each field once, got it twice");
  EXPECT_EQ(error(R"({"name":"a","limit":{"gpus":1,"gpus":2}})"),
            "limit.gpus: expected each field once, got it twice");
  std::string big = R"({"name":"a","parent":")" + std::string(1 << 20, 'p') + "\"}";
  EXPECT_EQ(error(big),
            "expected a document of at most 1048576 bytes, got " + std::to_string(big.size()));
  // Field names and values in errors are escaped and shortened.
  std::string m = error("{\"a\\u0001" + std::string(100, 'b') + "\":1}");
  EXPECT_EQ(m.rfind("a\\x01bbb", 0), 0u) << m;
  EXPECT_LT(m.size(), 200u);
  m = error(R"({"name":"a","weight":")" + std::string(100, 'w') + "\"}");
  EXPECT_NE(m.find("..."), std::string::npos) << m;
  EXPECT_LT(m.size(), 200u);
}

TEST(SpecQueueJson, UpdateChangesOnlyWhatTheBodyNames) {
  const QueueSpec a = team_a();
  EXPECT_EQ(updated(a, "{}"), a);
  EXPECT_EQ(updated(a, R"({"name":"team-a"})"), a);

  QueueSpec want = a;
  want.weight = 3;
  EXPECT_EQ(updated(a, R"({"weight":3})"), want);
  want = a;
  want.parent = "";
  EXPECT_EQ(updated(a, R"({"parent":""})"), want);
  EXPECT_EQ(updated(a, R"({"parent":null})"), want);
  want = a;
  want.guaranteed.gpu_milli = 6000;  // the other dimensions stay
  EXPECT_EQ(updated(a, R"({"guaranteed":{"gpus":6}})"), want);
  want = a;
  want.guaranteed.cpu_milli = 0;  // null: back to the default
  EXPECT_EQ(updated(a, R"({"guaranteed":{"cpus":null}})"), want);
  want = a;
  want.guaranteed = {};
  EXPECT_EQ(updated(a, R"({"guaranteed":null})"), want);
  want = a;
  want.weight = 1;
  EXPECT_EQ(updated(a, R"({"weight":null})"), want);

  // The limit: dimensions merge into the current limit; null uncaps one or all.
  want = a;
  want.limit = Quota{8000, 32000, kUnlimited};
  EXPECT_EQ(updated(a, R"({"limit":{"cpus":32}})"), want);
  want = a;
  want.limit.reset();
  EXPECT_EQ(updated(a, R"({"limit":null})"), want);
  EXPECT_EQ(updated(a, R"({"limit":{"gpus":null}})"), want);  // uncapping the last cap
  QueueSpec unlimited = a;
  unlimited.limit.reset();
  want = unlimited;
  want.limit = Quota{kUnlimited, kUnlimited, 100000};
  EXPECT_EQ(updated(unlimited, R"({"limit":{"memory_mib":100000}})"), want);

  // Several fields at once.
  want = a;
  want.parent = "dept";
  want.guaranteed = {1000, 16000, 65536};
  want.weight = 0.5;
  want.limit = Quota{2000, kUnlimited, kUnlimited};
  EXPECT_EQ(updated(a, R"({"parent":"dept","guaranteed":{"gpus":1},"weight":0.5,)"
                       R"("limit":{"gpus":2}})"),
            want);
}

TEST(SpecQueueJson, UpdateIsAsStrictAsCreate) {
  const QueueSpec a = team_a();
  EXPECT_EQ(error_updating(a, R"({"name":"team-b"})"),
            R"(name: expected "team-a" (a queue cannot be renamed), got "team-b")");
  EXPECT_EQ(error_updating(a, R"({"name":1})"), "name: expected a string, got 1");
  EXPECT_EQ(error_updating(a, R"({"guaranteed":{"gpus":"x"}})"),
            R"(guaranteed.gpus: expected a number >= 0, got "x")");
  EXPECT_EQ(
      error_updating(a, R"({"colour":"red"})"),
      "colour: unknown field, expected one of name, parent, guaranteed, weight, limit, budget_usd");
  // The result is validated as a whole: a guarantee over the current limit is refused.
  EXPECT_EQ(error_updating(a, R"({"guaranteed":{"gpus":9}})"),
            "limit: must hold the guarantee (gpu=9 cpu=16 mem=65536Mi)");
  EXPECT_EQ(error_updating(a, R"({"limit":{"gpus":1}})"),
            "limit: must hold the guarantee (gpu=4 cpu=16 mem=65536Mi)");
  EXPECT_EQ(error_updating(a, R"({"parent":"team-a"})"),
            "parent: a queue cannot be its own parent");
  EXPECT_EQ(error_updating(a, ""), "expected a queue (a JSON object), got an empty document");
  EXPECT_EQ(error_updating(a, "[]"), "expected a queue (a JSON object), got array");
}

TEST(SpecQueueJson, MutatedInputNeverCrashes) {
  const std::string base = queue_spec_to_json(team_a()).dump();
  const std::string_view alphabet = "0123456789:{}[],-.\"e\\ ntulgpcsmi";
  std::mt19937 rng(3);
  int ok = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string t = lepton::test_util::mutate(base, alphabet, rng, 3);
    auto r = queue_spec_from_json(t);
    if (r.is_ok()) {
      ++ok;
      const std::string text = queue_spec_to_json(*r).dump();
      auto back = queue_spec_from_json(text);
      ASSERT_TRUE(back.is_ok()) << t;
      EXPECT_EQ(*back, *r) << t;
    } else {
      EXPECT_FALSE(r.status().message().empty());
    }
    auto u = update_queue_spec(team_a(), t);
    if (u.is_ok()) {
      EXPECT_TRUE(validate_queue_spec(*u).is_ok()) << t;
    }
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace lepton::spec
