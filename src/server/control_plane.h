// The control plane's state machine: jobs, tasks and nodes, the scheduler, and the agent
// protocol. It owns the Store and a sched::ClusterState mirror of the nodes; every change that
// matters is committed to the Store before the call returns, so a restart rebuilds it exactly.
//
// Threading: every method runs on one thread, the control loop (see server.h); nothing here
// locks. Time comes in as arguments (milliseconds since the epoch), so tests control it.
#pragma once

#include <array>
#include <climits>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cloud/provider.h"
#include "core/deployment.h"
#include "core/job.h"
#include "core/queue.h"
#include "gateway/routing.h"
#include "sched/cluster_state.h"
#include "sched/queues.h"
#include "sched/scheduler.h"
#include "server/autoscaler.h"
#include "server/cost_ledger.h"
#include "server/provider_calls.h"
#include "server/provisioning.h"
#include "server/task_logs.h"
#include "spec/agent_protocol.h"
#include "store/store.h"

namespace lepton::server {

using nlohmann::json;

// Bounds on rented machines of a pool. The key is an offer_pool() (cloud/catalog.h) or a prefix of
// one at a '/': "aws", "aws/us-east-1", "gcp/us-central1/us-central1-a/a2-highgpu-1g/spot".
struct PoolLimit {
  int min = 0;        // kept rented even when idle (only for a key naming one pool)
  int max = INT_MAX;  // never more at once
};

struct ControlPlaneOptions {
  std::string data_dir;  // job logs are kept under DATA_DIR/logs
  // Of each task's output, the first and the last this many bytes are kept (server/task_logs.h).
  int64_t log_head_bytes = 16 << 20;
  int64_t log_tail_bytes = 16 << 20;
  // Logs of jobs that ended longer ago than this are removed (0: kept for ever).
  int64_t log_retention_ms = 0;
  // A node missing heartbeats this long is lost (no new work); at least three heartbeat
  // intervals (below).
  int64_t node_timeout_ms = 10000;
  // What agents are told to use: this, or longer with many nodes, so that the server is sent at
  // most max_heartbeats_per_s (Nomad scales its heartbeat TTL the same way). The interval given
  // never shrinks while the server runs (nodes that leave do not shorten it), so no agent ever
  // holds a longer lease than the server counts on; at start it is sized for the stored nodes.
  int heartbeat_interval_ms = 300;
  int max_heartbeats_per_s = 1000;
  // Fencing (docs/control-plane.md, "Faults"): an agent that has not heard from the server for
  // lease_ms stops its tasks (agents are told in every reply); the tasks of a lost node are
  // started elsewhere only once that lease and fence_margin_ms (the agent's last try and the
  // kill) have run out since its last heartbeat, so an attempt never runs beside the next one.
  // 0: twice the node timeout. Never less than three heartbeat intervals.
  int64_t lease_ms = 0;
  int64_t fence_margin_ms = 10'000;
  std::string policy = "lepton";
  // How long a preempted task has between SIGTERM and SIGKILL; its resources stay held until
  // then (plus a margin for the agent to act).
  int64_t preempt_grace_ms = 30'000;
  // A job first in its queue that has waited this long gets nodes held for it (gang reservation).
  int64_t reserve_after_ms = 60'000;
  // Where deployments are reached ("http://127.0.0.1:8081"); empty when no gateway runs.
  std::string gateway_url{};
  // A replica taken out of service gets this long to finish the requests it has in flight.
  int64_t drain_timeout_ms = 30'000;
  // Checkpoints: a folder every node can reach at this path (LEPTON_CHECKPOINT_DIR is
  // DIR/JOB_ID), so a requeued job resumes wherever it lands. Empty: each agent uses its own.
  std::string checkpoint_dir{};
  // The cloud autoscaler (with providers, set_clouds()):
  int64_t cloud_idle_ms = 300'000;    // a rented machine without work this long is returned
  int64_t failover_ttl_ms = 600'000;  // a pool that failed to launch is skipped this long
  int64_t boot_timeout_ms = 600'000;  // a machine that has not joined by then is returned
  int max_instances = 16;             // rented machines at once
  std::map<std::string, PoolLimit> pool_limits{};
};

class ControlPlane {
 public:
  // Rebuilds the state from `store` (a new or an existing one). Nodes recorded as ready get a
  // fresh node_timeout_ms to reconnect, counted from `now_ms`.
  static Result<std::unique_ptr<ControlPlane>> open(std::unique_ptr<store::Store> store,
                                                    ControlPlaneOptions options, int64_t now_ms);

  // --- the user API (bodies and results are the JSON of the REST API) ---
  // With an idempotency key (the client's Idempotency-Key header), a submission repeated with the
  // same key and spec returns the job of the first one (`replayed` set) instead of a second job;
  // the same key with another spec is a conflict.
  Result<json> submit_job(const std::string& body, int64_t now_ms,
                          const std::string& idempotency_key = "", bool* replayed = nullptr);
  // One page of jobs, oldest first (newest first with `newest_first`), each with its id, name,
  // state, restarts, reason and created_ms. `after`: the page starts after that job; the filters
  // keep jobs of one state or queue. next_after is the last job of a full page (empty at the end).
  struct JobPage {
    size_t limit = 1000;
    std::string after{};
    bool newest_first = false;
    std::string state{};  // "", or a job state name
    std::string queue{};
  };
  Result<json> list_jobs(const JobPage& page, std::string* next_after = nullptr) const;
  json list_jobs() const { return *list_jobs(JobPage{.limit = SIZE_MAX}); }
  Result<json> get_job(const std::string& id) const;
  Result<json> cancel_job(const std::string& id, int64_t now_ms);
  // Where a job (the body of submit_job) would run, without submitting it: {"fits_now",
  // "fitting_nodes", "clouds" (whether machines can be rented), "offers": the cheapest fitting
  // offers, first choice first, each with "machines" and "total_per_hour"}.
  Result<json> plan_job(const std::string& body, int64_t now_ms) const;
  // Logs of one task's latest attempt from byte `offset`: {"data", "next_offset", "attempt",
  // "ended", "done"} ("ended": the job has ended; "done": and every byte of its output has
  // arrived, which may be later: output ships after the end).
  Result<json> job_logs(const std::string& id, int rank, int64_t offset, size_t max_bytes) const;
  // job_logs() in two halves, so the file reads run off the control loop: where a task's output
  // is (on the loop), then the read itself (on any thread).
  struct LogSource {
    LogKey key;
    bool ended = false;     // the job has ended
    int64_t expected = -1;  // its output's size when its agent saw it end; -1: not known
    std::shared_ptr<TaskLogs> logs;
  };
  Result<LogSource> log_source(const std::string& id, int rank) const;
  static Result<json> read_logs(const LogSource& source, int64_t offset, size_t max_bytes);
  json list_nodes(int64_t now_ms) const;
  // Queues (bodies: spec/queue_json.h). A queue object adds "fair_share", "in_use", "pending",
  // "jobs_running" and "jobs_pending" to the spec.
  Result<json> create_queue(const std::string& body, int64_t now_ms);
  json list_queues() const;
  Result<json> get_queue(const std::string& name) const;
  Result<json> update_queue(const std::string& name, const std::string& body, int64_t now_ms);
  Result<json> delete_queue(const std::string& name, int64_t now_ms);
  // Deployments (bodies: spec/deployment_spec.h). A deployment object adds "status" (replicas,
  // their nodes, addresses and readiness, desired and ready counts, load and latency) and "url".
  Result<json> create_deployment(const std::string& body, int64_t now_ms);
  json list_deployments(int64_t now_ms) const;
  Result<json> get_deployment(const std::string& name, int64_t now_ms) const;
  // A whole new spec; replicas roll over to it one at a time when what they run changed.
  Result<json> update_deployment(const std::string& name, const std::string& body, int64_t now_ms);
  // {"min": N, "max": M} (either may be left out): new bounds, no new replicas.
  Result<json> scale_deployment(const std::string& name, const std::string& body, int64_t now_ms);
  Result<json> delete_deployment(const std::string& name, int64_t now_ms);
  std::string metrics() const;  // Prometheus text format

  // --- clouds (docs/clouds.md) ---
  // Where machines are rented when pending work does not fit the nodes: the providers, and the
  // script a new machine runs at first boot to join this server (cloud::ProvisionRequest).
  void set_clouds(std::vector<std::shared_ptr<cloud::Provider>> providers,
                  std::function<std::string()> bootstrap_script);
  // At a stop: waits for the launches and terminations being made off the loop (up to a
  // provider's timeout) and records what they did, so no machine they started goes unrecorded;
  // calls not yet made are dropped.
  Status stop_clouds(int64_t now_ms);
  // Rented machines, live and ended: provider, offer, price, state, node, lifetime, cost so far.
  json list_instances(int64_t now_ms) const;
  // Posts a spot interruption notice for an emulated instance (the sim provider only).
  Result<json> interrupt_instance(const std::string& id, int64_t now_ms);
  // Spend on rented machines: {"by": BY, "total_usd", "idle_usd", "rows": [{"key", "cost_usd",
  // "gpu_hours"}]}, BY one of job, queue, cloud, instance. Work is charged its share of its
  // machine's GPUs for the time it held them; the rest of a machine's bill is idle time.
  Result<json> cost(const std::string& by, int64_t now_ms) const;

  // --- the gateway ---
  void set_gateway_url(std::string url) { options_.gateway_url = std::move(url); }
  // What the gateway should route: every deployment, its running replicas and the draining ones.
  gateway::RouteSpec routes() const;
  // What the gateway saw: requests in flight (the autoscaler's signal), replica readiness,
  // request counts and latencies. Call regularly (every 100 ms or so).
  void observe_gateway(const gateway::RouteTable& table, int64_t now_ms);

  // --- the agent protocol ---
  // Typed messages (spec/agent_protocol.h): the caller decodes them, off the control loop.
  Result<spec::RegistrationReply> register_agent(const spec::AgentRegistration& message,
                                                 const std::string& peer, int64_t now_ms);
  Result<spec::HeartbeatReply> heartbeat(const std::string& node, const spec::Heartbeat& message,
                                         int64_t now_ms);

  // Periodic work: lost nodes, then scheduling of pending jobs. Call often (every ~50 ms). Time
  // the loop did not run (the process was stopped, a call blocked it) does not count against the
  // nodes: they were not heard because we were not listening.
  Status tick(int64_t now_ms);

  // Not OK once a commit failed after memory had changed: memory is then ahead of the store, and
  // every later call is refused with this status. The owner must stop (fail-stop, as etcd and
  // RocksDB do) and a restart rebuilds the state from the store.
  const Status& store_failure() const { return store_failure_; }

  // Group commit, for a server answering many calls at once: once on, a change is kept in memory
  // and in the unflushed batch, and flush() commits every change since the last flush in one
  // durable write. Whoever turns it on must hold back every answer made while has_unflushed()
  // until flush() returns OK (nothing may be told of a change a crash forgets); a failed flush
  // is a store_failure(). Off by default: each call then commits before it returns.
  void group_commits(bool on) { group_commits_ = on; }
  bool has_unflushed() const { return !unflushed_.empty(); }
  Status flush();

 private:
  struct Job {
    store::JobRecord record;
    JobSpec spec;
    int64_t seq = 0;         // submission order; the queue scheduler's id for the job
    int64_t started_ms = 0;  // when it was last placed (progress a preemption would lose)
    std::vector<std::string> preempting;  // jobs being preempted to make room for this one
    bool no_capacity = false;             // the last round found no node with room for it
    std::string cloud_note;  // why no machine is rented for it (not stored); see reason_of()
  };
  // A task of a preempted job that is still stopping: its resources stay held until `until_ms`.
  struct Stopping {
    std::string node;
    uint32_t gpu_mask = 0;
    int attempt = 0;  // the attempt being stopped
    int64_t until_ms = 0;
    int64_t grace_ms = 0;  // SIGTERM to SIGKILL
    bool notice = false;   // the agent writes the preemption notice first (a spot interruption)
  };
  using TaskKey = std::pair<std::string, int>;  // (job id, rank)
  struct Node {
    store::NodeRecord record;
    sched::NodeId id = -1;
    int64_t seen_ms = 0;  // last heartbeat (or registration, or control plane start)
  };

  // One replica of a deployment: a one-task job.
  struct Replica {
    std::string job;
    int generation = 0;
    int port = 0;
    int64_t draining_since_ms = 0;  // 0: in service
    std::string readiness_path;     // its generation's
  };
  // Once a second: cumulative request count and latency histogram, for rates and percentiles.
  struct LoadSample {
    int64_t time_ms = 0;
    uint64_t requests = 0;
    std::array<uint64_t, gateway::DeploymentStats::kLatencyBuckets> latency{};
  };
  struct ObservedReplica {
    bool ready = false;
    int in_flight = 0;
  };
  struct Deployment {
    DeploymentSpec spec;
    int generation = 1;  // bumped when what replicas run changes
    std::string token;   // with auth: token
    int64_t created_ms = 0;
    std::vector<Replica> replicas;
    int desired = 0;
    int failures = 0;           // replicas that ended on their own since one was last ready
    int64_t next_start_ms = 0;  // crash back-off
    Autoscaler autoscaler{0};
    // From the gateway.
    int64_t observed_ms = 0;
    int64_t in_flight = 0;
    std::map<std::string, ObservedReplica> observed;  // by address
    std::deque<LoadSample> load;                      // the last minute
  };

  ControlPlane(std::unique_ptr<store::Store> store, ControlPlaneOptions options);
  // A queue jobs may be submitted to: "" (the default), or a stored leaf queue.
  Status check_queue(const std::string& queue) const;
  // Adds a pending job (memory and batch); the caller commits.
  Job& add_job(JobSpec spec, int64_t id, store::WriteBatch& batch, int64_t now_ms);
  // Deployments: the controller's round (replace ended replicas, scale, roll over to a new
  // generation, drain and stop replicas taken out of service).
  void reconcile_deployments(store::WriteBatch& batch, int64_t now_ms);
  void reconcile(Deployment& d, store::WriteBatch& batch, int64_t now_ms);
  void start_replica(Deployment& d, store::WriteBatch& batch, int64_t now_ms);
  void drain_replica(Deployment& d, Replica& r, const std::string& why, store::WriteBatch& batch,
                     int64_t now_ms);
  void save_deployment(const Deployment& d, store::WriteBatch& batch) const;
  // Moves a replica the scheduler placed next to another replica of its deployment to a node
  // with fewer of them, when one has room: losing a node then takes fewer replicas down.
  void spread_replica(const Job& job, std::vector<sched::Placement>& placements);
  // Where a node is, for spreading replicas: the region ("cloud/region") and zone
  // ("cloud/region/zone", empty when its offer names none) of a rented machine; both empty for
  // our own machines.
  struct Location {
    std::string region;
    std::string zone;
  };
  static Location location_of(const cloud::Offer& offer);
  Location location_of(const std::string& node) const;
  // How many of a deployment's replicas other than `job` are in each region and in each zone
  // (both kinds of key in one map): of their nodes, or of the machine rented for one that still
  // waits.
  std::map<std::string, int> replica_locations(const Deployment& d, const std::string& job) const;
  // The deployment's replicas in `location`'s region, then in its zone, from replica_locations.
  static std::pair<int, int> crowding(const std::map<std::string, int>& at,
                                      const Location& location);
  // Clouds (cloud_autoscaler.cpp): once a second, learn what the providers did, act on
  // interruption notices, return idle machines, and rent machines for work that does not fit.
  // The rented machines' records, the nodes they become and their bills: cloud_instances.cpp.
  struct CloudInstance {
    size_t provider = 0;        // index into providers_ (SIZE_MAX: not attached)
    std::string provider_name;  // Provider::name()
    cloud::Instance info;
    cloud::Offer offer;
    double price_per_hour = 0;
    std::string for_job;  // the job it was rented for
    int64_t launched_ms = 0, joined_ms = 0, ended_ms = 0, idle_since_ms = 0, notice_ms = 0;
    std::string end_reason;
    // Its bill and the uses of its GPUs are in ledger_ (and in its stored record).
  };
  // A launch made off the control loop (ProviderCalls) whose result has not been collected.
  struct Launch {
    size_t provider = 0;
    cloud::Offer offer;
    bool spot = false;
    int count = 0;
    std::string for_job;   // the job it is for; empty for a pool minimum
    std::string min_pool;  // the pool limit key whose minimum it keeps
    int keep_min = 0;      // that minimum
    int64_t started_ms = 0;
  };
  void cloud_round(store::WriteBatch& batch, int64_t now_ms);
  // A job's reason while its launch is in flight: "waiting for aws to answer the launch of ...".
  std::string waiting_for(const Launch& launch, int64_t now_ms) const;
  // Takes up the answers of calls made off the loop.
  void take_up_calls(store::WriteBatch& batch, int64_t now_ms);
  // What a launch's outcome means, with its events: the machines recorded; or the pool skipped
  // for a while (a capacity answer), or the provider resting (no answer), when `unreachable`
  // gets why. Returns the machines launched.
  std::vector<cloud::Instance> launch_ended(const Launch& launch,
                                            const ProviderCalls::Outcome& outcome,
                                            std::string* unreachable, store::WriteBatch& batch,
                                            int64_t now_ms);
  // The end of a call returning idle machine `id` to its provider.
  // (`off_loop`: the call was made off the loop, and the machine cordoned meanwhile.)
  void return_ended(const std::string& id, const Status& outcome, bool off_loop,
                    store::WriteBatch& batch, int64_t now_ms);
  void sync_instances(store::WriteBatch& batch, int64_t now_ms);
  void handle_notices(store::WriteBatch& batch, int64_t now_ms);
  void return_idle_instances(store::WriteBatch& batch, int64_t now_ms);
  void rent_for_pending(store::WriteBatch& batch, int64_t now_ms);
  // Remembers that `pool` could not launch, in memory and in the store, so a restart skips it too.
  void pool_failed(const std::string& pool, store::WriteBatch& batch, int64_t now_ms);
  // Rents machines for pools below their minimum.
  void keep_pool_minimums(store::WriteBatch& batch, int64_t now_ms);
  int live_in_pool(const std::string& key) const;
  // Every provider's offers, with the provider's index.
  std::vector<std::pair<size_t, cloud::Offer>> provider_offers() const;
  // Records a machine just rented (memory and batch).
  void record_rented(size_t provider, const cloud::Instance& instance, const cloud::Offer& offer,
                     bool spot, const std::string& for_job, store::WriteBatch& batch,
                     int64_t now_ms);
  // Nodes running a task (and, with_stopping, those whose preempted tasks are still stopping).
  std::set<std::string> nodes_with_tasks(
      bool with_stopping) const;  // rented machines a pool limit key covers
  // The first limit `count` more machines of `pool` would break ("aws: at its max of 4"), or "".
  std::string pool_limit_reached(const std::string& pool, int count) const;
  // Machines rented for a job take it as soon as they join, before other work can.
  void bind_rented(store::WriteBatch& batch, int64_t now_ms);
  // Cordons the free machines rented for jobs that are still pending, for one scheduling cycle;
  // returns them (the caller uncordons them after the cycle).
  std::vector<sched::NodeId> hold_rented_machines();
  void end_instance(CloudInstance& inst, const std::string& why, store::WriteBatch& batch,
                    int64_t now_ms);
  // Removes a node whose machine is gone: its tasks are rescheduled (not the job's failure).
  void forget_node(const std::string& name, const std::string& why, store::WriteBatch& batch,
                   int64_t now_ms);
  void save_instance(const CloudInstance& inst, store::WriteBatch& batch) const;
  json instance_json(const CloudInstance& inst) const;
  Status load_instances();
  // Opens or closes the cost record of a task on a rented machine (from save_task).
  void track_use(const store::TaskRecord& task, bool was_active, bool active,
                 store::WriteBatch& batch);
  // What the jobs of `queue` and of the queues below it have cost on rented machines.
  double queue_spend(const std::string& queue, int64_t now_ms) const;
  // Rented machines of one kind (cloud, region, zone, spot) form a scheduler node group, so work
  // runs only where its spec allows (sched::Request::allowed_groups). Group 0: our own nodes,
  // open to all work.
  struct NodeGroup {
    std::string cloud, region, zone;
    bool spot = false;
    bool operator==(const NodeGroup&) const = default;
  };
  int node_group(const std::string& node);  // adds the group when new
  // A rented machine with an interruption notice, or being returned: it takes no new work.
  bool going_away(const std::string& node) const;
  // A terminate call for this rented machine is being made off the loop.
  bool being_returned(const std::string& id) const;
  sched::GroupMask allowed_groups(const JobSpec& spec) const;
  Status load_deployments(int64_t now_ms);
  std::string replica_address(const Replica& r) const;  // "" until its task is placed
  bool replica_running(const Replica& r) const;
  bool replica_ready(const Deployment& d, const Replica& r) const;
  json deployment_json(const Deployment& d, int64_t now_ms) const;
  int next_free_port();
  Status load(int64_t now_ms);
  // Marks nodes lost and fails the tasks of fenced ones (tick).
  void check_nodes(store::WriteBatch& batch, int64_t now_ms);
  // Commits a batch whose changes memory already holds (or, with group commits, adds it to the
  // unflushed batch); a failure is a store_failure().
  Status commit(store::WriteBatch& batch);
  // Commits a batch of changes memory does not hold yet (the caller applies them on success), so
  // a failure leaves the control plane as it was. With group commits it is commit(): a failed
  // flush stops the server, whose memory goes with it.
  Status commit_first(store::WriteBatch& batch);
  // The next job id ("j-N"), written to `batch` so that it is stored with the job.
  int64_t next_job_number(store::WriteBatch& batch);
  void fail_store(const Status& why);
  int64_t lease_ms() const;
  // node_timeout_ms, or three heartbeat intervals when that is longer.
  int64_t node_timeout_ms() const;
  // Grows the heartbeat interval to what the number of nodes asks for (see the options).
  void size_heartbeat_interval();
  // The task is active (placed and not ended) on `node`, or no longer active.
  void set_active(const TaskKey& key, bool active, const std::string& node);
  // The reply fields every agent message gets: heartbeat interval and lease.
  spec::AgentTiming agent_timing() const;
  void ensure_scheduler();
  // Runs a scheduling round when one is due: something changed (or a second passed), and, with
  // much work, the last round is far enough behind (see the rule in its body).
  void schedule_pending(store::WriteBatch& batch, int64_t now_ms);
  // One round of the queue scheduler over all pending and running jobs: starts what it places,
  // preempts what it chooses, and records why the rest waits.
  void run_round(store::WriteBatch& batch, int64_t now_ms);
  sched::Request request_of(const Job& job) const;
  // Binds a pending job's tasks to the placements the scheduler chose.
  void assign(Job& job, const std::vector<sched::Placement>& placements, store::WriteBatch& batch,
              int64_t now_ms);
  // Stops every task of a running job (`why`: "preempted for j-7") and returns the job to its
  // queue; the resources are released once the grace period has passed. With `notice`, each task
  // is told it is being preempted before its SIGTERM, so it can checkpoint.
  void preempt(Job& job, const std::string& why, int64_t grace_ms, bool notice,
               store::WriteBatch& batch, int64_t now_ms);
  // The queue tree: the stored queues plus the implicit "default" queue.
  sched::QueueTree queue_tree() const;
  int queue_index(const Job& job) const;
  json queue_json(const std::string& name) const;  // one element of list_queues()
  // Per queue (indexed like queue_tree()): running and pending amounts and job counts.
  struct QueueLoad {
    Quota in_use, pending;
    int jobs_running = 0, jobs_pending = 0;
  };
  std::vector<QueueLoad> queue_loads(const sched::QueueTree& tree) const;
  void release(const store::TaskRecord& task);
  // A task ended badly (its process failed, or its node was lost): restart the job if it may,
  // else fail it. `counts_as_restart` is false for infrastructure failures.
  void task_failed(Job& job, store::TaskRecord& task, const std::string& why,
                   bool counts_as_restart, store::WriteBatch& batch, int64_t now_ms);
  void finish_job(Job& job, JobState state, const std::string& why, store::WriteBatch& batch,
                  int64_t now_ms);
  void update_job_state(Job& job, store::WriteBatch& batch, int64_t now_ms);
  spec::TaskStart task_start_message(const Job& job, const store::TaskRecord& task) const;
  json job_json(const Job& job) const;
  // Why a job waits: its stored reason, then the cloud autoscaler's note.
  static std::string reason_of(const Job& job);
  void event(store::WriteBatch& batch, int64_t now_ms, std::string object, std::string message);
  static std::string task_object(const std::string& job, int rank);  // "task/JOB/RANK"

  // Every change of a task or job goes through these: they queue the record for the store and
  // keep the indexes below up to date.
  void save_task(const store::TaskRecord& task, store::WriteBatch& batch);
  void save_job(const Job& job, store::WriteBatch& batch);

  std::unique_ptr<store::Store> store_;
  ControlPlaneOptions options_;
  std::shared_ptr<TaskLogs> logs_;           // shared with reads made off the loop
  std::map<TaskKey, int64_t> expected_log_;  // a task's output size when its agent saw it end
  std::map<std::string, Job> jobs_;
  std::map<std::string, std::string> idempotency_keys_;  // key -> job id
  std::vector<std::string> job_order_;                   // ids by submission
  std::map<TaskKey, store::TaskRecord> tasks_;
  // Tasks placed and not ended, and the node each is on; the same by node, so a heartbeat (or a
  // lost node) looks only at its node's tasks. Kept by set_active().
  std::map<TaskKey, std::string> active_tasks_;
  std::map<std::string, std::set<TaskKey>> node_tasks_;
  int64_t heartbeat_ms_ = 0;  // the interval agents are told (size_heartbeat_interval)
  std::map<int64_t, std::string> pending_jobs_;  // by submission order
  std::map<std::string, Node> nodes_;
  std::map<sched::NodeId, std::string> node_names_;
  sched::ClusterState cluster_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::map<std::string, QueueSpec> queues_;  // stored queues, by name
  std::map<std::string, Deployment> deployments_;
  std::map<std::string, std::string> deployment_of_job_;  // replica job id -> deployment
  int next_port_ = 0;
  // When this control plane started with stored deployments (they wait for the first probes).
  int64_t opened_ms_ = INT64_MIN / 2;
  std::unique_ptr<sched::QueueScheduler> queue_scheduler_;
  std::map<TaskKey, Stopping> stopping_;  // tasks of preempted jobs, until their grace ends
  bool sched_dirty_ = true;  // something a scheduling round depends on changed since the last
  int64_t last_round_ms_ = 0;
  int64_t last_round_cost_ms_ = 0;  // how long the last round took (steady clock)
  size_t scheduler_jobs_ = 0;       // job count when the scheduler's workload was built
  bool group_commits_ = false;
  store::WriteBatch unflushed_;  // with group commits: what memory holds and the store not yet
  int64_t job_counter_ = 0;      // the last job number handed out
  int64_t submitted_ = 0;        // since this process started, for /metrics
  // Clouds.
  std::vector<std::shared_ptr<cloud::Provider>> providers_;
  std::function<std::string()> bootstrap_script_;
  std::map<std::string, CloudInstance> instances_;    // by instance id (= node name)
  CostLedger ledger_;                                 // their bills, and who used them
  std::vector<NodeGroup> node_groups_;                // group i + 1
  FailureMemory failures_{options_.failover_ttl_ms};  // kept in the store too (pool_failed)
  std::vector<ProviderBackoff> provider_backoff_;     // per provider
  std::unique_ptr<ProviderCalls> calls_;              // launches and terminations
  std::map<uint64_t, Launch> launches_;               // launches in flight, by call
  std::map<uint64_t, std::string> returns_;           // idle machines being returned, by call
  int64_t last_cloud_round_ms_ = 0;
  int64_t last_tick_ms_ = 0;        // to see time the loop did not run
  int64_t next_node_check_ms_ = 0;  // when a node can next be lost or fenced (check_nodes)
  // Log retention walks jobs in submission order; jobs before this index had their logs removed.
  size_t retention_cursor_ = 0;
  void remove_old_logs(int64_t now_ms);
  Status store_failure_ = Status::ok();
};

}  // namespace lepton::server
