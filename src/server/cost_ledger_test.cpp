#include "server/cost_ledger.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lepton::server {
namespace {

constexpr int64_t kHour = 3'600'000;
constexpr int64_t kT0 = 1'000'000'000;  // when the first machine is rented

// A machine of `gpus` GPUs at `price` $/h, rented at kT0 + launched.
MachineBill machine(std::string cloud, double gpus, double price, int64_t launched = 0) {
  return {.cloud = std::move(cloud),
          .gpus = gpus,
          .price_per_hour = price,
          .launched_ms = kT0 + launched,
          .ended_ms = 0,
          .uses = {}};
}

MachineUse use(std::string job, std::string queue, double gpus, int64_t start) {
  return {.job = std::move(job),
          .queue = std::move(queue),
          .gpus = gpus,
          .start_ms = kT0 + start,
          .end_ms = 0};
}

QueueSpec queue(std::string name, std::string parent, std::optional<double> budget) {
  QueueSpec q;
  q.name = std::move(name);
  q.parent = std::move(parent);
  q.budget_usd = budget;
  return q;
}

const CostRow* row(const CostReport& r, const std::string& key) {
  for (const CostRow& row : r.rows) {
    if (row.key == key) return &row;
  }
  return nullptr;
}

TEST(CostLedger, AMachineIsBilledItsPriceForAsLongAsItIsRented) {
  CostLedger ledger;
  ledger.add_machine("i-1", machine("aws", 2, 4.0));
  EXPECT_DOUBLE_EQ(ledger.machine_cost("i-1", kT0), 0);
  EXPECT_DOUBLE_EQ(ledger.machine_cost("i-1", kT0 + kHour / 2), 2.0);
  ledger.end_machine("i-1", kT0 + kHour);
  // The bill stops at the end, whenever it is asked for.
  EXPECT_DOUBLE_EQ(ledger.machine_cost("i-1", kT0 + 10 * kHour), 4.0);
  EXPECT_EQ(ledger.machine("i-1")->ended_ms, kT0 + kHour);
  // A machine never added (one lepton did not rent) costs nothing.
  EXPECT_EQ(ledger.machine("own"), nullptr);
  EXPECT_DOUBLE_EQ(ledger.machine_cost("own", kT0 + kHour), 0);
}

TEST(CostLedger, WorkIsChargedItsShareOfTheGpusAndTheRestIsIdle) {
  CostLedger ledger;
  ledger.add_machine("i-1", machine("aws", 2, 4.0));  // $2 per GPU-hour
  ledger.add_machine("i-2", machine("gcp", 1, 1.0));
  // j-1 holds one GPU of i-1 for an hour, j-2 half a GPU of it for two hours; i-2 is never used.
  ASSERT_TRUE(ledger.record_use_start({"j-1", 0}, "i-1", use("j-1", "team", 1, 0)));
  ASSERT_TRUE(ledger.record_use_start({"j-2", 0}, "i-1", use("j-2", "default", 0.5, 0)));
  EXPECT_EQ(ledger.record_use_end({"j-1", 0}, kT0 + kHour), "i-1");
  const int64_t now = kT0 + 2 * kHour;

  const CostReport by_job = ledger.report(CostBy::kJob, now);
  EXPECT_EQ(by_job.by, CostBy::kJob);
  ASSERT_EQ(by_job.rows.size(), 2u);
  EXPECT_EQ(by_job.rows[0].key, "j-1");  // by key
  EXPECT_DOUBLE_EQ(by_job.rows[0].cost_usd, 2.0);
  EXPECT_DOUBLE_EQ(by_job.rows[0].gpu_hours, 1.0);
  EXPECT_DOUBLE_EQ(row(by_job, "j-2")->cost_usd, 2.0);  // 0.5 GPU x 2 h x $2
  EXPECT_DOUBLE_EQ(row(by_job, "j-2")->gpu_hours, 1.0);
  // Bills: $8 for i-1, $2 for i-2; $4 of them were charged to work.
  EXPECT_DOUBLE_EQ(by_job.total_usd, 10.0);
  EXPECT_DOUBLE_EQ(by_job.idle_usd, 6.0);

  const CostReport by_queue = ledger.report(CostBy::kQueue, now);
  ASSERT_EQ(by_queue.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(row(by_queue, "team")->cost_usd, 2.0);
  EXPECT_DOUBLE_EQ(row(by_queue, "default")->cost_usd, 2.0);

  // By cloud and by machine, rows are whole bills and the GPU-hours rented.
  const CostReport by_cloud = ledger.report(CostBy::kCloud, now);
  ASSERT_EQ(by_cloud.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(row(by_cloud, "aws")->cost_usd, 8.0);
  EXPECT_DOUBLE_EQ(row(by_cloud, "aws")->gpu_hours, 4.0);
  EXPECT_DOUBLE_EQ(row(by_cloud, "gcp")->cost_usd, 2.0);
  const CostReport by_instance = ledger.report(CostBy::kInstance, now);
  ASSERT_EQ(by_instance.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(row(by_instance, "i-2")->gpu_hours, 2.0);
  EXPECT_DOUBLE_EQ(by_instance.total_usd, by_cloud.total_usd);
  EXPECT_DOUBLE_EQ(by_instance.idle_usd, 6.0);
}

TEST(CostLedger, AUseOpensOnlyOnARentedMachineAndEndsWithIt) {
  CostLedger ledger;
  ledger.add_machine("i-1", machine("aws", 1, 1.0));
  // Not on a machine lepton did not rent.
  EXPECT_FALSE(ledger.record_use_start({"j-1", 0}, "own", use("j-1", "default", 1, 0)));
  EXPECT_EQ(ledger.record_use_end({"j-1", 0}, kT0 + kHour), "");
  // A machine that ends closes the uses still open on it, and the tasks have none open after.
  ASSERT_TRUE(ledger.record_use_start({"j-1", 0}, "i-1", use("j-1", "default", 1, 0)));
  ledger.end_machine("i-1", kT0 + kHour);
  EXPECT_EQ(ledger.machine("i-1")->uses[0].end_ms, kT0 + kHour);
  EXPECT_EQ(ledger.record_use_end({"j-1", 0}, kT0 + 2 * kHour), "");
  EXPECT_EQ(ledger.machine("i-1")->uses[0].end_ms, kT0 + kHour);
  // Nor on one that has ended.
  EXPECT_FALSE(ledger.record_use_start({"j-2", 0}, "i-1", use("j-2", "default", 1, 2 * kHour)));
  EXPECT_EQ(ledger.machine("i-1")->uses.size(), 1u);
  // A use never ends before it started (a clock that went back), so it never costs less than 0.
  ledger.add_machine("i-2", machine("aws", 1, 1.0));
  ASSERT_TRUE(ledger.record_use_start({"j-3", 0}, "i-2", use("j-3", "default", 1, kHour)));
  EXPECT_EQ(ledger.record_use_end({"j-3", 0}, kT0), "i-2");
  EXPECT_EQ(ledger.machine("i-2")->uses[0].end_ms, kT0 + kHour);
  const CostReport r = ledger.report(CostBy::kJob, kT0 + 2 * kHour);
  EXPECT_DOUBLE_EQ(row(r, "j-3")->cost_usd, 0);
}

TEST(CostLedger, AQueueSpendsWhatItsJobsAndThoseBelowItWereCharged) {
  const CostLedger::Queues queues = {{"org", queue("org", "", 10.0)},
                                     {"team", queue("team", "org", std::nullopt)},
                                     {"other", queue("other", "", std::nullopt)},
                                     {"default", queue("default", "", 1.0)}};
  CostLedger ledger;
  ledger.add_machine("i-1", machine("aws", 4, 4.0));  // $1 per GPU-hour
  ASSERT_TRUE(ledger.record_use_start({"a", 0}, "i-1", use("a", "team", 2, 0)));
  ASSERT_TRUE(ledger.record_use_start({"b", 0}, "i-1", use("b", "org", 1, 0)));
  ASSERT_TRUE(ledger.record_use_start({"c", 0}, "i-1", use("c", "other", 1, 0)));
  int64_t now = kT0 + 2 * kHour;
  EXPECT_DOUBLE_EQ(ledger.spend("team", queues, now), 4.0);
  EXPECT_DOUBLE_EQ(ledger.spend("org", queues, now), 6.0);  // its own and team's
  EXPECT_DOUBLE_EQ(ledger.spend("other", queues, now), 2.0);
  EXPECT_DOUBLE_EQ(ledger.spend("default", queues, now), 0);
  // $6 of org's $10: team may still rent; the default queue (no jobs) has spent none of its $1.
  EXPECT_FALSE(ledger.spent_budget("team", queues, now));
  EXPECT_FALSE(ledger.spent_budget("", queues, now));
  // Past $10 the budget is spent, for org and every queue below it; a queue elsewhere is not.
  now = kT0 + 4 * kHour;
  const std::optional<SpentBudget> spent = ledger.spent_budget("team", queues, now);
  ASSERT_TRUE(spent);
  EXPECT_EQ(spent->queue, "org");
  EXPECT_DOUBLE_EQ(spent->spent_usd, 12.0);
  EXPECT_DOUBLE_EQ(spent->budget_usd, 10.0);
  EXPECT_EQ(spent->why(),
            "queue org has spent $12.00 of its $10.00 budget: no machine is rented "
            "for it");
  EXPECT_FALSE(ledger.spent_budget("other", queues, now));
  // A queue that does not exist has no budget.
  EXPECT_FALSE(ledger.spent_budget("gone", queues, now));
  // Charged work that has ended stays spent.
  EXPECT_EQ(ledger.record_use_end({"a", 0}, kT0 + kHour), "i-1");
  EXPECT_DOUBLE_EQ(ledger.spend("team", queues, kT0 + 100 * kHour), 2.0);
}

TEST(CostLedger, UsesReadBackFromTheStoreAreClosedByTheirTasks) {
  CostLedger before;
  before.add_machine("i-1", machine("aws", 2, 2.0));
  ASSERT_TRUE(before.record_use_start({"j-1", 0}, "i-1", use("j-1", "team", 0.5, 0)));
  ASSERT_TRUE(before.record_use_start({"j-2", 1}, "i-1", use("j-2", "team", 1, 0)));
  EXPECT_EQ(before.record_use_end({"j-2", 1}, kT0 + kHour), "i-1");
  // The machine's record, as the store keeps it, read back by a new server.
  const nlohmann::json stored =
      nlohmann::json::parse(uses_json(before.machine("i-1")->uses).dump());
  MachineBill bill = machine("aws", 2, 2.0);
  bill.uses = uses_from_json(stored);
  ASSERT_EQ(bill.uses.size(), 2u);
  EXPECT_EQ(bill.uses[0].job, "j-1");
  EXPECT_EQ(bill.uses[0].queue, "team");
  EXPECT_DOUBLE_EQ(bill.uses[0].gpus, 0.5);
  EXPECT_EQ(bill.uses[1].end_ms, kT0 + kHour);
  CostLedger after;
  after.add_machine("i-1", std::move(bill));
  // Only a task of a job with a use open there gets it back.
  after.reopen_use({"j-2", 1}, "i-1");
  after.reopen_use({"j-1", 0}, "own");
  EXPECT_EQ(after.record_use_end({"j-1", 0}, kT0 + 2 * kHour), "");
  after.reopen_use({"j-1", 0}, "i-1");
  EXPECT_EQ(after.record_use_end({"j-1", 0}, kT0 + 2 * kHour), "i-1");
  EXPECT_EQ(after.machine("i-1")->uses[0].end_ms, kT0 + 2 * kHour);
  EXPECT_EQ(after.machine("i-1")->uses[1].end_ms, kT0 + kHour);  // unchanged
  const int64_t now = kT0 + 3 * kHour;
  EXPECT_DOUBLE_EQ(after.report(CostBy::kQueue, now).rows[0].cost_usd,
                   before.report(CostBy::kQueue, kT0 + 2 * kHour).rows[0].cost_usd);
  // Fields a record lacks read as empty, and a record that is not a list has no uses.
  EXPECT_EQ(uses_from_json(nlohmann::json::parse(R"([{"job":"j"}, 7])")).size(), 1u);
  EXPECT_TRUE(uses_from_json(nlohmann::json::object()).empty());
}

TEST(CostLedger, AReportRendersAsTheApiAnswers) {
  for (const char* name : {"job", "queue", "cloud", "instance"}) {
    const std::optional<CostBy> by = cost_by_named(name);
    ASSERT_TRUE(by) << name;
    EXPECT_EQ(cost_by_name(*by), name);
  }
  EXPECT_FALSE(cost_by_named("team"));
  EXPECT_FALSE(cost_by_named(""));
  CostLedger ledger;
  ledger.add_machine("i-1", machine("aws", 1, 3.0));
  ASSERT_TRUE(ledger.record_use_start({"j-1", 0}, "i-1", use("j-1", "default", 1, 0)));
  const nlohmann::json j = cost_report_json(ledger.report(CostBy::kJob, kT0 + kHour));
  EXPECT_EQ(j, nlohmann::json::parse(R"({"by": "job", "total_usd": 3.0, "idle_usd": 0.0,
      "rows": [{"key": "j-1", "cost_usd": 3.0, "gpu_hours": 1.0}]})"));
  EXPECT_EQ(cost_report_json(CostLedger().report(CostBy::kCloud, kT0)),
            nlohmann::json::parse(R"({"by": "cloud", "total_usd": 0.0, "idle_usd": 0.0,
                                      "rows": []})"));
  EXPECT_EQ(usd(500.123), "$500.12");
}

}  // namespace
}  // namespace lepton::server
