#include "core/deployment.h"

namespace lepton {

Status validate_deployment_spec(const DeploymentSpec& spec) {
  LEPTON_RETURN_IF_ERROR(validate_job_spec(spec.replica));
  if (spec.replica.num_nodes != 1) {
    return Status::invalid_argument("num_nodes: a deployment's replicas run on one node each");
  }
  if (spec.port < 0 || spec.port > 65535) {
    return Status::invalid_argument("port: expected 1..65535, or no port to have one assigned");
  }
  if (spec.min_replicas < 0 || spec.min_replicas > kMaxReplicas) {
    return Status::invalid_argument("replicas.min: expected 0.." + std::to_string(kMaxReplicas));
  }
  if (spec.max_replicas < 1 || spec.max_replicas > kMaxReplicas) {
    return Status::invalid_argument("replicas.max: expected 1.." + std::to_string(kMaxReplicas));
  }
  if (spec.min_on_demand < 0 || spec.min_on_demand > kMaxReplicas) {
    return Status::invalid_argument("replicas.min_on_demand: expected 0.." +
                                    std::to_string(kMaxReplicas));
  }
  if (spec.min_replicas > spec.max_replicas) {
    return Status::invalid_argument("replicas: expected min <= max, got min " +
                                    std::to_string(spec.min_replicas) + " and max " +
                                    std::to_string(spec.max_replicas));
  }
  if (spec.target_in_flight < 1 || spec.target_in_flight > kMaxTargetInFlight) {
    return Status::invalid_argument("autoscale.target_in_flight: expected 1.." +
                                    std::to_string(kMaxTargetInFlight));
  }
  if (spec.window_s < 1 || spec.window_s > kMaxWindowSeconds) {
    return Status::invalid_argument("autoscale.window: expected 1.." +
                                    std::to_string(kMaxWindowSeconds) + " seconds");
  }
  if (spec.panic_window_s < 1 || spec.panic_window_s > spec.window_s) {
    return Status::invalid_argument("autoscale.panic_window: expected 1 second up to the window (" +
                                    std::to_string(spec.window_s) + ")");
  }
  if (spec.scale_to_zero_after_s < 1 || spec.scale_to_zero_after_s > kMaxScaleToZeroSeconds) {
    return Status::invalid_argument("autoscale.scale_to_zero_after: expected 1.." +
                                    std::to_string(kMaxScaleToZeroSeconds) + " seconds");
  }
  const std::string& p = spec.readiness_path;
  bool path_ok = !p.empty() && p.front() == '/' && p.size() <= 1024;
  for (char c : p) path_ok = path_ok && c > ' ' && c < 0x7f;
  if (!path_ok) {
    return Status::invalid_argument(
        "readiness.path: expected an HTTP path starting with '/', printable ASCII, no spaces");
  }
  return Status::ok();
}

}  // namespace lepton
