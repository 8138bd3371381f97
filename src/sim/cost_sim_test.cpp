#include "sim/cost_sim.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sim/cost_bound.h"
#include "sim/cost_testing.h"

namespace lepton::sim {
namespace {

using namespace cost_testing;  // NOLINT(google-build-using-namespace)

TEST(CostSim, HandComputedSingleJob) {
  // One 1-GPU job of an hour on a $1/h instance: boot 120 s + 3600 s run + 300 s idle, billed.
  std::vector<CostPool> pools = {pool("aws", "g4dn.xlarge", 1.0, 1)};
  CostOptions o = quiet();
  o.boot_s = 120;
  o.idle_timeout_s = 300;
  for (const char* policy : kCostPolicies) {
    auto r = run(policy, {job(0, 3600)}, pools, o);
    EXPECT_NEAR(r.cost_usd, 4020.0 / 3600.0, 1e-9) << policy;
    EXPECT_NEAR(r.lower_bound_usd, 1.0, 1e-9) << policy;
    EXPECT_NEAR(r.gap_pct, (4020.0 / 3600.0 - 1) * 100, 1e-6) << policy;
    EXPECT_NEAR(r.avg_jct_s, 3720, 1e-9) << policy;
    EXPECT_NEAR(r.avg_wait_s, 120, 1e-9) << policy;
    EXPECT_EQ(r.jobs_completed, 1) << policy;
    EXPECT_EQ(r.instances_launched, 1) << policy;
    EXPECT_NEAR(r.cost_per_gpu_hour, 4020.0 / 3600.0, 1e-9) << policy;
    // The gap is the boot and the idle time, nothing else.
    EXPECT_NEAR(r.boot_usd, 120.0 / 3600.0, 1e-9) << policy;
    EXPECT_NEAR(r.idle_usd, 300.0 / 3600.0, 1e-9) << policy;
    EXPECT_NEAR(r.unused_share_usd, 0.0, 1e-9) << policy;
    EXPECT_NEAR(r.premium_usd, 0.0, 1e-9) << policy;
    EXPECT_NEAR(r.redone_usd, 0.0, 1e-9) << policy;
    ASSERT_FALSE(r.curve.empty());
    EXPECT_NEAR(r.curve.back().cost_usd, r.cost_usd, 1e-9) << policy;
  }
}

TEST(CostSim, UnknownPolicyIsAnError) {
  auto r = run_cost_policy("fastest", {}, {}, quiet());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("fastest"), std::string::npos);
}

TEST(CostSim, SingleCloudUsesOnlyOnDemandOfItsCloud) {
  std::vector<CostPool> pools = {pool("gcp", "cheap", 0.1, 5), pool("aws", "spot", 0.05, 5, true),
                                 pool("aws", "od", 1.0, 5)};
  CostOptions o = instant();
  auto single = run("single-cloud", {job(0, 3600)}, pools, o);
  EXPECT_NEAR(single.cost_usd, 1.0, 1e-9);
  EXPECT_NEAR(single.on_demand_instance_hours, 1.0, 1e-9);
  auto cheapest = run("cheapest-first", {job(0, 3600)}, pools, o);
  EXPECT_NEAR(cheapest.cost_usd, 0.05, 1e-9);
  EXPECT_NEAR(cheapest.spot_instance_hours, 1.0, 1e-9);
}

TEST(CostSim, IdleInstancesAreReusedThenScaledDown) {
  // $3600/h, so dollars equal billed seconds.
  std::vector<CostPool> pools = {pool("aws", "x", 3600, 5)};
  std::vector<CostJob> jobs = {job(0, 100), job(200, 100)};
  CostOptions o = quiet();
  o.boot_s = 0;
  o.idle_timeout_s = 300;  // the first instance is still up at 200: reused, ends at 300 + 300
  for (const char* policy : kCostPolicies) {
    auto r = run(policy, jobs, pools, o);
    EXPECT_EQ(r.instances_launched, 1) << policy;
    EXPECT_NEAR(r.cost_usd, 600, 1e-6) << policy;
  }
  o.idle_timeout_s = 50;  // scaled down at 150; a second instance runs 200..350
  for (const char* policy : kCostPolicies) {
    auto r = run(policy, jobs, pools, o);
    EXPECT_EQ(r.instances_launched, 2) << policy;
    EXPECT_NEAR(r.cost_usd, 300, 1e-6) << policy;
  }
}

TEST(CostSim, FailoverMemorySkipsAFailedOfferButCheapestFirstRepeatsIt) {
  // The cheapest pool has no capacity. Two jobs 100 s apart, both within the failover TTL.
  std::vector<CostPool> pools = {pool("aws", "cheap", 0.1, 0), pool("gcp", "ok", 0.5, 10)};
  std::vector<CostJob> jobs = {job(0, 1000), job(100, 1000)};
  CostOptions o = quiet();
  o.failover_ttl_s = 600;
  auto cheapest = run("cheapest-first", jobs, pools, o);
  auto lepton = run("lepton", jobs, pools, o);
  EXPECT_EQ(cheapest.capacity_errors, 2);
  EXPECT_EQ(lepton.capacity_errors, 1);
  EXPECT_EQ(cheapest.jobs_completed, 2);
  EXPECT_EQ(lepton.jobs_completed, 2);
  // After the TTL lepton tries the pool again.
  o.failover_ttl_s = 50;
  EXPECT_EQ(run("lepton", jobs, pools, o).capacity_errors, 2);
}

TEST(CostSim, CapacityErrorsCostTimeAndWaitingJobsStartLater) {
  std::vector<CostPool> pools = {pool("aws", "only", 1.0, 1)};
  std::vector<CostJob> jobs = {job(0, 1000), job(10, 1000)};
  CostOptions o = instant();
  o.retry_s = 60;
  auto r = run("single-cloud", jobs, pools, o);
  EXPECT_EQ(r.jobs_completed, 2);
  EXPECT_GE(r.capacity_errors, 1);
  // The second job starts when the first ends (its instance is reused at once).
  EXPECT_NEAR(r.avg_wait_s, (0 + 990) / 2.0, 1e-6);
}

TEST(CostSim, SpotInterruptionRequeuesAndLosesOnlyWorkSinceTheCheckpoint) {
  std::vector<CostPool> pools = {pool("aws", "spot", 3600, 1, true)};
  std::vector<CostJob> jobs = {job(0, 10 * 3600)};
  CostOptions o = quiet();
  o.mtbi_hours = 2;
  o.boot_s = 0;
  o.idle_timeout_s = 0;
  o.checkpoint_s = 1800;
  o.notice_s = 120;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    o.seed = seed;
    for (const char* policy : {"cheapest-first", "lepton"}) {
      auto r = run(policy, jobs, pools, o);
      SCOPED_TRACE(std::string(policy) + " seed " + std::to_string(seed));
      EXPECT_EQ(r.jobs_completed, 1);
      EXPECT_EQ(r.instances_launched, r.interruptions + 1);
      double lost_s = r.gpu_hours_lost * 3600;
      // Billed time is exactly the work plus the work redone (dollars equal seconds here).
      EXPECT_NEAR(r.cost_usd, 10 * 3600 + lost_s, 1e-6);
      double per = std::string(policy) == "lepton" ? o.notice_s : o.checkpoint_s;
      EXPECT_LE(lost_s, static_cast<double>(r.interruptions) * per + 1e-6);
      EXPECT_NEAR(r.avg_jct_s, 10 * 3600 + lost_s, 1e-6);
    }
  }
  // Over five seeds at a 2 h MTBI a 10 h job is interrupted at least once.
  int64_t total = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    o.seed = seed;
    total += run("cheapest-first", jobs, pools, o).interruptions;
  }
  EXPECT_GT(total, 0);
}

TEST(CostSim, LeptonPacksFractionalJobsOntoOneGpu) {
  std::vector<CostPool> pools = {pool("aws", "x", 1.0, 10)};
  std::vector<CostJob> jobs = {job(0, 3600, 1, 500), job(0, 3600, 1, 500)};
  CostOptions o = instant();
  auto lepton = run("lepton", jobs, pools, o);
  auto cheapest = run("cheapest-first", jobs, pools, o);
  EXPECT_EQ(lepton.instances_launched, 1);
  EXPECT_NEAR(lepton.cost_usd, 1.0, 1e-9);
  EXPECT_NEAR(lepton.lower_bound_usd, 1.0, 1e-9);
  EXPECT_EQ(cheapest.instances_launched, 2);
  EXPECT_NEAR(cheapest.cost_usd, 2.0, 1e-9);
  // Each of cheapest-first's machines leaves half its GPU unused.
  EXPECT_NEAR(cheapest.unused_share_usd, 1.0, 1e-9);
  EXPECT_NEAR(lepton.unused_share_usd, 0.0, 1e-9);
}

TEST(CostSim, LeptonLaunchesAMultiGpuInstanceWhenItFillsIt) {
  // 4 one-GPU jobs at once: a 4-GPU instance at $2/h beats four 1-GPU instances at $1/h.
  std::vector<CostPool> pools = {pool("aws", "x1", 1.0, 10), pool("aws", "x4", 2.0, 10, false, 4)};
  std::vector<CostJob> jobs = {job(0, 3600), job(0, 3600), job(0, 3600), job(0, 3600)};
  CostOptions o = instant();
  auto lepton = run("lepton", jobs, pools, o);
  EXPECT_EQ(lepton.instances_launched, 1);
  EXPECT_NEAR(lepton.cost_usd, 2.0, 1e-9);
  // A lone job still takes the cheap 1-GPU instance.
  EXPECT_NEAR(run("lepton", {job(0, 3600)}, pools, o).cost_usd, 1.0, 1e-9);
  EXPECT_NEAR(run("cheapest-first", jobs, pools, o).cost_usd, 4.0, 1e-9);
}

TEST(CostSim, LeptonUsesRoomOnARunningMachineOnlyWhenNoDearerThanALaunch) {
  // A 2-GPU machine at $1.50 per GPU runs a job only it fits. A second job that also fits a
  // $1 T4 machine launches one rather than take a whole GPU there, but a half GPU there costs
  // $0.75, less than a launch: it shares the machine (sched/renting.h, the server's rule too).
  std::vector<CostPool> pools = {pool("aws", "a2", 3.0, 10, false, 2, "A"),
                                 pool("aws", "t4", 1.0, 10)};
  CostOptions o = instant();
  auto whole =
      run("lepton", {job(0, 3600, 1, 1000, {"A"}), job(10, 3600, 1, 1000, {"A", "T4"})}, pools, o);
  EXPECT_EQ(whole.instances_launched, 2);
  auto half =
      run("lepton", {job(0, 3600, 1, 1000, {"A"}), job(10, 3600, 1, 500, {"A", "T4"})}, pools, o);
  EXPECT_EQ(half.instances_launched, 1);
  EXPECT_NEAR(half.cost_usd, 3.0 * 3610 / 3600, 1e-9);
}

TEST(CostSim, UnplaceableJobsAreCounted) {
  std::vector<CostPool> pools = {pool("aws", "x", 1.0, 1), pool("gcp", "y", 1.0, 0)};
  CostJob big = job(0, 100, 8);
  CostJob gcp_only = job(0, 100, 1, 1000, {"L4"});
  pools.push_back(pool("gcp", "l4", 1.0, 0, false, 1, "L4"));
  auto r = run("lepton", {big, gcp_only, job(0, 100)}, pools, quiet());
  EXPECT_EQ(r.jobs_unplaceable, 2);
  EXPECT_EQ(r.jobs_completed, 1);
}

TEST(CostSim, LowerBoundIsBelowEveryPolicyOnRandomInputs) {
  // Each policy's bound (with its completion times) holds for it, and is at least the bound
  // without completion times; the random cases are tight enough that capacity often binds.
  int binding = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    RandomCase c = random_case(seed);
    CostOptions o;
    o.seed = seed;
    o.mtbi_hours = 1 + static_cast<double>(seed % 4);
    o.boot_s = static_cast<double>(seed % 3) * 60;
    double bound = cost_lower_bound(c.jobs, c.pools).usd;
    for (const char* policy : kCostPolicies) {
      auto r = run(policy, c.jobs, c.pools, o);
      SCOPED_TRACE(std::string(policy) + " seed " + std::to_string(seed));
      ASSERT_EQ(r.jobs_completed, static_cast<int64_t>(c.jobs.size()));
      EXPECT_GE(r.lower_bound_usd, bound - 1e-6 * (1 + bound));
      EXPECT_NEAR(r.lower_bound_any_time_usd, bound, 1e-6 * (1 + bound));
      EXPECT_GE(r.cost_usd, r.lower_bound_usd - 1e-9 * (1 + r.cost_usd));
      // The terms of the gap add up to it and none is negative.
      EXPECT_NEAR(r.boot_usd + r.idle_usd + r.unused_share_usd + r.premium_usd + r.redone_usd,
                  r.cost_usd - r.lower_bound_usd + r.packing_bound_usd + r.capacity_bound_usd,
                  1e-6 * (1 + r.cost_usd));
      for (double term : {r.boot_usd, r.idle_usd, r.unused_share_usd, r.premium_usd}) {
        EXPECT_GE(term, -1e-9);
      }
      EXPECT_GE(r.redone_usd, -1e-6 * (1 + bound));
      EXPECT_GE(r.capacity_bound_usd, 0);
      EXPECT_GE(r.packing_bound_usd, 0);
      if (r.capacity_bound_usd > 1e-6) ++binding;
    }
  }
  EXPECT_GT(binding, 10);
}

TEST(CostSim, JobsThatNeverKeepTheirWorkStopAtTheHorizon) {
  // Ten hours of work, no checkpoints, interrupted every three minutes on average: cheapest-first
  // never finishes it, and the run ends, billed, at its horizon.
  std::vector<CostPool> pools = {pool("aws", "spot", 1.0, 10, true)};
  CostOptions o = instant();
  o.mtbi_hours = 0.05;
  o.checkpoint_s = 0;
  o.notice_s = 0;
  auto r = run("cheapest-first", {job(0, 36000)}, pools, o);
  EXPECT_TRUE(r.stopped_at_horizon);
  EXPECT_EQ(r.jobs_completed, 0);
  const double horizon_hours = (10 * 36000.0 + 86400) / 3600;
  EXPECT_GT(r.cost_usd, 0.9 * horizon_hours);
  EXPECT_LE(r.cost_usd, horizon_hours + 1e-6);
  // lepton checkpoints at the notice, so it finishes.
  auto lepton = run("lepton", {job(0, 36000)}, pools, o);
  EXPECT_FALSE(lepton.stopped_at_horizon);
  EXPECT_EQ(lepton.jobs_completed, 1);
}

TEST(CostSim, DeterministicForASeed) {
  RandomCase c = random_case(7);
  CostOptions o;
  o.mtbi_hours = 1;
  for (const char* policy : kCostPolicies) {
    auto a = run(policy, c.jobs, c.pools, o);
    auto b = run(policy, c.jobs, c.pools, o);
    EXPECT_EQ(a.cost_usd, b.cost_usd) << policy;
    EXPECT_EQ(a.interruptions, b.interruptions) << policy;
    EXPECT_EQ(a.capacity_errors, b.capacity_errors) << policy;
    EXPECT_EQ(a.avg_jct_s, b.avg_jct_s) << policy;
  }
  std::vector<CostPool> p1 = c.pools;
  std::vector<CostPool> p2 = c.pools;
  assign_capacity(p1, o);
  assign_capacity(p2, o);
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_EQ(p1[i].capacity, p2[i].capacity);
  o.capacity_scale = 0;
  assign_capacity(p2, o);
  for (const auto& p : p2) EXPECT_EQ(p.capacity, 0);
}

TEST(CostSim, JobsFromTrace) {
  std::vector<CostPool> pools = {pool("aws", "a", 1, 1, false, 1, "V100"),
                                 pool("aws", "b", 1, 1, false, 1, "V100-32GB"),
                                 pool("aws", "c", 1, 1, false, 1, "T4")};
  auto pod = [](std::string name, int gpus, int milli, std::vector<std::string> spec,
                int64_t created, std::optional<int64_t> scheduled, std::optional<int64_t> deleted) {
    TracePod p;
    p.name = std::move(name);
    p.res.gpu_count = gpus;
    p.res.gpu_milli = milli;
    p.gpu_spec = std::move(spec);
    p.creation_time = created;
    p.scheduled_time = scheduled;
    p.deletion_time = deleted;
    return p;
  };
  std::vector<TracePod> pods = {
      pod("cpu", 0, 0, {}, 0, 0, 10),
      pod("v100", 1, 1000, {"V100M16", "V100M32"}, 50, 60, 160),
      pod("frac", 1, 300, {}, 5, std::nullopt, 105),
      pod("g2", 2, 1000, {"G2"}, 7, 7, 8),
      pod("nodel", 1, 1000, {}, 1, 1, std::nullopt),
      pod("neg", 1, 1000, {}, 9, 20, 20),
  };
  TraceJobs t = jobs_from_trace(pods, pools, {"T4"}, true);
  EXPECT_EQ(t.cpu_only, 1);
  EXPECT_EQ(t.bad_duration, 2);
  EXPECT_EQ(t.unknown_model_pods, 1);
  ASSERT_EQ(t.jobs.size(), 3u);
  EXPECT_EQ(t.jobs[0].name, "frac");  // sorted by arrival
  EXPECT_EQ(t.jobs[0].duration_s, 100);
  EXPECT_EQ(t.jobs[0].gpu_milli, 300);
  EXPECT_EQ(t.jobs[0].models, std::vector<std::string>{"T4"});
  EXPECT_EQ(t.jobs[1].name, "g2");
  EXPECT_EQ(t.jobs[1].models, std::vector<std::string>{"T4"});
  EXPECT_EQ(t.jobs[2].duration_s, 100);
  EXPECT_EQ(t.jobs[2].models, (std::vector<std::string>{"V100", "V100-32GB"}));
  EXPECT_EQ(jobs_from_trace(pods, pools, {"T4"}, true, 2).jobs.size(), 2u);
}

}  // namespace
}  // namespace lepton::sim
