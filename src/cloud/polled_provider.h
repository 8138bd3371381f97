// A provider whose instance listing and interruption notices are polled on a thread of its own,
// for providers behind a network API. The autoscaler asks every second on the server's control
// loop; a DescribeInstances round trip takes a large part of that and is rate limited, so the
// answers come from the last poll. Provisioning and termination pass through (they are rare, and
// their answer is needed at once) and start a new poll.
//
// A cloud's listing is eventually consistent: a machine just launched may be missing from it for
// a while (EC2 documents this for DescribeInstances). A machine provisioned through this provider
// is listed as pending until a poll shows it, or until `launch_grace` has passed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cloud/provider.h"

namespace lepton::cloud {

class PolledProvider final : public Provider {
 public:
  // `inner` must allow calls from two threads at once (the poller's and the caller's).
  PolledProvider(std::shared_ptr<Provider> inner, std::chrono::milliseconds period,
                 std::chrono::milliseconds launch_grace = std::chrono::minutes(5));
  ~PolledProvider() override;  // stops and joins the poller

  std::string_view name() const override { return inner_->name(); }
  Result<std::vector<Offer>> offers(const OfferQuery& query) const override {
    return inner_->offers(query);
  }
  Result<std::vector<Instance>> provision(const ProvisionRequest& request) override;
  Status terminate(const std::vector<std::string>& instance_ids) override;
  // The last poll's answer (waiting for the first poll, at most one period); the last poll's
  // error when it failed.
  Result<std::vector<Instance>> list_instances() override;
  Result<std::vector<InterruptionNotice>> interruption_notices() override;
  // Passes through, and starts a new poll so that the notice is seen soon.
  Status interrupt(const std::string& instance_id) override;
  bool calls_block() const override { return inner_->calls_block(); }

  // Polls done so far (for tests and status output).
  int64_t polls() const;

 private:
  using Clock = std::chrono::steady_clock;
  void run();
  void wait_for_first_poll(std::unique_lock<std::mutex>& lock);

  std::shared_ptr<Provider> inner_;
  const std::chrono::milliseconds period_;
  const std::chrono::milliseconds launch_grace_;
  mutable std::mutex mu_;
  std::condition_variable wake_;    // the poller: a poll is wanted now, or stop
  std::condition_variable polled_;  // callers waiting for the first poll
  bool stop_ = false;
  bool poll_now_ = false;
  int64_t polls_ = 0;
  Result<std::vector<Instance>> instances_{Status(StatusCode::kUnavailable, "not polled yet")};
  Result<std::vector<InterruptionNotice>> notices_{
      Status(StatusCode::kUnavailable, "not polled yet")};
  struct Launched {
    Instance instance;
    Clock::time_point at;
  };
  std::map<std::string, Launched> launched_;  // provisioned here, not yet seen in a poll
  std::thread thread_;
};

}  // namespace lepton::cloud
