// Launches and terminations, made off the control loop for providers whose calls block.
//
// A provider behind a network API (Provider::calls_block(), such as EC2) can take seconds to
// answer a RunInstances call, and up to its HTTPS timeout when it does not answer. Made on the
// control loop, that call would hold up every API request, heartbeat and scheduling round. Here
// each such provider gets one thread, which makes its calls one after another; the control loop
// starts calls and collects their results on a later round. Calls to other providers (the
// emulated clouds, which answer at once) are made inline, so their results are there at once.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cloud/provider.h"

namespace lepton::server {

class ProviderCalls {
 public:
  using Outcome = Result<std::vector<cloud::Instance>>;  // terminate: an empty list, or its error
  struct Ended {
    uint64_t id = 0;
    Outcome outcome{std::vector<cloud::Instance>{}};
  };

  explicit ProviderCalls(std::vector<std::shared_ptr<cloud::Provider>> providers);
  ~ProviderCalls();  // drain()
  // Drops the calls not started and waits for those being made to end (a provider that does not
  // answer: up to its HTTPS timeout); their results stay for take_ended(). No call starts after.
  void drain();
  ProviderCalls(const ProviderCalls&) = delete;
  ProviderCalls& operator=(const ProviderCalls&) = delete;

  // Start a call on provider `p`; the id names its result.
  uint64_t provision(size_t p, cloud::ProvisionRequest request);
  uint64_t terminate(size_t p, std::vector<std::string> instance_ids);
  // The result of call `id` once it has ended (then forgotten); nullopt while in flight.
  std::optional<Outcome> take(uint64_t id);
  // Every call that has ended and was not taken, oldest first.
  std::vector<Ended> take_ended();
  // Whether provider `p` has a call started and not yet taken.
  bool busy(size_t p) const;
  // Whether provider `p`'s calls run on a thread of their own.
  bool off_loop(size_t p) const { return lanes_[p] != nullptr; }

 private:
  struct Lane {  // one thread for one provider whose calls block
    std::thread thread;
    std::deque<std::pair<uint64_t, std::function<Outcome()>>> queue;
  };
  uint64_t start(size_t p, std::function<Outcome()> call);
  void run(Lane& lane);

  std::vector<std::shared_ptr<cloud::Provider>> providers_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // nullptr: the provider's calls are made inline
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, size_t> open_;  // started, not taken: call -> provider
  std::map<uint64_t, Outcome> ended_;
};

}  // namespace lepton::server
