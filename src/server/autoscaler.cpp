#include "server/autoscaler.h"

#include <algorithm>
#include <cmath>

namespace lepton::server {

void Autoscaler::observe(int64_t now_ms, double in_flight) {
  samples_.push_back({now_ms, in_flight});
  if (in_flight > 0) last_active_ms_ = now_ms;
  const int64_t keep_ms = int64_t{kMaxWindowSeconds} * 1000;
  while (!samples_.empty() && samples_.front().time_ms < now_ms - keep_ms) samples_.pop_front();
}

double Autoscaler::average(int64_t since_ms) const {
  double sum = 0;
  int n = 0;
  for (auto it = samples_.rbegin(); it != samples_.rend() && it->time_ms > since_ms; ++it) {
    sum += it->in_flight;
    ++n;
  }
  return n == 0 ? 0 : sum / n;
}

int Autoscaler::desired(const DeploymentSpec& spec, int current, int ready, int64_t now_ms) {
  const double target = spec.target_in_flight;
  auto replicas_for = [&](int window_s) {
    const double avg = average(now_ms - int64_t{window_s} * 1000);
    return static_cast<int>(std::ceil(avg / target - 1e-9));
  };
  const int stable = replicas_for(spec.window_s);
  const int panic = replicas_for(spec.panic_window_s);
  // Up on the short window, down only as the long one lets go: a load that stays up keeps its
  // replicas even while the stable window still remembers a lower load.
  int want = std::max(stable, panic);
  if (current > 0 && panic >= 2 * std::max(ready, 1)) {
    if (!panicking(now_ms)) panic_replicas_ = ready;  // no scaling below what serves now
    panic_until_ms_ = now_ms + int64_t{spec.window_s} * 1000;
  }
  if (panicking(now_ms)) {
    // The most the panic asked for, not the replicas there are: a rolling update's extra
    // replica must not raise the count it is measured against.
    panic_replicas_ = std::max(panic_replicas_, panic);
    want = std::max(want, panic_replicas_);
  }
  // Nothing in flight for scale_to_zero_after: zero, even while the stable window still holds
  // the last requests. Before that, at least one.
  const bool quiet = now_ms - last_active_ms_ >= int64_t{spec.scale_to_zero_after_s} * 1000;
  if (quiet && !panicking(now_ms)) want = 0;
  if (!quiet) want = std::max(want, 1);
  // Until a panic window of samples has been seen (a new autoscaler, after a restart), there is
  // no load to go by: keep what runs.
  if (samples_.empty() || now_ms - samples_.front().time_ms < int64_t{spec.panic_window_s} * 1000) {
    want = std::max(want, current);
  }
  return std::clamp(want, spec.min_replicas, spec.max_replicas);
}

}  // namespace lepton::server
