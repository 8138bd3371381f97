// Factories of the built-in policies; the table in policies.cpp names them. Private to sched/.
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "sched/policy.h"

namespace lepton::sched {

// Normalisation constants of the FGD simulator's score plugins (largest node CPU and GPU in the
// Alibaba cluster): the baselines below reproduce that simulator's formulas exactly.
inline constexpr double kFgdMaxSpecCpuMilli = 128000;
inline constexpr double kFgdMaxSpecGpuMilli = 8000;

// FGD's integer squashing of a fragmentation decrease in milli-GPUs:
// int(100 * sigmoid(delta / 1000)).
double fgd_squash(double delta_milli);

// For a whole-GPU or CPU-only request: `value(after)` of the node's state after the placement.
// For a fractional request: tries each distinct free capacity that fits, largest first, and
// returns the largest `value(after)` with that capacity (the first one on ties). `value` returns
// anything ordered by operator<.
template <typename Fn>
auto best_placement(const NodeState& state, const Request& request, Fn value)
    -> std::pair<decltype(value(state)), int16_t> {
  if (!request.res.fractional()) return {value(state_after(state, request, 0)), 0};
  std::optional<std::pair<decltype(value(state)), int16_t>> best;
  int16_t previous = -1;
  for (int i = 0; i < state.gpu_count; ++i) {
    const int16_t free = state.gpu_free_sorted[i];
    if (free < request.res.gpu_milli) break;
    if (free == previous) continue;  // same capacity, same outcome
    previous = free;
    auto v = value(state_after(state, request, free));
    if (!best || best->first < v) best.emplace(std::move(v), free);
  }
  return *best;  // the Scheduler only asks about requests that fit
}

std::unique_ptr<Policy> make_random_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_dotprod_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_gpupacking_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_bestfit_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_fgd_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_lepton_policy(const PolicyConfig& config);

}  // namespace lepton::sched
