// The multi-cloud cost replay (`lepton sim cost`, issue 5): jobs from a trace with durations are
// run on emulated clouds priced from the offer catalog, under three provisioning policies, and the
// bill is compared with a lower bound that no policy can beat. Nothing is provisioned: this is a
// discrete-event simulation of the policies. The model, in short (docs/clouds.md has the rest):
//
// - A pool is one (cloud, region, instance type, spot or on-demand) with a price per hour, a GPU
//   model and count, and a capacity in instances. Launching into a full pool is a capacity error.
// - An instance is billed per second from launch to termination; jobs on it start after the boot
//   delay; it is terminated after `idle_timeout_s` without jobs, or by a spot interruption (a
//   Poisson process per spot instance with mean `mtbi_hours`). An interruption requeues its jobs;
//   they resume from their last checkpoint (every `checkpoint_s` of run time).
// - Policies:
//   * single-cloud: pools of one cloud, on-demand only, the cheapest fitting pool per job (walking
//     the list by instance price), one job per instance.
//   * cheapest-first (SkyPilot-like): every cloud, spot when the job allows it, each job walks a
//     fixed list of fitting pools by instance price, one job per instance; no failure memory, so
//     every attempt repeats the capacity errors of the last one.
//   * lepton: the server's renting policy (sched/renting.h, which the cloud autoscaler calls
//     too): packs jobs (and fractional GPU shares) onto instances with room when that is no
//     dearer than a launch, else launches the pool with the lowest price per GPU it expects to
//     fill; the replay adds what the server does around it: capacity errors remembered for
//     `failover_ttl_s`, and checkpoints at the interruption notice.
//   Every policy reuses an idle instance of a pool in its list before launching a new one.
// - The lower bound (cost_bound.h): what any schedule pays for the jobs' work at their cheapest
//   prices, for the GPU shares any packing leaves free, and for the dearer pools the cheap ones'
//   capacity forces, given that each job finishes when it did under the policy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "sim/alibaba_trace.h"

namespace lepton::sim {

struct CostJob {
  std::string name;
  double arrival_s = 0;
  double duration_s = 0;            // run time needed, without interruptions
  int num_gpu = 1;                  // distinct GPUs
  int gpu_milli = 1000;             // share of each GPU, 1..1000
  std::vector<std::string> models;  // canonical GPU models it may run on; never empty
  bool spot_ok = true;

  double gpu_share() const { return num_gpu * gpu_milli / 1000.0; }
};

struct CostPool {
  std::string cloud;
  std::string region;
  std::string instance_type;
  std::string gpu_model;
  int gpu_count = 1;
  double price_per_hour = 0;  // the price of this pool: spot price for spot pools
  bool spot = false;
  int capacity = 0;  // instances at once

  double price_per_gpu_hour() const { return price_per_hour / gpu_count; }
};

struct CostOptions {
  uint64_t seed = 42;
  double capacity_scale = 1.0;  // multiplies every pool's capacity
  int base_capacity = 4;        // a pool holds floor(U[0,2) * base * scale) instances
  double mtbi_hours = 6;        // spot: mean time between interruptions per instance
  double notice_s = 120;        // spot interruption notice
  double checkpoint_s = 1800;   // jobs checkpoint every this many seconds of run time
  double boot_s = 120;          // launch to ready, billed
  double idle_timeout_s = 300;  // an instance without jobs this long is terminated
  double fail_delay_s = 30;     // time lost per capacity error
  double failover_ttl_s = 600;  // lepton skips a pool this long after a capacity error
  double retry_s = 60;          // waiting jobs are retried at least this often
  std::string single_cloud = "aws";
};

struct CostCurvePoint {
  double t_s = 0;
  double cost_usd = 0;
};

struct CostPolicyResult {
  std::string policy;
  double cost_usd = 0;
  double lower_bound_usd = 0;     // the lower bound over the jobs this policy completed
  double packing_bound_usd = 0;   // the part of it for GPU shares any packing leaves free
  double capacity_bound_usd = 0;  // the part of it for dearer pools that capacity forces
  double gap_pct = 0;             // cost / lower bound - 1, in percent
  // The bound for schedules that may take any time (without the policy's completion times): work
  // and packing only.
  double lower_bound_any_time_usd = 0;
  double gap_any_time_pct = 0;
  double gpu_hours_completed = 0;  // work of completed jobs (count x share x duration)
  double cost_per_gpu_hour = 0;    // cost_usd / gpu_hours_completed
  double avg_jct_s = 0;            // completion - arrival, over completed jobs
  double p99_jct_s = 0;
  double avg_wait_s = 0;      // first start - arrival
  double gpu_hours_lost = 0;  // work redone after interruptions
  int64_t interruptions = 0;  // spot instances interrupted
  int64_t capacity_errors = 0;
  int64_t jobs = 0;
  int64_t jobs_completed = 0;
  // The run stopped at its horizon (ten times the longest job past the last arrival) with jobs
  // unfinished: they lose more to interruptions than they checkpoint.
  bool stopped_at_horizon = false;
  int64_t jobs_unplaceable = 0;  // no pool of this policy fits them, or all have capacity 0
  int64_t instances_launched = 0;
  double gpu_hours_billed = 0;  // GPUs x billed hours of every instance
  // Where the cost above the jobs' work at their cheapest prices goes, in dollars: machines
  // booting, machines without jobs, GPU shares left free on machines with jobs, jobs on pools
  // dearer per GPU than their cheapest, and work paid more than once (redone after
  // interruptions). They add up to cost_usd - lower_bound_usd + packing_bound_usd +
  // capacity_bound_usd, give or take the work of jobs that did not complete: the bound's packing
  // term is part of the unused shares that no policy avoids, and its capacity term is premium or
  // unused shares that none avoids either.
  double boot_usd = 0;
  double idle_usd = 0;
  double unused_share_usd = 0;
  double premium_usd = 0;
  double redone_usd = 0;
  double spot_instance_hours = 0;
  double on_demand_instance_hours = 0;
  double seconds = 0;                 // wall-clock time of the run
  std::vector<CostCurvePoint> curve;  // cumulative cost over simulated time
};

inline constexpr const char* kCostPolicies[] = {"single-cloud", "cheapest-first", "lepton"};

struct TraceJobs {
  std::vector<CostJob> jobs;
  int64_t cpu_only = 0;            // pods without GPUs: skipped
  int64_t bad_duration = 0;        // no deletion time or a duration <= 0: skipped
  int64_t unknown_model_pods = 0;  // gpu_spec named only models outside the catalog: ran as "any"
};

// Jobs from trace pods: arrival = creation_time, duration = deletion_time - scheduled_time (or
// creation_time when unscheduled). gpu_spec models are canonicalised (V100M16 -> V100, V100M32 ->
// V100-32GB) and kept when some pool sells them; the anonymised G2/G3, and pods with no spec, may
// run on any of `any_models`. `max_pods` > 0 keeps the first that many GPU jobs.
TraceJobs jobs_from_trace(const std::vector<TracePod>& pods, const std::vector<CostPool>& pools,
                          const std::vector<std::string>& any_models, bool spot_ok,
                          int64_t max_pods = 0);

// Capacity for every pool, deterministic from `options.seed` and the pool's name.
void assign_capacity(std::vector<CostPool>& pools, const CostOptions& options);

// Whether `pool` could host `job` (model and GPU count; spot only when the job allows it).
bool pool_fits(const CostPool& pool, const CostJob& job);
// What pool_fits looks at in a job: jobs with the same key fit the same pools.
std::string fit_key(const CostJob& job);

// Runs one policy ("single-cloud", "cheapest-first" or "lepton") to the end of the last job.
Result<CostPolicyResult> run_cost_policy(const std::string& policy,
                                         const std::vector<CostJob>& jobs,
                                         const std::vector<CostPool>& pools,
                                         const CostOptions& options);

}  // namespace lepton::sim
