// Reads job specs written as SkyPilot-style task YAML:
//
//   name: train                  # required: a-z, 0-9 and '-', starting with a letter
//   resources:                   # per node; optional
//     accelerators: A100:8       # MODEL (one GPU), MODEL:COUNT, MODEL:0.5 (a share of one GPU),
//                                # a bare count (any model), {A100: 8}, or a list of any-of
//                                # models with the same count: [A100:8, H100:8]
//     cpus: 4+                   # cores, a minimum ("4" and "4+" mean the same); default 1
//     memory: 16+                # GiB, a minimum, rounded up to whole MiB; default 1
//   num_nodes: 2                 # default 1
//   envs: {EPOCHS: 3}            # scalar values, kept as written
//   setup: pip install -r requirements.txt
//   run: python train.py         # required
//   max_restarts: 2              # default 0
//   queue: team-a                # a queue name like a job name; default: the "default" queue
//   priority: 10                 # -1000..1000, higher first within the queue; default 0
//   preemptible: false           # true or false; default true
//   kind: job                    # optional; a deployment spec (kind: deployment) is refused
//
// GPU model names are canonicalised (canonical_gpu_model). Unknown fields, wrong types, several
// documents and documents over 1 MiB are errors. Every error is one invalid_argument Status whose
// message reads "FILE:LINE:COLUMN: FIELD: expected ..., got '...'".
#pragma once

#include <string_view>

#include "core/job.h"
#include "core/status.h"

namespace lepton::spec {

// `file` names the document in errors only.
Result<JobSpec> parse_job_yaml(std::string_view text, std::string_view file);

}  // namespace lepton::spec
