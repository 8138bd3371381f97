// The server's store of task output: what agents ship in heartbeats, kept on disk under caps and
// read back by the logs API.
//
// Appending on the control loop used to cost one file open and write per chunk, and nothing
// bounded a task's output: a job that printed 541 MB in 30 s kept the server busy for 11 minutes,
// and a full disk failed the heartbeat. Here the control loop only checks offsets and queues the
// bytes; one writer thread of its own puts them on disk. Of each task's output the first
// head_bytes are kept, and of the rest only the last tail_bytes, in two rotating segments; when an
// agent is further behind than the tail holds, resume_offset() tells it to skip what would be
// rotated away anyway, so those bytes never cross the network. A write that fails (a full disk)
// drops its bytes, which are then read back as omitted, and later writes are tried again.
//
// Files, under DIR/JOB/ (folders 0700, files 0600):
//   RANK.ATTEMPT.log          output from offset 0: the head (the same name as before, so data
//                             folders written before this store still read)
//   RANK.ATTEMPT.log.at-N     output from absolute offset N: a tail segment, or, after a failed
//                             write, the rest of the head
// A file's name and size say which bytes it holds; bytes no file holds were omitted. No other
// state is kept, so a new TaskLogs over the same folder finds everything from the files alone.
// In memory, each task looked at keeps a few numbers until its job is removed, and the bytes
// queued for the writer are bounded by queue_bytes in all.
#pragma once

#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"

namespace lepton::server {

// One attempt of one rank of a job: the unit of output an agent ships.
struct LogKey {
  std::string job;
  int rank = 0;
  int attempt = 0;
  auto operator<=>(const LogKey&) const = default;
};

struct TaskLogOptions {
  std::string dir;                // DATA_DIR/logs
  int64_t head_bytes = 16 << 20;  // the first bytes of a task's output, always kept (>= 0)
  int64_t tail_bytes = 16 << 20;  // the last bytes kept, in two segments of half each (>= 2)
  // Bytes accepted and not yet written, across all tasks; past it append() refuses (> 0).
  int64_t queue_bytes = 64 << 20;
  // For tests: runs on the writer thread before each chunk is written, to hold the writer.
  std::function<void()> before_write;
};

class TaskLogs {
 public:
  // Creates options.dir (0700) when it is missing; the writer thread starts here.
  static Result<std::unique_ptr<TaskLogs>> open(TaskLogOptions options);
  ~TaskLogs();  // writes everything queued (or fails to), then joins the writer thread
  TaskLogs(const TaskLogs&) = delete;
  TaskLogs& operator=(const TaskLogs&) = delete;

  // Whether `key` can name files: a job id of [A-Za-z0-9._-] (not "." or "..", at most 200
  // characters) and a rank and attempt >= 0. Every other call refuses other keys: ids come from
  // outside, and none may name a path outside the folder.
  static bool valid(const LogKey& key);

  // Offsets below are absolute positions in a task's output, as its agent counts them.
  //
  // Where the agent should send from next, given that it holds agent_size bytes of output: the
  // end of what was accepted; or, once the head is full and the agent is more than tail_bytes
  // ahead, agent_size - tail_bytes, the bytes in between being skipped and recorded as omitted
  // (accepted() moves there at once). 0 for an invalid key.
  int64_t resume_offset(const LogKey& key, int64_t agent_size);
  // Accepts a chunk that starts exactly at accepted(key) and queues it for the writer. Returns
  // false, keeping nothing, for a chunk that starts elsewhere (a resend or a gap), an invalid key,
  // and when the queue holds queue_bytes already (never blocks: the control loop calls this, and
  // the agent sends the chunk again from the offset its next heartbeat's reply gives). A chunk
  // is taken whole into an empty queue, however large.
  bool append(const LogKey& key, int64_t offset, std::string_view data);
  // How far the task's output has been accepted (written, queued, failed or skipped); 0 when
  // nothing was, or for an invalid key. After a restart: the end of what the files hold.
  int64_t accepted(const LogKey& key);

  struct Read {
    std::string data;
    int64_t next_offset = 0;  // the absolute offset after the bytes returned
  };
  // Up to max_bytes of the output from `offset`, including accepted bytes still queued. Where
  // `offset` falls in bytes that are not kept, data starts with the line
  // "[lepton: N bytes of output omitted]\n" (not counted in offsets, nor in max_bytes), followed
  // by the next bytes kept. A read stops at the next omitted stretch, so each marker starts a read.
  // Empty at or past accepted(key), with next_offset = offset. (Queued bytes past the tail read
  // back until written; then the rotation they cause drops them.)
  Result<Read> read(const LogKey& key, int64_t offset, size_t max_bytes);

  // Forgets every attempt of every rank of `job` and removes its folder (on the writer thread,
  // after the writes queued before). Output appended later starts from nothing.
  void remove_job(const std::string& job);
  // Waits until every chunk queued so far is written or has failed, and every removal is done.
  void flush();
  // Bytes accepted whose write failed (a full disk), read back as omitted. Each stretch of failed
  // writes is also reported by one line on stderr.
  int64_t failed_bytes() const;

 private:
  struct Stored {  // one file: the bytes [start, start + size) of the output
    int64_t start = 0;
    int64_t size = 0;
    int64_t end() const { return start + size; }
  };
  struct Chunk {
    int64_t offset = 0;
    std::string data;
  };
  struct Task {
    int64_t accepted = 0;
    std::vector<Stored> files;  // sorted by start; changed by the writer thread only
    // Accepted, not yet written; oldest first. A list, as an empty std::deque allocates ~600
    // bytes, and every task ever looked at keeps a Task.
    std::list<std::shared_ptr<const Chunk>> pending;
  };
  struct Source {  // where read() finds bytes
    Stored range;
    std::shared_ptr<const Chunk> chunk;  // nullptr: the file that starts at range.start
  };
  using FileId = std::pair<LogKey, int64_t>;  // a task's file, by the offset where it starts
  struct Op {  // one unit of work for the writer: a chunk to write, or a job to remove
    LogKey key;
    std::shared_ptr<const Chunk> chunk;  // nullptr: remove key.job
  };
  struct Written {  // what writing one chunk did
    std::vector<Stored> files;
    std::vector<int64_t> rotated;  // starts of files no longer kept, to remove
    int64_t failed = 0;
    std::string error;
  };

  explicit TaskLogs(TaskLogOptions options);
  // The state of `key`, reading its job's folder on the first use of any of its keys; nullptr
  // when the key has none and create is false. Unlocks `lock` while reading the folder.
  Task* task(std::unique_lock<std::mutex>& lock, const LogKey& key, bool create);
  std::map<LogKey, Task> scan(const std::string& job) const;
  std::string path(const LogKey& key, int64_t start) const;
  // Reads from `sources` (files pinned by read()); `vanished`: a file was gone.
  Result<Read> read_sources(const LogKey& key, int64_t offset, size_t max_bytes, int64_t end,
                            std::vector<Source>& sources, bool& vanished) const;
  void unpin(const LogKey& key, const std::vector<Source>& sources);
  void run();
  void write(std::unique_lock<std::mutex>& lock, const Op& op);
  Written put(const LogKey& key, std::vector<Stored> files, const Chunk& chunk) const;

  const TaskLogOptions options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;  // the writer: work queued, or stopping
  std::condition_variable idle_;  // flush(): the queue ran empty
  std::map<LogKey, Task> tasks_;
  std::set<std::string> loaded_;         // jobs whose folder was read (or needs no reading)
  std::map<std::string, int> removing_;  // job -> removals queued and not yet done
  uint64_t removals_ = 0;                // remove_job() calls so far: a folder read went stale
  // Files being read, and how many reads read each: a rotation does not remove them under a
  // reader (which then could only start over), but leaves them, doomed, to their last reader.
  std::map<FileId, int> pins_;
  std::set<FileId> doomed_;
  std::deque<Op> ops_;
  int64_t queued_bytes_ = 0;
  bool busy_ = false;  // the writer is working on an op taken from ops_
  bool stop_ = false;
  bool failing_ = false;  // the last write failed: the stretch was reported already
  int64_t failed_bytes_ = 0;
  std::thread writer_;
};

}  // namespace lepton::server
