// Deployments: long-running inference endpoints. A deployment runs `replicas` copies of one
// server process (each a one-task job the control plane manages), reached through the gateway at
// /d/NAME/. Plain values, no I/O; codecs live in spec/, the controller and autoscaler in server/.
#pragma once

#include <string>

#include "core/job.h"
#include "core/status.h"

namespace lepton {

// Written as YAML (or the same fields in JSON):
//   kind: deployment
//   name: chat
//   resources: {accelerators: H100:1, cpus: 8, memory: 64}
//   envs: {MODEL: llama}
//   setup: pip install vllm
//   run: vllm serve $MODEL --port $PORT
//   port: 8000                 # optional: the port replicas listen on; default: one is assigned
//                              # to each replica and passed in $PORT
//   replicas: {min: 1, max: 4} # or a number (min = max); min 0 allows scale to zero
//   autoscale: {target_in_flight: 8, window: 60, panic_window: 6, scale_to_zero_after: 300}
//   readiness: {path: /healthz}
//   auth: public               # or token: requests need "Authorization: Bearer TOKEN"
//   queue: serving
//   priority: 100
//   preemptible: false
struct DeploymentSpec {
  // The replica's job: name (the deployment's), resources, gpu_models, envs, setup, run, queue,
  // priority and preemptible. num_nodes is 1 and max_restarts 0: the controller replaces a
  // replica that ends.
  JobSpec replica;
  int port = 0;  // 0: assigned per replica
  int min_replicas = 1;
  int max_replicas = 1;
  // Autoscaling: requests in flight per replica the autoscaler aims for, averaged over `window_s`
  // (stable) and `panic_window_s` (bursts); with min_replicas 0, a deployment with no request in
  // flight for `scale_to_zero_after_s` goes to zero replicas.
  int target_in_flight = 8;
  int window_s = 60;
  int panic_window_s = 6;
  int scale_to_zero_after_s = 300;
  std::string readiness_path = "/";  // GET must answer 2xx before a replica gets traffic
  bool token_auth = false;           // auth: token
  // With replica.use_spot: this many replicas run on on-demand machines whatever happens; the
  // rest on spot, falling back to on-demand when no spot machine can be rented.
  int min_on_demand = 0;

  const std::string& name() const { return replica.name; }
  bool operator==(const DeploymentSpec&) const = default;
};

inline constexpr int kMaxReplicas = 1000;
inline constexpr int kMaxTargetInFlight = 100000;
inline constexpr int kMaxWindowSeconds = 3600;
inline constexpr int kMaxScaleToZeroSeconds = 7 * 24 * 3600;

// Checks the replica job (validate_job_spec) and the deployment's own fields; the error names the
// field.
Status validate_deployment_spec(const DeploymentSpec& spec);

}  // namespace lepton
