// The SQLite store's schema and its migrations, and opening a file: creating or upgrading the
// schema, checking the file, and preparing the statements.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/hex.h"
#include "store/sqlite_store.h"
#include "store/sqlite_store_internal.h"

namespace lepton::store {

using namespace internal;  // The SQLite store's own statements and helpers.

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

  auto store =
      make_sqlite_store(std::exchange(o.db, nullptr), o.stmts, revision, std::move(store_id));
  o.stmts = {};
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace lepton::store
