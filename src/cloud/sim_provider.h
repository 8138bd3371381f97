// Emulated clouds (DESIGN.md: the `sim` provider), for demos and end-to-end tests: the offers are
// the real catalog's, but an instance is a process tree on this machine. Launching one starts,
// after an emulated boot delay, the request's bootstrap script with /bin/sh in a directory of its
// own; the script normally runs `lepton agent`, so the instance joins the server as a real node.
//
// The script sees the emulated machine in its environment:
//   LEPTON_INSTANCE_ID    the instance id (also the node name the agent should use)
//   LEPTON_INSTANCE_DIR   a directory for the instance (the agent's work directory)
//   LEPTON_SIM_GPUS       "MODEL:COUNT" of the offer (for `lepton agent --gpus`)
//   LEPTON_SIM_CPUS, LEPTON_SIM_MEMORY_GIB   the offer's vCPUs and memory
//
// What a real cloud does that is emulated:
// - capacity: each pool (cloud, region, zone, instance type, spot or not) holds at most
//   `capacity` instances at once (overridable per pool); a launch beyond it fails with
//   StatusCode::kUnavailable, like EC2's InsufficientInstanceCapacity;
// - quota: GPUs at once per cloud; beyond it StatusCode::kResourceExhausted;
// - spot interruptions: a notice is posted (interruption_notices()) `notice_s` before the
//   instance goes away; notices come at random (exponential, mean `mtbi_s` per spot instance,
//   seeded) and on request (interrupt());
// - idempotency: a request with the idempotency key of an earlier one answers with that one's
//   instances, as EC2's client token does, while they are listed.
// Terminating, or the end of a notice period, kills the instance's processes: the bootstrap's
// process group and every task the agent started (found through the pid files the executor
// keeps under the instance directory, agent/executor.h).
//
// Threads: one timer thread boots and ends instances; every method may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cloud/catalog.h"
#include "cloud/provider.h"

namespace lepton::cloud {

struct SimCloudOptions {
  std::string state_dir{};  // instance directories go under STATE_DIR/instances
  double boot_s = 2;        // launch to bootstrap start
  double notice_s = 120;    // spot: notice to the end of the instance
  double mtbi_s = 0;        // spot: mean time between random interruptions; 0: only interrupt()
  int capacity = 4;         // instances per pool at once
  std::map<std::string, int> pool_capacity{};  // offer_pool() (catalog.h) -> capacity
  std::map<std::string, int> quota_gpus{};     // cloud -> GPUs at once; absent: unlimited
  std::vector<std::string> clouds{};           // the clouds emulated; empty: every cloud offered
  uint64_t seed = 1;

  // Reads the JSON form: {"boot_s": 2, "notice_s": 120, "mtbi_s": 0, "capacity": 4,
  // "pool_capacity": {"aws/us-east-1/us-east-1a/p5.48xlarge/spot": 0}, "quota_gpus": {"aws": 16},
  // "clouds": ["aws", "gcp"], "seed": 1}; every field optional. Errors name the field.
  static Result<SimCloudOptions> from_json(std::string_view text);
};

class SimProvider : public Provider {
 public:
  // `catalog`: the offers to emulate (those of options.clouds are kept).
  static Result<std::unique_ptr<SimProvider>> create(std::vector<Offer> catalog,
                                                     SimCloudOptions options);
  // Kills every instance still alive: emulated machines do not outlive their cloud.
  ~SimProvider() override;

  std::string_view name() const override { return "sim"; }
  Result<std::vector<Offer>> offers(const OfferQuery& query) const override;
  Result<std::vector<Instance>> provision(const ProvisionRequest& request) override;
  Status terminate(const std::vector<std::string>& instance_ids) override;
  // Every instance launched, terminated ones included (for ten minutes after they end).
  Result<std::vector<Instance>> list_instances() override;
  Result<std::vector<InterruptionNotice>> interruption_notices() override;

  // Posts an interruption notice for a running spot instance now (the demo's and tests' hook);
  // kConflict for an on-demand instance or one that has ended.
  Status interrupt(const std::string& instance_id) override;

  class Impl;

 private:
  explicit SimProvider(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lepton::cloud
