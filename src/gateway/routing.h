// The gateway's routing table and load balancing.
//
// A RouteTable is an immutable snapshot: deployment name -> its ready replicas and its counters.
// The Router owns the current snapshot and replaces it whole when the control plane (or a routes
// file) says what is ready; readers take a shared_ptr to a snapshot and never see a half-made
// table. Replicas and per-deployment counters are shared between snapshots by name and address,
// so a swap keeps in-flight counts, down marks and token totals. Counters are atomics: every I/O
// thread updates them without locks.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::gateway {

// One upstream replica. `host` is an IP literal or a name resolved (once) when it joins the table.
struct Replica {
  std::string address;  // "host:port", as written in the routes
  std::string host;
  uint16_t port = 0;
  std::string ip;          // `host` resolved when the replica joined the table
  std::string probe_path;  // set when it joined; empty: the deployment's
  std::atomic<int> in_flight{0};
  // steady_clock nanoseconds until which the replica is skipped after a failure; 0: up.
  std::atomic<int64_t> down_until_ns{0};
  // Whether the replica passed its readiness probe; always true for a deployment with no probe.
  std::atomic<bool> ready{true};
  std::atomic<int> probe_failures{0};  // consecutive, since it was last ready
  // Taken out of service: finishes what it has in flight, gets nothing new.
  std::atomic<bool> draining{false};

  bool is_up(int64_t now_ns) const {
    return down_until_ns.load(std::memory_order_relaxed) <= now_ns;
  }
};

// Per-deployment counters, exported at /-/metrics.
struct DeploymentStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};   // 502/503/504 from the gateway and streams cut short
  std::atomic<uint64_t> retries{0};  // attempts on another replica before the first byte
  std::atomic<int64_t> in_flight{0};
  std::atomic<uint64_t> prompt_tokens{0};
  std::atomic<uint64_t> completion_tokens{0};
  std::atomic<int64_t> held{0};  // requests waiting for a first ready replica
  // Request latency, from the request read to the response's last byte: bucket i counts requests
  // of at most latency_bucket_us(i) microseconds; the last bucket has no bound.
  static constexpr int kLatencyBuckets = 48;
  std::array<std::atomic<uint64_t>, kLatencyBuckets> latency{};
  void record_latency(int64_t us);
};

// The upper bound of latency bucket i in microseconds: 100 us * 2^(i/3), so three buckets per
// doubling (about 26% apart), from 100 us to about 16 minutes.
int64_t latency_bucket_us(int i);

struct Deployment {
  std::string name;
  std::vector<std::shared_ptr<Replica>> replicas;
  std::shared_ptr<DeploymentStats> stats;
  std::string probe_path;  // GET this on each replica; empty: replicas are ready as they come
  std::string token;       // non-empty: requests need "Authorization: Bearer TOKEN"
  // With no ready replica, requests wait (up to GatewayOptions::hold_for) for one to start.
  bool hold_when_empty = false;
};

class RouteTable {
 public:
  const Deployment* find(std::string_view name) const {
    auto it = deployments.find(name);
    return it == deployments.end() ? nullptr : &it->second;
  }
  std::map<std::string, Deployment, std::less<>> deployments;
};

// What the control plane (or a routes file) says of one deployment.
struct DeploymentRoute {
  std::vector<std::string> replicas;  // "host:port" of the replicas that run
  std::vector<std::string> draining;  // replicas out of service, still finishing requests
  std::string probe_path;             // see Deployment
  // Replicas probed on another path than probe_path (an older generation's), by address.
  std::map<std::string, std::string> probe_paths;
  std::string token;
  bool hold_when_empty = false;
  bool operator==(const DeploymentRoute&) const = default;
};
using RouteSpec = std::map<std::string, DeploymentRoute>;

// {"NAME": ["127.0.0.1:9001", ...], ...}: replicas with no probe, no token, no holding. Errors
// name the field: `routes.NAME[1]: ...`.
Result<RouteSpec> parse_routes_json(std::string_view text);
// The same from a file; errors start with the file's path.
Result<RouteSpec> load_routes_file(const std::string& path);
// "host:port" -> host and port; the host may be "[v6]".
Status split_address(std::string_view address, std::string& host, uint16_t& port);

class Router {
 public:
  // Replaces the table with `spec`. Replicas and stats that keep their name and address keep their
  // counters and readiness; a new replica of a deployment with a probe starts not ready. Fails (and
  // keeps the old table) on an invalid address or a host name that does not resolve. Any thread;
  // resolving a new name blocks the caller.
  Status update(const RouteSpec& spec);
  // The current table; cheap (a mutex held for one shared_ptr copy). Any thread.
  std::shared_ptr<const RouteTable> snapshot() const;
  // Bumped by every update, so a thread can keep its snapshot until this changes.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const RouteTable> table_ = std::make_shared<RouteTable>();
  std::atomic<uint64_t> version_{1};
};

// Power of two choices over `replicas`: two distinct replicas drawn at random among those that are
// ready, up and not in `exclude` (already tried for this request); the one with fewer in-flight
// requests wins. When every untried ready replica is marked down, draws among those anyway: a down
// mark may be stale, and trying beats refusing. nullptr when nothing untried is left.
Replica* choose_replica(const std::vector<std::shared_ptr<Replica>>& replicas,
                        std::span<Replica* const> exclude, int64_t now_ns, std::minstd_rand& rng);

// Gateway-wide counters that belong to no deployment.
struct GatewayStats {
  std::atomic<uint64_t> unrouted{0};  // requests for no known deployment (404)
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> connections{0};
};

// Prometheus text exposition of the table's counters.
std::string prometheus_text(const RouteTable& table, const GatewayStats& stats);

}  // namespace lepton::gateway
