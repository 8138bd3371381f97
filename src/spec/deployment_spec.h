// Deployment specs (core/deployment.h) as YAML files and as JSON for the API. Both forms take the
// same fields; the JSON form's resources are the job's (spec/job_json.h), and
// deployment_spec_to_json writes one canonical form:
//
//   {"kind": "deployment", "name": "chat", "resources": {...}, "envs": {}, "setup": "",
//    "run": "...", "queue": "", "priority": 0, "preemptible": true, "port": null,
//    "replicas": {"min": 1, "max": 4},
//    "autoscale": {"target_in_flight": 8, "window": 60, "panic_window": 6,
//                  "scale_to_zero_after": 300},
//    "readiness": {"path": "/healthz"}, "auth": "public"}
//
// For every valid spec with canonical GPU model names,
// deployment_spec_from_json(deployment_spec_to_json(s)) == s. Errors read
// "[FILE:LINE:COLUMN: ]FIELD: expected ..., got ...".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/deployment.h"
#include "core/status.h"

namespace lepton::spec {

Result<DeploymentSpec> parse_deployment_yaml(std::string_view text, std::string_view file);
Result<DeploymentSpec> deployment_spec_from_json(std::string_view text);

nlohmann::ordered_json deployment_spec_to_json_value(const DeploymentSpec& spec);
std::string deployment_spec_to_json(const DeploymentSpec& spec);

}  // namespace lepton::spec
