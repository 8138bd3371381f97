// Helpers for the cost replay's unit tests (cost_sim_test, cost_bound_test).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sim/cost_sim.h"

namespace lepton::sim::cost_testing {

inline CostJob job(double arrival, double duration, int gpus = 1, int milli = 1000,
                   std::vector<std::string> models = {"T4"}) {
  CostJob j;
  j.name = "j" + std::to_string(static_cast<int>(arrival));
  j.arrival_s = arrival;
  j.duration_s = duration;
  j.num_gpu = gpus;
  j.gpu_milli = milli;
  j.models = std::move(models);
  return j;
}

inline CostPool pool(std::string cloud, std::string type, double price, int capacity,
                     bool spot = false, int gpus = 1, std::string model = "T4") {
  CostPool p;
  p.cloud = std::move(cloud);
  p.region = "r1";
  p.instance_type = std::move(type);
  p.gpu_model = std::move(model);
  p.gpu_count = gpus;
  p.price_per_hour = price;
  p.spot = spot;
  p.capacity = capacity;
  return p;
}

// No interruptions, no capacity-error delay: the cost math alone.
inline CostOptions quiet() {
  CostOptions o;
  o.mtbi_hours = 0;
  o.fail_delay_s = 0;
  return o;
}

// quiet(), and machines that boot at once and go as soon as they are idle.
inline CostOptions instant() {
  CostOptions o = quiet();
  o.boot_s = 0;
  o.idle_timeout_s = 0;
  return o;
}

inline CostPolicyResult run(const std::string& policy, const std::vector<CostJob>& jobs,
                            const std::vector<CostPool>& pools, const CostOptions& o) {
  auto r = run_cost_policy(policy, jobs, pools, o);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.value();
}

inline uint64_t next(uint64_t& s) {
  s = s * 6364136223846793005ULL + 1442695040888963407ULL;
  return s >> 33;
}

struct RandomCase {
  std::vector<CostJob> jobs;
  std::vector<CostPool> pools;
};

inline RandomCase random_case(uint64_t seed) {
  uint64_t s = seed;
  const std::vector<std::string> models = {"T4", "L4", "A10G"};
  const std::vector<std::string> clouds = {"aws", "gcp", "azure"};
  RandomCase c;
  // aws on-demand always has room for everything, so every policy completes every job.
  for (const auto& m : models) c.pools.push_back(pool("aws", "big-" + m, 20.0, 50, false, 8, m));
  int n_pools = 3 + static_cast<int>(next(s) % 8);
  for (int i = 0; i < n_pools; ++i) {
    int gpus = 1 << (next(s) % 4);
    double price = gpus * (0.1 + static_cast<double>(next(s) % 300) / 100.0);
    c.pools.push_back(pool(clouds[next(s) % 3], "t" + std::to_string(i), price,
                           static_cast<int>(next(s) % 3), next(s) % 2 == 0, gpus,
                           models[next(s) % 3]));
  }
  int n_jobs = 5 + static_cast<int>(next(s) % 25);
  for (int i = 0; i < n_jobs; ++i) {
    int gpus = next(s) % 5 == 0 ? 1 << (next(s) % 4) : 1;
    int milli = gpus == 1 && next(s) % 2 == 0 ? 100 * (1 + static_cast<int>(next(s) % 9)) : 1000;
    std::vector<std::string> ms = {models[next(s) % 3]};
    if (next(s) % 2 == 0) ms = models;
    CostJob j = job(static_cast<double>(next(s) % 20000),
                    60.0 + static_cast<double>(next(s) % 30000), gpus, milli, ms);
    j.spot_ok = next(s) % 4 != 0;
    c.jobs.push_back(j);
  }
  return c;
}

}  // namespace lepton::sim::cost_testing
