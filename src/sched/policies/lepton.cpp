// EXPLORATION VERSION (temporary)
#include <cmath>
#include <cstdlib>

#include "sched/policies/policies.h"

namespace lepton::sched {
namespace {

double env(const char* n, double d) {
  const char* v = std::getenv(n);
  return v ? std::atof(v) : d;
}

class LeptonPolicy final : public Policy {
 public:
  explicit LeptonPolicy(TypicalWorkload workload) : workload_(std::move(workload)) {
    mode_ = static_cast<int>(env("LX_MODE", 0));
    q_ = env("LX_Q", 40);
    lambda_ = env("LX_L", 0.0);
    cpuw_ = env("LX_CPUW", 0.0);
  }
  std::string_view name() const override { return "lepton"; }

  NodeScore score(const NodeState& state, const Request& request) const override {
    const double before = gpu_frag_milli(state, workload_);
    if (!request.res.fractional()) return {value(before, state_after(state, request, 0)), 0};
    NodeScore best{-HUGE_VAL, kAnyFittingGpu};
    int16_t previous = -1;
    for (int i = 0; i < state.gpu_count; ++i) {
      int16_t free = state.gpu_free_sorted[i];
      if (free < request.res.gpu_milli) break;
      if (free == previous) continue;
      previous = free;
      double v = value(before, state_after(state, request, free));
      if (v > best.score) best = {v, free};
    }
    return best;
  }

 private:
  double value(double frag_before, const NodeState& after) const {
    const double delta = frag_before - gpu_frag_milli(after, workload_);
    double free_after = static_cast<double>(after.gpu_free_total());
    double cpu_left = static_cast<double>(after.cpu_free) / static_cast<double>(after.cpu_total);
    switch (mode_) {
      case 0:
        return delta - 1e-6 * free_after;
      case 1: {  // FGD squash then packing
        double s =
            static_cast<double>(static_cast<int64_t>(100.0 / (1.0 + std::exp(-delta / 1000))));
        return s * 1e6 - free_after - cpuw_ * cpu_left;
      }
      case 2: {  // quantized delta then packing
        return std::floor(delta / q_) * 1e6 - free_after - cpuw_ * cpu_left;
      }
      case 3:
        return delta - lambda_ * free_after - cpuw_ * cpu_left * 1000;
      case 4: {  // FGD squash then lowest id
        double s =
            static_cast<double>(static_cast<int64_t>(100.0 / (1.0 + std::exp(-delta / 1000))));
        return s;
      }
    }
    return delta;
  }

  TypicalWorkload workload_;
  int mode_;
  double q_, lambda_, cpuw_;
};

}  // namespace

std::unique_ptr<Policy> make_lepton_policy(const PolicyConfig& config) {
  return std::make_unique<LeptonPolicy>(config.workload);
}

}  // namespace lepton::sched
