// The JSON form of a job spec, for the API. It uses the YAML's field names (spec/job_yaml.h), and
// job_spec_to_json writes one canonical form, with every field and keys in this order:
//
//   {"name": "train",
//    "resources": {"accelerators": "A100:8", "cpus": 4, "memory": 16},
//    "num_nodes": 2, "envs": {"EPOCHS": "3"}, "setup": "", "run": "python train.py",
//    "max_restarts": 2, "queue": "team-a", "priority": 10, "preemptible": false}
//
// - resources.accelerators: absent without GPUs; "MODEL:COUNT" for one model ("T4:0.5" for half
//   a GPU); a list ["A100:8", "H100:8"] for several acceptable models; a bare JSON number (8, 0.5)
//   for GPUs of any model.
// - resources.cpus: cores as a number (4, 0.5); resources.memory: GiB as a number (16, 0.5).
// - envs: string values.
// - queue: "" for the default queue; priority: an integer; preemptible: a bool.
//
// job_spec_from_json also accepts what the YAML does ("4+", {"A100": 8}, numbers or bools in
// envs, null or no key for an absent optional field, so specs stored before a field existed still
// decode), and resources in the structured form
// {"cpu_milli": 4000, "memory_mib": 16384, "gpu_count": 8, "gpu_milli": 1000,
//  "gpu_models": ["A100"]} (not mixed with the other). Unknown and duplicate fields are errors;
// messages read "FIELD: expected ..., got ...". For every valid spec with canonical GPU model
// names, job_spec_from_json(job_spec_to_json(s)) == s.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/job.h"
#include "core/status.h"

namespace lepton::spec {

nlohmann::ordered_json job_spec_to_json_value(const JobSpec& spec);
// Compact JSON text of job_spec_to_json_value; never throws (invalid UTF-8 is replaced).
std::string job_spec_to_json(const JobSpec& spec);

Result<JobSpec> job_spec_from_json(std::string_view text);

}  // namespace lepton::spec
