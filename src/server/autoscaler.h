// The autoscaler of one deployment, as Knative's KPA does it: the signal is requests in flight
// (including requests the gateway holds while no replica is ready), averaged over a stable window
// and a short panic window. The replicas wanted are ceil(average / target) for the larger of the
// two averages, so the count goes up with the panic window and down only as the stable window
// lets go (the long window alone lags a step up by up to a minute). A burst that asks for
// at least twice the replicas that are ready starts (or extends) panic mode: until one stable
// window after the last such burst the deployment scales up on the panic average and never down.
// Comparing with ready replicas, not started ones, keeps the panic going while new replicas are
// still starting, as Knative does. With min 0, a deployment with nothing in flight
// for scale_to_zero_after goes to zero (out of panic); anything in flight more recently keeps at
// least one replica, so a request the gateway holds brings one back. A new autoscaler (after a
// restart) keeps the replicas there are until it has a panic window of samples.
//
// Pure and deterministic: time comes in as arguments. Counting in-flight requests, not completed
// ones, keeps long streams visible as load.
#pragma once

#include <cstdint>
#include <deque>

#include "core/deployment.h"

namespace lepton::server {

class Autoscaler {
 public:
  // `start_ms` counts as the last activity: a new deployment gets one replica (with min 0) until
  // scale_to_zero_after has passed with no traffic.
  explicit Autoscaler(int64_t start_ms) : last_active_ms_(start_ms) {}

  // One observation of requests in flight; call regularly (every 100 ms to a second).
  void observe(int64_t now_ms, double in_flight);

  // The replicas the deployment should have, given `current` (those running or starting, not
  // draining) of which `ready` are ready, clamped to the spec's min and max.
  int desired(const DeploymentSpec& spec, int current, int ready, int64_t now_ms);

  bool panicking(int64_t now_ms) const { return now_ms < panic_until_ms_; }

 private:
  // The mean of the samples newer than `since_ms`; 0 with none.
  double average(int64_t since_ms) const;

  struct Sample {
    int64_t time_ms;
    double in_flight;
  };
  std::deque<Sample> samples_;  // the last kMaxWindowSeconds at most
  int64_t last_active_ms_;
  int64_t panic_until_ms_ = 0;
  int panic_replicas_ = 0;  // the most wanted during this panic
};

}  // namespace lepton::server
