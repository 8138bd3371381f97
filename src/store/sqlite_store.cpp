// The SQLite store's Store methods: the cached statements, binding and reading them, and the
// transactions of a commit (opening a file and its schema are in sqlite_schema.cpp).
#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <array>
#include <limits>
#include <utility>

#include "store/sqlite_store_internal.h"

namespace lepton::store::internal {

constexpr std::array<const char*, kStmtCount> kSql = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision",
    "INSERT INTO jobs (id, name, spec_json, state, restarts, reason, created_ms, updated_ms, "
    "idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = "
    "excluded.name, spec_json = excluded.spec_json, state = excluded.state, restarts = "
    "excluded.restarts, reason = excluded.reason, created_ms = excluded.created_ms, updated_ms = "
    "excluded.updated_ms, idempotency_key = excluded.idempotency_key",
    "INSERT INTO tasks (job_id, rank, attempt, node, gpu_mask, gpu_milli, state, exit_code, "
    "reason, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, rank) DO "
    "UPDATE SET attempt = excluded.attempt, node = excluded.node, gpu_mask = excluded.gpu_mask, "
    "gpu_milli = excluded.gpu_milli, state = excluded.state, exit_code = excluded.exit_code, "
    "reason = excluded.reason, updated_ms = excluded.updated_ms",
    "INSERT INTO nodes (name, address, cpu_milli, memory_mib, gpu_count, gpu_model, ready, "
    "last_heartbeat_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
    "address = excluded.address, cpu_milli = excluded.cpu_milli, memory_mib = "
    "excluded.memory_mib, gpu_count = excluded.gpu_count, gpu_model = excluded.gpu_model, ready = "
    "excluded.ready, last_heartbeat_ms = excluded.last_heartbeat_ms",
    "DELETE FROM nodes WHERE name = ?",
    "INSERT INTO queues (name, spec_json) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
    "spec_json = excluded.spec_json",
    "DELETE FROM queues WHERE name = ?",
    "INSERT INTO deployments (name, spec_json, state_json) VALUES (?, ?, ?) ON CONFLICT (name) DO "
    "UPDATE SET spec_json = excluded.spec_json, state_json = excluded.state_json",
    "DELETE FROM deployments WHERE name = ?",
    "INSERT INTO instances (id, record_json) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET "
    "record_json = excluded.record_json",
    "INSERT INTO failed_pools (pool, until_ms) VALUES (?, ?) ON CONFLICT (pool) DO UPDATE SET "
    "until_ms = excluded.until_ms",
    "INSERT INTO events (revision, time_ms, object, message) VALUES (?, ?, ?, ?)",
    "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = "
    "value + 1 RETURNING value",
    "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = "
    "max(value, excluded.value)",
    "SELECT value FROM counters WHERE name = ?",
    "SELECT id, name, spec_json, state, restarts, reason, created_ms, updated_ms, idempotency_key "
    "FROM jobs ORDER BY created_ms, id",
    "SELECT id, name, spec_json, state, restarts, reason, created_ms, updated_ms, idempotency_key "
    "FROM jobs WHERE id = ?",
    "SELECT job_id, rank, attempt, node, gpu_mask, gpu_milli, state, exit_code, reason, "
    "updated_ms FROM tasks WHERE job_id = ? ORDER BY rank",
    "SELECT job_id, rank, attempt, node, gpu_mask, gpu_milli, state, exit_code, reason, "
    "updated_ms FROM tasks ORDER BY job_id, rank",
    "SELECT name, address, cpu_milli, memory_mib, gpu_count, gpu_model, ready, "
    "last_heartbeat_ms FROM nodes ORDER BY name",
    "SELECT name, spec_json FROM queues ORDER BY name",
    "SELECT name, spec_json, state_json FROM deployments ORDER BY name",
    "SELECT id, record_json FROM instances ORDER BY id",
    "SELECT pool, until_ms FROM failed_pools ORDER BY pool",
    "SELECT revision, time_ms, object, message FROM events WHERE revision > ? "
    "ORDER BY revision, seq LIMIT ?",
};

namespace {

// Contention and the environment (a locked, full, unreadable or vanished file) are worth a
// retry; anything else (corruption, a violated constraint, misuse) is a bug or needs a person.
StatusCode code_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kInternal;
  }
}

}  // namespace

Status sqlite_error(sqlite3* db, int rc, std::string_view op) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status(code_for(rc), "store " + std::string(op) + ": " + msg);
}

namespace {

// Binds the parameters of a cached statement (from 1, in order) and resets the statement when
// it goes out of scope, so that it is ready for the next use whatever happened. Texts are bound
// without a copy: they must outlive the Use.
class Use {
 public:
  explicit Use(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  Use& bind(int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, ++index_, v);
    return *this;
  }
  Use& bind(std::string_view v) {
    // A non-null pointer even for an empty string: null would bind SQL NULL.
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text64(stmt_, ++index_, v.empty() ? "" : v.data(), v.size(), SQLITE_STATIC,
                                SQLITE_UTF8);
    }
    return *this;
  }
  Use& bind(JobState v) { return bind(job_state_name(v)); }

  // Steps once: SQLITE_ROW or SQLITE_DONE, or an error code (including a failed bind).
  int step() { return rc_ != SQLITE_OK ? rc_ : sqlite3_step(stmt_); }

  // Reads the columns of the current row, from 0, in order.
  int64_t int64() { return sqlite3_column_int64(stmt_, column_++); }
  int int32() { return static_cast<int>(int64()); }
  std::string text() {
    int i = column_++;
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
  }
  // False (leaving `out` alone) for a name this build does not know.
  bool state(JobState& out) {
    std::optional<JobState> s = parse_job_state(text());
    if (s) out = *s;
    return s.has_value();
  }
  void next_row() { column_ = 0; }

 private:
  sqlite3_stmt* stmt_;
  int rc_ = SQLITE_OK;
  int index_ = 0;
  int column_ = 0;
};

Status corrupt(std::string_view what) {
  return Status::internal("store: corrupt row: " + std::string(what));
}

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, std::array<sqlite3_stmt*, kStmtCount> stmts, int64_t revision,
              std::string store_id)
      : db_(db), stmts_(stmts), revision_(revision), store_id_(std::move(store_id)) {}
  ~SqliteStore() override {
    for (sqlite3_stmt* s : stmts_) sqlite3_finalize(s);
    sqlite3_close(db_);
  }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<int64_t> commit(const WriteBatch& batch) override {
    if (batch.empty()) return revision_;
    LEPTON_RETURN_IF_ERROR(run(kBegin, "commit: begin"));
    Result<int64_t> revision = apply(batch);
    if (!revision.is_ok()) {
      rollback();
      return revision.status();
    }
    if (Status s = run(kCommit, "commit"); !s.is_ok()) {
      rollback();
      return s;
    }
    revision_ = *revision;
    return revision_;
  }

  int64_t revision() const override { return revision_; }
  const std::string& store_id() const override { return store_id_; }

  Result<int64_t> next_id(std::string_view counter) override {
    LEPTON_RETURN_IF_ERROR(run(kBegin, "next_id: begin"));
    int64_t value = 0;
    {
      Use use(stmts_[kNextId]);
      use.bind(counter);
      int rc = use.step();
      if (rc != SQLITE_ROW) {
        Status s = sqlite_error(db_, rc, "next_id");
        rollback();
        return s;
      }
      value = use.int64();
      if (rc = use.step(); rc != SQLITE_DONE) {
        Status s = sqlite_error(db_, rc, "next_id");
        rollback();
        return s;
      }
    }
    if (Status s = run(kCommit, "next_id: commit"); !s.is_ok()) {
      rollback();
      return s;
    }
    return value;
  }

  Result<int64_t> counter(std::string_view name) override {
    Use use(stmts_[kGetCounter]);
    use.bind(name);
    const int rc = use.step();
    if (rc == SQLITE_DONE) return int64_t{0};
    if (rc != SQLITE_ROW) return sqlite_error(db_, rc, "counter");
    return use.int64();
  }

  Result<std::vector<JobRecord>> list_jobs() override {
    Use use(stmts_[kListJobs]);
    return read_all<JobRecord>(use, "list_jobs", &read_job);
  }

  Result<std::optional<JobRecord>> get_job(const std::string& id) override {
    Use use(stmts_[kGetJob]);
    use.bind(id);
    Result<std::vector<JobRecord>> jobs = read_all<JobRecord>(use, "get_job", &read_job);
    if (!jobs.is_ok()) return jobs.status();
    if (jobs->empty()) return std::optional<JobRecord>();
    return std::optional<JobRecord>(std::move(jobs->front()));
  }

  Result<std::vector<TaskRecord>> list_tasks(const std::string& job_id) override {
    Use use(stmts_[job_id.empty() ? kListAllTasks : kListTasksOfJob]);
    if (!job_id.empty()) use.bind(job_id);
    return read_all<TaskRecord>(use, "list_tasks", &read_task);
  }

  Result<std::vector<NodeRecord>> list_nodes() override {
    Use use(stmts_[kListNodes]);
    return read_all<NodeRecord>(use, "list_nodes", &read_node);
  }

  Result<std::vector<QueueRecord>> list_queues() override {
    Use use(stmts_[kListQueues]);
    return read_all<QueueRecord>(use, "list_queues", &read_queue);
  }

  Result<std::vector<DeploymentRecord>> list_deployments() override {
    Use use(stmts_[kListDeployments]);
    return read_all<DeploymentRecord>(use, "list_deployments", &read_deployment);
  }

  Result<std::vector<InstanceRecord>> list_instances() override {
    Use use(stmts_[kListInstances]);
    return read_all<InstanceRecord>(use, "list_instances", &read_instance);
  }

  Result<std::vector<FailedPoolRecord>> list_failed_pools() override {
    Use use(stmts_[kListFailedPools]);
    return read_all<FailedPoolRecord>(use, "list_failed_pools", &read_failed_pool);
  }

  Result<std::vector<EventRecord>> events_since(int64_t after, size_t limit) override {
    if (limit == 0) return std::vector<EventRecord>();
    constexpr auto kMax = static_cast<size_t>(std::numeric_limits<int64_t>::max());
    Use use(stmts_[kEventsSince]);
    use.bind(after).bind(static_cast<int64_t>(limit < kMax ? limit : kMax));
    return read_all<EventRecord>(use, "events_since", &read_event);
  }

 private:
  // Everything of a commit between BEGIN and COMMIT; returns the new revision.
  Result<int64_t> apply(const WriteBatch& batch) {
    int64_t revision = 0;
    {
      Use use(stmts_[kBumpRevision]);
      int rc = use.step();
      if (rc != SQLITE_ROW) return sqlite_error(db_, rc, "commit: revision");
      revision = use.int64();
      if (rc = use.step(); rc != SQLITE_DONE) return sqlite_error(db_, rc, "commit: revision");
    }
    for (const JobRecord& j : batch.jobs) {
      Use use(stmts_[kUpsertJob]);
      use.bind(j.id).bind(j.name).bind(j.spec_json).bind(j.state).bind(j.restarts);
      use.bind(j.reason).bind(j.created_ms).bind(j.updated_ms).bind(j.idempotency_key);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: job '" + j.id + "'"));
    }
    for (const TaskRecord& t : batch.tasks) {
      Use use(stmts_[kUpsertTask]);
      use.bind(t.job_id).bind(t.rank).bind(t.attempt).bind(t.node).bind(t.gpu_mask);
      use.bind(t.gpu_milli).bind(t.state).bind(t.exit_code).bind(t.reason).bind(t.updated_ms);
      LEPTON_RETURN_IF_ERROR(
          done(use, "commit: task '" + t.job_id + "' rank " + std::to_string(t.rank)));
    }
    for (const NodeRecord& n : batch.nodes) {
      Use use(stmts_[kUpsertNode]);
      use.bind(n.name).bind(n.address).bind(n.cpu_milli).bind(n.memory_mib).bind(n.gpu_count);
      use.bind(n.gpu_model).bind(n.ready ? 1 : 0).bind(n.last_heartbeat_ms);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: node '" + n.name + "'"));
    }
    for (const std::string& name : batch.deleted_nodes) {
      Use use(stmts_[kDeleteNode]);
      use.bind(name);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: delete node '" + name + "'"));
    }
    for (const QueueRecord& q : batch.queues) {
      Use use(stmts_[kUpsertQueue]);
      use.bind(q.name).bind(q.spec_json);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: queue '" + q.name + "'"));
    }
    for (const std::string& name : batch.deleted_queues) {
      Use use(stmts_[kDeleteQueue]);
      use.bind(name);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: delete queue '" + name + "'"));
    }
    for (const DeploymentRecord& d : batch.deployments) {
      Use use(stmts_[kUpsertDeployment]);
      use.bind(d.name).bind(d.spec_json).bind(d.state_json);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: deployment '" + d.name + "'"));
    }
    for (const std::string& name : batch.deleted_deployments) {
      Use use(stmts_[kDeleteDeployment]);
      use.bind(name);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: delete deployment '" + name + "'"));
    }
    for (const InstanceRecord& i : batch.instances) {
      Use use(stmts_[kUpsertInstance]);
      use.bind(i.id).bind(i.record_json);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: instance '" + i.id + "'"));
    }
    for (const FailedPoolRecord& f : batch.failed_pools) {
      Use use(stmts_[kUpsertFailedPool]);
      use.bind(f.pool).bind(f.until_ms);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: failed pool '" + f.pool + "'"));
    }
    for (const CounterRecord& c : batch.counters) {
      Use use(stmts_[kRaiseCounter]);
      use.bind(c.name).bind(c.value);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: counter '" + c.name + "'"));
    }
    for (const EventRecord& e : batch.events) {
      Use use(stmts_[kInsertEvent]);
      use.bind(revision).bind(e.time_ms).bind(e.object).bind(e.message);
      LEPTON_RETURN_IF_ERROR(done(use, "commit: event of '" + e.object + "'"));
    }
    return revision;
  }

  Status done(Use& use, std::string_view op) {
    int rc = use.step();
    return rc == SQLITE_DONE ? Status::ok() : sqlite_error(db_, rc, op);
  }

  Status run(Stmt stmt, std::string_view op) {
    Use use(stmts_[stmt]);
    return done(use, op);
  }

  // Ends a failed transaction, if SQLite has not already ended it. Nothing to report: a failed
  // ROLLBACK leaves SQLite to roll back from the journal on the next open.
  void rollback() {
    if (sqlite3_get_autocommit(db_) == 0) {
      Use use(stmts_[kRollback]);
      use.step();
    }
  }

  template <typename T>
  Result<std::vector<T>> read_all(Use& use, std::string_view op, Status (*read)(Use&, T&)) {
    std::vector<T> out;
    for (;;) {
      int rc = use.step();
      if (rc == SQLITE_DONE) return out;
      if (rc != SQLITE_ROW) return sqlite_error(db_, rc, op);
      use.next_row();
      LEPTON_RETURN_IF_ERROR(read(use, out.emplace_back()));
    }
  }

  static Status read_job(Use& use, JobRecord& j) {
    j.id = use.text();
    j.name = use.text();
    j.spec_json = use.text();
    if (!use.state(j.state)) return corrupt("job '" + j.id + "': unknown state");
    j.restarts = use.int32();
    j.reason = use.text();
    j.created_ms = use.int64();
    j.updated_ms = use.int64();
    j.idempotency_key = use.text();
    return Status::ok();
  }

  static Status read_task(Use& use, TaskRecord& t) {
    t.job_id = use.text();
    t.rank = use.int32();
    t.attempt = use.int32();
    t.node = use.text();
    t.gpu_mask = static_cast<uint32_t>(use.int64());
    t.gpu_milli = use.int32();
    if (!use.state(t.state)) {
      return corrupt("task '" + t.job_id + "' rank " + std::to_string(t.rank) + ": unknown state");
    }
    t.exit_code = use.int32();
    t.reason = use.text();
    t.updated_ms = use.int64();
    return Status::ok();
  }

  static Status read_node(Use& use, NodeRecord& n) {
    n.name = use.text();
    n.address = use.text();
    n.cpu_milli = use.int64();
    n.memory_mib = use.int64();
    n.gpu_count = use.int32();
    n.gpu_model = use.text();
    n.ready = use.int64() != 0;
    n.last_heartbeat_ms = use.int64();
    return Status::ok();
  }

  static Status read_queue(Use& use, QueueRecord& q) {
    q.name = use.text();
    q.spec_json = use.text();
    return Status::ok();
  }

  static Status read_instance(Use& use, InstanceRecord& i) {
    i.id = use.text();
    i.record_json = use.text();
    return Status::ok();
  }

  static Status read_failed_pool(Use& use, FailedPoolRecord& f) {
    f.pool = use.text();
    f.until_ms = use.int64();
    return Status::ok();
  }

  static Status read_deployment(Use& use, DeploymentRecord& d) {
    d.name = use.text();
    d.spec_json = use.text();
    d.state_json = use.text();
    return Status::ok();
  }

  static Status read_event(Use& use, EventRecord& e) {
    e.revision = use.int64();
    e.time_ms = use.int64();
    e.object = use.text();
    e.message = use.text();
    return Status::ok();
  }

  sqlite3* db_;
  std::array<sqlite3_stmt*, kStmtCount> stmts_;
  int64_t revision_;  // the committed revision; only this connection writes it
  std::string store_id_;
};

}  // namespace

std::unique_ptr<Store> make_sqlite_store(sqlite3* db, std::array<sqlite3_stmt*, kStmtCount> stmts,
                                         int64_t revision, std::string store_id) {
  return std::make_unique<SqliteStore>(db, stmts, revision, std::move(store_id));
}

}  // namespace lepton::store::internal
