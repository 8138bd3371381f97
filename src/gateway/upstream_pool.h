// One worker's keep-alive connections to replicas, idle between requests, by replica address.
//
// A worker's sessions take a connection for a request and give it back once its response has been
// read whole; the worker's thread is the only one that touches its pool, so there is no lock. A
// pooled connection may have been closed by the replica meanwhile: the session finds out when it
// writes or reads, and retries once on a fresh connection (docs/serving.md).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/io.h"

namespace lepton::gateway {

class UpstreamPool {
 public:
  explicit UpstreamPool(size_t max_idle_per_address) : max_idle_(max_idle_per_address) {}

  // The most recently pooled connection to `address` that is still open (closed ones are
  // dropped); null when there is none.
  std::unique_ptr<Socket> take(const std::string& address);
  // Keeps `socket` for the next request to `address`, unless `max_idle_per_address` already wait
  // there (then it is closed).
  void give_back(const std::string& address, std::unique_ptr<Socket> socket);
  // Connections kept for `address`.
  size_t idle(const std::string& address) const;

 private:
  size_t max_idle_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Socket>>> idle_;
};

}  // namespace lepton::gateway
