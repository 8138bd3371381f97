// Private to the SQLite store: the cached statements and what opening a file (sqlite_schema.cpp)
// needs from the Store methods (sqlite_store.cpp).
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "store/store.h"

namespace lepton::store::internal {

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

// The SQL of each cached statement, by Stmt.
extern const std::array<const char*, kStmtCount> kSql;

// "store commit: CHECK constraint failed: rank >= 0". Read before any ROLLBACK, which resets
// the connection's message.
Status sqlite_error(sqlite3* db, int rc, std::string_view op);

// The Store on an open connection whose schema is current and whose statements are prepared (as
// kSql lists them); it owns both.
std::unique_ptr<Store> make_sqlite_store(sqlite3* db, std::array<sqlite3_stmt*, kStmtCount> stmts,
                                         int64_t revision, std::string store_id);

}  // namespace lepton::store::internal
