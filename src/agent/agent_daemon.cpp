#include "agent/agent_daemon.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "agent/executor.h"
#include "agent/gpu_discovery.h"
#include "agent/mps.h"
#include "net/http.h"
#include "spec/agent_protocol.h"

namespace lepton::agent {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Log bytes per task and per heartbeat; JSON escaping can grow them up to six times, and a
// heartbeat must stay under the server's 4 MiB body limit.
constexpr size_t kMaxLogChunk = 256 * 1024;
constexpr size_t kMaxLogBytesPerHeartbeat = 512 * 1024;
// A fenced task gets at most this between SIGTERM and SIGKILL, so that it is over soon after the
// lease runs out (the server waits the lease and a margin before it starts the task elsewhere).
constexpr milliseconds kMaxFenceGrace{2000};
constexpr milliseconds kHttpTimeout{10000};

using TaskId = spec::TaskRef;

std::string dir_name(const TaskId& id) {
  return id.job_id + "_" + std::to_string(id.rank) + "_" + std::to_string(id.attempt);
}

std::string describe(const TaskId& id) {
  return id.job_id + " rank " + std::to_string(id.rank) + " attempt " + std::to_string(id.attempt);
}

// The task a task.json names, or nullopt when it names none. The file lies where a task could
// rewrite it: every field is checked, so a job id cannot make a directory name climb out of the
// tasks directory.
std::optional<TaskId> task_id_of(const json& m) {
  if (!m.is_object()) return std::nullopt;
  auto job = m.find("job_id");
  auto rank = m.find("rank");
  auto attempt = m.find("attempt");
  if (job == m.end() || !job->is_string()) return std::nullopt;
  TaskId id{job->get<std::string>(), 0, 0};
  if (!spec::is_valid_job_id(id.job_id)) return std::nullopt;
  for (auto [it, out] : {std::pair{rank, &id.rank}, std::pair{attempt, &id.attempt}}) {
    if (it == m.end()) continue;  // 0, as before
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1000000) {
      return std::nullopt;
    }
    *out = static_cast<int>(it->get<int64_t>());
  }
  return id;
}

// The heartbeat interval a reply asks for (0: it did not say), within what the agent accepts.
int interval_from(const spec::AgentTiming& timing, int current) {
  if (timing.heartbeat_ms <= 0) return current;
  return static_cast<int>(std::clamp<int64_t>(timing.heartbeat_ms, 10, 60000));
}

// How a stop that runs on a thread of its own went: kRunning until it ends.
enum StopResult : int { kStopRunning, kStopOk, kStopFailed };
using StopFlag = std::shared_ptr<std::atomic<int>>;

struct LocalTask {
  std::string dir;
  int64_t acked_log = 0;    // bytes the server has stored
  int reported_state = -1;  // TaskStatus::State last reported; -1 before the first report
  // Self-fencing: kNone; kFencing while it is being stopped because the lease ran out (reported
  // RUNNING until every process is gone); kFenced once it is (reported FENCED until the server
  // says stop).
  enum Fence { kNone, kFencing, kFenced } fence = kNone;
  StopFlag fence_stop{};  // the fencing stop, while kFencing
  StopFlag cleanup{};     // ending what an exited script left behind, while it runs
};

class AgentImpl final : public AgentDaemon {
 public:
  AgentImpl(AgentOptions options, std::vector<GpuDevice> gpus, net::Url url,
            std::optional<MpsDaemon> mps)
      : options_(std::move(options)),
        gpus_(std::move(gpus)),
        url_(std::move(url)),
        mps_(std::move(mps)) {}

  ~AgentImpl() override { stop(); }

  void run_in_background() {
    adopt();
    thread_ = std::thread([this] { loop(); });
  }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (Stopper& s : stoppers_) {
      if (s.thread.joinable()) s.thread.join();
    }
    if (mps_) (void)stop_mps(*mps_);
  }

 private:
  std::string tasks_dir() const { return options_.work_dir + "/tasks"; }

  // Tasks left by an earlier agent on this node (running or finished but not yet acknowledged).
  // Their task.json is written by the agent but lies where a task could rewrite it: anything
  // that does not name a task is skipped.
  void adopt() {
    std::error_code ec;
    for (auto it = fs::directory_iterator(tasks_dir(), ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      const fs::path path = it->path();
      std::error_code ignored;
      if (!it->is_directory(ignored) || fs::exists(path / "forgotten", ignored)) continue;
      std::ifstream in(path / "task.json");
      json meta = json::parse(in, nullptr, /*allow_exceptions=*/false);
      auto id = task_id_of(meta);
      if (!id || dir_name(*id) != path.filename().string() || tasks_.count(*id)) continue;
      LocalTask task{path.string(), 0};
      if (fs::exists(path / "fenced", ignored)) {
        // Fenced by an earlier agent: make sure it is over before reporting it so.
        task.fence = LocalTask::kFencing;
        task.fence_stop = stop_in_background(task.dir, fence_grace());
      }
      tasks_[*id] = std::move(task);
    }
    load_lease();
  }

  bool wait(milliseconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return stopped_; });
  }

  // Waits for the next heartbeat, but no longer than until a task starts or ends: the server
  // hears of it, and hands out the resources it frees, within kChangeCheck instead of a full
  // interval. A task's end shows as a reaped child (tasks adopted from an earlier agent are not
  // our children; their ends wait for the regular heartbeat). Fences the tasks when the lease
  // runs out meanwhile. Returns false when stopping.
  bool wait_for_heartbeat() {
    constexpr auto kChangeCheck = milliseconds(20);
    const auto deadline = SteadyClock::now() + milliseconds(interval_ms_);
    while (SteadyClock::now() < deadline) {
      for (const auto& [id, task] : tasks_) {
        if (task.reported_state < 0) return true;  // started and not reported yet
      }
      if (!wait(kChangeCheck)) return false;
      if (reap_children() > 0) return true;
      fence_if_lease_expired();
    }
    return true;
  }

  net::HttpClientOptions http_options(milliseconds timeout = kHttpTimeout) const {
    return {.timeout = timeout, .bearer_token = options_.token};
  }

  // ---- the lease (self-fencing) ----
  //
  // A server that sends lease_ms may start this node's tasks elsewhere once it has not heard
  // from the node for that long. So the agent stops every task itself when it has had no
  // successful reply for lease_ms, counted from when it sent the last request that then
  // succeeded (the server heard from it at that moment at the earliest): a task is never
  // running here while the server believes it is not.

  // The time the lease runs out; nullopt while there is no lease.
  std::optional<SteadyClock::time_point> lease_deadline() const {
    if (lease_ms_ <= 0 || !last_contact_) return std::nullopt;
    return *last_contact_ + milliseconds(lease_ms_);
  }

  // The timeout for a request to the server: it must not outlast the lease (a heartbeat still in
  // flight when the lease runs out would otherwise delay the fencing by up to kHttpTimeout).
  milliseconds request_timeout() const {
    auto deadline = lease_deadline();
    if (!deadline) return kHttpTimeout;
    auto left = std::chrono::duration_cast<milliseconds>(*deadline - SteadyClock::now());
    if (left <= milliseconds(0)) return kHttpTimeout;  // fenced already; nothing left to lose
    return std::clamp(left, milliseconds(1), kHttpTimeout);
  }

  // Records a successful reply to a request sent at `sent`, with the lease it carries.
  void contact(SteadyClock::time_point sent, const spec::AgentTiming& timing) {
    last_contact_ = sent;
    lease_ms_ = std::max<int64_t>(0, timing.lease_ms);
    fence_reported_ = false;
    save_lease();
  }

  // The lease and the time of the last contact (wall clock: it must outlive this process) in
  // WORK_DIR/lease, so that an agent restarted while the server is unreachable still fences the
  // tasks it adopts.
  void save_lease() {
    const std::string path = options_.work_dir + "/lease";
    if (lease_ms_ <= 0) {
      std::error_code ec;
      fs::remove(path, ec);
      return;
    }
    const auto since = SteadyClock::now() - *last_contact_;
    const auto wall = std::chrono::system_clock::now() - since;
    const int64_t wall_ms =
        std::chrono::duration_cast<milliseconds>(wall.time_since_epoch()).count();
    std::ofstream(path + ".tmp") << lease_ms_ << " " << wall_ms << "\n";
    std::error_code ec;
    fs::rename(path + ".tmp", path, ec);
  }

  void load_lease() {
    std::ifstream in(options_.work_dir + "/lease");
    int64_t lease = 0;
    int64_t wall_ms = 0;
    if (!(in >> lease >> wall_ms) || lease <= 0) return;
    const auto now_ms = std::chrono::duration_cast<milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    // A contact "in the future" (the clock was set back) counts as now.
    const int64_t ago = std::max<int64_t>(0, now_ms - wall_ms);
    lease_ms_ = lease;
    last_contact_ = SteadyClock::now() - milliseconds(ago);
  }

  milliseconds fence_grace() const { return std::min(options_.stop_grace, kMaxFenceGrace); }

  void fence_if_lease_expired() {
    auto deadline = lease_deadline();
    if (!deadline || SteadyClock::now() < *deadline) return;
    std::vector<std::string> names;
    const auto silent_s =
        std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now() - *last_contact_)
            .count();
    for (auto& [id, task] : tasks_) {
      if (task.fence != LocalTask::kNone) continue;
      const std::string why = "no contact with the server for " + std::to_string(silent_s) +
                              " s (lease " + std::to_string(lease_ms_) +
                              " ms): stopping this task so that it cannot run twice";
      append_log(task.dir, why);
      // Survives an agent restart: the next agent keeps it fenced.
      std::ofstream(fs::path(task.dir) / "fenced") << why << "\n";
      task.fence = LocalTask::kFencing;
      task.fence_stop = stop_in_background(task.dir, fence_grace());
      names.push_back(describe(id));
    }
    if (!names.empty()) {
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
      std::fprintf(stderr,
                   "lepton agent %s: no contact with the server for %lld s; stopping tasks %s so "
                   "they cannot run twice\n",
                   options_.name.c_str(), static_cast<long long>(silent_s), list.c_str());
    } else if (!fence_reported_ && !tasks_.empty()) {
      report_once("no contact with the server for " + std::to_string(silent_s) +
                  " s; its tasks are stopped");
    }
    fence_reported_ = true;
  }

  // A line from the agent in the task's log, so that the user sees why the task ended.
  static void append_log(const std::string& dir, const std::string& line) {
    std::ofstream(fs::path(dir) / "log", std::ios::app) << "lepton agent: " << line << "\n";
  }

  // Terminates the task in `dir` on a thread of its own; the flag says how it went.
  StopFlag stop_in_background(const std::string& dir, milliseconds grace) {
    auto result = std::make_shared<std::atomic<int>>(kStopRunning);
    auto done = std::make_shared<std::atomic<bool>>(false);
    try {
      stoppers_.push_back(
          {std::thread([dir, grace, result, done] {
             Status s = terminate_task(dir, grace);
             result->store(s.is_ok() || s.code() == StatusCode::kNotFound ? kStopOk : kStopFailed);
             done->store(true);
           }),
           done});
    } catch (const std::exception& e) {  // no thread to be had: stop it here instead
      Status s = terminate_task(dir, grace);
      result->store(s.is_ok() ? kStopOk : kStopFailed);
    }
    return result;
  }

  bool register_node() {
    int64_t cpu = options_.cpu_milli;
    int64_t mem = options_.memory_mib;
    if (cpu <= 0) cpu = static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN)) * 1000;
    if (mem <= 0) {
      mem = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE) / (1 << 20);
    }
    const spec::AgentRegistration message{.name = options_.name,
                                          .cpu_milli = cpu,
                                          .memory_mib = mem,
                                          .gpu_count = static_cast<int>(gpus_.size()),
                                          .gpu_model = gpus_.empty() ? "" : gpus_[0].model,
                                          .address = options_.address};
    const auto sent = SteadyClock::now();
    auto r = net::http_request(url_, "POST", "/api/v1/agents/register", spec::encode(message),
                               http_options(request_timeout()));
    if (!r.is_ok()) {
      report_once("cannot register yet: " + r.status().message());
      return false;
    }
    if (r->status != 200) {
      report_once("registration refused (" + std::to_string(r->status) + "): " + r->body);
      return false;
    }
    auto reply = spec::decode_registration_reply(r->body);
    if (!reply.is_ok()) {
      report_once("registration reply: " + reply.status().message());
      return false;
    }
    interval_ms_ = interval_from(reply->timing, interval_ms_);
    contact(sent, reply->timing);
    last_problem_.clear();
    return true;
  }

  void report_once(const std::string& problem) {
    if (problem == last_problem_) return;
    last_problem_ = problem;
    std::fprintf(stderr, "lepton agent %s: %s\n", options_.name.c_str(), problem.c_str());
  }

  spec::Heartbeat build_heartbeat() {
    using State = spec::TaskReport::State;
    spec::Heartbeat heartbeat;
    size_t log_bytes = 0;
    for (auto& [id, task] : tasks_) {
      TaskStatus st = poll_task(task.dir);
      task.reported_state = static_cast<int>(st.state);
      if (task.fence == LocalTask::kFencing && task.fence_stop->load() != kStopRunning) {
        if (task.fence_stop->load() == kStopOk) {
          task.fence = LocalTask::kFenced;
          task.fence_stop.reset();
        } else {  // processes survived SIGKILL for a while: try again
          task.fence_stop = stop_in_background(task.dir, milliseconds(0));
        }
      }
      if (task.cleanup && task.cleanup->load() != kStopRunning) task.cleanup.reset();
      if (st.state == TaskStatus::kRunning && st.leftovers && !task.cleanup &&
          task.fence == LocalTask::kNone) {
        // The script has ended; what it left behind is ended too, as when a batch job's script
        // ends under Slurm. Its exit code is reported once nothing of it runs.
        task.cleanup = stop_in_background(task.dir, options_.stop_grace);
      }
      std::error_code ec;
      const fs::path log = fs::path(task.dir) / "log";
      const int64_t size = fs::exists(log, ec) ? static_cast<int64_t>(fs::file_size(log, ec)) : 0;
      spec::TaskReport t{.task = id, .state = State::kRunning, .exit_code = -1, .log_size = size};
      if (task.fence == LocalTask::kFenced) {
        t.state = State::kFenced;
        t.exit_code = st.state == TaskStatus::kExited ? st.exit_code : -1;
      } else if (task.fence == LocalTask::kFencing) {
        t.state = State::kRunning;  // until every process of it is gone
      } else {
        switch (st.state) {
          case TaskStatus::kRunning:
            t.state = State::kRunning;
            break;
          case TaskStatus::kExited:
            t.state = State::kExited;
            t.exit_code = st.exit_code;
            break;
          case TaskStatus::kGone:
            t.state = State::kGone;
            break;
        }
      }
      heartbeat.tasks.push_back(t);
      if (size > task.acked_log && log_bytes < kMaxLogBytesPerHeartbeat) {
        auto data = read_log(task.dir, task.acked_log,
                             std::min(kMaxLogChunk, kMaxLogBytesPerHeartbeat - log_bytes));
        if (data.is_ok() && !data->empty()) {
          log_bytes += data->size();
          heartbeat.logs.push_back({.task = id, .offset = task.acked_log, .data = *data});
        }
      }
    }
    return heartbeat;
  }

  void start(const spec::TaskStart& msg) {
    const TaskId& id = msg.task;
    if (tasks_.count(id)) return;  // already ours: starts are idempotent
    const std::string dir = tasks_dir() + "/" + dir_name(id);
    std::error_code ec;
    if (fs::exists(fs::path(dir) / "pid", ec)) {  // started before, by us or an earlier agent
      tasks_[id] = LocalTask{dir, 0};
      return;
    }
    fs::create_directories(dir, ec);
    std::ofstream(fs::path(dir) / "task.json")
        << json{{"job_id", id.job_id}, {"rank", id.rank}, {"attempt", id.attempt}}.dump();
    TaskLaunch launch;
    launch.dir = dir;
    launch.script = msg.script;
    launch.env = msg.env;
    if (auto f = launch.env.find("LEPTON_GPU_FRACTION"); f != launch.env.end()) {
      // A fractional task: its memory share (and, under MPS, the limits that enforce it). The
      // user's own settings, already in env, win.
      const double fraction = std::atof(f->second.c_str());
      const int index = std::atoi(launch.env["CUDA_VISIBLE_DEVICES"].c_str());
      const int64_t memory =
          index >= 0 && index < static_cast<int>(gpus_.size()) ? gpus_[index].memory_mib : 0;
      for (auto& [k, v] : fractional_gpu_env(fraction, memory, mps_ ? &*mps_ : nullptr)) {
        launch.env.emplace(k, v);
      }
    }
    // Checkpoints: where the server says (storage every node shares, so a job resumes on another
    // node), else on this node.
    auto& checkpoints = launch.env["LEPTON_CHECKPOINT_DIR"];
    if (checkpoints.empty()) checkpoints = options_.work_dir + "/checkpoints/" + id.job_id;
    fs::create_directories(checkpoints, ec);
    // Where a preemption notice is written before the SIGTERM (see stop_task); until then it says
    // there is none, so a task may source it on any SIGTERM.
    launch.env["LEPTON_NOTICE_FILE"] = dir + "/notice";
    std::ofstream(fs::path(dir) / "notice")
        << "LEPTON_PREEMPTION_NOTICE=0\nLEPTON_PREEMPTION_GRACE_S=0\n";
    auto pid = start_task(launch);
    if (!pid.is_ok()) {
      // Record the failure as the task's exit, so the server learns of it.
      append_log(dir, "cannot start the task: " + pid.status().message());
      std::ofstream(fs::path(dir) / "exit_code") << 127 << "\n";
    }
    tasks_[id] = LocalTask{dir, 0};
  }

  // With `notice` (the node is going away, e.g. a spot interruption), the task's notice file gets
  // LEPTON_PREEMPTION_NOTICE=1 and the grace in seconds before the SIGTERM, so a task can tell a
  // preemption it should checkpoint for from an ordinary stop. (A running process's environment
  // cannot change; the file is sourced: `. "$LEPTON_NOTICE_FILE"`.)
  void stop_task(const TaskId& id, milliseconds grace, bool notice) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    const std::string dir = it->second.dir;
    const bool fenced = it->second.fence != LocalTask::kNone;
    tasks_.erase(it);
    if (notice) {
      std::ofstream(fs::path(dir) / "notice")
          << "LEPTON_PREEMPTION_NOTICE=1\nLEPTON_PREEMPTION_GRACE_S="
          << std::chrono::duration_cast<std::chrono::seconds>(grace).count() << "\n";
    }
    if (!fenced && poll_task(dir).state == TaskStatus::kRunning) {
      // The server no longer counts on this attempt (cancelled, preempted, or superseded by
      // another attempt, e.g. after this node was out of contact): say so where the user looks.
      const std::string why = "the server stopped " + describe(id) +
                              ": it no longer runs this attempt (cancelled, preempted or "
                              "superseded by another attempt)";
      append_log(dir, why);
      std::fprintf(stderr, "lepton agent %s: %s\n", options_.name.c_str(), why.c_str());
    }
    // Forget the task at once; ending its processes may take the grace period. Always
    // terminated: it also removes the task's cgroup.
    std::ofstream(fs::path(dir) / "forgotten") << "1\n";
    (void)stop_in_background(dir, grace);
  }

  // Joins the stoppers that have finished, so a long-lived agent does not keep their threads.
  void join_finished_stoppers() {
    std::erase_if(stoppers_, [](Stopper& s) {
      if (!s.done->load()) return false;
      s.thread.join();
      return true;
    });
  }

  void loop() {
    // Nothing may end this thread but stop(): a throw (a malformed reply, no thread to be had)
    // is reported and the loop carries on with the next heartbeat.
    (void)become_subreaper();
    for (bool registered = false; !registered;) {
      try {
        fence_if_lease_expired();  // tasks adopted from an agent that lost contact
        registered = register_node();
      } catch (const std::exception& e) {
        report_once(std::string("registering: ") + e.what());
      }
      if (!registered && !wait(std::chrono::seconds(1))) return;
    }
    while (true) {
      try {
        heartbeat_once();
      } catch (const std::exception& e) {
        report_once(std::string("heartbeat: ") + e.what() + " (retrying)");
      }
      try {
        if (!wait_for_heartbeat()) return;
      } catch (const std::exception& e) {
        report_once(std::string("waiting: ") + e.what());
        if (!wait(milliseconds(interval_ms_))) return;
      }
    }
  }

  void heartbeat_once() {
    reap_children();
    join_finished_stoppers();
    fence_if_lease_expired();
    const spec::Heartbeat message = build_heartbeat();
    const auto sent = SteadyClock::now();
    auto r = net::http_request(url_, "POST",
                               "/api/v1/agents/" + net::url_encode(options_.name) + "/heartbeat",
                               spec::encode(message), http_options(request_timeout()));
    if (!r.is_ok()) {
      report_once(r.status().message() + " (tasks keep running; retrying)");
    } else if (r->status == 404) {
      register_node();  // the server does not know us (a new data dir): join again
    } else if (r->status != 200) {
      report_once("heartbeat refused (" + std::to_string(r->status) + "): " + r->body);
    } else {
      auto reply = spec::decode_heartbeat_reply(r->body);
      if (!reply.is_ok()) {
        // Nothing of a reply that breaks the protocol is applied (a start naming a path
        // outside the tasks directory, say); the next heartbeat asks again.
        report_once("ignoring a heartbeat reply that breaks the protocol: " +
                    reply.status().message());
        return;
      }
      contact(sent, reply->timing);
      last_problem_.clear();
      handle_reply(*reply);
    }
    fence_if_lease_expired();
  }

  void handle_reply(const spec::HeartbeatReply& reply) {
    for (const spec::LogOffset& off : reply.log_offsets) {
      auto it = tasks_.find(off.task);
      if (it != tasks_.end()) it->second.acked_log = off.offset;
    }
    for (const spec::TaskStop& s : reply.stop) {
      // The server may set the grace period (a preemption does); else the agent's own.
      const auto grace = s.grace_ms ? milliseconds(*s.grace_ms) : options_.stop_grace;
      stop_task(s.task, grace, s.notice);
    }
    for (const spec::TaskStart& s : reply.start) start(s);
    interval_ms_ = interval_from(reply.timing, interval_ms_);
  }

  AgentOptions options_;
  std::vector<GpuDevice> gpus_;
  net::Url url_;
  std::map<TaskId, LocalTask> tasks_;  // loop thread only
  struct Stopper {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;  // set by the thread as it ends
  };
  std::vector<Stopper> stoppers_;  // loop thread only; finished ones joined each heartbeat
  std::optional<MpsDaemon> mps_;
  std::string last_problem_;
  int interval_ms_ = 300;
  // The lease from the server's last reply (0: none), and when the request it answered was sent.
  int64_t lease_ms_ = 0;
  std::optional<SteadyClock::time_point> last_contact_;
  bool fence_reported_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<AgentDaemon>> AgentDaemon::start(AgentOptions options) {
  auto url = net::Url::parse(options.server_url);
  if (!url.is_ok()) return url.status();
  if (options.name.empty()) return Status::invalid_argument("--name: expected a node name");
  auto gpus = node_gpus(options.gpus);
  if (!gpus.is_ok()) return gpus.status();
  std::error_code ec;
  fs::create_directories(options.work_dir + "/tasks", ec);
  if (ec) {
    return Status::invalid_argument("work dir " + options.work_dir +
                                    ": cannot create: " + ec.message());
  }
  std::optional<MpsDaemon> mps;
  if (options.mps) {
    if (gpus->empty()) return Status::invalid_argument("--mps: this node has no GPUs");
    auto started = start_mps(options.work_dir + "/mps");
    if (!started.is_ok()) return started.status();
    mps = std::move(*started);
  }
  auto daemon =
      std::make_unique<AgentImpl>(std::move(options), std::move(*gpus), *url, std::move(mps));
  daemon->run_in_background();
  return std::unique_ptr<AgentDaemon>(std::move(daemon));
}

}  // namespace lepton::agent
