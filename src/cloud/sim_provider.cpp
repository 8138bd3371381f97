#include "cloud/sim_provider.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

namespace lepton::cloud {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Now plus `seconds`, in ISO 8601 (UTC).
std::string iso_in(double seconds) {
  const std::time_t t = std::time(nullptr) + static_cast<std::time_t>(std::ceil(seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string gpu_text(const Offer& o) {
  std::ostringstream out;
  out << o.gpu_model << ":" << o.gpu_count;
  return out.str();
}

// Kills a process group, and every task group whose pid file lies under `dir`.
void kill_instance_processes(pid_t group, const std::string& dir) {
  if (group > 0) ::kill(-group, SIGKILL);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() != "pid" || !it->is_regular_file(ec)) continue;
    std::ifstream in(it->path());
    long pid = 0;
    if (in >> pid && pid > 1) ::kill(static_cast<pid_t>(-pid), SIGKILL);
  }
}

}  // namespace

Result<SimCloudOptions> SimCloudOptions::from_json(std::string_view text) {
  using nlohmann::json;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::invalid_argument("sim clouds: expected a JSON object");
  }
  SimCloudOptions o;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    auto number = [&](double lo, double& out) -> Status {
      if (!value.is_number() || value.get<double>() < lo) {
        return Status::invalid_argument("sim clouds: " + key + ": expected a number >= " +
                                        std::to_string(static_cast<int>(lo)));
      }
      out = value.get<double>();
      return Status::ok();
    };
    auto counts = [&](std::map<std::string, int>& out) -> Status {
      if (!value.is_object()) {
        return Status::invalid_argument("sim clouds: " + key + ": expected an object of counts");
      }
      for (const auto& [name, n] : value.items()) {
        if (!n.is_number_integer() || n.get<int64_t>() < 0 || n.get<int64_t>() > 1'000'000) {
          return Status::invalid_argument("sim clouds: " + key + "." + name +
                                          ": expected a whole number >= 0");
        }
        out[name] = n.get<int>();
      }
      return Status::ok();
    };
    if (key == "boot_s") {
      LEPTON_RETURN_IF_ERROR(number(0, o.boot_s));
    } else if (key == "notice_s") {
      LEPTON_RETURN_IF_ERROR(number(0, o.notice_s));
    } else if (key == "mtbi_s") {
      LEPTON_RETURN_IF_ERROR(number(0, o.mtbi_s));
    } else if (key == "capacity") {
      double c = 0;
      LEPTON_RETURN_IF_ERROR(number(0, c));
      o.capacity = static_cast<int>(c);
    } else if (key == "seed") {
      if (!value.is_number_unsigned()) {
        return Status::invalid_argument("sim clouds: seed: expected a whole number >= 0");
      }
      o.seed = value.get<uint64_t>();
    } else if (key == "pool_capacity") {
      LEPTON_RETURN_IF_ERROR(counts(o.pool_capacity));
    } else if (key == "quota_gpus") {
      LEPTON_RETURN_IF_ERROR(counts(o.quota_gpus));
    } else if (key == "clouds") {
      if (!value.is_array()) return Status::invalid_argument("sim clouds: clouds: expected a list");
      for (const json& c : value) {
        if (!c.is_string()) {
          return Status::invalid_argument("sim clouds: clouds: expected names such as aws");
        }
        o.clouds.push_back(c.get<std::string>());
      }
    } else {
      return Status::invalid_argument(
          "sim clouds: " + key +
          ": unknown field (expected boot_s, notice_s, mtbi_s, capacity, pool_capacity, "
          "quota_gpus, clouds or seed)");
    }
  }
  return o;
}

class SimProvider::Impl {
 public:
  struct SimInstance {
    Instance info;
    Offer offer;
    std::string dir;
    pid_t group = 0;                           // the bootstrap's process group, once booted
    Clock::time_point boot_at;                 // pending until then
    std::optional<Clock::time_point> ends_at;  // a notice was posted; the instance ends then
    std::optional<Clock::time_point> random_notice_at;
    Clock::time_point ended{};  // when it was terminated
  };

  Impl(std::vector<Offer> catalog, SimCloudOptions options)
      : catalog_(std::move(catalog)), options_(std::move(options)), random_(options_.seed) {
    // Ids continue after those of earlier runs on this state directory: an id names one machine
    // for good (the server keeps the bills of ended ones).
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(options_.state_dir + "/instances", ec)) {
      const std::string name = entry.path().filename().string();
      const size_t dash = name.rfind('-');
      if (dash == std::string::npos) continue;
      launched_ = std::max<int64_t>(launched_, std::atoll(name.c_str() + dash + 1));
    }
    thread_ = std::thread([this] { run(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (auto& [id, inst] : instances_) end(inst, "the emulated cloud shut down");
    }
    cv_.notify_all();
    thread_.join();
  }

  Result<std::vector<Offer>> offers(const OfferQuery& query) const {
    return find_offers(catalog_, query);
  }

  Result<std::vector<Instance>> provision(const ProvisionRequest& request) {
    if (request.count < 1 || request.count > 64) {
      return Status::invalid_argument("provision: count: expected 1 to 64");
    }
    const Offer& o = request.offer;
    auto known = std::find_if(catalog_.begin(), catalog_.end(), [&](const Offer& c) {
      return c.cloud == o.cloud && c.region == o.region && c.zone == o.zone &&
             c.instance_type == o.instance_type;
    });
    if (known == catalog_.end()) {
      return Status::not_found("sim: " + o.cloud + " has no " + o.instance_type + " in " +
                               o.region);
    }
    if (request.spot && !known->spot_price_per_hour) {
      return Status::invalid_argument("sim: " + o.instance_type + " in " + o.region +
                                      " has no spot offer");
    }
    std::lock_guard lock(mu_);
    if (!request.idempotency_key.empty()) {
      // As EC2's client token: the same key answers with the instances it launched, while they
      // are still listed.
      if (auto it = launched_by_key_.find(request.idempotency_key); it != launched_by_key_.end()) {
        std::vector<Instance> out;
        for (const std::string& id : it->second) {
          if (auto inst = instances_.find(id); inst != instances_.end()) {
            out.push_back(inst->second.info);
          }
        }
        if (!out.empty()) return out;
        launched_by_key_.erase(it);
      }
    }
    const std::string key = offer_pool(*known, request.spot);
    int in_pool = 0, gpus_in_cloud = 0;
    for (const auto& [id, inst] : instances_) {
      if (inst.info.state == InstanceState::kTerminated) continue;
      if (offer_pool(inst.offer, inst.info.spot) == key) ++in_pool;
      if (inst.offer.cloud == known->cloud) gpus_in_cloud += static_cast<int>(inst.offer.gpu_count);
    }
    auto cap = options_.pool_capacity.find(key);
    const int capacity = cap != options_.pool_capacity.end() ? cap->second : options_.capacity;
    if (in_pool + request.count > capacity) {
      return Status(StatusCode::kUnavailable,
                    "sim " + known->cloud + ": insufficient capacity for " +
                        std::to_string(request.count) + " x " + known->instance_type +
                        (request.spot ? " (spot)" : "") + " in " + known->region + " (" +
                        std::to_string(capacity - in_pool) + " left)");
    }
    if (auto q = options_.quota_gpus.find(known->cloud); q != options_.quota_gpus.end()) {
      const int need = static_cast<int>(known->gpu_count) * request.count;
      if (gpus_in_cloud + need > q->second) {
        return Status(StatusCode::kResourceExhausted,
                      "sim " + known->cloud + ": GPU quota exceeded (" +
                          std::to_string(gpus_in_cloud) + " in use + " + std::to_string(need) +
                          " requested > " + std::to_string(q->second) + ")");
      }
    }
    std::vector<Instance> out;
    const auto now = Clock::now();
    for (int i = 0; i < request.count; ++i) {
      SimInstance inst;
      inst.info.id = "sim-" + known->cloud + "-" + std::to_string(++launched_);
      inst.info.cloud = known->cloud;
      inst.info.instance_type = known->instance_type;
      inst.info.region = known->region;
      inst.info.zone = known->zone;
      inst.info.spot = request.spot;
      inst.info.private_ip = "127.0.0.1";
      inst.info.launch_time = iso_in(0);
      inst.info.labels = request.labels;
      inst.offer = *known;
      inst.dir = options_.state_dir + "/instances/" + inst.info.id;
      inst.boot_at = now + seconds(options_.boot_s);
      if (request.spot && options_.mtbi_s > 0) {
        std::exponential_distribution<double> gap(1.0 / options_.mtbi_s);
        inst.random_notice_at = now + seconds(gap(random_));
      }
      std::error_code ec;
      fs::create_directories(inst.dir, ec);
      if (ec) return Status::internal("sim: cannot create " + inst.dir + ": " + ec.message());
      {
        // The script may hold credentials (the API token): readable by this user only.
        const std::string path = inst.dir + "/bootstrap.sh";
        std::ofstream script(path);
        script << request.bootstrap_script;
        script.close();
        fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write,
                        fs::perm_options::replace, ec);
      }
      out.push_back(inst.info);
      instances_.emplace(inst.info.id, std::move(inst));
    }
    if (!request.idempotency_key.empty()) {
      for (const Instance& i : out) launched_by_key_[request.idempotency_key].push_back(i.id);
    }
    cv_.notify_all();
    return out;
  }

  Status terminate(const std::vector<std::string>& ids) {
    std::lock_guard lock(mu_);
    for (const std::string& id : ids) {
      auto it = instances_.find(id);
      if (it == instances_.end()) return Status::not_found("sim: no instance " + id);
    }
    for (const std::string& id : ids) end(instances_.at(id), "terminated");
    return Status::ok();
  }

  Result<std::vector<Instance>> list_instances() {
    std::lock_guard lock(mu_);
    std::vector<Instance> out;
    for (const auto& [id, inst] : instances_) out.push_back(inst.info);
    return out;
  }

  Result<std::vector<InterruptionNotice>> notices() {
    std::lock_guard lock(mu_);
    std::vector<InterruptionNotice> out;
    for (const auto& [id, inst] : instances_) {
      if (!inst.ends_at || inst.info.state == InstanceState::kTerminated) continue;
      const double left = std::chrono::duration<double>(*inst.ends_at - Clock::now()).count();
      out.push_back({id, "Server.SpotInstanceTermination", iso_in(std::max(0.0, left))});
    }
    return out;
  }

  Status interrupt(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) return Status::not_found("sim: no instance " + id);
    SimInstance& inst = it->second;
    if (!inst.info.spot) {
      return Status(StatusCode::kConflict,
                    "sim: " + id + " is on demand; only spot is interrupted");
    }
    if (inst.info.state == InstanceState::kTerminated) {
      return Status(StatusCode::kConflict, "sim: " + id + " has already ended");
    }
    post_notice(inst);
    cv_.notify_all();
    return Status::ok();
  }

 private:
  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void post_notice(SimInstance& inst) {
    if (!inst.ends_at) inst.ends_at = Clock::now() + seconds(options_.notice_s);
  }

  // Under mu_.
  void end(SimInstance& inst, const std::string& /*why*/) {
    if (inst.info.state == InstanceState::kTerminated) return;
    kill_instance_processes(inst.group, inst.dir);
    if (inst.group > 0) children_.push_back(inst.group);
    inst.group = 0;
    inst.info.state = InstanceState::kTerminated;
    inst.ended = Clock::now();
  }

  // Under mu_.
  void boot(SimInstance& inst) {
    const std::string log = inst.dir + "/bootstrap.log";
    std::vector<std::string> env = {
        "LEPTON_INSTANCE_ID=" + inst.info.id, "LEPTON_INSTANCE_DIR=" + inst.dir,
        "LEPTON_SIM_GPUS=" + gpu_text(inst.offer),
        "LEPTON_SIM_CPUS=" + std::to_string(static_cast<int64_t>(inst.offer.vcpus)),
        "LEPTON_SIM_MEMORY_GIB=" + std::to_string(static_cast<int64_t>(inst.offer.memory_gib))};
    // What a machine's own setup would provide: a command and library path (a lepton built
    // against libraries outside the system's, CUDA's), a home and a temporary folder.
    for (const char* keep : {"PATH", "LD_LIBRARY_PATH", "HOME", "USER", "LANG", "TMPDIR"}) {
      if (const char* v = std::getenv(keep)) env.push_back(std::string(keep) + "=" + v);
    }
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string script = inst.dir + "/bootstrap.sh";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setsid();
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (out >= 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
      }
      if (in >= 0) ::dup2(in, 0);
      // Nothing of the server (its listening sockets) goes to the emulated machine.
      ::close_range(3, ~0U, 0);
      if (::chdir(inst.dir.c_str()) != 0) ::_exit(127);
      const char* argv[] = {"/bin/sh", script.c_str(), nullptr};
      ::execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
      ::_exit(127);
    }
    if (pid < 0) {
      inst.info.state = InstanceState::kTerminated;  // the emulated machine failed to boot
      inst.ended = Clock::now();
      return;
    }
    inst.group = pid;
    inst.info.state = InstanceState::kRunning;
  }

  void run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      const auto now = Clock::now();
      auto next = now + std::chrono::milliseconds(500);
      for (auto it = instances_.begin(); it != instances_.end();) {
        SimInstance& inst = it->second;
        if (inst.info.state == InstanceState::kTerminated) {
          if (now - inst.ended > std::chrono::minutes(10)) {
            it = instances_.erase(it);
            continue;
          }
          ++it;
          continue;
        }
        if (inst.info.state == InstanceState::kPending) {
          if (inst.boot_at <= now) {
            boot(inst);
          } else {
            next = std::min(next, inst.boot_at);
          }
        }
        if (inst.random_notice_at && *inst.random_notice_at <= now) {
          inst.random_notice_at.reset();
          post_notice(inst);
        }
        if (inst.ends_at) {
          if (*inst.ends_at <= now) {
            end(inst, "interrupted");
          } else {
            next = std::min(next, *inst.ends_at);
          }
        }
        ++it;
      }
      // Reap the bootstraps that ended (ours only: the server has children of its own).
      std::vector<pid_t> alive;
      for (pid_t p : children_) {
        if (::waitpid(p, nullptr, WNOHANG) == 0) alive.push_back(p);
      }
      children_ = std::move(alive);
      for (const auto& [id, inst] : instances_) {
        // Ended (reaped here, or by another reaper in this process, such as the agent of
        // `lepton up`, which is a subreaper): never signal that group again.
        if (inst.group > 0 && inst.info.state != InstanceState::kTerminated &&
            (::waitpid(inst.group, nullptr, WNOHANG) == inst.group ||
             (::kill(inst.group, 0) != 0 && errno == ESRCH))) {
          // The bootstrap (the agent) ended by itself; its tasks may live on until terminate().
          const_cast<SimInstance&>(inst).group = 0;
        }
      }
      cv_.wait_until(lock, next);
    }
    for (pid_t p : children_) ::waitpid(p, nullptr, 0);
  }

  const std::vector<Offer> catalog_;
  const SimCloudOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, SimInstance> instances_;
  std::map<std::string, std::vector<std::string>> launched_by_key_;  // idempotency key -> ids
  std::vector<pid_t> children_;  // killed bootstraps not yet reaped
  std::mt19937_64 random_;
  int64_t launched_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

Result<std::unique_ptr<SimProvider>> SimProvider::create(std::vector<Offer> catalog,
                                                         SimCloudOptions options) {
  if (options.state_dir.empty()) return Status::invalid_argument("sim: state_dir is required");
  if (!options.clouds.empty()) {
    for (const std::string& c : options.clouds) {
      if (std::none_of(catalog.begin(), catalog.end(),
                       [&](const Offer& o) { return o.cloud == c; })) {
        return Status::invalid_argument("sim clouds: clouds: the catalog has no offers of '" + c +
                                        "'");
      }
    }
    std::erase_if(catalog, [&](const Offer& o) {
      return std::find(options.clouds.begin(), options.clouds.end(), o.cloud) ==
             options.clouds.end();
    });
  }
  auto impl = std::make_unique<Impl>(std::move(catalog), std::move(options));
  return std::unique_ptr<SimProvider>(new SimProvider(std::move(impl)));
}

SimProvider::SimProvider(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SimProvider::~SimProvider() = default;

Result<std::vector<Offer>> SimProvider::offers(const OfferQuery& query) const {
  return impl_->offers(query);
}
Result<std::vector<Instance>> SimProvider::provision(const ProvisionRequest& request) {
  return impl_->provision(request);
}
Status SimProvider::terminate(const std::vector<std::string>& ids) { return impl_->terminate(ids); }
Result<std::vector<Instance>> SimProvider::list_instances() { return impl_->list_instances(); }
Result<std::vector<InterruptionNotice>> SimProvider::interruption_notices() {
  return impl_->notices();
}
Status SimProvider::interrupt(const std::string& id) { return impl_->interrupt(id); }

}  // namespace lepton::cloud
