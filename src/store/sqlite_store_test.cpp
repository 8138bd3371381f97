// What the SQLite backend adds to the contract (store_contract_test.cpp): durability in a file,
// atomicity of a failing batch, and refusing files it cannot or must not read.
#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace lepton::store {
namespace {

class StoreSqlite : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lepton-store-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "store.db").string();
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<Store> open() {
    auto s = open_sqlite_store(path_);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? std::move(s).value() : nullptr;
  }

  // Runs SQL on the file through a connection of its own.
  void raw(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  }

  std::string open_error() {
    auto s = open_sqlite_store(path_);
    EXPECT_FALSE(s.is_ok());
    return s.is_ok() ? "" : s.status().to_string();
  }

  std::filesystem::path dir_;
  std::string path_;
};

WriteBatch sample_batch() {
  WriteBatch b;
  b.jobs = {{"j-1", "train", "{\"run\":\"python train.py\"}", JobState::kRunning, 1, "", 10, 20},
            {"j-2", "eval", "{}", JobState::kPending, 0, "waiting for 8 GPUs", 30, 30}};
  b.tasks = {{"j-1", 0, 2, "gpu-1", 0xFF, 1000, JobState::kRunning, -1, "", 20},
             {"j-1", 1, 2, "gpu-2", 0x3, 500, JobState::kRunning, -1, "", 20}};
  b.nodes = {{"gpu-1", "10.0.0.1:7070", 64000, 512000, 8, "H100-80GB", true, 19},
             {"gpu-2", "10.0.0.2:7070", 64000, 512000, 8, "H100-80GB", true, 18},
             {"gone", "", 1000, 1024, 0, "", false, 1}};
  b.deleted_nodes = {"gone"};
  b.queues = {{"team-a", R"({"name":"team-a","weight":2})"}, {"team-b", "{}"}};
  b.deleted_queues = {"team-b"};
  b.events = {{0, 10, "job/j-1", "submitted"}, {0, 20, "job/j-1", "running"}};
  return b;
}

TEST_F(StoreSqlite, EverythingSurvivesReopen) {
  WriteBatch b = sample_batch();
  std::vector<JobRecord> jobs;
  std::vector<TaskRecord> tasks;
  std::vector<NodeRecord> nodes;
  std::vector<QueueRecord> queues;
  std::vector<EventRecord> events;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->commit(b).is_ok());
    WriteBatch more;
    more.events = {{0, 30, "node/gpu-2", "heartbeat late"}};
    ASSERT_EQ(*store->commit(more), 2);
    for (int i = 1; i <= 3; ++i) ASSERT_EQ(*store->next_id("job"), i);
    jobs = *store->list_jobs();
    tasks = *store->list_tasks("");
    nodes = *store->list_nodes();
    queues = *store->list_queues();
    events = *store->events_since(0, 100);
    ASSERT_EQ(jobs.size(), 2u);
    ASSERT_EQ(tasks.size(), 2u);
    ASSERT_EQ(nodes.size(), 2u);
    ASSERT_EQ(queues, (std::vector<QueueRecord>{{"team-a", R"({"name":"team-a","weight":2})"}}));
    ASSERT_EQ(events.size(), 3u);
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->revision(), 2);
  EXPECT_EQ(*store->list_jobs(), jobs);
  EXPECT_EQ(*store->list_tasks(""), tasks);
  EXPECT_EQ(*store->list_nodes(), nodes);
  EXPECT_EQ(*store->list_queues(), queues);
  EXPECT_EQ(*store->events_since(0, 100), events);
  EXPECT_EQ(*store->next_id("job"), 4);  // never handed out twice
  EXPECT_EQ(*store->next_id("node"), 1);
  WriteBatch more;
  more.deleted_nodes = {"gpu-2"};
  more.deleted_queues = {"team-a"};
  EXPECT_EQ(*store->commit(more), 3);
  store.reset();
  store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->list_queues()->empty());
}

TEST_F(StoreSqlite, UsesWalJournal) {
  ASSERT_NE(open(), nullptr);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

// A batch whose last-but-one record breaks a constraint (a negative rank) leaves nothing behind:
// not its jobs, nodes, deletions or events, nor a revision; and the store goes on working.
TEST_F(StoreSqlite, FailedBatchAppliesNothing) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    WriteBatch first;
    first.jobs = {{"j-0", "first", "{}", JobState::kPending, 0, "", 1, 1}};
    first.nodes = {{"keep", "", 1000, 1024, 0, "", true, 1}};
    first.queues = {{"kept", "1"}};
    ASSERT_EQ(*store->commit(first), 1);

    WriteBatch bad = sample_batch();
    bad.tasks.push_back({"j-1", -1, 0, "", 0, 0, JobState::kPending, -1, "", 0});
    bad.tasks.push_back({"j-1", 5, 0, "", 0, 0, JobState::kPending, -1, "", 0});
    bad.deleted_nodes.push_back("keep");
    bad.deleted_queues.push_back("kept");
    bad.queues.push_back({"kept", "2"});
    auto r = store->commit(bad);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_NE(r.status().message().find("commit"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("rank -1"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("CHECK constraint failed"), std::string::npos)
        << r.status().message();

    auto check_unchanged = [&](Store& s) {
      EXPECT_EQ(s.revision(), 1);
      ASSERT_EQ(s.list_jobs()->size(), 1u);
      EXPECT_EQ((*s.list_jobs())[0].id, "j-0");
      EXPECT_TRUE(s.list_tasks("")->empty());
      ASSERT_EQ(s.list_nodes()->size(), 1u);
      EXPECT_EQ((*s.list_nodes())[0].name, "keep");
      EXPECT_EQ(*s.list_queues(), (std::vector<QueueRecord>{{"kept", "1"}}));
      EXPECT_TRUE(s.events_since(0, 100)->empty());
    };
    check_unchanged(*store);
    {
      SCOPED_TRACE("after reopen");
      store.reset();
      store = open();
      ASSERT_NE(store, nullptr);
      check_unchanged(*store);
    }
    // The same batch without the bad task commits, with the next revision.
    bad.tasks.erase(bad.tasks.begin() + 2);
    ASSERT_EQ(*store->commit(bad), 2);
    EXPECT_EQ(store->list_jobs()->size(), 3u);
    EXPECT_EQ(store->list_tasks("")->size(), 3u);
    EXPECT_EQ(store->events_since(0, 100)->size(), 2u);
    EXPECT_EQ(*store->list_queues(),
              (std::vector<QueueRecord>{{"team-a", R"({"name":"team-a","weight":2})"}}));
  }
}

// The schema of version 1, as lepton 0.1 (before queues) wrote it, verbatim.
constexpr const char* kSchemaVersion1 = R"sql(
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
PRAGMA user_version = 1;
)sql";

// The schema as SQLite keeps it (every table and index, by name), and the user_version.
std::string schema_of(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string out;
  for (const char* sql : {"SELECT type || ' ' || name || ': ' || sql FROM sqlite_schema "
                          "WHERE sql IS NOT NULL ORDER BY name",
                          "SELECT 'user_version ' || user_version FROM pragma_user_version"}) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      out += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      out += "\n";
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return out;
}

// A data directory from the lepton before queues opens: its records are all there, the queues
// table is added, and the schema ends up as a new store's.
TEST_F(StoreSqlite, UpgradesAVersion1Store) {
  raw(kSchemaVersion1);
  raw("INSERT INTO jobs VALUES ('j-1', 'train', '{\"name\":\"train\",\"run\":\"x\"}', "
      "'RUNNING', 0, '', 10, 20);"
      "INSERT INTO nodes VALUES ('gpu-1', '', 1000, 1024, 1, 'T4', 1, 5);"
      "INSERT INTO events (revision, time_ms, object, message) VALUES (7, 1, 'job/j-1', 'x');"
      "INSERT INTO counters VALUES ('job', 1);"
      "UPDATE meta SET revision = 7;");
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->revision(), 7);
    ASSERT_EQ(store->list_jobs()->size(), 1u);
    EXPECT_EQ((*store->list_jobs())[0].spec_json, R"({"name":"train","run":"x"})");
    EXPECT_EQ(store->list_nodes()->size(), 1u);
    EXPECT_EQ(store->events_since(0, 10)->size(), 1u);
    EXPECT_EQ(*store->next_id("job"), 2);
    EXPECT_TRUE(store->list_queues()->empty());
    WriteBatch b;
    b.queues = {{"team-a", "{}"}};
    EXPECT_EQ(*store->commit(b), 8);
  }
  const std::string upgraded = schema_of(path_);
  EXPECT_NE(upgraded.find("user_version " + std::to_string(kSqliteSchemaVersion)),
            std::string::npos)
      << upgraded;
  {
    auto store = open();  // opens again without upgrading twice
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(*store->list_queues(), (std::vector<QueueRecord>{{"team-a", "{}"}}));
  }
  EXPECT_EQ(schema_of(path_), upgraded);

  std::string fresh_path = (dir_ / "fresh.db").string();
  ASSERT_TRUE(open_sqlite_store(fresh_path).is_ok());
  EXPECT_EQ(schema_of(fresh_path), upgraded);
}

// An upgrade that fails leaves the file as it was, at its old version.
TEST_F(StoreSqlite, FailedUpgradeChangesNothing) {
  raw(kSchemaVersion1);
  raw("CREATE TABLE queues (x INTEGER)");  // in the way of the upgrade
  std::string error = open_error();
  EXPECT_NE(error.find("upgrade schema from version 1"), std::string::npos) << error;
  EXPECT_NE(schema_of(path_).find("user_version 1"), std::string::npos);
  raw("DROP TABLE queues");
  EXPECT_NE(open(), nullptr);
}

TEST_F(StoreSqlite, RefusesAFileThatIsNotADatabase) {
  std::ofstream(path_) << std::string(4096, 'x') << "\nnot a database\n";
  std::string error = open_error();
  EXPECT_NE(error.find(path_), std::string::npos) << error;
  EXPECT_NE(error.find("file is not a database"), std::string::npos) << error;
}

TEST_F(StoreSqlite, RefusesANewerSchemaVersion) {
  ASSERT_NE(open(), nullptr);
  raw("PRAGMA user_version = " + std::to_string(kSqliteSchemaVersion + 1));
  std::string error = open_error();
  EXPECT_NE(error.find(path_), std::string::npos) << error;
  EXPECT_NE(
      error.find("schema version " + std::to_string(kSqliteSchemaVersion + 1) +
                 " is newer than this lepton's (" + std::to_string(kSqliteSchemaVersion) + ")"),
      std::string::npos)
      << error;
}

TEST_F(StoreSqlite, RefusesAnotherApplicationsDatabase) {
  raw("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)");
  std::string error = open_error();
  EXPECT_NE(error.find("not a lepton store"), std::string::npos) << error;
}

TEST_F(StoreSqlite, UnopenablePathIsUnavailable) {
  path_ = (dir_ / "missing-dir" / "store.db").string();
  auto s = open_sqlite_store(path_);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(s.status().message().find(path_), std::string::npos) << s.status().message();
  EXPECT_EQ(open_sqlite_store("").status().code(), StatusCode::kInvalidArgument);
}

// A second process holding the write lock makes a commit wait, then fail with kUnavailable
// (retryable), leaving nothing applied.
TEST_F(StoreSqlite, BusyDatabaseIsUnavailable) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto r = store->commit(sample_batch());
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().to_string();
  EXPECT_EQ(store->revision(), 0);
  EXPECT_EQ(*store->commit(sample_batch()), 1);
}

}  // namespace
}  // namespace lepton::store
