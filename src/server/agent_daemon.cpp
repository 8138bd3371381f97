#include "server/agent_daemon.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "agent/executor.h"
#include "agent/gpu_discovery.h"
#include "agent/mps.h"
#include "net/http.h"
#include "spec/json_text.h"

namespace lepton::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Log bytes per task and per heartbeat; JSON escaping can grow them up to six times, and a
// heartbeat must stay under the server's 4 MiB body limit.
constexpr size_t kMaxLogChunk = 256 * 1024;
constexpr size_t kMaxLogBytesPerHeartbeat = 512 * 1024;

struct TaskId {
  std::string job_id;
  int rank = 0;
  int attempt = 0;
  auto operator<=>(const TaskId&) const = default;
  std::string dir_name() const {
    return job_id + "_" + std::to_string(rank) + "_" + std::to_string(attempt);
  }
};

struct LocalTask {
  std::string dir;
  int64_t acked_log = 0;    // bytes the server has stored
  int reported_state = -1;  // agent::TaskStatus::State last reported; -1 before the first report
};

class AgentImpl final : public AgentDaemon {
 public:
  AgentImpl(AgentOptions options, std::vector<agent::GpuDevice> gpus, net::Url url,
            std::optional<agent::MpsDaemon> mps)
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
    if (mps_) (void)agent::stop_mps(*mps_);
  }

 private:
  std::string tasks_dir() const { return options_.work_dir + "/tasks"; }

  // Tasks left by an earlier agent on this node (running or finished but not yet acknowledged).
  void adopt() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(tasks_dir(), ec)) {
      if (!entry.is_directory() || fs::exists(entry.path() / "forgotten")) continue;
      std::ifstream in(entry.path() / "task.json");
      json meta = json::parse(in, nullptr, false);
      if (meta.is_discarded()) continue;
      TaskId id{meta.value("job_id", ""), meta.value("rank", 0), meta.value("attempt", 0)};
      if (id.job_id.empty()) continue;
      tasks_[id] = LocalTask{entry.path().string(), 0};
    }
  }

  bool wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return stopped_; });
  }

  // Waits for the next heartbeat, but no longer than until a task starts or ends: the server
  // hears of it, and hands out the resources it frees, within kChangeCheck instead of a full
  // interval. A task's end shows as a reaped child (tasks adopted from an earlier agent are not
  // our children; their ends wait for the regular heartbeat). Returns false when stopping.
  bool wait_for_heartbeat() {
    constexpr auto kChangeCheck = std::chrono::milliseconds(20);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(interval_ms_);
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& [id, task] : tasks_) {
        if (task.reported_state < 0) return true;  // started and not reported yet
      }
      if (!wait(kChangeCheck)) return false;
      if (agent::reap_children() > 0) return true;
    }
    return true;
  }

  net::HttpClientOptions http_options() const {
    return {.timeout = std::chrono::seconds(10), .bearer_token = options_.token};
  }

  bool register_node() {
    int64_t cpu = options_.cpu_milli;
    int64_t mem = options_.memory_mib;
    if (cpu <= 0) cpu = static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN)) * 1000;
    if (mem <= 0) {
      mem = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE) / (1 << 20);
    }
    json body = {{"name", options_.name},
                 {"cpu_milli", cpu},
                 {"memory_mib", mem},
                 {"gpu_count", static_cast<int>(gpus_.size())},
                 {"gpu_model", gpus_.empty() ? "" : gpus_[0].model},
                 {"address", options_.address}};
    auto r = net::http_request(url_, "POST", "/api/v1/agents/register", spec::to_json_text(body),
                               http_options());
    if (!r.is_ok()) {
      report_once("cannot register yet: " + r.status().message());
      return false;
    }
    if (r->status != 200) {
      report_once("registration refused (" + std::to_string(r->status) + "): " + r->body);
      return false;
    }
    json j = json::parse(r->body, nullptr, false);
    if (!j.is_discarded()) interval_ms_ = j.value("heartbeat_ms", interval_ms_);
    last_problem_.clear();
    return true;
  }

  void report_once(const std::string& problem) {
    if (problem == last_problem_) return;
    last_problem_ = problem;
    std::fprintf(stderr, "lepton agent %s: %s\n", options_.name.c_str(), problem.c_str());
  }

  json build_heartbeat() {
    json tasks = json::array();
    json logs = json::array();
    size_t log_bytes = 0;
    for (auto& [id, task] : tasks_) {
      agent::TaskStatus st = agent::poll_task(task.dir);
      task.reported_state = static_cast<int>(st.state);
      std::error_code ec;
      const fs::path log = fs::path(task.dir) / "log";
      const int64_t size = fs::exists(log, ec) ? static_cast<int64_t>(fs::file_size(log, ec)) : 0;
      json t = {
          {"job_id", id.job_id}, {"rank", id.rank}, {"attempt", id.attempt}, {"log_size", size}};
      switch (st.state) {
        case agent::TaskStatus::kRunning:
          t["state"] = "RUNNING";
          break;
        case agent::TaskStatus::kExited:
          t["state"] = "EXITED";
          t["exit_code"] = st.exit_code;
          break;
        case agent::TaskStatus::kGone:
          t["state"] = "GONE";
          break;
      }
      tasks.push_back(t);
      if (size > task.acked_log && log_bytes < kMaxLogBytesPerHeartbeat) {
        auto data = agent::read_log(task.dir, task.acked_log,
                                    std::min(kMaxLogChunk, kMaxLogBytesPerHeartbeat - log_bytes));
        if (data.is_ok() && !data->empty()) {
          log_bytes += data->size();
          logs.push_back({{"job_id", id.job_id},
                          {"rank", id.rank},
                          {"attempt", id.attempt},
                          {"offset", task.acked_log},
                          {"data", *data}});
        }
      }
    }
    return {{"tasks", tasks}, {"logs", logs}};
  }

  void start(const json& msg) {
    TaskId id{msg.value("job_id", ""), msg.value("rank", 0), msg.value("attempt", 0)};
    if (id.job_id.empty() || tasks_.count(id)) return;  // already ours: starts are idempotent
    const std::string dir = tasks_dir() + "/" + id.dir_name();
    std::error_code ec;
    if (fs::exists(fs::path(dir) / "pid", ec)) {  // started before, by us or an earlier agent
      tasks_[id] = LocalTask{dir, 0};
      return;
    }
    fs::create_directories(dir, ec);
    std::ofstream(fs::path(dir) / "task.json")
        << json{{"job_id", id.job_id}, {"rank", id.rank}, {"attempt", id.attempt}}.dump();
    agent::TaskLaunch launch;
    launch.dir = dir;
    launch.script = msg.value("script", "");
    if (auto env = msg.find("env"); env != msg.end() && env->is_object()) {
      for (auto it = env->begin(); it != env->end(); ++it) {
        if (it->is_string()) launch.env[it.key()] = it->get<std::string>();
      }
    }
    if (auto f = launch.env.find("LEPTON_GPU_FRACTION"); f != launch.env.end()) {
      // A fractional task: its memory share (and, under MPS, the limits that enforce it). The
      // user's own settings, already in env, win.
      const double fraction = std::atof(f->second.c_str());
      const int index = std::atoi(launch.env["CUDA_VISIBLE_DEVICES"].c_str());
      const int64_t memory =
          index >= 0 && index < static_cast<int>(gpus_.size()) ? gpus_[index].memory_mib : 0;
      for (auto& [k, v] : agent::fractional_gpu_env(fraction, memory, mps_ ? &*mps_ : nullptr)) {
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
    auto pid = agent::start_task(launch);
    if (!pid.is_ok()) {
      // Record the failure as the task's exit, so the server learns of it.
      std::ofstream(fs::path(dir) / "log", std::ios::app)
          << "lepton agent: cannot start the task: " << pid.status().message() << "\n";
      std::ofstream(fs::path(dir) / "exit_code") << 127 << "\n";
    }
    tasks_[id] = LocalTask{dir, 0};
  }

  // With `notice` (the node is going away, e.g. a spot interruption), the task's notice file gets
  // LEPTON_PREEMPTION_NOTICE=1 and the grace in seconds before the SIGTERM, so a task can tell a
  // preemption it should checkpoint for from an ordinary stop. (A running process's environment
  // cannot change; the file is sourced: `. "$LEPTON_NOTICE_FILE"`.)
  void stop_task(const TaskId& id, std::chrono::milliseconds grace, bool notice) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    const std::string dir = it->second.dir;
    tasks_.erase(it);
    if (notice) {
      std::ofstream(fs::path(dir) / "notice")
          << "LEPTON_PREEMPTION_NOTICE=1\nLEPTON_PREEMPTION_GRACE_S="
          << std::chrono::duration_cast<std::chrono::seconds>(grace).count() << "\n";
    }
    // Forget the task at once; ending its processes may take the grace period.
    std::ofstream(fs::path(dir) / "forgotten") << "1\n";
    auto done = std::make_shared<std::atomic<bool>>(false);
    stoppers_.push_back({std::thread([dir, grace, done] {
                           if (agent::poll_task(dir).state == agent::TaskStatus::kRunning) {
                             (void)agent::terminate_task(dir, grace);
                           }
                           done->store(true);
                         }),
                         done});
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
    (void)agent::become_subreaper();
    while (!register_node()) {
      if (!wait(std::chrono::seconds(1))) return;
    }
    while (true) {
      agent::reap_children();
      join_finished_stoppers();
      json body = build_heartbeat();
      auto r = net::http_request(url_, "POST",
                                 "/api/v1/agents/" + net::url_encode(options_.name) + "/heartbeat",
                                 spec::to_json_text(body), http_options());
      if (!r.is_ok()) {
        report_once(r.status().message() + " (tasks keep running; retrying)");
      } else if (r->status == 404) {
        register_node();  // the server does not know us (a new data dir): join again
      } else if (r->status != 200) {
        report_once("heartbeat refused (" + std::to_string(r->status) + "): " + r->body);
      } else {
        last_problem_.clear();
        handle_reply(json::parse(r->body, nullptr, false));
      }
      if (!wait_for_heartbeat()) return;
    }
  }

  void handle_reply(const json& reply) {
    if (reply.is_discarded() || !reply.is_object()) return;
    const json empty = json::array();
    auto list = [&](const char* key) -> const json& {
      auto it = reply.find(key);
      return it != reply.end() && it->is_array() ? *it : empty;
    };
    for (const json& off : list("log_offsets")) {
      TaskId id{off.value("job_id", ""), off.value("rank", 0), off.value("attempt", 0)};
      auto it = tasks_.find(id);
      if (it != tasks_.end()) it->second.acked_log = off.value("offset", int64_t{0});
    }
    for (const json& s : list("stop")) {
      // The server may set the grace period (a preemption does); else the agent's own.
      const auto grace = s.contains("grace_ms")
                             ? std::chrono::milliseconds(s.value("grace_ms", int64_t{0}))
                             : options_.stop_grace;
      stop_task({s.value("job_id", ""), s.value("rank", 0), s.value("attempt", 0)}, grace,
                s.value("notice", false));
    }
    for (const json& s : list("start")) start(s);
    interval_ms_ = reply.value("heartbeat_ms", interval_ms_);
  }

  AgentOptions options_;
  std::vector<agent::GpuDevice> gpus_;
  net::Url url_;
  std::map<TaskId, LocalTask> tasks_;  // loop thread only
  struct Stopper {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;  // set by the thread as it ends
  };
  std::vector<Stopper> stoppers_;  // loop thread only; finished ones joined each heartbeat
  std::optional<agent::MpsDaemon> mps_;
  std::string last_problem_;
  int interval_ms_ = 300;
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
  auto gpus = agent::node_gpus(options.gpus);
  if (!gpus.is_ok()) return gpus.status();
  std::error_code ec;
  fs::create_directories(options.work_dir + "/tasks", ec);
  if (ec) {
    return Status::invalid_argument("work dir " + options.work_dir +
                                    ": cannot create: " + ec.message());
  }
  std::optional<agent::MpsDaemon> mps;
  if (options.mps) {
    if (gpus->empty()) return Status::invalid_argument("--mps: this node has no GPUs");
    auto started = agent::start_mps(options.work_dir + "/mps");
    if (!started.is_ok()) return started.status();
    mps = std::move(*started);
  }
  auto daemon =
      std::make_unique<AgentImpl>(std::move(options), std::move(*gpus), *url, std::move(mps));
  daemon->run_in_background();
  return std::unique_ptr<AgentDaemon>(std::move(daemon));
}

}  // namespace lepton::server
