#include "server/task_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

namespace lepton::server {

namespace fs = std::filesystem;

namespace {

bool valid_job(std::string_view job) {
  if (job.empty() || job.size() > 200 || job == "." || job == "..") return false;
  return std::all_of(job.begin(), job.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// Reads a decimal number >= 0 from the front of `s` and removes it; false when there is none.
template <typename T>
bool take_number(std::string_view& s, T& out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc()) return false;
  s.remove_prefix(static_cast<size_t>(end - s.data()));
  return true;
}

bool take_prefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// Parses "RANK.ATTEMPT.log" (start 0) or "RANK.ATTEMPT.log.at-START".
bool parse_name(std::string_view name, int& rank, int& attempt, int64_t& start) {
  if (!take_number(name, rank) || !take_prefix(name, ".") || !take_number(name, attempt) ||
      !take_prefix(name, ".log")) {
    return false;
  }
  start = 0;
  if (name.empty()) return true;
  return take_prefix(name, ".at-") && take_number(name, start) && name.empty();
}

std::string errno_text(int err) { return std::strerror(err); }

std::string omitted_line(int64_t n) {
  return "[lepton: " + std::to_string(n) + " bytes of output omitted]\n";
}

}  // namespace

Result<std::unique_ptr<TaskLogs>> TaskLogs::open(TaskLogOptions options) {
  if (options.dir.empty()) return Status::invalid_argument("dir: expected a folder");
  if (options.head_bytes < 0) return Status::invalid_argument("head_bytes: expected >= 0");
  // Two segments of at least one byte each: one would have to be removed to start the next.
  if (options.tail_bytes < 2) return Status::invalid_argument("tail_bytes: expected >= 2");
  if (options.queue_bytes <= 0) return Status::invalid_argument("queue_bytes: expected > 0");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec || !fs::is_directory(options.dir, ec)) {
    return Status::internal("task logs: cannot create " + options.dir + ": " +
                            (ec ? ec.message() : "not a folder"));
  }
  // Task output can hold anything a job printed, secrets included: for the server's user only.
  fs::permissions(options.dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) {
    return Status::internal("task logs: cannot restrict " + options.dir + ": " + ec.message());
  }
  return std::unique_ptr<TaskLogs>(new TaskLogs(std::move(options)));
}

TaskLogs::TaskLogs(TaskLogOptions options) : options_(std::move(options)) {
  writer_ = std::thread([this] { run(); });
}

TaskLogs::~TaskLogs() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  writer_.join();
}

bool TaskLogs::valid(const LogKey& key) {
  return valid_job(key.job) && key.rank >= 0 && key.attempt >= 0;
}

std::string TaskLogs::path(const LogKey& key, int64_t start) const {
  std::string p = options_.dir + "/" + key.job + "/" + std::to_string(key.rank) + "." +
                  std::to_string(key.attempt) + ".log";
  if (start != 0) p += ".at-" + std::to_string(start);
  return p;
}

std::map<LogKey, TaskLogs::Task> TaskLogs::scan(const std::string& job) const {
  std::map<LogKey, Task> found;
  std::error_code ec;
  // A folder that is missing or cannot be read holds nothing: its tasks start from offset 0.
  for (auto it = fs::directory_iterator(options_.dir + "/" + job, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code stat_ec;
    if (!it->is_regular_file(stat_ec) || it->is_symlink(stat_ec)) continue;
    LogKey key{job, 0, 0};
    int64_t start = 0;
    if (!parse_name(it->path().filename().native(), key.rank, key.attempt, start)) continue;
    const auto size = static_cast<int64_t>(it->file_size(stat_ec));
    if (stat_ec || size <= 0) continue;  // an empty file holds nothing (a write that failed)
    found[key].files.push_back({start, size});
  }
  for (auto& [key, task] : found) {
    std::sort(task.files.begin(), task.files.end(),
              [](const Stored& a, const Stored& b) { return a.start < b.start; });
    for (const Stored& f : task.files) task.accepted = std::max(task.accepted, f.end());
  }
  return found;
}

TaskLogs::Task* TaskLogs::task(std::unique_lock<std::mutex>& lock, const LogKey& key, bool create) {
  // A job's folder is read once, for all its tasks, on the first use of any: reading it per key
  // would list a thousand-rank job's folder a thousand times.
  while (!loaded_.count(key.job)) {
    // The folder is being removed (and this job's writes queue after that): nothing to read.
    if (removing_.count(key.job)) {
      loaded_.insert(key.job);
      break;
    }
    const uint64_t removals = removals_;
    lock.unlock();
    std::map<LogKey, Task> found = scan(key.job);
    lock.lock();
    if (loaded_.count(key.job)) break;    // another thread read it meanwhile
    if (removals_ != removals) continue;  // a removal started meanwhile: what was read is stale
    tasks_.merge(found);
    loaded_.insert(key.job);
  }
  auto it = tasks_.find(key);
  if (it != tasks_.end()) return &it->second;
  return create ? &tasks_[key] : nullptr;
}

int64_t TaskLogs::resume_offset(const LogKey& key, int64_t agent_size) {
  if (!valid(key)) return 0;
  std::unique_lock lock(mu_);
  Task* t = task(lock, key, /*create=*/true);
  // Bytes the tail would rotate away before anyone reads them need not be shipped at all.
  if (t->accepted >= options_.head_bytes && agent_size - t->accepted > options_.tail_bytes) {
    t->accepted = agent_size - options_.tail_bytes;
  }
  return t->accepted;
}

bool TaskLogs::append(const LogKey& key, int64_t offset, std::string_view data) {
  if (!valid(key)) return false;
  std::unique_lock lock(mu_);
  Task* t = task(lock, key, /*create=*/true);
  if (offset != t->accepted) return false;
  if (data.empty()) return true;
  const auto size = static_cast<int64_t>(data.size());
  // An agent claiming an output near 2^63 bytes long must not overflow the offsets.
  if (size > std::numeric_limits<int64_t>::max() - offset) return false;
  // Refused rather than waited for: the caller is the control loop, and the agent keeps the
  // bytes and sends them again.
  if (queued_bytes_ > 0 && queued_bytes_ + size > options_.queue_bytes) return false;
  auto chunk = std::make_shared<const Chunk>(Chunk{offset, std::string(data)});
  t->pending.push_back(chunk);
  t->accepted += size;
  queued_bytes_ += size;
  ops_.push_back({key, std::move(chunk)});
  lock.unlock();
  wake_.notify_all();
  return true;
}

int64_t TaskLogs::accepted(const LogKey& key) {
  if (!valid(key)) return 0;
  std::unique_lock lock(mu_);
  const Task* t = task(lock, key, /*create=*/false);
  return t ? t->accepted : 0;
}

Result<TaskLogs::Read> TaskLogs::read(const LogKey& key, int64_t offset, size_t max_bytes) {
  if (!valid(key)) {
    return Status::invalid_argument("job: expected an id of letters, digits, '.', '_' and '-'");
  }
  if (offset < 0) return Status::invalid_argument("offset: expected a value >= 0");
  // Files vanish under a read only when their job is removed meanwhile (a rotation leaves a file
  // being read to its last reader): then look again, and find what the job has now.
  for (int tries = 0;; ++tries) {
    std::vector<Source> sources;
    int64_t end = 0;
    {
      std::unique_lock lock(mu_);
      const Task* t = task(lock, key, /*create=*/false);
      if (!t || offset >= t->accepted || max_bytes == 0) return Read{{}, offset};
      end = t->accepted;
      for (const Stored& f : t->files) {
        if (f.end() <= offset) continue;
        sources.push_back({f, nullptr});
        ++pins_[{key, f.start}];
      }
      // Queued bytes are served from memory: waiting for the writer could mean waiting on a disk.
      for (const auto& c : t->pending) {
        const Stored range{c->offset, static_cast<int64_t>(c->data.size())};
        if (range.end() > offset) sources.push_back({range, c});
      }
    }
    bool vanished = false;
    Result<Read> out = read_sources(key, offset, max_bytes, end, sources, vanished);
    unpin(key, sources);
    if (vanished && tries < 3) continue;
    return out;
  }
}

Result<TaskLogs::Read> TaskLogs::read_sources(const LogKey& key, int64_t offset, size_t max_bytes,
                                              int64_t end, std::vector<Source>& sources,
                                              bool& vanished) const {
  std::stable_sort(sources.begin(), sources.end(),
                   [](const Source& a, const Source& b) { return a.range.start < b.range.start; });
  // Sorted by start, the source holding `pos`, if any, is the first one that ends after it.
  size_t i = 0;
  int64_t pos = offset;
  auto holding = [&]() -> const Source* {
    while (i < sources.size() && sources[i].range.end() <= pos) ++i;
    return i < sources.size() && sources[i].range.start <= pos ? &sources[i] : nullptr;
  };
  Read out{{}, offset};
  if (!holding()) {
    const int64_t next = i < sources.size() ? std::min(sources[i].range.start, end) : end;
    out.data = omitted_line(next - pos);
    pos = next;
  }
  size_t copied = 0;
  while (copied < max_bytes && pos < end) {
    const Source* s = holding();
    if (!s) break;  // omitted bytes: the next read starts with their line
    const auto n = static_cast<size_t>(
        std::min<int64_t>(s->range.end() - pos, static_cast<int64_t>(max_bytes - copied)));
    const int64_t at = pos - s->range.start;
    if (s->chunk) {
      out.data.append(s->chunk->data, static_cast<size_t>(at), n);
    } else {
      const std::string file = path(key, s->range.start);
      const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) {
        vanished = errno == ENOENT;
        return Status::internal("task logs: cannot read " + file + ": " + errno_text(errno));
      }
      const size_t before = out.data.size();
      out.data.resize(before + n);
      size_t got = 0;
      int err = 0;
      while (got < n) {
        const ssize_t r = ::pread(fd, out.data.data() + before + got, n - got,
                                  static_cast<off_t>(at + static_cast<int64_t>(got)));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        got += static_cast<size_t>(r);
      }
      ::close(fd);
      if (got < n) {
        // Shorter than it was: removed with its job and written again meanwhile.
        vanished = err == 0;
        return Status::internal("task logs: cannot read " + file + ": " +
                                (err ? errno_text(err) : "shorter than written"));
      }
    }
    pos += static_cast<int64_t>(n);
    copied += n;
  }
  out.next_offset = pos;
  return out;
}

void TaskLogs::unpin(const LogKey& key, const std::vector<Source>& sources) {
  std::vector<int64_t> gone;
  {
    std::lock_guard lock(mu_);
    for (const Source& s : sources) {
      if (s.chunk) continue;
      const FileId id{key, s.range.start};
      auto it = pins_.find(id);
      if (--it->second > 0) continue;
      pins_.erase(it);
      if (doomed_.erase(id)) gone.push_back(s.range.start);
    }
  }
  for (int64_t start : gone) ::unlink(path(key, start).c_str());
}

void TaskLogs::remove_job(const std::string& job) {
  if (!valid_job(job)) return;
  {
    std::lock_guard lock(mu_);
    auto it = tasks_.lower_bound(
        LogKey{job, std::numeric_limits<int>::min(), std::numeric_limits<int>::min()});
    while (it != tasks_.end() && it->first.job == job) {
      // Dropped here, so counted here; the writer skips the ops that named them.
      for (const auto& c : it->second.pending) {
        queued_bytes_ -= static_cast<int64_t>(c->data.size());
      }
      it = tasks_.erase(it);
    }
    // Its removal takes the rotated files still being read with the rest.
    for (auto d = doomed_.lower_bound(
             {LogKey{job, std::numeric_limits<int>::min(), std::numeric_limits<int>::min()},
              std::numeric_limits<int64_t>::min()});
         d != doomed_.end() && d->first.job == job;) {
      d = doomed_.erase(d);
    }
    loaded_.erase(job);
    ++removing_[job];
    ++removals_;
    ops_.push_back({LogKey{job, 0, 0}, nullptr});
  }
  wake_.notify_all();
}

void TaskLogs::flush() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return ops_.empty() && !busy_; });
}

int64_t TaskLogs::failed_bytes() const {
  std::lock_guard lock(mu_);
  return failed_bytes_;
}

void TaskLogs::run() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || !ops_.empty(); });
    if (ops_.empty()) return;  // stopping, with everything queued done
    Op op = std::move(ops_.front());
    ops_.pop_front();
    busy_ = true;
    if (op.chunk) {
      write(lock, op);
    } else {
      const std::string folder = options_.dir + "/" + op.key.job;
      lock.unlock();
      std::error_code ec;
      fs::remove_all(folder, ec);
      if (ec) {
        std::fprintf(stderr, "lepton server: task logs: cannot remove %s: %s\n", folder.c_str(),
                     ec.message().c_str());
      }
      lock.lock();
      if (--removing_[op.key.job] == 0) removing_.erase(op.key.job);
    }
    busy_ = false;
    if (ops_.empty()) idle_.notify_all();
  }
}

void TaskLogs::write(std::unique_lock<std::mutex>& lock, const Op& op) {
  auto it = tasks_.find(op.key);
  auto current = [&] {
    return it != tasks_.end() && !it->second.pending.empty() &&
           it->second.pending.front() == op.chunk;
  };
  if (!current()) return;  // dropped by remove_job()
  std::vector<Stored> files = it->second.files;
  lock.unlock();
  if (options_.before_write) options_.before_write();
  Written w = put(op.key, std::move(files), *op.chunk);
  lock.lock();
  it = tasks_.find(op.key);
  if (current()) {
    it->second.files = std::move(w.files);
    it->second.pending.pop_front();
    queued_bytes_ -= static_cast<int64_t>(op.chunk->data.size());
  } else {
    w.rotated.clear();  // the job was removed meanwhile: its removal, queued after, clears all
  }
  std::vector<int64_t> gone;
  for (int64_t start : w.rotated) {
    // A file being read stays until its last reader is done (see unpin()).
    if (pins_.count({op.key, start})) {
      doomed_.insert({op.key, start});
    } else {
      gone.push_back(start);
    }
  }
  failed_bytes_ += w.failed;
  const bool report = w.failed > 0 && !failing_;
  failing_ = w.failed > 0;
  lock.unlock();
  for (int64_t start : gone) ::unlink(path(op.key, start).c_str());
  if (report) {
    std::fprintf(stderr,
                 "lepton server: task logs: cannot write %s; task output is dropped (and read "
                 "back as omitted) until writes succeed again\n",
                 w.error.c_str());
  }
  lock.lock();
}

TaskLogs::Written TaskLogs::put(const LogKey& key, std::vector<Stored> files,
                                const Chunk& chunk) const {
  Written w;
  w.files = std::move(files);
  const int64_t head = options_.head_bytes;
  const int64_t segment = options_.tail_bytes / 2;
  int64_t pos = chunk.offset;
  std::string_view rest = chunk.data;
  bool folder_made = false;
  while (!rest.empty()) {
    // Which file takes the bytes at `pos`: the head file ending there (bytes below head_bytes),
    // the current tail segment while it has room, or else a new file starting at `pos`. A file
    // continues only where it ends, so after a failed write the next bytes start a new file, and
    // every file's name still says where its bytes belong.
    std::optional<size_t> target;
    int64_t room = 0;
    if (pos < head) {
      for (size_t i = 0; i < w.files.size(); ++i) {
        if (w.files[i].start < head && w.files[i].end() == pos) target = i;
      }
      room = head - pos;
    } else {
      std::optional<size_t> last;
      for (size_t i = 0; i < w.files.size(); ++i) {
        if (w.files[i].start >= head) last = i;
      }
      if (last && w.files[*last].end() == pos && w.files[*last].size < segment) {
        target = last;
        room = segment - w.files[*last].size;
      } else {
        room = segment;
      }
    }
    const size_t n = static_cast<size_t>(std::min<int64_t>(room, std::ssize(rest)));
    const bool created = !target;
    if (created) {
      if (!folder_made) {
        ::mkdir(options_.dir.c_str(), 0700);  // removed by hand under a running server
        ::mkdir((options_.dir + "/" + key.job).c_str(), 0700);
        folder_made = true;
      }
      auto at = std::upper_bound(w.files.begin(), w.files.end(), pos,
                                 [](int64_t p, const Stored& f) { return p < f.start; });
      target = static_cast<size_t>(at - w.files.begin());
      w.files.insert(at, Stored{pos, 0});
    }
    const std::string file = path(key, w.files[*target].start);
    const int fd = ::open(
        file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (created ? O_TRUNC : 0), 0600);
    size_t done = 0;
    int err = 0;
    if (fd < 0) {
      err = errno;
    } else {
      while (done < n) {
        const ssize_t r =
            ::pwrite(fd, rest.data() + done, n - done,
                     static_cast<off_t>(w.files[*target].size) + static_cast<off_t>(done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          err = r < 0 ? errno : EIO;
          break;
        }
        done += static_cast<size_t>(r);
      }
    }
    if (err != 0) {
      // Whatever part did get written is taken back, so the file holds whole chunks only.
      if (fd >= 0 && !created) {
        [[maybe_unused]] const int ignored =
            ::ftruncate(fd, static_cast<off_t>(w.files[*target].size));
      }
      if (fd >= 0) ::close(fd);
      if (created) {
        if (fd >= 0) ::unlink(file.c_str());
        w.files.erase(w.files.begin() + static_cast<std::ptrdiff_t>(*target));
      }
      w.failed += std::ssize(rest);
      w.error = file + ": " + errno_text(err);
      break;
    }
    ::close(fd);
    w.files[*target].size += static_cast<int64_t>(n);
    if (created && pos >= head) {
      // A new tail segment: of the older ones only the one before it stays.
      std::vector<size_t> tail;
      for (size_t i = 0; i < w.files.size(); ++i) {
        if (w.files[i].start >= head) tail.push_back(i);
      }
      for (size_t k = tail.size(); k > 2; --k) {
        const size_t i = tail[k - 3];
        w.rotated.push_back(w.files[i].start);
        w.files.erase(w.files.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    pos += static_cast<int64_t>(n);
    rest.remove_prefix(n);
  }
  return w;
}

}  // namespace lepton::server
