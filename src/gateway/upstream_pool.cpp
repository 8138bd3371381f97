#include "gateway/upstream_pool.h"

namespace lepton::gateway {

std::unique_ptr<Socket> UpstreamPool::take(const std::string& address) {
  auto it = idle_.find(address);
  if (it == idle_.end()) return nullptr;
  while (!it->second.empty()) {
    std::unique_ptr<Socket> s = std::move(it->second.back());
    it->second.pop_back();
    if (s->is_open()) return s;
  }
  return nullptr;
}

void UpstreamPool::give_back(const std::string& address, std::unique_ptr<Socket> socket) {
  std::vector<std::unique_ptr<Socket>>& pool = idle_[address];
  if (pool.size() >= max_idle_) return;
  pool.push_back(std::move(socket));
}

size_t UpstreamPool::idle(const std::string& address) const {
  auto it = idle_.find(address);
  return it == idle_.end() ? 0 : it->second.size();
}

}  // namespace lepton::gateway
