// Lower bounds on the cost of running a cost replay's jobs (`lepton sim cost`, issue 5), which no
// policy can beat, so that each policy's gap to the optimum is visible. Three bounds, and the
// replay reports the largest:
//
// 1. Work: every job's GPU-hours (count x share x duration) at the lowest price per GPU-hour of
//    any pool that could host it (spot if allowed): no capacity limit, no boot, no idling, no
//    interruptions, shares packed perfectly.
// 2. Work plus packing: GPUs hold shares of at most 1000 milli in all, so some shares are always
//    left free (three 0.6-GPU jobs need three GPUs). A bin-packing bound (packing_gpu_hours)
//    counts the GPU-hours any packing needs; those beyond the work are priced at the lowest price
//    per GPU-hour of any pool.
// 3. Capacity: the jobs must also finish by the time they did under the policy, and a pool holds
//    at most `capacity` instances at once. This is a linear program (jobs' work spread over time
//    within their window, at most their GPUs at a time, pools filled up to capacity), solved
//    exactly as max flows (capacity_bound_usd). It is a bound on the cost of any schedule that
//    completes every job no later than the policy did: a policy that delays jobs gets a looser
//    bound, not a smaller gap.
#pragma once

#include <vector>

#include "sim/cost_sim.h"

namespace lepton::sim {

// The lowest price per GPU-hour of a pool that could host `job`; infinity when none fits.
double cheapest_per_gpu_hour(const CostJob& job, const std::vector<CostPool>& pools);

// A dual-feasible function of bin packing on GPU shares (in milli, 1..1000), as a weight in
// [0, 1]: whatever shares one GPU holds at once (at most 1000 milli in all), their weights add up
// to at most 1. It is Fekete and Schepers' u^(k) applied to U^(eps) ("New classes of fast lower
// bounds for bin packing problems", Math. Program. 91, 2001): U^(eps) weighs a share above
// 1000 - eps as 1 and one below eps as 0, and u^(k) rounds (k+1) x share down to a multiple of 1/k
// unless it is whole. k = 0 and eps = 0 leave the share as it is.
double packing_weight(int milli, int k, int eps_milli);

// The packing weights (k in 0..20, eps in 0..500) that weigh `jobs` the most, and that weight:
// the largest sum of num_gpu x weight x duration, in GPU-hours. Each GPU-second holds shares
// weighing at most 1, and a job runs at least its duration, so any schedule of the jobs bills at
// least this many GPU-hours to run them, whatever the placement, order or delays. It is at least
// their work (k = eps = 0).
struct PackingWeights {
  int k = 0;
  int eps_milli = 0;
  double gpu_hours = 0;
};
PackingWeights best_packing_weights(const std::vector<CostJob>& jobs);

// The lowest cost of any schedule in which job i runs its duration between its arrival and
// `done_s[i]`, with every job's shares weighed by packing_weight(k, eps), on the pools at their
// capacity. The linear program is relaxed three ways, each of which can only lower it: a job may
// spread its work over its window and over pools (at most num_gpu x weight GPUs at a time); jobs
// that fit different sets of pools (by GPU count, model, spot) are bounded apart, each with every
// pool's whole capacity; and beyond the 16 cheapest prices, pools have no capacity limit. Each
// group is then solved exactly: with the pools' prices p1 < p2 < ... and F(i) the most work that
// fits in the pools up to price i (a max flow), the cost is p1 x work + sum over i of
// (p(i+1) - p(i)) x (work - F(i)).
double capacity_bound_usd(const std::vector<CostJob>& jobs, const std::vector<double>& done_s,
                          const std::vector<CostPool>& pools, int k, int eps_milli);

// A lower bound on the GPU-hours billed by any schedule in which job i runs its duration between
// its arrival and `done_s[i]`: at every instant, a whole number of GPUs at least the packing
// weights of the jobs in their windows, less, for each job, its slack (window - duration) x
// ceil(its weight), since a job may be away from its window that long.
double billed_gpu_hours_bound(const std::vector<CostJob>& jobs, const std::vector<double>& done_s,
                              int k, int eps_milli);

struct CostBound {
  double usd = 0;           // the bound: the largest of the three
  double packing_usd = 0;   // what bound 2 adds to bound 1
  double capacity_usd = 0;  // what bound 3 adds to bound 2 (0 when it is not larger)
  // Without the completion times: work and the run-wide packing bound (usd when none are given).
  double any_time_usd = 0;
};

// The lower bound on the cost of completing `jobs` (jobs no pool fits are left out). The packing
// term is priced at `floor_per_gpu_hour`, the lowest price per GPU-hour of any pool a policy may
// pay for; below 0 (the default), the lowest cheapest_per_gpu_hour over `jobs`. With `done_s`
// (one completion time per job), the capacity bound too.
CostBound cost_lower_bound(const std::vector<CostJob>& jobs, const std::vector<CostPool>& pools,
                           double floor_per_gpu_hour = -1,
                           const std::vector<double>* done_s = nullptr);

}  // namespace lepton::sim
