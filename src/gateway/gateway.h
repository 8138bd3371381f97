// The gateway: an HTTP/1.1 reverse proxy in front of deployment replicas.
//
// Threads: `io_threads` workers, each with its own io_context, its own SO_REUSEPORT acceptor on the
// same port (the kernel spreads connections) and its own keep-alive pool of upstream connections.
// A client connection lives on one worker from accept to close, so nothing inside a connection is
// shared between threads; what is shared (the route table, replica and deployment counters) is
// behind the Router's snapshot and atomics.
//
// One request: route by `/d/NAME/REST` (REST forwarded) or by a Host header `NAME.<anything>`;
// pick a replica by power of two choices on in-flight requests; send the request (from the pool or
// a fresh connection); relay the response head and then the body as it arrives. Until the first
// byte of the response reaches the client, a failed connect or a connection reset moves the
// request to another replica (and marks the failed one down for `down_for`); after that, a failure
// cuts the response short. A client that goes away closes the upstream connection, which cancels
// the upstream's work. Gateway errors are JSON: 401 (a token-protected deployment without its
// token), 404 (no such deployment), 502 (upstream failed), 503 (no replica; with Retry-After when
// the deployment holds requests and none became ready in time), 504 (upstream timed out before its
// first byte).
//
// Hostile clients: each worker holds at most its share of `max_connections` client connections (a
// new one closes the connection that has waited longest for a request), a client has
// `header_timeout` for a request's head and `body_timeout` for its body, a request is routed and
// its token checked before its body is read, and accepting backs off when descriptors run out.
// Only Host names that a web page cannot rebind to the gateway (IP literals, localhost,
// *.localhost, names without a dot, `allowed_hosts`) are answered: others get 421 (DNS rebinding).
// /-/metrics lists replica addresses and needs `metrics_token` when one is set.
//
// Readiness: a prober thread sends each replica of a deployment with a probe path a GET every
// probe_interval; only ready replicas get requests. Scale from zero: when no replica of a holding
// deployment is ready (or none that this request has not already failed on), requests wait
// (counted in flight, which is what the autoscaler sees) until one is, or until hold_for passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/routing.h"

namespace lepton::gateway {

struct GatewayOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;   // 0: any free port
  int io_threads = 0;  // 0: one per core
  size_t max_request_body_bytes = 16 << 20;
  std::chrono::milliseconds connect_timeout{3000};
  // From sending the request to the upstream's response head.
  std::chrono::milliseconds first_byte_timeout{60000};
  // Between two reads of a response body, and for each write to a client.
  std::chrono::milliseconds idle_timeout{300000};
  // How long a replica that failed is skipped.
  std::chrono::milliseconds down_for{5000};
  int max_attempts = 3;                // replicas tried for one request
  size_t max_idle_per_upstream = 256;  // pooled connections per replica and worker
  // Readiness probes of deployments that have a probe path: every replica is sent GET PATH this
  // often; a 2xx makes it ready, `probe_failures` failures in a row make it not ready.
  std::chrono::milliseconds probe_interval{1000};
  std::chrono::milliseconds probe_timeout{1000};
  int probe_failures = 2;
  // Deployments that hold requests while no replica is ready (scale from zero): how long a
  // request may wait, and how many may wait per deployment before more get 503 at once.
  std::chrono::milliseconds hold_for{60000};
  int64_t max_held = 1000;
  // A client must send a request's whole head within header_timeout of connecting (of the
  // request's first byte on a kept-alive connection: slowloris), and its body within
  // body_timeout of the head; a kept-alive connection may wait keep_alive_timeout for its next
  // request.
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{120000};
  std::chrono::milliseconds keep_alive_timeout{60000};
  // Client connections at most, shared equally by the workers. At the cap a new connection
  // closes the one that has waited longest for a request (never one with a request in flight),
  // or is closed itself. Each client connection may hold an upstream one too: with the API
  // server's 256 this stays under a 1024-descriptor limit.
  size_t max_connections = 256;
  // "Authorization: Bearer TOKEN" that /-/metrics needs; empty: it is open to anyone.
  std::string metrics_token{};
  // Host names answered besides IP literals, "localhost", "*.localhost" and names without a dot:
  // an entry D allows D and any NAME.D (so Host-based routing works under it). Others get 421.
  std::vector<std::string> allowed_hosts{};
};

class Gateway {
 public:
  // Binds and starts serving; kUnavailable when the address cannot be bound.
  static Result<std::unique_ptr<Gateway>> start(const GatewayOptions& options,
                                                std::shared_ptr<Router> router);
  virtual ~Gateway() = default;
  virtual uint16_t port() const = 0;
  // The /-/metrics text. Any thread.
  virtual std::string metrics_text() const = 0;
  // Stops accepting, closes connections, joins the I/O threads. Idempotent.
  virtual void stop() = 0;
};

}  // namespace lepton::gateway
