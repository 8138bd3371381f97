#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>

#include "core/hex.h"

namespace lepton::store {
namespace {

// The schema of version 1; later versions are reached through kMigrations, so that a new file
// and an upgraded one end up with the same schema. STRICT tables make SQLite check column types as
// PostgreSQL would; the CHECKs reject records no caller should write (they also let tests provoke a
// failing batch).
constexpr const char* kSchema = R"sql(
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL CHECK (revision >= 0)
) STRICT;
INSERT INTO meta (id, revision) VALUES (1, 0);

CREATE TABLE jobs (
  id TEXT PRIMARY KEY CHECK (id <> ''),
  name TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('PENDING', 'SCHEDULED', 'STARTING', 'RUNNING', 'SUCCEEDED',
                                       'FAILED', 'CANCELLED')),
  restarts INTEGER NOT NULL,
  reason TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
CREATE INDEX jobs_by_creation ON jobs (created_ms, id);

CREATE TABLE tasks (
  job_id TEXT NOT NULL CHECK (job_id <> ''),
  rank INTEGER NOT NULL CHECK (rank >= 0),
  attempt INTEGER NOT NULL,
  node TEXT NOT NULL,
  gpu_mask INTEGER NOT NULL CHECK (gpu_mask BETWEEN 0 AND 4294967295),
  gpu_milli INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('PENDING', 'SCHEDULED', 'STARTING', 'RUNNING', 'SUCCEEDED',
                                       'FAILED', 'CANCELLED')),
  exit_code INTEGER NOT NULL,
  reason TEXT NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (job_id, rank)
) WITHOUT ROWID, STRICT;

CREATE TABLE nodes (
  name TEXT PRIMARY KEY CHECK (name <> ''),
  address TEXT NOT NULL,
  cpu_milli INTEGER NOT NULL,
  memory_mib INTEGER NOT NULL,
  gpu_count INTEGER NOT NULL,
  gpu_model TEXT NOT NULL,
  ready INTEGER NOT NULL CHECK (ready IN (0, 1)),
  last_heartbeat_ms INTEGER NOT NULL
) WITHOUT ROWID, STRICT;

-- seq (the rowid) keeps the order of appends, within a revision and across them.
CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  revision INTEGER NOT NULL CHECK (revision > 0),
  time_ms INTEGER NOT NULL,
  object TEXT NOT NULL,
  message TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_revision ON events (revision);

CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL CHECK (value > 0)
) WITHOUT ROWID, STRICT;
)sql";

// kMigrations[i] takes the schema from version i + 1 to version i + 2, inside the transaction
// that also sets user_version. Append only: a released migration never changes.
constexpr std::array<const char*, kSqliteSchemaVersion - 1> kMigrations = {
    // 2: queues.
    R"sql(
CREATE TABLE queues (
  name TEXT PRIMARY KEY CHECK (name <> ''),
  spec_json TEXT NOT NULL
) WITHOUT ROWID, STRICT;
)sql",
    // 3: deployments.
    R"sql(
CREATE TABLE deployments (
  name TEXT PRIMARY KEY CHECK (name <> ''),
  spec_json TEXT NOT NULL,
  state_json TEXT NOT NULL
) WITHOUT ROWID, STRICT;
)sql",
    // 4: instances rented from providers.
    R"sql(
CREATE TABLE instances (
  id TEXT PRIMARY KEY CHECK (id <> ''),
  record_json TEXT NOT NULL
) WITHOUT ROWID, STRICT;
)sql",
    // 5: pools of offers that failed to launch, skipped until their time is up.
    R"sql(
CREATE TABLE failed_pools (
  pool TEXT PRIMARY KEY CHECK (pool <> ''),
  until_ms INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
)sql",
    // 6: the store's identity (so a data dir can tell its own store from an emptied or swapped
    // one) and the idempotency key a job was submitted with.
    R"sql(
ALTER TABLE meta ADD COLUMN store_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';
)sql",
};

// The cached statements: prepared once at open, reset after each use.
enum Stmt {
  kBegin,
  kCommit,
  kRollback,
  kBumpRevision,
  kUpsertJob,
  kUpsertTask,
  kUpsertNode,
  kDeleteNode,
  kUpsertQueue,
  kDeleteQueue,
  kUpsertDeployment,
  kDeleteDeployment,
  kUpsertInstance,
  kUpsertFailedPool,
  kInsertEvent,
  kNextId,
  kRaiseCounter,
  kGetCounter,
  kListJobs,
  kGetJob,
  kListTasksOfJob,
  kListAllTasks,
  kListNodes,
  kListQueues,
  kListDeployments,
  kListInstances,
  kListFailedPools,
  kEventsSince,
  kStmtCount,
};

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

// "store commit: CHECK constraint failed: rank >= 0". Read before any ROLLBACK, which resets
// the connection's message.
Status sqlite_error(sqlite3* db, int rc, std::string_view op) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Status(code_for(rc), "store " + std::string(op) + ": " + msg);
}

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

// Owns a connection and its statements until they are handed to a SqliteStore.
struct Opening {
  sqlite3* db = nullptr;
  std::array<sqlite3_stmt*, kStmtCount> stmts{};
  ~Opening() {
    for (sqlite3_stmt* s : stmts) sqlite3_finalize(s);
    sqlite3_close(db);
  }
};

// Runs SQL with no result rows worth reading (the last row's first column lands in `text`).
int exec(sqlite3* db, const char* sql, std::string* text = nullptr) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  while (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      if (text != nullptr) {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        *text = p == nullptr ? "" : p;
      }
      rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
      rc = SQLITE_OK;
      break;
    }
  }
  sqlite3_finalize(stmt);
  return rc;
}

int64_t scalar(sqlite3* db, const char* sql, int& rc) {
  std::string text;
  rc = exec(db, sql, &text);
  return std::strtoll(text.c_str(), nullptr, 10);
}

Status newer_schema(const std::string& op, int64_t version) {
  return Status::internal("store " + op + ": schema version " + std::to_string(version) +
                          " is newer than this lepton's (" + std::to_string(kSqliteSchemaVersion) +
                          "); it was written by a newer lepton");
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  if (path.empty()) return Status::invalid_argument("open store: empty path");
  const std::string op = "open '" + path + "'";
  if (path != ":memory:") {
    // Created readable by its owner only; SQLite gives the -wal and -shm files the same mode.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status(StatusCode::kUnavailable,
                    "store " + op + ": cannot create or open: " + std::strerror(errno));
    }
    ::close(fd);
  }
  Opening o;
  int rc =
      sqlite3_open_v2(path.c_str(), &o.db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(o.db, rc, op);
  sqlite3_extended_result_codes(o.db, 1);
  // Another process holding the write lock (a backup, an operator's sqlite3 shell) is waited for
  // this long before an operation fails with kUnavailable.
  sqlite3_busy_timeout(o.db, 5000);

  // The first read of the file: this is where a file that is not a database fails.
  int64_t version = scalar(o.db, "PRAGMA user_version", rc);
  if (rc != SQLITE_OK) return sqlite_error(o.db, rc, op);
  if (version > kSqliteSchemaVersion) return newer_schema(op, version);
  // A damaged file (a torn or zeroed page) is refused here, with what to do, instead of opening
  // and then failing every write.
  std::string check;
  rc = exec(o.db, "PRAGMA quick_check(1)", &check);
  if (rc != SQLITE_OK || check != "ok") {
    return Status::internal("store " + op + ": the file is damaged (" +
                            (rc != SQLITE_OK ? std::string(sqlite3_errmsg(o.db)) : check) +
                            "); restore it from a backup, or move it aside to start anew");
  }

  // WAL: readers do not block the writer, and a commit is one append to the log. The mode is
  // kept in the file; an in-memory database stays in "memory" mode.
  std::string mode;
  if (rc = exec(o.db, "PRAGMA journal_mode = WAL", &mode); rc != SQLITE_OK) {
    return sqlite_error(o.db, rc, op + ": journal_mode");
  }
  if (mode != "wal" && mode != "memory") {
    return Status::internal("store " + op + ": cannot use WAL journal mode (got '" + mode + "')");
  }
  // FULL, not NORMAL: in WAL mode NORMAL fsyncs the log only at checkpoints, so a commit that
  // has returned can vanish on power loss or an OS crash (the database stays consistent, but
  // loses its last transactions). The Store promises that what commit() acknowledged survives,
  // and the API answers only after commit(), so every commit fsyncs the log.
  if (rc = exec(o.db, "PRAGMA synchronous = FULL"); rc != SQLITE_OK) {
    return sqlite_error(o.db, rc, op + ": synchronous");
  }

  if (version < kSqliteSchemaVersion) {
    // New, not ours, or written by an older lepton. Checked again under the write lock, in case
    // another process is creating or upgrading the schema at the same time. Creating and
    // upgrading are one transaction: a crash leaves the file as it was.
    if (rc = exec(o.db, "BEGIN IMMEDIATE"); rc != SQLITE_OK) return sqlite_error(o.db, rc, op);
    version = scalar(o.db, "PRAGMA user_version", rc);
    int64_t tables = 0;
    if (rc == SQLITE_OK) tables = scalar(o.db, "SELECT count(*) FROM sqlite_schema", rc);
    if (rc == SQLITE_OK && version == 0 && tables > 0) {
      exec(o.db, "ROLLBACK");
      return Status::internal("store " + op +
                              ": an SQLite database, but not a lepton store (no schema version)");
    }
    const int64_t from = version;
    if (rc == SQLITE_OK && version == 0) {
      rc = sqlite3_exec(o.db, kSchema, nullptr, nullptr, nullptr);
      version = 1;
    }
    for (; rc == SQLITE_OK && version >= 1 && version < kSqliteSchemaVersion; ++version) {
      rc = sqlite3_exec(o.db, kMigrations[static_cast<size_t>(version - 1)], nullptr, nullptr,
                        nullptr);
    }
    if (rc == SQLITE_OK && version != from) {
      rc = exec(o.db, ("PRAGMA user_version = " + std::to_string(version)).c_str());
    }
    if (rc == SQLITE_OK) rc = exec(o.db, "COMMIT");
    if (rc != SQLITE_OK) {
      Status s =
          sqlite_error(o.db, rc,
                       op + (from == 0 ? ": create schema"
                                       : ": upgrade schema from version " + std::to_string(from)));
      exec(o.db, "ROLLBACK");
      return s;
    }
    if (version > kSqliteSchemaVersion) return newer_schema(op, version);  // raced a newer lepton
  }

  for (size_t i = 0; i < kStmtCount; ++i) {
    rc = sqlite3_prepare_v3(o.db, kSql[i], -1, SQLITE_PREPARE_PERSISTENT, &o.stmts[i], nullptr);
    if (rc != SQLITE_OK) return sqlite_error(o.db, rc, op + ": prepare");
  }
  int64_t revision = scalar(o.db, "SELECT revision FROM meta WHERE id = 1", rc);
  if (rc != SQLITE_OK) return sqlite_error(o.db, rc, op + ": read revision");
  std::string store_id;
  rc = exec(o.db, "SELECT store_id FROM meta WHERE id = 1", &store_id);
  if (rc != SQLITE_OK) return sqlite_error(o.db, rc, op + ": read store id");
  if (store_id.empty()) {
    // Given once, when the store is new or upgraded; a concurrent opener keeps the first one.
    // 16 random bytes as 32 hex digits.
    rc = exec(o.db, ("UPDATE meta SET store_id = '" + random_hex(16) +
                     "' WHERE id = 1 AND store_id = '' RETURNING store_id")
                        .c_str());
    if (rc == SQLITE_OK) rc = exec(o.db, "SELECT store_id FROM meta WHERE id = 1", &store_id);
    if (rc != SQLITE_OK) return sqlite_error(o.db, rc, op + ": set store id");
  }

  auto store = std::make_unique<SqliteStore>(std::exchange(o.db, nullptr), o.stmts, revision,
                                             std::move(store_id));
  o.stmts = {};
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace lepton::store
