#include "server/provider_calls.h"

namespace lepton::server {

ProviderCalls::ProviderCalls(std::vector<std::shared_ptr<cloud::Provider>> providers)
    : providers_(std::move(providers)) {
  lanes_.resize(providers_.size());
  for (size_t p = 0; p < providers_.size(); ++p) {
    if (!providers_[p]->calls_block()) continue;
    lanes_[p] = std::make_unique<Lane>();
    Lane& lane = *lanes_[p];
    lane.thread = std::thread([this, &lane] { run(lane); });
  }
}

ProviderCalls::~ProviderCalls() { drain(); }

void ProviderCalls::drain() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    for (auto& lane : lanes_) {
      if (!lane) continue;
      for (const auto& [id, call] : lane->queue) open_.erase(id);  // dropped, never made
      lane->queue.clear();
    }
  }
  wake_.notify_all();
  for (auto& lane : lanes_) {
    if (lane && lane->thread.joinable()) lane->thread.join();
  }
}

uint64_t ProviderCalls::provision(size_t p, cloud::ProvisionRequest request) {
  return start(p, [provider = providers_[p], request = std::move(request)] {
    return provider->provision(request);
  });
}

uint64_t ProviderCalls::terminate(size_t p, std::vector<std::string> instance_ids) {
  return start(p, [provider = providers_[p], ids = std::move(instance_ids)]() -> Outcome {
    Status s = provider->terminate(ids);
    if (!s.is_ok()) return s;
    return std::vector<cloud::Instance>{};
  });
}

uint64_t ProviderCalls::start(size_t p, std::function<Outcome()> call) {
  std::unique_lock lock(mu_);
  const uint64_t id = next_id_++;
  open_[id] = p;
  if (stop_) {  // drained: nothing is called any more
    ended_.emplace(id, Status(StatusCode::kUnavailable, "the server is stopping"));
    return id;
  }
  if (!lanes_[p]) {
    lock.unlock();
    Outcome outcome = call();
    lock.lock();
    ended_.emplace(id, std::move(outcome));
    return id;
  }
  lanes_[p]->queue.emplace_back(id, std::move(call));
  lock.unlock();
  wake_.notify_all();
  return id;
}

void ProviderCalls::run(Lane& lane) {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || !lane.queue.empty(); });
    // Stopping: calls not started are dropped (nobody would record what they launch).
    if (stop_) return;
    auto [id, call] = std::move(lane.queue.front());
    lane.queue.pop_front();
    lock.unlock();
    Outcome outcome = call();
    lock.lock();
    ended_.emplace(id, std::move(outcome));
  }
}

std::optional<ProviderCalls::Outcome> ProviderCalls::take(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = ended_.find(id);
  if (it == ended_.end()) return std::nullopt;
  Outcome outcome = std::move(it->second);
  ended_.erase(it);
  open_.erase(id);
  return outcome;
}

std::vector<ProviderCalls::Ended> ProviderCalls::take_ended() {
  std::lock_guard lock(mu_);
  std::vector<Ended> out;
  for (auto& [id, outcome] : ended_) {
    out.push_back({id, std::move(outcome)});
    open_.erase(id);
  }
  ended_.clear();
  return out;
}

bool ProviderCalls::busy(size_t p) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, provider] : open_) {
    if (provider == p) return true;
  }
  return false;
}

}  // namespace lepton::server
