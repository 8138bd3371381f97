// The cloud autoscaler's choices, kept pure so they are tested without processes: which offer
// fits a job's tasks at the lowest hourly price, which failed offers to skip for a while, and
// whether a task fits room on machines already launching.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cloud/catalog.h"
#include "core/job.h"

namespace lepton::server {

// What one machine must hold for one task of `spec`: its GPUs (whole, or a share of one), CPU
// and memory, of an accepted model, in an allowed cloud and region, spot when the job asks.
bool offer_fits(const cloud::Offer& offer, const JobSpec& spec);

// The hourly price of an offer as launched (spot or on-demand).
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

// The fitting offers for `spec`, cheapest first (by the price as launched, then price per GPU),
// without the pools `memory` skips. `offers` is any list (the catalog, or a provider's offers).
std::vector<cloud::Offer> candidate_offers(const std::vector<cloud::Offer>& offers,
                                           const JobSpec& spec, const FailureMemory& memory,
                                           int64_t now_ms);

// Reorders `candidates` of one group (all spot or all on-demand, cheapest first as
// candidate_offers gives them) by the price per GPU each is expected to fill. A machine bigger
// than the job fills with the other waiting jobs that would fit it too, up to its size. A
// machine of 4 GPUs at $2/h for four waiting one-GPU jobs beats four of 1 GPU at $1/h. Only
// machines whose price per GPU could beat the cheapest candidate are weighed, so with nothing
// else waiting the order stays the price order.
void order_by_fill(std::vector<cloud::Offer>& candidates, size_t begin, size_t end, bool spot,
                   const JobSpec& spec, const std::vector<const JobSpec*>& others);

// Free room on a machine that is launching (or joined but not yet used): tasks of pending jobs
// are counted into it before new machines are bought.
struct Room {
  std::string instance;
  std::string for_job;  // the job it was rented for
  cloud::Offer offer;
  bool spot = false;
  double gpus = 0;  // whole GPUs free (a fractional task takes a whole one here)
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
};

// All of a machine of `offer` as room.
inline Room room_on(std::string instance, std::string for_job, const cloud::Offer& offer,
                    bool spot) {
  return {std::move(instance),
          std::move(for_job),
          offer,
          spot,
          offer.gpu_count,
          static_cast<int64_t>(offer.vcpus * 1000),
          static_cast<int64_t>(offer.memory_gib * 1024)};
}

// Takes room for every task of job `job` (one task per machine, as the scheduler places them)
// from `rooms`, all or nothing, the machines rented for it first. Returns whether the job fits.
bool take_room(std::vector<Room>& rooms, const JobSpec& spec, const std::string& job);
// How many of the job's tasks `rooms` could hold now (at most its num_nodes), as take_room
// counts them: the machines a gang still has after losing one, so only the rest are rented.
int tasks_with_room(std::vector<Room>& rooms, const JobSpec& spec, const std::string& job);

}  // namespace lepton::server
