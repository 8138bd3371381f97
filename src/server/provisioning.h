// What the cloud autoscaler remembers of providers' answers, kept pure so it is tested without
// processes: an offer's price as launched, the pools that failed and are skipped for a while, and
// the rest a provider gets when it does not answer. Which offer to rent, and what room on machines
// already rented a job takes, is the renting policy's (sched/renting.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>

#include "cloud/catalog.h"
#include "core/status.h"

namespace lepton::server {

// The hourly price of an offer as launched (spot or on-demand); NaN for spot when it has no spot
// price.
double offer_price(const cloud::Offer& offer, bool spot);

// Pools that failed (no capacity, quota), skipped until their time is up (SkyPilot walks the same
// failing list on every retry; we do not).
class FailureMemory {
 public:
  explicit FailureMemory(int64_t ttl_ms) : ttl_ms_(ttl_ms) {}
  // Returns when the pool may be tried again.
  int64_t failed(const std::string& pool, int64_t now_ms) {
    return until_[pool] = now_ms + ttl_ms_;
  }
  // A failure remembered elsewhere (the store): skipped until `until_ms`.
  void remember(const std::string& pool, int64_t until_ms) {
    int64_t& until = until_[pool];
    until = std::max(until, until_ms);
  }
  bool skip(const std::string& pool, int64_t now_ms) const {
    auto it = until_.find(pool);
    return it != until_.end() && now_ms < it->second;
  }
  // The pools still skipped, with when they may be tried again.
  std::map<std::string, int64_t> active(int64_t now_ms) const;

 private:
  int64_t ttl_ms_;
  std::map<std::string, int64_t> until_;
};

// Whether a provider's error is its answer that an offer has no room now (kUnavailable) or that
// a quota is reached (kResourceExhausted), rather than a failure to ask.
inline bool is_capacity_answer(const Status& status) {
  return status.code() == StatusCode::kUnavailable ||
         status.code() == StatusCode::kResourceExhausted;
}

// A provider whose calls failed with something other than an answer about capacity (it could not
// be reached, or refused the call) rests: its provisioning and terminating wait 15 s after the
// first such failure, twice as long after each next one, up to 5 minutes, and an answer ends the
// rest. Its calls are made on the control loop, so a cloud API that does not answer (up to the
// HTTPS timeout) must not be called every round.
class ProviderBackoff {
 public:
  static constexpr int64_t kFirstMs = 15'000;
  static constexpr int64_t kMostMs = 300'000;
  // The outcome of a call: success or a capacity answer ends the rest, anything else starts or
  // lengthens it.
  void record(const Status& outcome, int64_t now_ms) {
    if (outcome.is_ok() || is_capacity_answer(outcome)) {
      delay_ms_ = until_ms_ = 0;
      last_error_.clear();
      return;
    }
    delay_ms_ = std::clamp<int64_t>(2 * delay_ms_, kFirstMs, kMostMs);
    until_ms_ = now_ms + delay_ms_;
    last_error_ = outcome.message();
  }
  bool resting(int64_t now_ms) const { return now_ms < until_ms_; }
  // "15 s": how long the rest still lasts, rounded up.
  std::string rest_left(int64_t now_ms) const {
    return std::to_string((until_ms_ - now_ms + 999) / 1000) + " s";
  }
  // What the failed call that started the rest said.
  const std::string& last_error() const { return last_error_; }

 private:
  int64_t delay_ms_ = 0;
  int64_t until_ms_ = 0;
  std::string last_error_;
};

}  // namespace lepton::server
