#include "spec/deployment_spec.h"

#include "spec/decode.h"
#include "spec/job_json.h"

namespace lepton::spec {

Result<DeploymentSpec> parse_deployment_yaml(std::string_view text, std::string_view file) {
  auto root = internal::read_yaml(text, file);
  if (!root.is_ok()) return root.status();
  return internal::decode_deployment_spec(*root, {.file = file, .structured_resources = false});
}

Result<DeploymentSpec> deployment_spec_from_json(std::string_view text) {
  auto root = internal::read_json(text, "a deployment spec");
  if (!root.is_ok()) return root.status();
  return internal::decode_deployment_spec(*root, {.file = {}, .structured_resources = true});
}

nlohmann::ordered_json deployment_spec_to_json_value(const DeploymentSpec& spec) {
  using nlohmann::ordered_json;
  ordered_json job = job_spec_to_json_value(spec.replica);
  ordered_json j = ordered_json::object();
  j["kind"] = "deployment";
  for (const char* key : {"name", "resources", "envs", "setup", "run", "queue", "priority",
                          "preemptible", "use_spot", "clouds", "regions"}) {
    j[key] = job[key];
  }
  j["port"] = spec.port > 0 ? ordered_json(spec.port) : ordered_json(nullptr);
  j["replicas"] = {{"min", spec.min_replicas},
                   {"max", spec.max_replicas},
                   {"min_on_demand", spec.min_on_demand}};
  j["autoscale"] = {{"target_in_flight", spec.target_in_flight},
                    {"window", spec.window_s},
                    {"panic_window", spec.panic_window_s},
                    {"scale_to_zero_after", spec.scale_to_zero_after_s}};
  j["readiness"] = {{"path", spec.readiness_path}};
  j["auth"] = spec.token_auth ? "token" : "public";
  return j;
}

std::string deployment_spec_to_json(const DeploymentSpec& spec) {
  return deployment_spec_to_json_value(spec).dump(-1, ' ', false,
                                                  nlohmann::json::error_handler_t::replace);
}

}  // namespace lepton::spec
