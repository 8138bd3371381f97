#include "sim/cost_bound.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "sim/max_flow.h"

namespace lepton::sim {
namespace {

constexpr int kMaxPackingK = 20;
constexpr int kMaxPackingEps = 500;
constexpr int kMaxPriceSteps = 16;

// The GPUs a job holds at a time, weighed by packing_weight.
double weighed_gpus(const CostJob& job, int k, int eps_milli) {
  return job.num_gpu * packing_weight(std::clamp(job.gpu_milli, 1, 1000), k, eps_milli);
}

// The pools that fit `job`, found once per fit_key in `cache`.
const std::vector<int>& fitting_pools(const CostJob& job, const std::vector<CostPool>& pools,
                                      std::map<std::string, std::vector<int>>& cache) {
  auto [it, fresh] = cache.try_emplace(fit_key(job));
  if (fresh) {
    for (size_t p = 0; p < pools.size(); ++p) {
      if (pool_fits(pools[p], job)) it->second.push_back(static_cast<int>(p));
    }
  }
  return it->second;
}

// One group of jobs that fit the same pools: their bound under capacity (see the header).
double group_capacity_bound(const std::vector<int>& members, const std::vector<CostJob>& jobs,
                            const std::vector<double>& done_s, const std::vector<int>& fitting,
                            const std::vector<CostPool>& pools, int k, int eps_milli) {
  // Prices, cheapest first, with the GPUs the pools of that price hold at once.
  std::map<double, double> gpus_at_price;
  for (int p : fitting) {
    if (pools[p].capacity <= 0) continue;
    gpus_at_price[pools[p].price_per_gpu_hour()] +=
        static_cast<double>(pools[p].capacity) * pools[p].gpu_count;
  }
  if (gpus_at_price.empty()) return 0;
  std::vector<std::pair<double, double>> steps(gpus_at_price.begin(), gpus_at_price.end());

  struct Work {
    double from, to, rate, amount;  // window in seconds; GPUs at a time; GPU-hours
  };
  std::vector<Work> work;
  std::vector<double> times;
  double total = 0;
  for (int j : members) {
    const CostJob& job = jobs[j];
    double rate = weighed_gpus(job, k, eps_milli);
    double amount = rate * job.duration_s / 3600.0;
    if (amount <= 0 || done_s[j] <= job.arrival_s) continue;
    work.push_back({job.arrival_s, done_s[j], rate, amount});
    times.push_back(job.arrival_s);
    times.push_back(done_s[j]);
    total += amount;
  }
  if (work.empty()) return 0;
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());

  MaxFlow flow;
  const int source = flow.add_node();
  const int sink = flow.add_node();
  std::vector<int> slot_node(times.size() - 1);
  std::vector<int> slot_edge(times.size() - 1);
  for (size_t s = 0; s + 1 < times.size(); ++s) {
    slot_node[s] = flow.add_node();
    slot_edge[s] = flow.add_edge(slot_node[s], sink, 0);
  }
  for (const Work& w : work) {
    int node = flow.add_node();
    flow.add_edge(source, node, w.amount);
    size_t first = std::lower_bound(times.begin(), times.end(), w.from) - times.begin();
    for (size_t s = first; s + 1 < times.size() && times[s] < w.to; ++s) {
      flow.add_edge(node, slot_node[s], w.rate * (times[s + 1] - times[s]) / 3600.0);
    }
  }

  const double epsilon = 1e-12 * (1 + total);
  double bound = steps[0].first * total;
  double fitted = 0;
  for (size_t i = 0; i < steps.size() && static_cast<int>(i) < kMaxPriceSteps; ++i) {
    for (size_t s = 0; s + 1 < times.size(); ++s) {
      flow.raise(slot_edge[s], steps[i].second * (times[s + 1] - times[s]) / 3600.0);
    }
    fitted += flow.run(source, sink, epsilon);
    double left = std::max(0.0, total - fitted);
    if (left <= epsilon) break;
    // Whatever does not fit at these prices pays at least the next one. Past the last capacity
    // the jobs could not have run at all; the policy ran them, so that is rounding.
    if (i + 1 >= steps.size()) break;
    bound += (steps[i + 1].first - steps[i].first) * left;
  }
  return bound;
}

}  // namespace

double cheapest_per_gpu_hour(const CostJob& job, const std::vector<CostPool>& pools) {
  double best = std::numeric_limits<double>::infinity();
  for (const CostPool& p : pools) {
    if (pool_fits(p, job)) best = std::min(best, p.price_per_gpu_hour());
  }
  return best;
}

double packing_weight(int milli, int k, int eps_milli) {
  // U^(eps): a share above 1000 - eps shares its GPU only with shares below eps.
  int x = milli;
  if (milli > 1000 - eps_milli) {
    x = 1000;
  } else if (milli < eps_milli) {
    x = 0;
  }
  if (k == 0 || (k + 1) * x % 1000 == 0) return x / 1000.0;
  const int steps = (k + 1) * x / 1000;  // floor((k + 1) x share): integer division on purpose
  return static_cast<double>(steps) / k;
}

PackingWeights best_packing_weights(const std::vector<CostJob>& jobs) {
  std::map<int, double> gpu_hours;  // by share: num_gpu x duration
  for (const CostJob& job : jobs) {
    gpu_hours[std::clamp(job.gpu_milli, 1, 1000)] += job.num_gpu * job.duration_s / 3600.0;
  }
  PackingWeights best;
  for (int eps = 0; eps <= kMaxPackingEps; ++eps) {
    for (int k = 0; k <= kMaxPackingK; ++k) {
      double total = 0;
      for (const auto& [milli, hours] : gpu_hours) total += packing_weight(milli, k, eps) * hours;
      if (total > best.gpu_hours) best = {k, eps, total};
    }
  }
  return best;
}

double capacity_bound_usd(const std::vector<CostJob>& jobs, const std::vector<double>& done_s,
                          const std::vector<CostPool>& pools, int k, int eps_milli) {
  // Group the jobs by the pools they fit.
  std::map<std::vector<int>, std::vector<int>> groups;
  std::map<std::string, std::vector<int>> fitting_by_kind;
  for (size_t j = 0; j < jobs.size() && j < done_s.size(); ++j) {
    const std::vector<int>& fitting = fitting_pools(jobs[j], pools, fitting_by_kind);
    if (!fitting.empty()) groups[fitting].push_back(static_cast<int>(j));
  }
  double bound = 0;
  for (const auto& [fitting, members] : groups) {
    bound += group_capacity_bound(members, jobs, done_s, fitting, pools, k, eps_milli);
  }
  return bound;
}

double billed_gpu_hours_bound(const std::vector<CostJob>& jobs, const std::vector<double>& done_s,
                              int k, int eps_milli) {
  // At every instant the GPUs billed are a whole number, at least the weights of the jobs
  // running then. A job may be missing from its window for its slack (window - duration), and
  // the whole number drops by at most ceil(its weight) while it is.
  std::vector<std::pair<double, double>> changes;  // time, weight
  double slack_gpu_hours = 0;
  for (size_t j = 0; j < jobs.size() && j < done_s.size(); ++j) {
    const CostJob& job = jobs[j];
    double weight = weighed_gpus(job, k, eps_milli);
    if (weight <= 0 || done_s[j] <= job.arrival_s) continue;
    changes.emplace_back(job.arrival_s, weight);
    changes.emplace_back(done_s[j], -weight);
    double slack = std::max(0.0, done_s[j] - job.arrival_s - job.duration_s);
    slack_gpu_hours += std::ceil(weight - 1e-9) * slack / 3600.0;
  }
  std::sort(changes.begin(), changes.end());
  double gpu_hours = 0;
  double running = 0;
  for (size_t i = 0; i < changes.size(); ++i) {
    running += changes[i].second;
    if (i + 1 < changes.size() && changes[i + 1].first > changes[i].first) {
      double whole = std::ceil(running - 1e-9 * (1 + running));
      gpu_hours += std::max(0.0, whole) * (changes[i + 1].first - changes[i].first) / 3600.0;
    }
  }
  return gpu_hours - slack_gpu_hours;
}

CostBound cost_lower_bound(const std::vector<CostJob>& jobs, const std::vector<CostPool>& pools,
                           double floor_per_gpu_hour, const std::vector<double>* done_s) {
  CostBound bound;
  std::vector<CostJob> placeable;
  std::vector<double> cheapest;
  std::vector<double> placeable_done;
  double floor = std::numeric_limits<double>::infinity();
  std::map<std::string, std::vector<int>> fitting_by_kind;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const CostJob& job = jobs[j];
    double price = std::numeric_limits<double>::infinity();
    for (int p : fitting_pools(job, pools, fitting_by_kind)) {
      price = std::min(price, pools[p].price_per_gpu_hour());
    }
    if (!std::isfinite(price)) continue;
    floor = std::min(floor, price);
    bound.usd += job.gpu_share() * job.duration_s / 3600.0 * price;
    placeable.push_back(job);
    cheapest.push_back(price);
    if (done_s != nullptr) placeable_done.push_back((*done_s)[j]);
  }
  if (placeable.empty()) {
    bound.any_time_usd = bound.usd;
    return bound;
  }
  if (floor_per_gpu_hour >= 0) floor = floor_per_gpu_hour;
  const double work_usd = bound.usd;

  // Any schedule bills at least `billed` GPU-hours. Each GPU-hour costs the floor, plus what its
  // pool costs above the floor for the weights of the shares it holds (at most 1), so the cost is
  // at least floor x billed + (what the weighted work costs at the pools' prices - floor x the
  // weighted work), for every packing weight.
  const PackingWeights best = best_packing_weights(placeable);
  const std::pair<int, int> weights[] = {{0, 0}, {best.k, best.eps_milli}};
  double billed = best.gpu_hours;
  if (done_s != nullptr) {
    for (const auto& [k, eps] : weights) {
      billed = std::max(billed, billed_gpu_hours_bound(placeable, placeable_done, k, eps));
    }
  }
  double any_time = work_usd;
  double without_capacity = work_usd;
  double with_capacity = work_usd;
  for (const auto& [k, eps] : weights) {
    double weighted = 0;
    double at_cheapest = 0;
    for (size_t j = 0; j < placeable.size(); ++j) {
      double gpu_hours = weighed_gpus(placeable[j], k, eps) * placeable[j].duration_s / 3600.0;
      weighted += gpu_hours;
      at_cheapest += gpu_hours * cheapest[j];
    }
    const double rest = floor * std::max(0.0, billed - weighted);
    any_time = std::max(any_time, at_cheapest + floor * std::max(0.0, best.gpu_hours - weighted));
    without_capacity = std::max(without_capacity, at_cheapest + rest);
    if (done_s != nullptr) {
      with_capacity = std::max(with_capacity,
                               capacity_bound_usd(placeable, placeable_done, pools, k, eps) + rest);
    }
  }
  bound.packing_usd = without_capacity - work_usd;
  bound.capacity_usd = std::max(0.0, with_capacity - without_capacity);
  bound.usd = without_capacity + bound.capacity_usd;
  bound.any_time_usd = any_time;
  return bound;
}

}  // namespace lepton::sim
