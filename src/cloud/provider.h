// The interface every source of machines implements (DESIGN.md, module cloud/): what it offers,
// launching machines that start the lepton agent, terminating them, listing them, and telling
// when the provider is about to take one away. The autoscaler (server/cloud_autoscaler.cpp)
// drives providers through this interface only.
//
// Errors are Status values. Two codes have a fixed meaning, because the autoscaler fails over to
// the next offer on both:
// - StatusCode::kUnavailable: the provider has no capacity for this request now (for example EC2
//   InsufficientInstanceCapacity);
// - StatusCode::kResourceExhausted: the account's quota is reached (for example EC2
//   VcpuLimitExceeded).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cloud/catalog.h"
#include "core/status.h"

namespace lepton::cloud {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class InstanceState { kPending, kRunning, kStopping, kStopped, kTerminating, kTerminated };

inline std::string_view instance_state_name(InstanceState s) {
  switch (s) {
    case InstanceState::kPending:
      return "pending";
    case InstanceState::kRunning:
      return "running";
    case InstanceState::kStopping:
      return "stopping";
    case InstanceState::kStopped:
      return "stopped";
    case InstanceState::kTerminating:
      return "terminating";
    case InstanceState::kTerminated:
      break;
  }
  return "terminated";
}

struct Instance {
  std::string id;  // the provider's id, e.g. "i-1234567890abcdef0"
  std::string cloud;
  std::string instance_type;
  std::string region;
  std::string zone;
  InstanceState state = InstanceState::kPending;
  bool spot = false;
  std::string private_ip;
  std::string public_ip;
  std::string launch_time;  // ISO 8601 as the provider reports it
  Labels labels;            // the provider's tags
};

struct ProvisionRequest {
  Offer offer;  // what to launch and where (cloud, instance type, region)
  bool spot = false;
  int count = 1;
  std::string bootstrap_script;  // runs at first boot; installs and starts the lepton agent
  Labels labels;                 // become provider tags
  std::string idempotency_key;   // the same key never launches twice, where the provider allows
};

struct InterruptionNotice {
  std::string instance_id;
  std::string reason;  // the provider's words, e.g. "Server.SpotInstanceTermination"
  std::string time;    // when the instance goes away (ISO 8601); empty when unknown or past
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual std::string_view name() const = 0;
  // The offers this provider can launch now, cheapest first (catalog.h find_offers order).
  virtual Result<std::vector<Offer>> offers(const OfferQuery& query) const = 0;
  virtual Result<std::vector<Instance>> provision(const ProvisionRequest& request) = 0;
  virtual Status terminate(const std::vector<std::string>& instance_ids) = 0;
  // The instances this lepton pool launched (not every instance of the account).
  virtual Result<std::vector<Instance>> list_instances() = 0;
  virtual Result<std::vector<InterruptionNotice>> interruption_notices() = 0;
  // Posts an interruption notice for a running spot instance now, as the provider would before
  // taking it away (the demo's and tests' hook, `lepton cloud interrupt`). Only emulated clouds
  // can; a real cloud answers kInvalidArgument.
  virtual Status interrupt(const std::string& instance_id) {
    (void)instance_id;
    return Status::invalid_argument("provider " + std::string(name()) +
                                    ": interrupting an instance on request is only possible on "
                                    "emulated clouds (--demo-clouds)");
  }
  // Whether provision and terminate go over a network and may take seconds (up to a timeout)
  // to answer; the server then makes them on a thread of their own (server/provider_calls.h).
  virtual bool calls_block() const { return false; }
};

}  // namespace lepton::cloud
