// Factories of the built-in policies; the table in policies.cpp names them. Private to sched/.
#pragma once

#include <memory>

#include "sched/policy.h"

namespace lepton::sched {

// Normalisation constants of the FGD simulator's score plugins (largest node CPU and GPU in the
// Alibaba cluster): the baselines below reproduce that simulator's formulas exactly.
inline constexpr double kFgdMaxSpecCpuMilli = 128000;
inline constexpr double kFgdMaxSpecGpuMilli = 8000;

std::unique_ptr<Policy> make_random_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_dotprod_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_gpupacking_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_bestfit_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_fgd_policy(const PolicyConfig& config);
std::unique_ptr<Policy> make_lepton_policy(const PolicyConfig& config);

}  // namespace lepton::sched
