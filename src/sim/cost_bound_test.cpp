#include "sim/cost_bound.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "sim/cost_testing.h"

namespace lepton::sim {
namespace {

using namespace cost_testing;  // NOLINT(google-build-using-namespace)

TEST(CostBound, PackingWeightsOfSharesOnOneGpuAddUpToAtMostOne) {
  // Exactly, by an unbounded knapsack over every share of 1..1000 milli: the heaviest set of
  // shares that fits one GPU weighs at most 1. Every k, and the eps values at the steps of the
  // trace's shares and of the weights (1/3, 1/2).
  for (int eps : {0, 1, 50, 100, 190, 200, 250, 300, 333, 334, 400, 450, 499, 500}) {
    for (int k = 0; k <= 20; ++k) {
      std::vector<double> heaviest(1001, 0.0);  // by milli used
      for (int used = 1; used <= 1000; ++used) {
        for (int milli = 1; milli <= used; ++milli) {
          heaviest[used] =
              std::max(heaviest[used], heaviest[used - milli] + packing_weight(milli, k, eps));
        }
      }
      ASSERT_LE(heaviest[1000], 1.0 + 1e-12) << "k " << k << " eps " << eps;
    }
  }
  EXPECT_EQ(packing_weight(460, 0, 0), 0.46);
  EXPECT_EQ(packing_weight(460, 2, 0), 0.5);    // at most two of them share a GPU
  EXPECT_EQ(packing_weight(810, 0, 200), 1.0);  // nothing of 0.2 or more fits beside it
  EXPECT_EQ(packing_weight(150, 0, 200), 0.0);
  EXPECT_EQ(packing_weight(1000, 7, 300), 1.0);
}

TEST(CostBound, PackingBoundCountsTheSharesNoPackingCanUse) {
  // Three 0.6-GPU jobs for an hour each need three GPU-hours, whatever the order: 1.2 more than
  // their 1.8 GPU-hours of work.
  std::vector<CostPool> pools = {pool("aws", "x1", 1.0, 10), pool("gcp", "y1", 2.0, 10)};
  std::vector<CostJob> jobs = {job(0, 3600, 1, 600), job(0, 3600, 1, 600), job(0, 3600, 1, 600)};
  EXPECT_NEAR(best_packing_weights(jobs).gpu_hours, 3.0, 1e-9);
  CostBound bound = cost_lower_bound(jobs, pools);
  EXPECT_NEAR(bound.packing_usd, 1.2, 1e-9);
  EXPECT_NEAR(bound.usd, 3.0, 1e-9);
  // Two 0.5-GPU jobs fill one GPU: no packing term.
  EXPECT_NEAR(cost_lower_bound({job(0, 3600, 1, 500), job(0, 3600, 1, 500)}, pools).packing_usd,
              0.0, 1e-12);
  // Weighed as whole GPUs (k = 1), the jobs' own cheapest price applies to the free shares too,
  // whatever the floor (the lowest price of any pool, here of another job's).
  EXPECT_NEAR(cost_lower_bound(jobs, pools, 0.5).packing_usd, 1.2, 1e-9);
  // 0.3, 0.3 and 0.4 of a GPU fill one GPU exactly.
  EXPECT_NEAR(
      cost_lower_bound({job(0, 3600, 1, 300), job(0, 3600, 1, 300), job(0, 3600, 1, 400)}, pools)
          .packing_usd,
      0.0, 1e-12);
  // Every policy pays at least the bound: here, three GPUs for an hour.
  CostOptions o = instant();
  for (const char* policy : kCostPolicies) {
    auto r = run(policy, jobs, pools, o);
    EXPECT_NEAR(r.lower_bound_usd, 3.0, 1e-9) << policy;
    EXPECT_NEAR(r.packing_bound_usd, 1.2, 1e-9) << policy;
    EXPECT_GE(r.cost_usd, 3.0 - 1e-9) << policy;
  }
}

TEST(CostBound, CapacityForcesTheDearerPoolOnlyWhenJobsMustOverlap) {
  // A $1/h pool with room for one instance, a $3/h pool with room for ten; two one-hour jobs.
  std::vector<CostPool> pools = {pool("aws", "cheap", 1.0, 1), pool("gcp", "dear", 3.0, 10)};
  std::vector<CostJob> jobs = {job(0, 3600), job(0, 3600)};
  // Both must be done within the hour: one runs on the dear pool.
  EXPECT_NEAR(capacity_bound_usd(jobs, {3600, 3600}, pools, 0, 0), 4.0, 1e-9);
  // The second may finish an hour later: both fit the cheap instance, one after the other.
  EXPECT_NEAR(capacity_bound_usd(jobs, {3600, 7200}, pools, 0, 0), 2.0, 1e-9);
  // Half an hour of slack: half of the second job's hour must go to the dear pool.
  EXPECT_NEAR(capacity_bound_usd(jobs, {3600, 5400}, pools, 0, 0), 3.0, 1e-9);
  // A job runs on one GPU at a time: a long window does not let it use two at once.
  std::vector<CostPool> two = {pool("aws", "cheap", 1.0, 2), pool("gcp", "dear", 3.0, 10)};
  EXPECT_NEAR(capacity_bound_usd({job(0, 7200)}, {7200}, two, 0, 0), 2.0, 1e-9);

  CostBound bound = cost_lower_bound(jobs, pools, -1, nullptr);
  EXPECT_NEAR(bound.usd, 2.0, 1e-9);
  EXPECT_EQ(bound.capacity_usd, 0);
  EXPECT_NEAR(bound.any_time_usd, 2.0, 1e-9);
  std::vector<double> done = {3600, 3600};
  bound = cost_lower_bound(jobs, pools, -1, &done);
  EXPECT_NEAR(bound.usd, 4.0, 1e-9);
  EXPECT_NEAR(bound.capacity_usd, 2.0, 1e-9);
  EXPECT_NEAR(bound.any_time_usd, 2.0, 1e-9);  // without the completion times
}

TEST(CostBound, CapacityBoundWeighsSharesByPacking) {
  // Two 0.6-GPU jobs at once and one cheap GPU: weighed as whole GPUs (k = 1), one pays $3/h.
  std::vector<CostPool> pools = {pool("aws", "cheap", 1.0, 1), pool("gcp", "dear", 3.0, 10)};
  std::vector<CostJob> jobs = {job(0, 3600, 1, 600), job(0, 3600, 1, 600)};
  EXPECT_NEAR(capacity_bound_usd(jobs, {3600, 3600}, pools, 1, 0), 4.0, 1e-9);
  // As shares (k = 0), 1.2 GPUs: 0.2 of a GPU-hour spills over.
  EXPECT_NEAR(capacity_bound_usd(jobs, {3600, 3600}, pools, 0, 0), 1.0 + 0.2 * 3.0, 1e-9);
  std::vector<double> done = {3600, 3600};
  EXPECT_NEAR(cost_lower_bound(jobs, pools, -1, &done).usd, 4.0, 1e-9);
}

TEST(CostBound, AShareAloneOnItsGpuPaysForAllOfIt) {
  // GPUs are rented whole: a 0.46-GPU job alone for an hour bills a GPU-hour.
  std::vector<CostJob> lone = {job(0, 3600, 1, 460)};
  EXPECT_NEAR(billed_gpu_hours_bound(lone, {3600}, 0, 0), 1.0, 1e-9);
  // Two of them at once share one GPU; one after the other they need one each.
  std::vector<CostJob> pair = {job(0, 3600, 1, 460), job(0, 3600, 1, 460)};
  EXPECT_NEAR(billed_gpu_hours_bound(pair, {3600, 3600}, 0, 0), 1.0, 1e-9);
  std::vector<CostJob> apart = {job(0, 3600, 1, 460), job(3600, 3600, 1, 460)};
  EXPECT_NEAR(billed_gpu_hours_bound(apart, {3600, 7200}, 0, 0), 2.0, 1e-9);
  // With an hour of slack the second could wait for the first to pair with: the window counts
  // for two hours, less the hour it may be away.
  EXPECT_NEAR(billed_gpu_hours_bound(pair, {3600, 7200}, 0, 0), 1.0, 1e-9);

  std::vector<CostPool> pools = {pool("aws", "x1", 1.0, 10)};
  CostOptions o = instant();
  for (const char* policy : kCostPolicies) {
    auto r = run(policy, lone, pools, o);
    EXPECT_NEAR(r.cost_usd, 1.0, 1e-9) << policy;
    EXPECT_NEAR(r.lower_bound_usd, 1.0, 1e-9) << policy;
    EXPECT_NEAR(r.packing_bound_usd, 0.54, 1e-9) << policy;
  }
}

TEST(CostBound, JobsThatFitOtherPoolsAreBoundedApart) {
  // The L4 job cannot use the T4 pool's room, and the T4 jobs have the cheap pool to themselves.
  std::vector<CostPool> pools = {pool("aws", "t4", 1.0, 1), pool("aws", "t4-dear", 2.0, 5),
                                 pool("gcp", "l4", 5.0, 5, false, 1, "L4")};
  std::vector<CostJob> jobs = {job(0, 3600), job(0, 3600), job(0, 3600, 1, 1000, {"L4"})};
  EXPECT_NEAR(capacity_bound_usd(jobs, {3600, 3600, 3600}, pools, 0, 0), 1.0 + 2.0 + 5.0, 1e-9);
}

}  // namespace
}  // namespace lepton::sim
