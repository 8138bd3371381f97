// ProxySession: its life from accept to close, the client side (reading requests, routing, the
// gateway's own answers, keep-alive, lingering, watching for a client that leaves) and the
// deadlines. The exchange with a replica is in proxy_exchange.cpp.
#include "gateway/proxy_session.h"

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <charconv>
#include <nlohmann/json.hpp>

#include "net/http.h"
#include "spec/json_text.h"

namespace lepton::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// After an answer that leaves a request body unread, what the client still sends is read and
// dropped for up to this long (or this much) before closing, so that the close does not reset
// the connection under the answer.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kLingerBytes = 1 << 20;

bool iequals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

}  // namespace

// The message may quote what a client sent (a deployment or host name) in any bytes: dump() would
// throw on bad UTF-8 and end the process.
std::string error_body(std::string_view code, const std::string& message) {
  return spec::to_json_text(nlohmann::json{{"error", {{"code", code}, {"message", message}}}}) +
         "\n";
}

ProxySession::ProxySession(Worker& worker, Socket socket)
    : w_(worker), client_(std::move(socket)), timer_(worker.ioc.get_executor()) {
  ++w_.open;
}

ProxySession::~ProxySession() {
  end_exchange(Phase::kClosed);
  WatchLink::unlink();
  IdleLink::unlink();
  if (client_open()) --w_.open;
}

void ProxySession::start() {
  error_code ec;
  client_.set_option(tcp::no_delay(true), ec);
  tcp::endpoint peer = client_.remote_endpoint(ec);
  if (!ec) client_ip_ = peer.address().to_string();
  wait_for_request();
  read_request();
}

void ProxySession::evict() {
  IdleLink::unlink();
  close_client();
}

// ---- the client side

// Waiting for a request: the state in which a connection may be evicted.
void ProxySession::wait_for_request() {
  if (!IdleLink::linked()) IdleLink::link_before(w_.idle_sessions);
}

// The whole head within header_timeout: of connecting, or of the first byte of a request on a
// kept-alive connection.
void ProxySession::read_request() {
  phase_ = Phase::kReadingHead;
  req_parser_.emplace(req_, w_.options.max_request_body_bytes);
  set_deadline(Deadline::kClient, w_.options.header_timeout);
  http::async_read_header(
      client_, client_buf_, *req_parser_,
      [self = shared_from_this()](error_code ec, size_t) { self->on_request_head(ec); });
}

void ProxySession::on_request_head(error_code ec) {
  IdleLink::unlink();
  if (ec) return on_request(ec);
  client_http11_ = req_.version >= 11;
  client_keep_alive_ = client_http11_ && req_parser_->keep_alive();
  head_request_ = req_.method == http::verb::head;
  // Routed, and its token checked, before its body is read.
  if (!route()) return;
  if (req_parser_->is_done()) return on_request({});
  phase_ = Phase::kReadingBody;
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

void ProxySession::on_request(error_code ec) {
  if (ec) {
    dep_ = nullptr;  // routed on the head, but not counted yet
    const int status = request_error_status(ec);
    if (status == 0) return close_client();
    w_.stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
    client_keep_alive_ = false;
    if (status == 413) {
      return respond_local(
          413, error_body("invalid_argument",
                          "request body over " + std::to_string(w_.options.max_request_body_bytes) +
                              " bytes"));
    }
    if (status == 431) {
      return respond_local(431, error_body("invalid_argument", "request headers too large"));
    }
    return respond_local(400,
                         error_body("invalid_argument", "malformed HTTP request: " + ec.message()));
  }
  req_parser_.reset();
  clear_deadline();
  prepare_upstream_request(upstream_target_);

  dep_->stats->requests.fetch_add(1, std::memory_order_relaxed);
  dep_->stats->in_flight.fetch_add(1, std::memory_order_relaxed);
  phase_ = Phase::kPickingReplica;  // counted in in_flight from here to end_exchange
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
bool ProxySession::route() {
  if (std::optional<std::string> bad = framing_problem(req_)) {
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
    if (!token.empty() && !net::token_equals(req_[http::field::authorization], "Bearer " + token)) {
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

// An answer from the gateway for a request whose head is read: its body, if any, is not read,
// so the connection ends after it.
void ProxySession::refuse(int status, const std::string& body, std::string_view content_type,
                          std::string_view extra_headers) {
  if (!req_parser_->is_done()) client_keep_alive_ = false;
  req_parser_.reset();
  respond_local(status, body, content_type, extra_headers);
}

// An answer from the gateway itself (metrics, errors); never during an exchange (which ends
// first). `body` is JSON unless said otherwise.
void ProxySession::respond_local(int status, const std::string& body, std::string_view content_type,
                                 std::string_view extra_headers) {
  phase_ = Phase::kAnswering;
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

void ProxySession::next_request() {
  table_.reset();
  if (!client_keep_alive_) return linger();
  wait_for_request();
  if (!watch_armed_ && client_buf_.size() > 0) return read_request();  // pipelined
  // The next request's first byte within keep_alive_timeout, then its head within
  // header_timeout. The watch's read (armed here when there is none) is the first read of the
  // next request: in kKeepAlive its handler goes on with it.
  set_deadline(Deadline::kClient, w_.options.keep_alive_timeout);
  phase_ = Phase::kKeepAlive;
  if (watch_armed_) return;
  watch_armed_ = true;
  client_.async_read_some(
      client_buf_.prepare(kClientReadSize),
      [self = shared_from_this()](error_code ec, size_t n) { self->on_client_watch(ec, n); });
}

// The connection ends: stop sending, then read and drop what the client still sends (a body
// not read) for a while, so that closing does not reset the connection under the answer.
void ProxySession::linger() {
  if (!client_open()) {
    phase_ = Phase::kClosed;
    return;
  }
  phase_ = Phase::kLingering;
  error_code ec;
  client_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close_client();
  set_deadline(Deadline::kClient, kLingerTime);
  drain();
}

void ProxySession::drain() {
  client_buf_.clear();
  client_.async_read_some(client_buf_.prepare(16384),
                          [self = shared_from_this()](error_code ec, size_t n) {
                            self->drained_ += n;
                            if (ec || !self->client_open() || self->drained_ >= kLingerBytes) {
                              return self->close_client();
                            }
                            self->drain();
                          });
}

// Handlers already queued may still run after this; they find the socket closed. An exchange in
// progress keeps its phase (and its counts) until its next step ends it.
void ProxySession::close_client() {
  if (!in_exchange()) phase_ = Phase::kClosed;
  IdleLink::unlink();
  if (client_open()) --w_.open;
  clear_deadline();
  error_code ec;
  timer_.cancel();
  client_.shutdown(tcp::socket::shutdown_both, ec);
  client_.close(ec);
}

// While an exchange runs (from kWatchAfter on, or at once while it holds), reads from the client:
// end of stream or an error means the client has gone, so the upstream connection is closed at
// once, cancelling its work (a long stream stops generating). Bytes mean a pipelined request;
// they stay in the buffer for the next read. A read rather than a wait for readability: asio
// (1.74) re-registers the socket with epoll for every wait, a system call per request, while a
// read just queues on the registered socket; and the read doubles as the first read of the next
// request.
void ProxySession::arm_client_watch() {
  WatchLink::unlink();
  if (watch_armed_ || client_buf_.size() > 0) return;
  watch_armed_ = true;
  client_.async_read_some(
      client_buf_.prepare(kClientReadSize),
      [self = shared_from_this()](error_code ec, size_t n) { self->on_client_watch(ec, n); });
}

void ProxySession::on_client_watch(error_code ec, size_t n) {
  watch_armed_ = false;
  client_buf_.commit(n);
  if (phase_ == Phase::kKeepAlive) {
    if (!client_open()) return;
    if (ec && n == 0) return close_client();  // the client ended its keep-alive connection
    return read_request();
  }
  if (n > 0 || !client_open() || !in_exchange() || ec == asio::error::operation_aborted) return;
  client_gone_ = true;
  if (upstream_) {
    error_code ignored;
    upstream_->close(ignored);
  }
}

// ---- deadlines

void ProxySession::set_deadline(Deadline kind, std::chrono::milliseconds after) {
  const int64_t now = now_ns();
  deadline_kind_ = kind;
  deadline_ns_ = now + std::chrono::nanoseconds(after).count();
  if (!timer_armed_) arm_timer(now);
}

void ProxySession::arm_timer(int64_t now) {
  timer_armed_ = true;
  int64_t at = std::min(deadline_ns_, now + w_.min_timeout_ns);
  timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(at)));
  timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
}

void ProxySession::on_timer(error_code ec) {
  timer_armed_ = false;
  if (ec == asio::error::operation_aborted || !client_open() || deadline_kind_ == Deadline::kNone) {
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

error_code ProxySession::upstream_error(error_code ec) {
  if (ec && upstream_timed_out_) {
    upstream_timed_out_ = false;
    return beast::error::timeout;
  }
  return ec;
}

}  // namespace lepton::gateway
