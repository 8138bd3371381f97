// The SQLite backend of the Store: one file (plus its -wal and -shm files beside it), one
// connection, WAL journal with a full fsync on every commit.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "store/store.h"

namespace lepton::store {

// The schema this build reads and writes, kept in the file's user_version. A file with an older
// version is upgraded when opened (1: jobs, tasks, nodes, events, counters; 2: queues); a file
// with a newer version (written by a newer lepton) is refused rather than misread.
inline constexpr int kSqliteSchemaVersion = 6;

// Opens the store at `path`, creating the file and the schema when absent; ":memory:" gives a
// private in-memory store (for tests). Fails, naming the path, when the file is not an SQLite
// database, is an SQLite database of something else, or has a newer schema version.
//
// Within one batch, records apply in the order jobs, tasks, nodes, deleted_nodes, queues,
// deleted_queues, events; a key repeated in a batch keeps its last record, and a node or queue
// both upserted and deleted is deleted. Deleting an absent node or queue is not an error.
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);

}  // namespace lepton::store
