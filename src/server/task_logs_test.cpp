#include "server/task_logs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace lepton::server {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the system's temporary one, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "lepton-task-logs-XXXXXX").string();
    LEPTON_CHECK(::mkdtemp(templ.data()) != nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The output a task printed, as a function of the absolute offset, so that any slice read back
// can be checked against where it claims to be.
std::string text(int64_t from, int64_t to) {
  std::string s;
  for (int64_t i = from; i < to; ++i)
    s.push_back(i % 27 == 26 ? '\n' : static_cast<char>('a' + i % 27));
  return s;
}

std::string omitted(int64_t n) {
  return "[lepton: " + std::to_string(n) + " bytes of output omitted]\n";
}

std::unique_ptr<TaskLogs> open_logs(const std::string& dir, int64_t head, int64_t tail) {
  TaskLogOptions o;
  o.dir = dir;
  o.head_bytes = head;
  o.tail_bytes = tail;
  auto logs = TaskLogs::open(std::move(o));
  LEPTON_CHECK(logs.is_ok());
  return std::move(logs).value();
}

// Appends text(from, to) in chunks of 1..7 bytes.
void append_text(TaskLogs& logs, const LogKey& key, int64_t from, int64_t to) {
  for (int64_t pos = from, n = 1; pos < to; pos += n, n = n % 7 + 1) {
    n = std::min(n, to - pos);
    ASSERT_TRUE(logs.append(key, pos, text(pos, pos + n))) << pos;
  }
}

// Everything readable from `offset`, read `step` bytes at a time.
std::string read_all(TaskLogs& logs, const LogKey& key, int64_t offset = 0, size_t step = 5) {
  std::string all;
  for (int i = 0; i < 100000; ++i) {
    auto r = logs.read(key, offset, step);
    LEPTON_CHECK(r.is_ok());
    if (r->data.empty()) break;
    all += r->data;
    offset = r->next_offset;
  }
  return all;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

const LogKey kKey{"job-1", 0, 0};

TEST(TaskLogs, AppendedOutputReadsBack) {
  TempDir dir;
  auto logs = open_logs(dir.path() + "/logs", 1 << 20, 1 << 20);
  EXPECT_EQ(logs->accepted(kKey), 0);
  EXPECT_TRUE(logs->append(kKey, 0, "hello "));
  EXPECT_TRUE(logs->append(kKey, 6, "world\n"));
  EXPECT_TRUE(logs->append(kKey, 12, ""));
  EXPECT_EQ(logs->accepted(kKey), 12);

  auto r = logs->read(kKey, 0, 100);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, "hello world\n");
  EXPECT_EQ(r->next_offset, 12);
  r = logs->read(kKey, 6, 3);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, "wor");
  EXPECT_EQ(r->next_offset, 9);
  r = logs->read(kKey, 12, 100);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, "");
  EXPECT_EQ(r->next_offset, 12);
  r = logs->read(LogKey{"job-1", 1, 0}, 0, 100);  // a rank that printed nothing
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, "");
  EXPECT_EQ(r->next_offset, 0);
  EXPECT_EQ(logs->read(kKey, -1, 10).status().code(), StatusCode::kInvalidArgument);

  // On disk under the name used before this store, private to the server.
  logs->flush();
  const std::string file = dir.path() + "/logs/job-1/0.0.log";
  std::ifstream in(file, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "hello world\n");
  EXPECT_EQ(fs::status(file).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(dir.path() + "/logs/job-1").permissions(), fs::perms::owner_all);
  EXPECT_EQ(fs::status(dir.path() + "/logs").permissions(), fs::perms::owner_all);
  EXPECT_EQ(logs->failed_bytes(), 0);
}

TEST(TaskLogs, AResendOrAGapIsRefused) {
  TempDir dir;
  auto logs = open_logs(dir.path(), 1 << 20, 1 << 20);
  EXPECT_TRUE(logs->append(kKey, 0, "abc"));
  EXPECT_FALSE(logs->append(kKey, 0, "abc"));  // a resend
  EXPECT_FALSE(logs->append(kKey, 1, "bcd"));  // overlaps
  EXPECT_FALSE(logs->append(kKey, 5, "fgh"));  // a gap
  EXPECT_FALSE(logs->append(kKey, -3, "xyz"));
  EXPECT_EQ(logs->accepted(kKey), 3);
  EXPECT_TRUE(logs->append(kKey, 3, "de"));
  EXPECT_EQ(read_all(*logs, kKey), "abcde");
  // Attempts and ranks are counted apart.
  EXPECT_EQ(logs->accepted(LogKey{"job-1", 0, 1}), 0);
  EXPECT_TRUE(logs->append(LogKey{"job-1", 0, 1}, 0, "x"));
  EXPECT_EQ(read_all(*logs, LogKey{"job-1", 0, 1}), "x");
}

TEST(TaskLogs, KeepsTheHeadAndTheTailAndMarksWhatWasOmitted) {
  TempDir dir;
  auto logs = open_logs(dir.path(), /*head=*/10, /*tail=*/8);  // tail segments of 4 bytes
  append_text(*logs, kKey, 0, 40);
  EXPECT_EQ(logs->accepted(kKey), 40);
  logs->flush();
  // Segments start at 10, 14, ..., 34, 38: the last two stay.
  EXPECT_EQ(files_in(dir.path() + "/job-1"),
            (std::set<std::string>{"0.0.log", "0.0.log.at-34", "0.0.log.at-38"}));

  auto r = logs->read(kKey, 0, 100);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, text(0, 10));  // a read stops where bytes were omitted
  EXPECT_EQ(r->next_offset, 10);
  r = logs->read(kKey, 10, 100);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, omitted(24) + text(34, 40));
  EXPECT_EQ(r->next_offset, 40);
  r = logs->read(kKey, 20, 3);  // the marker does not count in max_bytes
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, omitted(14) + text(34, 37));
  EXPECT_EQ(r->next_offset, 37);
  r = logs->read(kKey, 36, 3);  // across two segments
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, text(36, 39));
  EXPECT_EQ(r->next_offset, 39);
  EXPECT_EQ(read_all(*logs, kKey, 0, 3), text(0, 10) + omitted(24) + text(34, 40));
}

TEST(TaskLogs, ABacklogLongerThanTheTailIsSkipped) {
  TempDir dir;
  auto logs = open_logs(dir.path(), /*head=*/10, /*tail=*/8);
  // The head is sent first, however far ahead the agent is.
  EXPECT_EQ(logs->resume_offset(kKey, 1000), 0);
  append_text(*logs, kKey, 0, 10);
  // Not further ahead than the tail holds: everything is sent.
  EXPECT_EQ(logs->resume_offset(kKey, 18), 10);
  EXPECT_EQ(logs->accepted(kKey), 10);
  // Further ahead: only the last tail_bytes, the rest counted as omitted.
  EXPECT_EQ(logs->resume_offset(kKey, 100), 92);
  EXPECT_EQ(logs->accepted(kKey), 92);
  EXPECT_EQ(logs->resume_offset(kKey, 100), 92);  // asked again: the same answer
  EXPECT_FALSE(logs->append(kKey, 10, text(10, 20)));
  auto r = logs->read(kKey, 10, 100);  // the skipped bytes read as omitted, before any follow
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->data, omitted(82));
  EXPECT_EQ(r->next_offset, 92);
  append_text(*logs, kKey, 92, 100);
  EXPECT_EQ(read_all(*logs, kKey), text(0, 10) + omitted(82) + text(92, 100));
  // An agent that reports less than was accepted is told the end of what was.
  EXPECT_EQ(logs->resume_offset(kKey, 50), 100);
}

TEST(TaskLogs, ARestartFindsWhatWasStored) {
  TempDir dir;
  const LogKey other{"job-1", 3, 2};
  {
    auto logs = open_logs(dir.path(), /*head=*/10, /*tail=*/8);
    append_text(*logs, kKey, 0, 40);
    append_text(*logs, other, 0, 7);
  }  // drains the queue
  auto logs = open_logs(dir.path(), /*head=*/10, /*tail=*/8);
  EXPECT_EQ(logs->accepted(kKey), 40);
  EXPECT_EQ(logs->accepted(other), 7);
  EXPECT_EQ(logs->resume_offset(kKey, 40), 40);
  EXPECT_FALSE(logs->append(kKey, 0, "x"));  // an agent resending from the start
  EXPECT_EQ(read_all(*logs, kKey), text(0, 10) + omitted(24) + text(34, 40));
  EXPECT_EQ(read_all(*logs, other), text(0, 7));
  // Writing goes on where it stopped: at-38 fills up, at-42 starts, at-34 goes.
  append_text(*logs, kKey, 40, 43);
  logs->flush();
  EXPECT_EQ(read_all(*logs, kKey, 10), omitted(28) + text(38, 43));
  EXPECT_EQ(files_in(dir.path() + "/job-1"),
            (std::set<std::string>{"0.0.log", "0.0.log.at-38", "0.0.log.at-42", "3.2.log"}));
}

TEST(TaskLogs, ReadsALogWrittenBeforeTheCaps) {
  TempDir dir;
  fs::create_directories(dir.path() + "/job-1");
  std::ofstream(dir.path() + "/job-1/0.0.log", std::ios::binary) << text(0, 100);
  auto logs = open_logs(dir.path(), /*head=*/10, /*tail=*/8);
  EXPECT_EQ(logs->accepted(kKey), 100);
  EXPECT_EQ(read_all(*logs, kKey), text(0, 100));
  append_text(*logs, kKey, 100, 120);  // goes to tail segments
  logs->flush();                       // (until written, all of it reads from memory)
  EXPECT_EQ(read_all(*logs, kKey, 90), text(90, 100) + omitted(12) + text(112, 120));
}

TEST(TaskLogs, RemovingAJobRemovesItsFilesAndState) {
  TempDir dir;
  auto logs = open_logs(dir.path(), 1 << 20, 1 << 20);
  const LogKey a0{"a", 0, 0}, a1{"a", 1, 0}, b0{"b", 0, 0};
  append_text(*logs, a0, 0, 30);
  append_text(*logs, a1, 0, 30);
  append_text(*logs, b0, 0, 30);
  logs->remove_job("a");  // with writes still queued, or not
  EXPECT_EQ(logs->accepted(a0), 0);
  EXPECT_EQ(logs->accepted(a1), 0);
  EXPECT_EQ(read_all(*logs, a0), "");
  logs->flush();
  EXPECT_FALSE(fs::exists(dir.path() + "/a"));
  EXPECT_EQ(read_all(*logs, b0), text(0, 30));
  // Output after the removal starts from nothing, and survives it.
  EXPECT_TRUE(logs->append(a0, 0, "again"));
  logs->remove_job("b");
  logs->flush();
  EXPECT_EQ(read_all(*logs, a0), "again");
  EXPECT_FALSE(fs::exists(dir.path() + "/b"));
  logs.reset();
  logs = open_logs(dir.path(), 1 << 20, 1 << 20);
  EXPECT_EQ(read_all(*logs, a0), "again");
  EXPECT_EQ(logs->accepted(a1), 0);
  EXPECT_EQ(logs->accepted(b0), 0);
}

TEST(TaskLogs, KeysThatCouldNameAPathOutsideTheFolderAreRefused) {
  TempDir dir;
  const std::string logs_dir = dir.path() + "/logs";
  auto logs = open_logs(logs_dir, 1 << 20, 1 << 20);
  std::ofstream(dir.path() + "/precious") << "keep";
  const std::vector<std::string> hostile = {
      "",     ".",   "..",   "../precious",          "a/b",
      "/tmp", "a b", "a\nb", std::string("a\0b", 3), std::string(201, 'a')};
  for (const std::string& job : hostile) {
    const LogKey key{job, 0, 0};
    EXPECT_FALSE(TaskLogs::valid(key)) << job;
    EXPECT_FALSE(logs->append(key, 0, "x")) << job;
    EXPECT_EQ(logs->resume_offset(key, 10), 0) << job;
    EXPECT_EQ(logs->accepted(key), 0) << job;
    EXPECT_EQ(logs->read(key, 0, 10).status().code(), StatusCode::kInvalidArgument) << job;
    logs->remove_job(job);
  }
  EXPECT_FALSE(logs->append(LogKey{"ok", -1, 0}, 0, "x"));
  EXPECT_FALSE(logs->append(LogKey{"ok", 0, -1}, 0, "x"));
  EXPECT_TRUE(TaskLogs::valid(LogKey{"Job_1.v-2", 0, 0}));
  EXPECT_TRUE(TaskLogs::valid(LogKey{"..a", 0, 0}));  // a name, not a step up
  logs->flush();
  EXPECT_TRUE(fs::exists(dir.path() + "/precious"));
  EXPECT_TRUE(fs::exists(logs_dir));
  EXPECT_TRUE(files_in(logs_dir).empty());
}

TEST(TaskLogs, AFailedWriteIsCountedAndLaterWritesAreTriedAgain) {
  TempDir dir;
  // A file where the job's folder must go: every write fails until it is taken away.
  std::ofstream(dir.path() + "/job-1") << "in the way";
  auto logs = open_logs(dir.path(), /*head=*/10, /*tail=*/8);
  EXPECT_TRUE(logs->append(kKey, 0, "abc"));
  EXPECT_TRUE(logs->append(kKey, 3, "de"));
  logs->flush();
  EXPECT_EQ(logs->failed_bytes(), 5);
  EXPECT_EQ(logs->accepted(kKey), 5);  // not asked for again: the agent moves on
  EXPECT_EQ(read_all(*logs, kKey), omitted(5));

  fs::remove(dir.path() + "/job-1");
  EXPECT_TRUE(logs->append(kKey, 5, "fgh"));
  logs->flush();
  EXPECT_EQ(logs->failed_bytes(), 5);
  EXPECT_EQ(read_all(*logs, kKey), omitted(5) + "fgh");
  // The rest of the head, after the failed bytes, is in a file named after where it starts.
  EXPECT_EQ(files_in(dir.path() + "/job-1"), (std::set<std::string>{"0.0.log.at-5"}));
  logs.reset();
  logs = open_logs(dir.path(), /*head=*/10, /*tail=*/8);
  EXPECT_EQ(logs->accepted(kKey), 8);
  EXPECT_EQ(read_all(*logs, kKey), omitted(5) + "fgh");
}

// A tmpfs of 64 KiB, mounted for the test's lifetime where this process may mount (root).
class TinyDisk {
 public:
  explicit TinyDisk(const std::string& at) : at_(at) {
    fs::create_directories(at_);
    mounted_ = ::mount("tmpfs", at_.c_str(), "tmpfs", 0, "size=64k,mode=0700") == 0;
  }
  ~TinyDisk() {
    if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  // Writes a file until the disk is full.
  void fill(const std::string& file) const {
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    LEPTON_CHECK(fd >= 0);
    const std::string block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    while (::write(fd, block.data(), 1) > 0) {
    }
    ::close(fd);
  }

 private:
  std::string at_;
  bool mounted_ = false;
};

TEST(TaskLogs, AFullDiskDropsOutputUntilThereIsRoomAgain) {
  TempDir dir;
  TinyDisk disk(dir.path() + "/disk");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  auto logs = open_logs(dir.path() + "/disk/logs", /*head=*/1 << 20, /*tail=*/1 << 20);
  EXPECT_TRUE(logs->append(kKey, 0, text(0, 1000)));
  logs->flush();
  disk.fill(dir.path() + "/disk/filler");
  // Part of it fits in the page the file has; that part is taken back.
  EXPECT_TRUE(logs->append(kKey, 1000, text(1000, 9192)));
  logs->flush();
  EXPECT_EQ(logs->failed_bytes(), 8192);
  EXPECT_EQ(fs::file_size(dir.path() + "/disk/logs/job-1/0.0.log"), 1000u);
  EXPECT_TRUE(logs->append(kKey, 9192, "x"));  // still full
  logs->flush();
  EXPECT_EQ(logs->failed_bytes(), 8193);

  fs::remove(dir.path() + "/disk/filler");
  EXPECT_TRUE(logs->append(kKey, 9193, text(9193, 9300)));
  logs->flush();
  EXPECT_EQ(logs->failed_bytes(), 8193);
  EXPECT_EQ(read_all(*logs, kKey, 0, 4096), text(0, 1000) + omitted(8193) + text(9193, 9300));
}

// Holds the writer thread in before_write until released.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

TEST(TaskLogs, AFullQueueRefusesAndQueuedBytesAreReadFromMemory) {
  TempDir dir;
  Gate gate;
  TaskLogOptions o;
  o.dir = dir.path();
  o.queue_bytes = 10;
  o.before_write = [&] { gate.wait(); };
  auto opened = TaskLogs::open(std::move(o));
  ASSERT_TRUE(opened.is_ok());
  std::unique_ptr<TaskLogs> logs = std::move(opened).value();
  struct Releaser {  // before the logs' destructor waits for the writer
    Gate& gate;
    ~Releaser() { gate.release(); }
  } releaser{gate};

  EXPECT_TRUE(logs->append(kKey, 0, "123456"));
  EXPECT_FALSE(logs->append(kKey, 6, "789abc"));  // 12 bytes queued would be over 10
  EXPECT_EQ(logs->accepted(kKey), 6);
  EXPECT_TRUE(logs->append(kKey, 6, "7890"));
  EXPECT_FALSE(logs->append(LogKey{"other", 0, 0}, 0, "x"));  // the bound is for all tasks
  EXPECT_EQ(read_all(*logs, kKey), "1234567890");             // none of it written yet
  EXPECT_FALSE(fs::exists(dir.path() + "/job-1/0.0.log"));

  gate.release();
  logs->flush();
  EXPECT_TRUE(logs->append(kKey, 10, std::string(100, 'z')));  // an empty queue takes any chunk
  logs->flush();
  EXPECT_EQ(read_all(*logs, kKey, 0, 1000), "1234567890" + std::string(100, 'z'));
  EXPECT_EQ(fs::file_size(dir.path() + "/job-1/0.0.log"), 110u);
}

TEST(TaskLogs, AJobRemovedWhileItsOutputIsBeingWrittenStartsAfresh) {
  TempDir dir;
  Gate gate;
  TaskLogOptions o;
  o.dir = dir.path();
  o.queue_bytes = 100;
  o.before_write = [&] { gate.wait(); };
  auto opened = TaskLogs::open(std::move(o));
  ASSERT_TRUE(opened.is_ok());
  std::unique_ptr<TaskLogs> logs = std::move(opened).value();
  struct Releaser {
    Gate& gate;
    ~Releaser() { gate.release(); }
  } releaser{gate};

  EXPECT_TRUE(logs->append(kKey, 0, "old-1 "));  // the writer holds this one
  EXPECT_TRUE(logs->append(kKey, 6, "old-2 "));  // queued behind it
  logs->remove_job(kKey.job);
  EXPECT_EQ(logs->accepted(kKey), 0);
  // Dropped bytes no longer count against the queue.
  EXPECT_TRUE(logs->append(kKey, 0, std::string(95, 'n')));
  gate.release();
  logs->flush();
  EXPECT_EQ(read_all(*logs, kKey, 0, 1000), std::string(95, 'n'));
  EXPECT_EQ(files_in(dir.path() + "/job-1"), (std::set<std::string>{"0.0.log"}));
  EXPECT_EQ(fs::file_size(dir.path() + "/job-1/0.0.log"), 95u);
}

// One thread appends while another reads along: every byte read must be the byte at its offset,
// every marker must count exactly the bytes skipped.
TEST(TaskLogs, ConcurrentAppendsAndReadsAgree) {
  TempDir dir;
  auto logs = open_logs(dir.path(), /*head=*/100, /*tail=*/64);
  constexpr int64_t kTotal = 20000;
  std::atomic<bool> done{false};
  std::jthread writer([&] {  // joined however the test ends
    std::mt19937 rng(7);
    for (int64_t pos = 0; pos < kTotal;) {
      const int64_t n = std::min<int64_t>(1 + static_cast<int64_t>(rng() % 50), kTotal - pos);
      if (logs->append(kKey, pos, text(pos, pos + n))) pos += n;
      if (rng() % 16 == 0) logs->resume_offset(kKey, pos);  // never ahead: changes nothing
    }
    done = true;
  });
  int64_t offset = 0;
  int64_t read_bytes = 0;
  bool ok = true;
  for (int i = 0; i < 10000000 && ok; ++i) {
    const bool finished = done;
    auto r = logs->read(kKey, offset, 37);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    std::string_view data = r->data;
    int64_t pos = offset;
    if (data.starts_with("[lepton: ")) {
      const size_t eol = data.find('\n');
      ASSERT_NE(eol, std::string_view::npos);
      const int64_t n = std::stoll(std::string(data.substr(9)));
      ASSERT_EQ(std::string(data.substr(0, eol + 1)), omitted(n));
      EXPECT_GT(n, 0);
      pos += n;
      data.remove_prefix(eol + 1);
    }
    ok = std::string(data) == text(pos, pos + std::ssize(data));
    EXPECT_TRUE(ok) << "at " << pos;
    EXPECT_EQ(r->next_offset, pos + std::ssize(data));
    read_bytes += std::ssize(data);
    offset = r->next_offset;
    if (finished && offset == kTotal) break;
  }
  writer.join();
  EXPECT_EQ(offset, kTotal);
  EXPECT_GT(read_bytes, 0);
  // Segments of 32 bytes from 100: the last two are kept.
  logs->flush();
  const int64_t last = 100 + (kTotal - 100 - 1) / 32 * 32;
  EXPECT_EQ(read_all(*logs, kKey, 0, 1000),
            text(0, 100) + omitted(last - 32 - 100) + text(last - 32, kTotal));
}

}  // namespace
}  // namespace lepton::server
