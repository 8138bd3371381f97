// Jobs: what a user submits (JobSpec), and the lifecycle states of jobs and of their tasks (one
// task per node of a job). Plain values, no I/O; codecs live in spec/, persistence in store/.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/resources.h"
#include "core/status.h"

namespace lepton {

// A batch job, in the style of SkyPilot's task YAML:
//   name: train
//   resources: {accelerators: "A100:8", cpus: "4+", memory: "16+"}
//   num_nodes: 2
//   envs: {EPOCHS: "3"}
//   setup: pip install -r requirements.txt
//   run: python train.py
//   max_restarts: 2
//   queue: team-a
//   priority: 10
//   preemptible: false
struct JobSpec {
  std::string name;
  // Per node: CPU (milli-cores) and memory (MiB) are minimums; GPUs are exact.
  Resources resources;
  // GPU models the job accepts (canonical names); empty means any model.
  std::vector<std::string> gpu_models;
  int num_nodes = 1;
  std::map<std::string, std::string> envs;
  std::string setup;  // shell script run before `run` on every node; may be empty
  std::string run;    // shell script; required
  int max_restarts = 0;
  // The queue the job is submitted to; empty means kDefaultQueue ("default").
  std::string queue;
  // Order within the queue: higher first; -1000..1000.
  int priority = 0;
  // Whether the scheduler may stop the job to give its resources to other work (reclaim,
  // priority); a preempted job goes back to its queue.
  bool preemptible = true;
  // Where new machines may be rented for it (issue 5): spot offers (the job may be interrupted;
  // it is then requeued and resumes from $LEPTON_CHECKPOINT_DIR), and the clouds and regions
  // allowed (empty: any). Machines already in the cluster are used whatever they are.
  bool use_spot = false;
  std::vector<std::string> clouds;   // lower case, e.g. "aws"
  std::vector<std::string> regions;  // a region or a zone, e.g. "us-east-1"

  bool operator==(const JobSpec&) const = default;
};

inline constexpr int kMaxNodesPerJob = 1024;
inline constexpr int kMaxRestarts = 100;
inline constexpr size_t kMaxJobNameLength = 63;
inline constexpr int kMinJobPriority = -1000;
inline constexpr int kMaxJobPriority = 1000;

// Names of jobs, queues and other objects: 1 to 63 characters of [a-z0-9-], starting with a
// letter. The error names `field`.
Status validate_name(std::string_view field, std::string_view name);

// Checks invariants beyond syntax: a name of [a-z0-9-] (at most 63, starting with a
// letter), 1..1024 nodes, 0..100 restarts, a non-empty `run`, valid resources, environment names
// that are shell identifiers, a queue name (when given) like a job name, a priority of
// -1000..1000. The error names the field.
Status validate_job_spec(const JobSpec& spec);

// PENDING -> SCHEDULED -> STARTING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED.
enum class JobState { kPending, kScheduled, kStarting, kRunning, kSucceeded, kFailed, kCancelled };

std::string_view job_state_name(JobState state);  // "PENDING", ...
std::optional<JobState> parse_job_state(std::string_view name);
bool is_terminal(JobState state);

}  // namespace lepton
