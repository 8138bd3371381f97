// The Store: lepton's durable state. Every state change that matters is committed here before the
// API answers. One interface, several backends (SQLite now; PostgreSQL later); the same contract
// test suite runs on each (store_contract_test.cpp).
//
// Writes go through commit(WriteBatch): all of a batch or none of it, durably, and each commit
// bumps a monotonically increasing revision. Reads return copies. A Store is used from one thread
// (the server's control loop); it is not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.h"
#include "core/status.h"

namespace lepton::store {

struct JobRecord {
  std::string id;         // assigned by the server, e.g. "j-42"
  std::string name;       // the spec's name, for listings
  std::string spec_json;  // the JobSpec, encoded by spec/ (opaque to the store)
  JobState state = JobState::kPending;
  int restarts = 0;    // how many times the job was restarted after a failure
  std::string reason;  // why it waits or why it failed; may be empty
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  // The client's Idempotency-Key of the submission (empty: none): a retry with the same key gets
  // this job instead of a second one.
  std::string idempotency_key{};
  bool operator==(const JobRecord&) const = default;
};

// One task per node of a job, identified by (job_id, rank).
struct TaskRecord {
  std::string job_id;
  int rank = 0;
  int attempt = 0;        // bumped on every (re)start; an agent report names the attempt
  std::string node;       // empty while unscheduled
  uint32_t gpu_mask = 0;  // physical GPUs on `node` (bit i = GPU i)
  int32_t gpu_milli = 0;  // share of each of those GPUs
  JobState state = JobState::kPending;
  int exit_code = -1;  // -1 while unknown
  std::string reason;
  int64_t updated_ms = 0;
  bool operator==(const TaskRecord&) const = default;
};

struct NodeRecord {
  std::string name;     // unique
  std::string address;  // where the agent can be reached or was seen from; may be empty
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int gpu_count = 0;
  std::string gpu_model;  // empty when gpu_count is 0
  bool ready = false;     // false once heartbeats stop
  int64_t last_heartbeat_ms = 0;
  bool operator==(const NodeRecord&) const = default;
};

// A queue (core/queue.h) by name.
struct QueueRecord {
  std::string name;       // unique
  std::string spec_json;  // the QueueSpec, encoded by spec/ (opaque to the store)
  bool operator==(const QueueRecord&) const = default;
};

// A deployment (core/deployment.h) by name, with the controller's state of its replicas.
struct DeploymentRecord {
  std::string name;        // unique
  std::string spec_json;   // the DeploymentSpec, encoded by spec/ (opaque to the store)
  std::string state_json;  // the controller's state (opaque to the store)
  bool operator==(const DeploymentRecord&) const = default;
};

// A machine lepton rented from a provider (server/, issue 5), with its price, lifetime and the
// work it ran, for the cloud autoscaler and `lepton cost`. Kept after the machine ends.
struct InstanceRecord {
  std::string id;           // the provider's instance id; unique
  std::string record_json;  // the autoscaler's record (opaque to the store)
  bool operator==(const InstanceRecord&) const = default;
};

// A pool of cloud offers that could not launch (no capacity, a quota), which the autoscaler skips
// until `until_ms` (server/, issue 5). Kept so that a restarted server does not walk into the
// same failures again.
struct FailedPoolRecord {
  std::string pool;  // "cloud/region[/zone]/instance_type[/spot]"; unique
  int64_t until_ms = 0;
  bool operator==(const FailedPoolRecord&) const = default;
};

// A named counter (job ids) raised within a batch: the id is stored with what carries it, in the
// same commit, and a counter never falls (the largest value written stays).
struct CounterRecord {
  std::string name;
  int64_t value = 0;  // > 0
  bool operator==(const CounterRecord&) const = default;
};

struct EventRecord {
  int64_t revision = 0;  // assigned by commit(); ignored on input
  int64_t time_ms = 0;
  std::string object;  // e.g. "job/j-42", "node/gpu-1"
  std::string message;
  bool operator==(const EventRecord&) const = default;
};

// Upserts (by key) and appends, applied atomically by Store::commit. Within one batch, the last
// record with a key wins, and a node, queue or deployment both upserted and deleted ends up
// deleted. Keys (job id, task job_id, node name, queue name) must be non-empty and ranks
// non-negative.
struct WriteBatch {
  std::vector<JobRecord> jobs;    // key: id
  std::vector<TaskRecord> tasks;  // key: (job_id, rank)
  std::vector<NodeRecord> nodes;  // key: name
  std::vector<std::string> deleted_nodes;
  std::vector<QueueRecord> queues;  // key: name
  std::vector<std::string> deleted_queues;
  std::vector<DeploymentRecord> deployments;  // key: name
  std::vector<std::string> deleted_deployments;
  std::vector<InstanceRecord> instances;       // key: id
  std::vector<FailedPoolRecord> failed_pools;  // key: pool
  std::vector<CounterRecord> counters;         // key: name; raised, never lowered
  std::vector<EventRecord> events;             // appended, in order
  bool empty() const {
    return jobs.empty() && tasks.empty() && nodes.empty() && deleted_nodes.empty() &&
           queues.empty() && deleted_queues.empty() && deployments.empty() &&
           deleted_deployments.empty() && instances.empty() && failed_pools.empty() &&
           counters.empty() && events.empty();
  }
  // Adds a batch made after this one, so that committing the sum leaves what committing the two
  // in order leaves (a group commit): a node, queue or deployment deleted here and upserted in
  // `later` is no longer deleted.
  void append(WriteBatch&& later);
};

class Store {
 public:
  virtual ~Store() = default;

  // Applies `batch` atomically and durably (committed to disk before returning); returns the new
  // revision. An empty batch changes nothing and returns the current revision. On failure nothing
  // of the batch is applied.
  virtual Result<int64_t> commit(const WriteBatch& batch) = 0;
  // The revision of the last commit (0 for a new store).
  virtual int64_t revision() const = 0;
  // A random id given to the store when it was created, never changed: a data dir remembers it,
  // so a store that was emptied or swapped is not mistaken for its own.
  virtual const std::string& store_id() const = 0;
  // The next value of a named counter (1, 2, ...), durably: a value is never handed out twice,
  // even across restarts.
  virtual Result<int64_t> next_id(std::string_view counter) = 0;
  // A counter's value: the last handed out by next_id() or written by a batch (0 for none).
  virtual Result<int64_t> counter(std::string_view name) = 0;

  // Jobs ordered by creation (created_ms, then id).
  virtual Result<std::vector<JobRecord>> list_jobs() = 0;
  virtual Result<std::optional<JobRecord>> get_job(const std::string& id) = 0;
  // Tasks of one job ordered by rank; with an empty job_id, all tasks ordered by (job_id, rank).
  virtual Result<std::vector<TaskRecord>> list_tasks(const std::string& job_id) = 0;
  // Nodes ordered by name.
  virtual Result<std::vector<NodeRecord>> list_nodes() = 0;
  // Queues ordered by name.
  virtual Result<std::vector<QueueRecord>> list_queues() = 0;
  // Deployments ordered by name.
  virtual Result<std::vector<DeploymentRecord>> list_deployments() = 0;
  // Instances ordered by id.
  virtual Result<std::vector<InstanceRecord>> list_instances() = 0;
  // Failed pools ordered by pool, the expired ones too.
  virtual Result<std::vector<FailedPoolRecord>> list_failed_pools() = 0;
  // Events with revision > `after`, oldest first, at most `limit`. A page can end inside a
  // revision; to resume without a gap, continue after the last revision that is complete.
  virtual Result<std::vector<EventRecord>> events_since(int64_t after, size_t limit) = 0;
};

}  // namespace lepton::store
