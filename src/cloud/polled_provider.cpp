#include "cloud/polled_provider.h"

#include <set>
#include <utility>

namespace lepton::cloud {

PolledProvider::PolledProvider(std::shared_ptr<Provider> inner, std::chrono::milliseconds period,
                               std::chrono::milliseconds launch_grace)
    : inner_(std::move(inner)), period_(period), launch_grace_(launch_grace) {
  LEPTON_CHECK(inner_ != nullptr);
  thread_ = std::thread([this] { run(); });
}

PolledProvider::~PolledProvider() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void PolledProvider::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    poll_now_ = false;
    const Clock::time_point started = Clock::now();
    lock.unlock();
    // The network calls, without the lock: callers keep getting the last answer meanwhile.
    Result<std::vector<Instance>> instances = inner_->list_instances();
    Result<std::vector<InterruptionNotice>> notices = inner_->interruption_notices();
    lock.lock();
    if (instances.is_ok()) {
      std::set<std::string> seen;
      for (const Instance& i : *instances) seen.insert(i.id);
      for (auto it = launched_.begin(); it != launched_.end();) {
        // Launched before this poll began and shown by it, or too long ago to wait for.
        const bool shown = seen.count(it->first) && it->second.at <= started;
        it = shown || Clock::now() - it->second.at > launch_grace_ ? launched_.erase(it)
                                                                   : std::next(it);
      }
    }
    instances_ = std::move(instances);
    notices_ = std::move(notices);
    ++polls_;
    polled_.notify_all();
    wake_.wait_for(lock, period_, [this] { return stop_ || poll_now_; });
  }
}

void PolledProvider::wait_for_first_poll(std::unique_lock<std::mutex>& lock) {
  polled_.wait_for(lock, period_, [this] { return polls_ > 0; });
}

Result<std::vector<Instance>> PolledProvider::provision(const ProvisionRequest& request) {
  Result<std::vector<Instance>> launched = inner_->provision(request);
  if (launched.is_ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Instance& i : *launched) launched_[i.id] = {i, Clock::now()};
    poll_now_ = true;
    wake_.notify_all();
  }
  return launched;
}

Status PolledProvider::terminate(const std::vector<std::string>& instance_ids) {
  Status s = inner_->terminate(instance_ids);
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : instance_ids) launched_.erase(id);
  poll_now_ = true;
  wake_.notify_all();
  return s;
}

Status PolledProvider::interrupt(const std::string& instance_id) {
  Status s = inner_->interrupt(instance_id);
  if (s.is_ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    poll_now_ = true;
    wake_.notify_all();
  }
  return s;
}

Result<std::vector<Instance>> PolledProvider::list_instances() {
  std::unique_lock<std::mutex> lock(mu_);
  wait_for_first_poll(lock);
  if (!instances_.is_ok()) return instances_.status();
  std::vector<Instance> out = *instances_;
  std::set<std::string> listed;
  for (const Instance& i : out) listed.insert(i.id);
  for (const auto& [id, launched] : launched_) {
    if (!listed.count(id)) out.push_back(launched.instance);
  }
  return out;
}

Result<std::vector<InterruptionNotice>> PolledProvider::interruption_notices() {
  std::unique_lock<std::mutex> lock(mu_);
  wait_for_first_poll(lock);
  return notices_;
}

int64_t PolledProvider::polls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return polls_;
}

}  // namespace lepton::cloud
