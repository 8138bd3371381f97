#include "gateway/gateway.h"

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/openai.h"
#include "net/http.h"
#include "spec/json_text.h"

namespace lepton::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// JSON responses up to this size are parsed for `usage`; larger ones pass uncounted.
constexpr size_t kMaxUsageCapture = 1 << 20;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The message may quote what a client sent (a deployment or host name) in any bytes: dump() would
// throw on bad UTF-8 and end the process.
std::string error_body(std::string_view code, const std::string& message) {
  return spec::to_json_text(nlohmann::json{{"error", {{"code", code}, {"message", message}}}}) +
         "\n";
}

// How long accepting waits after running out of descriptors or memory: accepting again at once
// fails again at once, a busy loop.
constexpr std::chrono::milliseconds kAcceptBackOff{50};
// After an answer that leaves a request body unread, what the client still sends is read and
// dropped for up to this long (or this much) before closing, so that the close does not reset
// the connection under the answer.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kLingerBytes = 1 << 20;

bool out_of_resources(const error_code& ec) {
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory || ec == error_code(ENFILE, boost::system::system_category());
}

// The name in a Host header, lower-case, without port, brackets or a final dot.
std::string host_name(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  std::string out(host);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

bool ends_with_domain(std::string_view host, std::string_view domain) {
  return host == domain || (host.size() > domain.size() + 1 && host.ends_with(domain) &&
                            host[host.size() - domain.size() - 1] == '.');
}

// A web page can point a name of its own at the gateway's address (DNS rebinding) and then reach
// it as same-origin; such requests carry that name in Host. IP literals, localhost and names
// without a dot (a machine's own name on its network: no one can register one in public DNS)
// cannot be rebound by a web page; other names must be configured.
bool host_allowed(const std::string& host, const std::vector<std::string>& allowed) {
  if (host.find('.') == std::string::npos || is_ip_literal(host) ||
      ends_with_domain(host, "localhost")) {
    return true;
  }
  for (std::string domain : allowed) {
    for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view d = domain;
    if (d.starts_with("*.")) d.remove_prefix(2);
    while (!d.empty() && (d.front() == '.' || d.back() == '.')) {
      d = d.front() == '.' ? d.substr(1) : d.substr(0, d.size() - 1);
    }
    if (!d.empty() && ends_with_domain(host, d)) return true;
  }
  return false;
}

// Hop-by-hop headers, and those the gateway writes itself.
bool hop_by_hop(http::field f) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
    case http::field::content_length:
      return true;
    default:
      return false;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

bool is_http_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

// The parts of an HTTP/1 message that the gateway uses, in storage kept from one message to the
// next: beast's own parsers allocate every field on its own, twice per proxied request.
struct Head {
  struct Field {
    http::field name;
    uint32_t name_at, name_size, value_at, value_size;
  };
  std::string text;  // method, target, reason, field names and values
  std::vector<Field> fields;
  http::verb method = http::verb::unknown;
  uint32_t method_size = 0, target_size = 0, reason_size = 0;  // at the start of `text`, in order
  unsigned status = 0;
  unsigned version = 11;
  std::string body;  // a request's whole body; the part of a response's body parsed last

  void clear() {
    text.clear();
    fields.clear();
    body.clear();
    method = http::verb::unknown;
    method_size = target_size = reason_size = 0;
    status = 0;
  }
  std::string_view method_string() const { return {text.data(), method_size}; }
  std::string_view target() const { return {text.data() + method_size, target_size}; }
  std::string_view reason() const { return {text.data() + method_size + target_size, reason_size}; }
  std::string_view name(const Field& f) const { return {text.data() + f.name_at, f.name_size}; }
  std::string_view value(const Field& f) const { return {text.data() + f.value_at, f.value_size}; }
  // The first field called `name`; empty when there is none.
  std::string_view operator[](http::field name) const {
    for (const Field& f : fields) {
      if (f.name == name) return value(f);
    }
    return {};
  }
};

// beast's parser, filling a Head.
template <bool isRequest>
class HeadParser final : public http::basic_parser<isRequest> {
 public:
  explicit HeadParser(Head& head) : head_(head) { head_.clear(); }

 private:
  using string_view = beast::string_view;

  uint32_t add(string_view s) {
    auto at = static_cast<uint32_t>(head_.text.size());
    head_.text.append(s.data(), s.size());
    return at;
  }
  void on_request_impl(http::verb method, string_view method_str, string_view target, int version,
                       error_code&) override {
    head_.method = method;
    add(method_str);
    add(target);
    head_.method_size = static_cast<uint32_t>(method_str.size());
    head_.target_size = static_cast<uint32_t>(target.size());
    head_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int code, string_view reason, int version, error_code&) override {
    add(reason);
    head_.reason_size = static_cast<uint32_t>(reason.size());
    head_.status = static_cast<unsigned>(code);
    head_.version = static_cast<unsigned>(version);
  }
  void on_field_impl(http::field name, string_view name_string, string_view value,
                     error_code&) override {
    uint32_t name_at = add(name_string);
    uint32_t value_at = add(value);
    head_.fields.push_back({name, name_at, static_cast<uint32_t>(name_string.size()), value_at,
                            static_cast<uint32_t>(value.size())});
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<uint64_t>& length, error_code&) override {
    if (isRequest && length) head_.body.reserve(std::min<uint64_t>(*length, 1 << 20));
  }
  size_t on_body_impl(string_view body, error_code&) override {
    head_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(uint64_t, string_view, error_code&) override {}
  size_t on_chunk_body_impl(uint64_t, string_view body, error_code& ec) override {
    return on_body_impl(body, ec);
  }
  void on_finish_impl(error_code&) override {}

  Head& head_;
};

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// Sockets and timers bound to the worker's io_context executor type rather than the type-erased
// any_io_executor: every asynchronous operation copies its executor, and the erased one costs an
// allocation-free but virtual copy and destroy each time (about 3% of the gateway's CPU under
// load). Plain sockets, not beast::basic_stream: its timeouts arm, cancel and complete an asio
// timer around every read and write; a session keeps one deadline and one lazily armed timer.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;  // probes
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;

class Session;

// A link in one of a worker's lists of sessions (Tag tells the lists apart).
template <int Tag>
struct ListLink {
  ListLink* prev = this;
  ListLink* next = this;
  int64_t linked_ns = 0;
  bool linked() const { return next != this; }
  void unlink() {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
  void link_before(ListLink& at) {
    prev = at.prev;
    next = &at;
    at.prev->next = this;
    at.prev = this;
  }
};
// Exchanges whose client is not watched yet; connections waiting for a request.
using WatchLink = ListLink<0>;
using IdleLink = ListLink<1>;

// How long an exchange runs before the gateway watches its client for going away. Most requests
// are answered sooner and never pay the watch's read (a system call each); a client that leaves a
// long one is noticed within twice this.
constexpr std::chrono::milliseconds kWatchAfter{20};

struct Worker {
  Worker(const GatewayOptions& o, Router& r, GatewayStats& s, uint32_t seed)
      : options(o),
        router(r),
        stats(s),
        rng(seed),
        min_timeout_ns(std::max<int64_t>(
            1'000'000, std::chrono::nanoseconds(
                           std::min({o.connect_timeout, o.first_byte_timeout, o.idle_timeout,
                                     o.header_timeout, o.body_timeout, o.keep_alive_timeout}))
                           .count())) {}

  // Before the io_context: sessions, destroyed with it, unlink themselves from these lists.
  WatchLink unwatched;     // oldest first
  IdleLink idle_sessions;  // waiting for a request, longest first
  size_t open = 0;         // client connections open
  size_t max_open = 1;
  // Declared first so it is destroyed last: everything below holds sockets on it.
  asio::io_context ioc{1};
  Timer watch_timer{ioc.get_executor()};
  bool watch_timer_armed = false;
  Timer accept_timer{ioc.get_executor()};
  asio::basic_socket_acceptor<tcp, Executor> acceptor{ioc.get_executor()};
  const GatewayOptions& options;
  Router& router;
  GatewayStats& stats;
  std::minstd_rand rng;
  // The shortest of the timeouts: how far ahead a session's timer is armed at most.
  int64_t min_timeout_ns;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Socket>>> idle;
  std::shared_ptr<const RouteTable> table;
  uint64_t table_version = 0;
  std::thread thread;

  // The current table; refreshed only when the router's version moved.
  const std::shared_ptr<const RouteTable>& routes() {
    uint64_t v = router.version();
    if (v != table_version || !table) {
      table = router.snapshot();
      table_version = v;
    }
    return table;
  }

  std::unique_ptr<Socket> take(const std::string& address) {
    auto it = idle.find(address);
    if (it == idle.end()) return nullptr;
    while (!it->second.empty()) {
      std::unique_ptr<Socket> s = std::move(it->second.back());
      it->second.pop_back();
      if (s->is_open()) return s;
    }
    return nullptr;
  }

  void give_back(const std::string& address, std::unique_ptr<Socket> s) {
    std::vector<std::unique_ptr<Socket>>& pool = idle[address];
    if (pool.size() >= options.max_idle_per_upstream) return;
    pool.push_back(std::move(s));
  }

  void accept();
  void back_off(const error_code& ec);
  // Closes the connection that has waited longest for a request; false when none waits.
  bool evict_oldest_idle();
  void watch_later(Session& s);
  void on_watch_timer();
  void arm_watch_timer();
};

// One client connection, on one worker, from accept to close. Requests on it are handled one at a
// time: read the request, relay one exchange with an upstream, then read the next.
class Session : public std::enable_shared_from_this<Session>, public WatchLink, public IdleLink {
 public:
  Session(Worker& worker, Socket socket)
      : w_(worker), client_(std::move(socket)), timer_(worker.ioc.get_executor()) {
    ++w_.open;
  }
  ~Session() {
    release();
    WatchLink::unlink();
    IdleLink::unlink();
    uncount();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() {
    error_code ec;
    client_.set_option(tcp::no_delay(true), ec);
    tcp::endpoint peer = client_.remote_endpoint(ec);
    if (!ec) client_ip_ = peer.address().to_string();
    wait_for_request();
    read_request();
  }

  // Closes the connection to make room for a new one (it waits for a request).
  void evict() {
    IdleLink::unlink();
    close_client();
  }

 private:
  // ---- client side

  // Waiting for a request: the state in which a connection may be evicted.
  void wait_for_request() {
    if (!IdleLink::linked()) IdleLink::link_before(w_.idle_sessions);
  }

  void uncount() {
    if (counted_) --w_.open;
    counted_ = false;
  }

  // The whole head within header_timeout: of connecting, or of the first byte of a request on a
  // kept-alive connection.
  void read_request() {
    req_parser_.emplace(req_);
    req_parser_->body_limit(w_.options.max_request_body_bytes);
    req_parser_->header_limit(32 * 1024);
    set_deadline(Deadline::kClient, w_.options.header_timeout);
    http::async_read_header(
        client_, client_buf_, *req_parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->on_request_head(ec); });
  }

  void on_request_head(error_code ec) {
    IdleLink::unlink();
    if (ec) return on_request(ec);
    client_http11_ = req_.version >= 11;
    client_keep_alive_ = client_http11_ && req_parser_->keep_alive();
    head_request_ = req_.method == http::verb::head;
    // Routed, and its token checked, before its body is read.
    if (!route()) return;
    if (req_parser_->is_done()) return on_request({});
    set_deadline(Deadline::kClient, w_.options.body_timeout);
    auto read_body = [self = shared_from_this()] {
      http::async_read(self->client_, self->client_buf_, *self->req_parser_,
                       [self](error_code e, size_t) { self->on_request(e); });
    };
    if (iequals(req_[http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(client_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this(), read_body](error_code e, size_t) {
                          if (e) return self->close_client();
                          read_body();
                        });
      return;
    }
    read_body();
  }

  void on_request(error_code ec) {
    if (ec) {
      dep_ = nullptr;  // routed on the head, but not counted yet
      if (!is_http_error(ec) || ec == http::error::end_of_stream ||
          ec == http::error::partial_message) {
        return close_client();
      }
      w_.stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
      client_keep_alive_ = false;
      if (ec == http::error::body_limit) {
        return respond_local(
            413, error_body("invalid_argument",
                            "request body over " +
                                std::to_string(w_.options.max_request_body_bytes) + " bytes"));
      }
      if (ec == http::error::header_limit) {
        return respond_local(431, error_body("invalid_argument", "request headers too large"));
      }
      return respond_local(
          400, error_body("invalid_argument", "malformed HTTP request: " + ec.message()));
    }
    req_parser_.reset();
    clear_deadline();
    prepare_upstream_request(upstream_target_);

    dep_->stats->requests.fetch_add(1, std::memory_order_relaxed);
    dep_->stats->in_flight.fetch_add(1, std::memory_order_relaxed);
    counted_in_flight_ = true;
    started_ns_ = now_ns();
    hold_until_ns_ = 0;
    tried_.clear();
    tried_keep_.clear();
    stale_retry_used_ = false;
    last_error_.clear();
    try_replica();
  }

  // The answer for a request whose head is read, when the gateway answers it itself (false), or
  // the deployment and upstream target it goes to (true).
  bool route() {
    if (std::optional<std::string> bad = framing_problem()) {
      w_.stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
      refuse(400, error_body("invalid_argument", *bad));
      return false;
    }
    const std::string host = host_name(req_[http::field::host]);
    if (!host_allowed(host, w_.options.allowed_hosts)) {
      refuse(421, error_body("permission_denied",
                             "host '" + host +
                                 "' is not served here: the gateway answers IP addresses, "
                                 "localhost and the hosts it is configured to allow"));
      return false;
    }
    std::string_view target = req_.target();
    table_ = w_.routes();
    if (target == "/-/metrics") {
      const std::string& token = w_.options.metrics_token;
      if (!token.empty() &&
          !net::token_equals(req_[http::field::authorization], "Bearer " + token)) {
        refuse(401, error_body("unauthenticated", "/-/metrics needs 'Authorization: Bearer TOKEN'"),
               "application/json", "WWW-Authenticate: Bearer\r\n");
        return false;
      }
      refuse(200, prometheus_text(*table_, w_.stats), "text/plain; version=0.0.4");
      return false;
    }
    if (target == "/-/healthz") {
      refuse(200, "ok\n", "text/plain");
      return false;
    }

    // By /d/NAME/REST: NAME is decoded (an encoded '/' stays in it), REST goes upstream as sent.
    // Or by a Host NAME.DOMAIN (not an IP address).
    std::string name;
    std::string_view rest;
    if (target.substr(0, 3) == "/d/") {
      std::string_view t = target.substr(3);
      size_t end = t.find_first_of("/?");
      std::vector<std::string> decoded = net::path_segments(t.substr(0, end));
      if (!decoded.empty()) name = std::move(decoded.front());
      rest = end == std::string_view::npos ? std::string_view{} : t.substr(end);
    } else if (size_t dot = host.find('.');
               dot != std::string::npos && dot > 0 && !is_ip_literal(host)) {
      name = host.substr(0, dot);
      rest = target;
      if (!table_->find(name)) name.clear();
    }
    dep_ = name.empty() ? nullptr : table_->find(name);
    if (!dep_) {
      w_.stats.unrouted.fetch_add(1, std::memory_order_relaxed);
      refuse(404, error_body("not_found", name.empty()
                                              ? "no deployment named in the path (/d/NAME/...) or "
                                                "the Host header (NAME.example.com)"
                                              : "no deployment named '" + name + "'"));
      return false;
    }
    if (!dep_->token.empty()) {
      if (!net::token_equals(req_[http::field::authorization], "Bearer " + dep_->token)) {
        std::string message = "deployment '" + dep_->name +
                              "' needs 'Authorization: Bearer TOKEN' (lepton deploy get " +
                              dep_->name + " shows it)";
        dep_ = nullptr;
        refuse(401, error_body("unauthenticated", message), "application/json",
               "WWW-Authenticate: Bearer\r\n");
        return false;
      }
    }
    upstream_target_.clear();
    if (rest.empty() || rest.front() == '?') upstream_target_ = "/";
    upstream_target_.append(rest);
    return true;
  }

  // A request two parsers could frame two ways (smuggling past a proxy in front), or with a
  // repeated field that decides routing or identity (which copy wins differs between parsers).
  std::optional<std::string> framing_problem() const {
    int host = 0, auth = 0, length = 0, coding = 0;
    for (const Head::Field& f : req_.fields) {
      host += f.name == http::field::host;
      auth += f.name == http::field::authorization;
      length += f.name == http::field::content_length;
      coding += f.name == http::field::transfer_encoding;
    }
    if (host > 1 || auth > 1 || length > 1 || coding > 1) {
      return "request: more than one Host, Authorization, Content-Length or Transfer-Encoding";
    }
    if (coding == 0) return std::nullopt;
    if (length > 0) return "request: both Transfer-Encoding and Content-Length";
    std::string_view te = req_[http::field::transfer_encoding];
    http::token_list codings(beast::string_view(te.data(), te.size()));
    beast::string_view last;
    int n = 0;
    for (auto c : codings) {
      last = c;
      ++n;
    }
    if (n != 1 || !beast::iequals(last, "chunked")) {
      return "transfer-encoding: only chunked is supported, and last";
    }
    return std::nullopt;
  }

  // An answer from the gateway for a request whose head is read: its body, if any, is not read,
  // so the connection ends after it.
  void refuse(int status, const std::string& body,
              std::string_view content_type = "application/json",
              std::string_view extra_headers = {}) {
    if (!req_parser_->is_done()) client_keep_alive_ = false;
    req_parser_.reset();
    respond_local(status, body, content_type, extra_headers);
  }

  void prepare_upstream_request(const std::string& target) {
    count_usage_ = is_openai_path(target);
    std::optional<std::string> rewritten;
    if (count_usage_ && req_.method == http::verb::post) {
      rewritten = add_include_usage(target, req_.body);
    }
    strip_usage_ = rewritten.has_value();
    const std::string& body = rewritten ? *rewritten : req_.body;

    std::string& r = upstream_request_;
    r.clear();
    r.append(req_.method_string()).append(" ").append(target).append(" HTTP/1.1\r\n");
    bool forwarded = false;
    for (const Head::Field& f : req_.fields) {
      if (hop_by_hop(f.name) || f.name == http::field::expect) continue;
      std::string_view n = req_.name(f);
      r.append(n).append(": ").append(req_.value(f));
      if (iequals(n, "x-forwarded-for")) {
        r.append(", ").append(client_ip_);
        forwarded = true;
      }
      r.append("\r\n");
    }
    if (!forwarded) r.append("X-Forwarded-For: ").append(client_ip_).append("\r\n");
    if (!body.empty() || req_.method == http::verb::post || req_.method == http::verb::put ||
        req_.method == http::verb::patch) {
      r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    }
    r.append("\r\n").append(body);
  }

  // ---- upstream side

  void try_replica() {
    res_parser_.reset();
    replica_ = choose_replica(dep_->replicas, tried_, now_ns(), w_.rng);
    if (!replica_) {
      // A holding deployment waits for a replica it has not tried yet (a new one replaces one
      // that just failed).
      if (dep_->hold_when_empty) return hold();
      if (tried_.empty()) {
        return fail_before_start(503, "unavailable",
                                 "deployment '" + dep_->name + "' has no ready replica");
      }
      return fail_before_start(
          502, "unavailable", "every replica of '" + dep_->name + "' failed; last: " + last_error_);
    }
    unhold();
    if (!tried_.empty()) dep_->stats->retries.fetch_add(1, std::memory_order_relaxed);
    tried_.push_back(replica_);
    // Keep it alive while this request remembers it, so no new replica can take its address.
    for (const auto& r : dep_->replicas) {
      if (r.get() == replica_) tried_keep_.push_back(r);
    }
    replica_->in_flight.fetch_add(1, std::memory_order_relaxed);
    upstream_ = w_.take(replica_->address);
    upstream_timed_out_ = false;
    reused_ = upstream_ != nullptr;
    if (reused_) return send_upstream();
    connect();
  }

  // No replica is ready: wait for one (the control plane starts one when it sees this request in
  // flight), looking again every 20 ms, up to hold_for.
  void hold() {
    clear_deadline();
    const int64_t now = now_ns();
    if (hold_until_ns_ == 0) {
      hold_until_ns_ = now + std::chrono::nanoseconds(w_.options.hold_for).count();
    } else if (now >= hold_until_ns_) {
      return fail_held("deployment '" + dep_->name + "' has no ready replica after " +
                       std::to_string(w_.options.hold_for.count() / 1000) + " s");
    }
    if (!held_) {  // counted while waiting, again after an attempt that failed
      if (dep_->stats->held.fetch_add(1, std::memory_order_relaxed) >= w_.options.max_held) {
        dep_->stats->held.fetch_sub(1, std::memory_order_relaxed);
        return fail_held("deployment '" + dep_->name + "' has no ready replica and " +
                         std::to_string(w_.options.max_held) + " requests already waiting");
      }
      held_ = true;
    }
    if (!hold_timer_) hold_timer_.emplace(w_.ioc.get_executor());
    hold_timer_->expires_after(std::chrono::milliseconds(20));
    hold_timer_->async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closing_ || self->client_gone_) return self->abort_exchange();
      // The table may have moved on: find the deployment again in the newest one.
      const std::string name = self->dep_->name;
      std::shared_ptr<const RouteTable> keep = self->table_;  // dep_ lives in it until here
      self->table_ = self->w_.routes();
      const Deployment* now_dep = self->table_->find(name);
      if (!now_dep) {
        // Gone while waiting: give back what was counted on the old entry.
        self->release();
        self->reset_exchange();
        return self->respond_local(404,
                                   error_body("not_found", "no deployment named '" + name + "'"));
      }
      if (now_dep != self->dep_) {
        self->dep_->stats->in_flight.fetch_sub(1, std::memory_order_relaxed);
        now_dep->stats->in_flight.fetch_add(1, std::memory_order_relaxed);
        if (self->held_) {
          self->dep_->stats->held.fetch_sub(1, std::memory_order_relaxed);
          now_dep->stats->held.fetch_add(1, std::memory_order_relaxed);
        }
        self->dep_ = now_dep;
      }
      self->try_replica();
    });
    arm_client_watch();
  }

  void unhold() {
    if (held_ && dep_) dep_->stats->held.fetch_sub(1, std::memory_order_relaxed);
    held_ = false;
  }

  void fail_held(const std::string& message) {
    fail_before_start(503, "unavailable", message, "Retry-After: 5\r\n");
  }

  void connect() {
    error_code ec;
    asio::ip::address ip = asio::ip::make_address(replica_->ip, ec);
    if (ec) return on_attempt_failed(ec);
    res_parser_.reset();
    upstream_timed_out_ = false;
    upstream_ = std::make_unique<Socket>(w_.ioc.get_executor());
    set_deadline(Deadline::kUpstream, w_.options.connect_timeout);
    upstream_->async_connect(tcp::endpoint(ip, replica_->port),
                             [self = shared_from_this()](error_code e) {
                               if (e) return self->on_attempt_failed(self->upstream_error(e));
                               error_code ignored;
                               self->upstream_->set_option(tcp::no_delay(true), ignored);
                               self->send_upstream();
                             });
  }

  void send_upstream() {
    if (!watch_armed_ && !WatchLink::linked()) w_.watch_later(*this);
    upstream_buf_.clear();
    set_deadline(Deadline::kUpstream, w_.options.first_byte_timeout);
    asio::async_write(*upstream_, asio::buffer(upstream_request_),
                      [self = shared_from_this()](error_code ec, size_t) {
                        if (ec) return self->on_attempt_failed(self->upstream_error(ec));
                        self->read_upstream_head();
                      });
  }

  void read_upstream_head() {
    res_parser_.emplace(res_);
    res_parser_->body_limit(std::numeric_limits<uint64_t>::max());
    if (head_request_) res_parser_->skip(true);
    http::async_read_header(*upstream_, upstream_buf_, *res_parser_,
                            [self = shared_from_this()](error_code ec, size_t) {
                              self->on_upstream_head(self->upstream_error(ec));
                            });
  }

  // Before any byte reached the client: a stale pooled connection is retried once on a fresh
  // one; otherwise the replica is marked down and the request moves to another replica.
  void on_attempt_failed(error_code ec) {
    upstream_.reset();
    if (client_gone_) return abort_exchange();
    replica_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    Replica* failed = replica_;
    replica_ = nullptr;
    if (reused_ && !stale_retry_used_ && ec != beast::error::timeout) {
      stale_retry_used_ = true;
      replica_ = failed;
      replica_->in_flight.fetch_add(1, std::memory_order_relaxed);
      reused_ = false;
      return connect();
    }
    if (ec == beast::error::timeout && res_parser_) {
      // Connected and sent, but no response head in time: the replica is slow, not gone.
      return fail_before_start(504, "unavailable",
                               "replica " + failed->address + " of '" + dep_->name +
                                   "' sent no response within " +
                                   std::to_string(w_.options.first_byte_timeout.count()) + " ms");
    }
    failed->down_until_ns.store(
        now_ns() +
            std::chrono::duration_cast<std::chrono::nanoseconds>(w_.options.down_for).count(),
        std::memory_order_relaxed);
    last_error_ = failed->address + ": " + ec.message();
    if (static_cast<int>(tried_.size()) >= w_.options.max_attempts) {
      return fail_before_start(502, "unavailable",
                               "replicas of '" + dep_->name + "' failed; last: " + last_error_);
    }
    try_replica();
  }

  void on_upstream_head(error_code ec) {
    if (client_gone_) return abort_exchange();
    if (ec) return on_attempt_failed(ec);
    unsigned status = res_.status;
    bool no_body = head_request_ || status / 100 == 1 || status == 204 || status == 304;
    std::string_view content_type = res_[http::field::content_type];
    sse_.reset();
    capture_json_ = false;
    capture_.clear();
    std::optional<uint64_t> length;
    if (auto l = res_parser_->content_length()) length = *l;
    if (count_usage_ && !no_body) {
      if (content_type.substr(0, 17) == "text/event-stream") {
        sse_.emplace(strip_usage_);
      } else if (content_type.find("json") != std::string_view::npos) {
        capture_json_ = !length || *length <= kMaxUsageCapture;
      }
    }
    bool modify = sse_.has_value() && strip_usage_;

    out_.clear();
    std::string_view reason = res_.reason();
    if (reason.empty()) {
      auto r = http::obsolete_reason(static_cast<http::status>(status));
      reason = {r.data(), r.size()};
    }
    out_.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
    out_.append(reason).append("\r\n");
    for (const Head::Field& f : res_.fields) {
      if (hop_by_hop(f.name)) continue;
      out_.append(res_.name(f)).append(": ").append(res_.value(f)).append("\r\n");
    }
    chunked_out_ = false;
    if (no_body) {
      if (head_request_ && length) {
        out_.append("Content-Length: ").append(std::to_string(*length)).append("\r\n");
      }
    } else if (length && !modify) {
      out_.append("Content-Length: ").append(std::to_string(*length)).append("\r\n");
    } else if (client_http11_) {
      out_.append("Transfer-Encoding: chunked\r\n");
      chunked_out_ = true;
    } else {
      client_keep_alive_ = false;  // HTTP/1.0: the body ends with the connection
    }
    if (!client_keep_alive_) out_.append("Connection: close\r\n");
    out_.append("\r\n");

    if (res_parser_->is_done()) return write_client(/*done=*/true);
    // Body bytes already here: send them with the head in one write. Otherwise the head goes now,
    // so a client of a slow stream sees the response start.
    if (upstream_buf_.size() > 0) return read_body();
    write_client(/*done=*/false);
  }

  void read_body() {
    res_.body.clear();
    set_deadline(Deadline::kUpstream, w_.options.idle_timeout);
    http::async_read_some(*upstream_, upstream_buf_, *res_parser_,
                          [self = shared_from_this()](error_code ec, size_t) {
                            self->on_body(self->upstream_error(ec));
                          });
  }

  void append_body(std::string_view piece) {
    if (piece.empty()) return;
    if (chunked_out_) {
      std::array<char, 20> hex{};
      auto [end, ec] = std::to_chars(hex.data(), hex.data() + hex.size(), piece.size(), 16);
      out_.append(hex.data(), end).append("\r\n").append(piece).append("\r\n");
    } else {
      out_.append(piece);
    }
  }

  void on_body(error_code ec) {
    if (ec == http::error::need_buffer) ec = {};
    if (client_gone_) return abort_exchange();
    if (ec) {
      if (!head_written_) {
        upstream_.reset();
        return fail_before_start(
            502, "unavailable",
            "replica " + replica_->address + " broke off its response: " + ec.message());
      }
      return abort_exchange();
    }
    std::string_view piece = res_.body;
    size_t n = piece.size();
    if (capture_json_) {
      if (capture_.size() + n <= kMaxUsageCapture) {
        capture_.append(piece);
      } else {
        capture_json_ = false;
        capture_.clear();
      }
    }
    bool done = res_parser_->is_done();
    if (sse_) {
      scratch_.clear();
      sse_->feed(piece, scratch_);
      if (done) sse_->finish(scratch_);
      append_body(scratch_);
    } else {
      append_body(piece);
    }
    if (done && chunked_out_) out_.append("0\r\n\r\n");
    if (out_.empty()) return done ? finish_exchange() : read_body();
    write_client(done);
  }

  void write_client(bool done) {
    head_written_ = true;
    set_deadline(Deadline::kClient, w_.options.idle_timeout);
    asio::async_write(client_, asio::buffer(out_),
                      [self = shared_from_this(), done](error_code ec, size_t) {
                        if (ec) {
                          self->client_gone_ = true;
                          return self->abort_exchange();
                        }
                        self->out_.clear();
                        if (done) return self->finish_exchange();
                        if (self->client_gone_) return self->abort_exchange();
                        self->read_body();
                      });
  }

  // ---- the end of one exchange

  void finish_exchange() {
    DeploymentStats& stats = *dep_->stats;
    stats.record_latency((now_ns() - started_ns_) / 1000);
    std::optional<Usage> usage;
    if (sse_) usage = sse_->usage();
    if (capture_json_ && !capture_.empty()) usage = usage_from_json(capture_);
    if (usage) {
      stats.prompt_tokens.fetch_add(usage->prompt_tokens, std::memory_order_relaxed);
      stats.completion_tokens.fetch_add(usage->completion_tokens, std::memory_order_relaxed);
    }
    bool reusable = res_parser_->keep_alive() && res_parser_->is_done() &&
                    upstream_buf_.size() == 0 && upstream_->is_open();
    clear_deadline();
    if (reusable) {
      w_.give_back(replica_->address, std::move(upstream_));
    } else {
      upstream_.reset();
    }
    release();
    reset_exchange();
    next_request();
  }

  // The response is cut short (upstream failure after the first byte, or the client left).
  void abort_exchange() {
    if (dep_ && !client_gone_) dep_->stats->errors.fetch_add(1, std::memory_order_relaxed);
    upstream_.reset();  // closing it cancels the upstream's work
    release();
    reset_exchange();
    close_client();
  }

  void fail_before_start(int status, std::string_view code, const std::string& message,
                         std::string_view extra_headers = {}) {
    upstream_.reset();
    if (dep_) dep_->stats->errors.fetch_add(1, std::memory_order_relaxed);
    release();
    reset_exchange();
    respond_local(status, error_body(code, message), "application/json", extra_headers);
  }

  void release() {
    unhold();
    WatchLink::unlink();
    if (replica_) {
      replica_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      replica_ = nullptr;
    }
    if (counted_in_flight_ && dep_) {
      dep_->stats->in_flight.fetch_sub(1, std::memory_order_relaxed);
      counted_in_flight_ = false;
    }
  }

  void reset_exchange() {
    dep_ = nullptr;
    res_parser_.reset();
    sse_.reset();
    capture_.clear();
    capture_json_ = false;
    head_written_ = false;
  }

  // An answer from the gateway itself (metrics, errors). `body` is JSON unless said otherwise.
  void respond_local(int status, const std::string& body,
                     std::string_view content_type = "application/json",
                     std::string_view extra_headers = {}) {
    out_.clear();
    auto reason = http::obsolete_reason(static_cast<http::status>(status));
    out_.append("HTTP/1.1 ").append(std::to_string(status)).append(" ");
    out_.append(reason.data(), reason.size()).append("\r\nContent-Type: ");
    out_.append(content_type).append("\r\n").append(extra_headers);
    out_.append("Content-Length: ").append(std::to_string(body.size()));
    out_.append(client_keep_alive_ ? "\r\n\r\n" : "\r\nConnection: close\r\n\r\n");
    if (!head_request_) out_.append(body);
    set_deadline(Deadline::kClient, w_.options.idle_timeout);
    asio::async_write(client_, asio::buffer(out_),
                      [self = shared_from_this()](error_code ec, size_t) {
                        if (ec) return self->close_client();
                        self->out_.clear();
                        self->next_request();
                      });
  }

  void next_request() {
    table_.reset();
    if (!client_keep_alive_) return linger();
    wait_for_request();
    if (!watch_armed_ && client_buf_.size() > 0) return read_request();  // pipelined
    // The next request's first byte within keep_alive_timeout, then its head within
    // header_timeout. The watch's read (armed here when there is none) is the first read of the
    // next request: its handler goes on with it.
    set_deadline(Deadline::kClient, w_.options.keep_alive_timeout);
    resume_after_watch_ = true;
    if (watch_armed_) return;
    watch_armed_ = true;
    client_.async_read_some(
        client_buf_.prepare(kClientReadSize),
        [self = shared_from_this()](error_code ec, size_t n) { self->on_client_watch(ec, n); });
  }

  // The connection ends: stop sending, then read and drop what the client still sends (a body
  // not read) for a while, so that closing does not reset the connection under the answer.
  void linger() {
    if (closing_) return;
    error_code ec;
    client_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close_client();
    set_deadline(Deadline::kClient, kLingerTime);
    drain();
  }

  void drain() {
    client_buf_.clear();
    client_.async_read_some(client_buf_.prepare(16384),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->closing_ || self->drained_ >= kLingerBytes) {
                                return self->close_client();
                              }
                              self->drain();
                            });
  }

  void close_client() {
    closing_ = true;
    IdleLink::unlink();
    uncount();
    clear_deadline();
    error_code ec;
    timer_.cancel();
    client_.shutdown(tcp::socket::shutdown_both, ec);
    client_.close(ec);
  }

  friend struct Worker;

  // While an exchange runs (from kWatchAfter on, or at once while it holds), reads from the client:
  // end of stream or an error means the client has gone, so the upstream connection is closed at
  // once, cancelling its work (a long stream stops generating). Bytes mean a pipelined request;
  // they stay in the buffer for the next read. A read rather than a wait for readability: asio
  // (1.74) re-registers the socket with epoll for every wait, a system call per request, while a
  // read just queues on the registered socket; and the read doubles as the first read of the next
  // request.
  void arm_client_watch() {
    WatchLink::unlink();
    if (watch_armed_ || client_buf_.size() > 0) return;
    watch_armed_ = true;
    client_.async_read_some(
        client_buf_.prepare(kClientReadSize),
        [self = shared_from_this()](error_code ec, size_t n) { self->on_client_watch(ec, n); });
  }

  void on_client_watch(error_code ec, size_t n) {
    watch_armed_ = false;
    client_buf_.commit(n);
    if (resume_after_watch_) {
      resume_after_watch_ = false;
      if (closing_) return;
      if (ec && n == 0) return close_client();  // the client ended its keep-alive connection
      return read_request();
    }
    if (n > 0 || closing_ || !dep_ || ec == asio::error::operation_aborted) return;
    client_gone_ = true;
    if (upstream_) {
      error_code ignored;
      upstream_->close(ignored);
    }
  }

  // ---- deadlines
  //
  // One deadline per session at a time: the client's (reading a request, writing a response) or
  // the upstream's (connect, first byte, between body reads); the exchange never waits on both.
  // Setting one only stores it: the timer is armed at most min_timeout ahead, never later than
  // any deadline that can be set before it fires, so it never has to be moved earlier; when it
  // fires it acts on a deadline that has passed and otherwise re-arms.

  enum class Deadline { kNone, kClient, kUpstream };

  void set_deadline(Deadline kind, std::chrono::milliseconds after) {
    const int64_t now = now_ns();
    deadline_kind_ = kind;
    deadline_ns_ = now + std::chrono::nanoseconds(after).count();
    if (!timer_armed_) arm_timer(now);
  }

  void clear_deadline() { deadline_kind_ = Deadline::kNone; }

  void arm_timer(int64_t now) {
    timer_armed_ = true;
    int64_t at = std::min(deadline_ns_, now + w_.min_timeout_ns);
    timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(at)));
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
  }

  void on_timer(error_code ec) {
    timer_armed_ = false;
    if (ec == asio::error::operation_aborted || closing_ || deadline_kind_ == Deadline::kNone) {
      return;
    }
    const int64_t now = now_ns();
    if (now < deadline_ns_) return arm_timer(now);
    Deadline kind = deadline_kind_;
    deadline_kind_ = Deadline::kNone;
    if (kind == Deadline::kClient) return close_client();
    if (upstream_) {
      upstream_timed_out_ = true;
      error_code ignored;
      upstream_->close(ignored);
    }
  }

  // An upstream operation's error, as beast::error::timeout when the deadline closed the socket.
  error_code upstream_error(error_code ec) {
    if (ec && upstream_timed_out_) {
      upstream_timed_out_ = false;
      return beast::error::timeout;
    }
    return ec;
  }

  static constexpr size_t kClientReadSize = 4096;

  Worker& w_;
  Socket client_;
  beast::flat_buffer client_buf_;
  std::string client_ip_;
  std::optional<HeadParser<true>> req_parser_;
  Head req_;
  std::string upstream_target_;
  bool counted_ = true;  // in w_.open
  size_t drained_ = 0;
  bool client_http11_ = true;
  bool client_keep_alive_ = true;
  bool head_request_ = false;
  bool closing_ = false;

  // The exchange in progress.
  std::shared_ptr<const RouteTable> table_;
  const Deployment* dep_ = nullptr;
  bool counted_in_flight_ = false;
  int64_t started_ns_ = 0;
  int64_t hold_until_ns_ = 0;  // 0: not holding
  bool held_ = false;          // counted in the deployment's `held`
  std::optional<Timer> hold_timer_;
  std::vector<Replica*> tried_;
  std::vector<std::shared_ptr<Replica>> tried_keep_;
  Replica* replica_ = nullptr;
  std::string last_error_;
  bool count_usage_ = false;
  bool strip_usage_ = false;
  std::string upstream_request_;
  std::unique_ptr<Socket> upstream_;
  bool upstream_timed_out_ = false;
  Timer timer_;
  bool timer_armed_ = false;
  Deadline deadline_kind_ = Deadline::kNone;
  int64_t deadline_ns_ = 0;
  bool reused_ = false;
  bool stale_retry_used_ = false;
  beast::flat_buffer upstream_buf_;
  std::optional<HeadParser<false>> res_parser_;
  Head res_;
  std::string out_;
  std::string scratch_;
  bool chunked_out_ = false;
  bool head_written_ = false;
  std::optional<SseUsageScanner> sse_;
  bool capture_json_ = false;
  std::string capture_;
  bool watch_armed_ = false;
  bool resume_after_watch_ = false;
  bool client_gone_ = false;
};

void Worker::watch_later(Session& s) {
  WatchLink& link = s;
  link.linked_ns = now_ns();
  link.link_before(unwatched);
  if (!watch_timer_armed) arm_watch_timer();
}

void Worker::arm_watch_timer() {
  watch_timer_armed = true;
  watch_timer.expires_after(kWatchAfter);
  watch_timer.async_wait([this](error_code ec) {
    watch_timer_armed = false;
    if (!ec) on_watch_timer();
  });
}

// Watches the clients of the exchanges that have waited kWatchAfter or more.
void Worker::on_watch_timer() {
  const int64_t linked_before = now_ns() - std::chrono::nanoseconds(kWatchAfter).count();
  while (unwatched.linked() && unwatched.next->linked_ns <= linked_before) {
    static_cast<Session*>(unwatched.next)->arm_client_watch();  // unlinks it
  }
  if (unwatched.linked()) arm_watch_timer();
}

void Worker::accept() {
  acceptor.async_accept(ioc.get_executor(), [this](error_code ec, Socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) return back_off(ec);
    stats.connections.fetch_add(1, std::memory_order_relaxed);
    // At the cap the connection that has waited longest for a request makes room; when every
    // connection has a request in flight, the new one is closed.
    if (open < max_open || evict_oldest_idle()) {
      std::make_shared<Session>(*this, std::move(socket))->start();
    }
    accept();
  });
}

// Accepting failed (out of descriptors, say): accepting again at once would fail again at once.
// Wait a little, and close an idle connection to free a descriptor.
void Worker::back_off(const error_code& ec) {
  if (out_of_resources(ec)) evict_oldest_idle();
  accept_timer.expires_after(kAcceptBackOff);
  accept_timer.async_wait([this](error_code e) {
    if (!e) accept();
  });
}

bool Worker::evict_oldest_idle() {
  if (!idle_sessions.linked()) return false;
  static_cast<Session*>(idle_sessions.next)->evict();  // unlinks it
  return true;
}

// An exception out of a completion handler would end the thread and, uncaught, the process. What
// threw is dropped (with its connection, when it held the last reference) and the loop goes on.
void run_guarded(asio::io_context& ioc) {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lepton: gateway: dropped a connection: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "lepton: gateway: dropped a connection: unknown exception\n");
    }
  }
}

class GatewayImpl : public Gateway {
 public:
  GatewayImpl(const GatewayOptions& options, std::shared_ptr<Router> router)
      : options_(options), router_(std::move(router)) {}
  ~GatewayImpl() override { stop(); }

  Status listen() {
    int threads = options_.io_threads > 0 ? options_.io_threads
                                          : static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    error_code ec;
    asio::ip::address address = asio::ip::make_address(options_.address, ec);
    if (ec) return Status::invalid_argument("--address '" + options_.address + "': not an IP");
    uint16_t port = options_.port;
    std::random_device seed;
    for (int i = 0; i < threads; ++i) {
      auto w = std::make_unique<Worker>(options_, *router_, stats_, seed());
      w->max_open = std::max<size_t>(1, options_.max_connections / static_cast<size_t>(threads));
      tcp::endpoint endpoint(address, port);
      w->acceptor.open(endpoint.protocol(), ec);
      if (!ec) w->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) w->acceptor.set_option(ReusePort(true), ec);
      if (!ec) w->acceptor.bind(endpoint, ec);
      if (!ec) w->acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        return {StatusCode::kUnavailable, "cannot listen on " + options_.address + ":" +
                                              std::to_string(port) + ": " + ec.message()};
      }
      port = w->acceptor.local_endpoint().port();
      workers_.push_back(std::move(w));
    }
    port_ = port;
    for (auto& w : workers_) {
      w->accept();
      Worker* raw = w.get();
      w->thread = std::thread([raw] { run_guarded(raw->ioc); });
    }
    prober_ = std::thread([this] { probe_loop(); });
    return Status::ok();
  }

  uint16_t port() const override { return port_; }

  std::string metrics_text() const override {
    return prometheus_text(*router_->snapshot(), stats_);
  }

  void stop() override {
    {
      std::lock_guard lock(probe_mu_);
      stopping_ = true;
    }
    probe_cv_.notify_all();
    if (prober_.joinable()) prober_.join();
    for (auto& w : workers_) w->ioc.stop();
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    workers_.clear();
  }

 private:
  // Every probe_interval, probes every replica of every deployment with a probe path, one after
  // the other (each bounded by probe_timeout).
  void probe_loop() {
    asio::io_context ioc;
    std::unique_lock lock(probe_mu_);
    while (!stopping_) {
      lock.unlock();
      std::shared_ptr<const RouteTable> table = router_->snapshot();
      for (const auto& [name, d] : table->deployments) {
        for (const auto& r : d.replicas) {
          if (d.probe_path.empty() && r->probe_path.empty()) continue;
          if (probe(ioc, *r, r->probe_path.empty() ? d.probe_path : r->probe_path)) {
            r->probe_failures = 0;
            r->ready = true;
          } else if (r->probe_failures.fetch_add(1) + 1 >= options_.probe_failures ||
                     !r->ready.load()) {
            r->ready = false;
          }
        }
      }
      lock.lock();
      probe_cv_.wait_for(lock, options_.probe_interval, [this] { return stopping_; });
    }
  }

  // GET `path` on the replica: true on a 2xx within probe_timeout.
  bool probe(asio::io_context& ioc, const Replica& r, const std::string& path) const {
    error_code ec;
    asio::ip::address ip = asio::ip::make_address(r.ip, ec);
    if (ec) return false;
    Stream stream(ioc.get_executor());
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, r.address);
    req.set(http::field::user_agent, "lepton-gateway-probe");
    req.keep_alive(false);
    http::response<http::string_body> res;
    beast::flat_buffer buf;
    bool ok = false;
    stream.expires_after(options_.probe_timeout);
    stream.async_connect(tcp::endpoint(ip, r.port), [&](error_code e) {
      if (e) return;
      http::async_write(stream, req, [&](error_code e2, size_t) {
        if (e2) return;
        http::async_read(stream, buf, res, [&](error_code e3, size_t) {
          ok = !e3 && res.result_int() >= 200 && res.result_int() < 300;
        });
      });
    });
    ioc.restart();
    ioc.run();
    stream.socket().close(ec);
    return ok;
  }

  GatewayOptions options_;
  std::shared_ptr<Router> router_;
  GatewayStats stats_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
  std::thread prober_;
  std::mutex probe_mu_;
  std::condition_variable probe_cv_;
  bool stopping_ = false;
};

}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::start(const GatewayOptions& options,
                                                std::shared_ptr<Router> router) {
  auto gateway = std::make_unique<GatewayImpl>(options, std::move(router));
  LEPTON_RETURN_IF_ERROR(gateway->listen());
  return std::unique_ptr<Gateway>(std::move(gateway));
}

}  // namespace lepton::gateway
