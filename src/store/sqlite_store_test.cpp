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
  b.events = {{0, 10, "job/j-1", "submitted"}, {0, 20, "job/j-1", "running"}};
  return b;
}

TEST_F(StoreSqlite, EverythingSurvivesReopen) {
  WriteBatch b = sample_batch();
  std::vector<JobRecord> jobs;
  std::vector<TaskRecord> tasks;
  std::vector<NodeRecord> nodes;
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
    events = *store->events_since(0, 100);
    ASSERT_EQ(jobs.size(), 2u);
    ASSERT_EQ(tasks.size(), 2u);
    ASSERT_EQ(nodes.size(), 2u);
    ASSERT_EQ(events.size(), 3u);
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->revision(), 2);
  EXPECT_EQ(*store->list_jobs(), jobs);
  EXPECT_EQ(*store->list_tasks(""), tasks);
  EXPECT_EQ(*store->list_nodes(), nodes);
  EXPECT_EQ(*store->events_since(0, 100), events);
  EXPECT_EQ(*store->next_id("job"), 4);  // never handed out twice
  EXPECT_EQ(*store->next_id("node"), 1);
  WriteBatch more;
  more.deleted_nodes = {"gpu-2"};
  EXPECT_EQ(*store->commit(more), 3);
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
    ASSERT_EQ(*store->commit(first), 1);

    WriteBatch bad = sample_batch();
    bad.tasks.push_back({"j-1", -1, 0, "", 0, 0, JobState::kPending, -1, "", 0});
    bad.tasks.push_back({"j-1", 5, 0, "", 0, 0, JobState::kPending, -1, "", 0});
    bad.deleted_nodes.push_back("keep");
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
  }
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
