#include "gateway/routing.h"

#include <netdb.h>
#include <sys/socket.h>

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace lepton::gateway {

using nlohmann::json;

Status split_address(std::string_view address, std::string& host, uint16_t& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size()) {
    return Status::invalid_argument("expected host:port, got '" + std::string(address) + "'");
  }
  std::string_view h = address.substr(0, colon);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') {
      return Status::invalid_argument("bad IPv6 host in '" + std::string(address) + "'");
    }
    h = h.substr(1, h.size() - 2);
  }
  std::string_view p = address.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value == 0 || value > 65535) {
    return Status::invalid_argument("bad port in '" + std::string(address) + "'");
  }
  host = std::string(h);
  port = static_cast<uint16_t>(value);
  return Status::ok();
}

namespace {

Status resolve(const std::string& host, std::string& ip) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return {StatusCode::kUnavailable, "cannot resolve host '" + host + "'"};
  }
  char text[NI_MAXHOST] = {};
  int rc =
      getnameinfo(found->ai_addr, found->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST);
  freeaddrinfo(found);
  if (rc != 0) return {StatusCode::kUnavailable, "cannot resolve host '" + host + "'"};
  ip = text;
  return Status::ok();
}

}  // namespace

Result<RouteSpec> parse_routes_json(std::string_view text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::invalid_argument("routes: not valid JSON");
  if (!doc.is_object()) {
    return Status::invalid_argument("routes: expected an object {\"NAME\": [\"host:port\", ...]}");
  }
  RouteSpec spec;
  for (const auto& [name, replicas] : doc.items()) {
    std::string field = "routes." + name;
    if (name.empty() || name.find_first_of("/?#. :") != std::string::npos) {
      return Status::invalid_argument(field +
                                      ": a deployment name may not be empty or hold '/?#. :'");
    }
    if (!replicas.is_array()) {
      return Status::invalid_argument(field + ": expected an array of \"host:port\" strings");
    }
    std::vector<std::string>& out = spec[name].replicas;
    for (size_t i = 0; i < replicas.size(); ++i) {
      std::string item_field = field + "[" + std::to_string(i) + "]";
      if (!replicas[i].is_string()) {
        return Status::invalid_argument(item_field + ": expected a \"host:port\" string");
      }
      std::string address = replicas[i].get<std::string>();
      std::string host;
      uint16_t port = 0;
      if (Status s = split_address(address, host, port); !s.is_ok()) {
        return Status::invalid_argument(item_field + ": " + s.message());
      }
      out.push_back(address);
    }
  }
  return spec;
}

Result<RouteSpec> load_routes_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::invalid_argument(path + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  Result<RouteSpec> spec = parse_routes_json(text.str());
  if (!spec.is_ok()) return Status::invalid_argument(path + ": " + spec.status().message());
  return spec;
}

Status Router::update(const RouteSpec& spec) {
  std::shared_ptr<const RouteTable> old = snapshot();
  auto table = std::make_shared<RouteTable>();
  for (const auto& [name, route] : spec) {
    Deployment d;
    d.name = name;
    d.probe_path = route.probe_path;
    d.token = route.token;
    d.hold_when_empty = route.hold_when_empty;
    const Deployment* previous = old->find(name);
    d.stats = previous ? previous->stats : std::make_shared<DeploymentStats>();
    for (const auto* list : {&route.replicas, &route.draining}) {
      const bool draining = list == &route.draining;
      for (const std::string& address : *list) {
        std::shared_ptr<Replica> replica;
        if (previous) {
          for (const auto& r : previous->replicas) {
            if (r->address == address) replica = r;
          }
        }
        if (!replica) {
          replica = std::make_shared<Replica>();
          replica->address = address;
          if (auto own = route.probe_paths.find(address); own != route.probe_paths.end()) {
            replica->probe_path = own->second;
          }
          replica->ready = route.probe_path.empty() && replica->probe_path.empty();
          LEPTON_RETURN_IF_ERROR(split_address(address, replica->host, replica->port));
          LEPTON_RETURN_IF_ERROR(resolve(replica->host, replica->ip));
        }
        bool duplicate = false;
        for (const auto& r : d.replicas) duplicate = duplicate || r->address == address;
        if (duplicate) continue;
        replica->draining = draining;
        d.replicas.push_back(std::move(replica));
      }
    }
    table->deployments.emplace(name, std::move(d));
  }
  std::lock_guard lock(mu_);
  table_ = std::move(table);
  version_.fetch_add(1, std::memory_order_acq_rel);
  return Status::ok();
}

std::shared_ptr<const RouteTable> Router::snapshot() const {
  std::lock_guard lock(mu_);
  return table_;
}

Replica* choose_replica(const std::vector<std::shared_ptr<Replica>>& replicas,
                        std::span<Replica* const> exclude, int64_t now_ns, std::minstd_rand& rng) {
  auto excluded = [&](const Replica* r) {
    for (const Replica* e : exclude) {
      if (e == r) return true;
    }
    return false;
  };
  // Two passes, no allocation: count the candidates, then address them by index.
  for (bool want_up : {true, false}) {
    auto candidate = [&](const Replica* r) {
      return r->ready.load(std::memory_order_relaxed) &&
             !r->draining.load(std::memory_order_relaxed) && !excluded(r) &&
             (!want_up || r->is_up(now_ns));
    };
    size_t count = 0;
    for (const auto& r : replicas) count += candidate(r.get()) ? 1 : 0;
    if (count == 0) continue;
    auto nth = [&](size_t n) -> Replica* {
      for (const auto& r : replicas) {
        if (candidate(r.get()) && n-- == 0) return r.get();
      }
      return nullptr;
    };
    if (count == 1) return nth(0);
    size_t a = rng() % count;
    size_t b = rng() % (count - 1);
    if (b >= a) ++b;
    Replica* ra = nth(a);
    Replica* rb = nth(b);
    return rb->in_flight.load(std::memory_order_relaxed) <
                   ra->in_flight.load(std::memory_order_relaxed)
               ? rb
               : ra;
  }
  return nullptr;
}

int64_t latency_bucket_us(int i) {
  // 100 * 2^(i/3): whole doublings by shifting, the thirds from 2^(1/3) and 2^(2/3).
  static constexpr std::array<double, 3> kThirds = {1.0, 1.2599210498948732, 1.5874010519681994};
  return static_cast<int64_t>(100.0 * static_cast<double>(int64_t{1} << (i / 3)) * kThirds[i % 3]);
}

void DeploymentStats::record_latency(int64_t us) {
  int i = 0;
  while (i < kLatencyBuckets - 1 && us > latency_bucket_us(i)) ++i;
  latency[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
}

std::string prometheus_text(const RouteTable& table, const GatewayStats& stats) {
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help, auto value_of) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [dep_name, d] : table.deployments) {
      out += std::string(name) + "{deployment=\"" + dep_name + "\"} " +
             std::to_string(value_of(*d.stats)) + "\n";
    }
  };
  family("lepton_gateway_requests_total", "counter", "Requests routed to the deployment.",
         [](const DeploymentStats& s) { return s.requests.load(); });
  family("lepton_gateway_errors_total", "counter",
         "Gateway errors (502/503/504) and responses cut short.",
         [](const DeploymentStats& s) { return s.errors.load(); });
  family("lepton_gateway_retries_total", "counter",
         "Retries on another replica before the first byte.",
         [](const DeploymentStats& s) { return s.retries.load(); });
  family("lepton_gateway_in_flight", "gauge", "Requests in flight.",
         [](const DeploymentStats& s) { return s.in_flight.load(); });
  family("lepton_gateway_prompt_tokens_total", "counter", "Prompt tokens from OpenAI usage.",
         [](const DeploymentStats& s) { return s.prompt_tokens.load(); });
  family("lepton_gateway_completion_tokens_total", "counter",
         "Completion tokens from OpenAI usage.",
         [](const DeploymentStats& s) { return s.completion_tokens.load(); });
  auto replica_family = [&](const char* name, const char* help, auto value_of) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (const auto& [dep_name, d] : table.deployments) {
      for (const auto& r : d.replicas) {
        out += std::string(name) + "{deployment=\"" + dep_name + "\",replica=\"" + r->address +
               "\"} " + std::to_string(value_of(*r)) + "\n";
      }
    }
  };
  replica_family("lepton_gateway_replica_in_flight", "Requests in flight per replica.",
                 [](const Replica& r) { return r.in_flight.load(); });
  replica_family("lepton_gateway_replica_ready", "Whether the replica passed its readiness probe.",
                 [](const Replica& r) { return r.ready.load() ? 1 : 0; });
  out +=
      "# HELP lepton_gateway_request_seconds Request latency, to the response's last byte.\n"
      "# TYPE lepton_gateway_request_seconds histogram\n";
  for (const auto& [dep_name, d] : table.deployments) {
    uint64_t cumulative = 0;
    for (int i = 0; i < DeploymentStats::kLatencyBuckets; ++i) {
      cumulative += d.stats->latency[static_cast<size_t>(i)].load();
      std::string le = i + 1 == DeploymentStats::kLatencyBuckets
                           ? "+Inf"
                           : std::to_string(static_cast<double>(latency_bucket_us(i)) / 1e6);
      out += "lepton_gateway_request_seconds_bucket{deployment=\"" + dep_name + "\",le=\"" + le +
             "\"} " + std::to_string(cumulative) + "\n";
    }
    out += "lepton_gateway_request_seconds_count{deployment=\"" + dep_name + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out +=
      "# HELP lepton_gateway_unrouted_total Requests for no known deployment.\n"
      "# TYPE lepton_gateway_unrouted_total counter\n"
      "lepton_gateway_unrouted_total " +
      std::to_string(stats.unrouted.load()) + "\n";
  out +=
      "# HELP lepton_gateway_bad_requests_total Malformed or oversized requests.\n"
      "# TYPE lepton_gateway_bad_requests_total counter\n"
      "lepton_gateway_bad_requests_total " +
      std::to_string(stats.bad_requests.load()) + "\n";
  out +=
      "# HELP lepton_gateway_connections_total Client connections accepted.\n"
      "# TYPE lepton_gateway_connections_total counter\n"
      "lepton_gateway_connections_total " +
      std::to_string(stats.connections.load()) + "\n";
  return out;
}

}  // namespace lepton::gateway
