// ProxySession's exchange with a replica: choosing one, holding while none is ready, connecting,
// sending, relaying the response, retrying before the first byte, and the three ends of an
// exchange. The client side and the deadlines are in proxy_session.cpp.
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <charconv>

#include "gateway/proxy_session.h"

namespace lepton::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

void ProxySession::prepare_upstream_request(const std::string& target) {
  count_usage_ = is_openai_path(target);
  std::optional<std::string> rewritten;
  if (count_usage_ && req_.method == http::verb::post) {
    rewritten = add_include_usage(target, req_.body);
  }
  strip_usage_ = rewritten.has_value();
  write_upstream_request(req_, target, rewritten ? *rewritten : req_.body, client_ip_,
                         upstream_request_);
}

void ProxySession::try_replica() {
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
    return fail_before_start(502, "unavailable",
                             "every replica of '" + dep_->name + "' failed; last: " + last_error_);
  }
  leave_hold();
  if (!tried_.empty()) dep_->stats->retries.fetch_add(1, std::memory_order_relaxed);
  tried_.push_back(replica_);
  // Keep it alive while this request remembers it, so no new replica can take its address.
  for (const auto& r : dep_->replicas) {
    if (r.get() == replica_) tried_keep_.push_back(r);
  }
  replica_->in_flight.fetch_add(1, std::memory_order_relaxed);
  upstream_ = w_.pool.take(replica_->address);
  upstream_timed_out_ = false;
  reused_ = upstream_ != nullptr;
  if (reused_) return send_upstream();
  connect();
}

// No replica is ready: wait for one (the control plane starts one when it sees this request in
// flight), looking again every 20 ms, up to hold_for. Counted in `held` from the first look that
// finds none until one is found (an attempt on it that fails may hold again).
void ProxySession::hold() {
  clear_deadline();
  const int64_t now = now_ns();
  if (hold_until_ns_ == 0) {
    hold_until_ns_ = now + std::chrono::nanoseconds(w_.options.hold_for).count();
  } else if (now >= hold_until_ns_) {
    return fail_held("deployment '" + dep_->name + "' has no ready replica after " +
                     std::to_string(w_.options.hold_for.count() / 1000) + " s");
  }
  if (phase_ != Phase::kHolding) {
    if (dep_->stats->held.fetch_add(1, std::memory_order_relaxed) >= w_.options.max_held) {
      dep_->stats->held.fetch_sub(1, std::memory_order_relaxed);
      return fail_held("deployment '" + dep_->name + "' has no ready replica and " +
                       std::to_string(w_.options.max_held) + " requests already waiting");
    }
    phase_ = Phase::kHolding;
  }
  if (!hold_timer_) hold_timer_.emplace(w_.ioc.get_executor());
  hold_timer_->expires_after(std::chrono::milliseconds(20));
  hold_timer_->async_wait([self = shared_from_this()](error_code ec) {
    if (ec || !self->client_open() || self->client_gone_) return self->abort_exchange();
    // The table may have moved on: find the deployment again in the newest one.
    const std::string name = self->dep_->name;
    std::shared_ptr<const RouteTable> keep = self->table_;  // dep_ lives in it until here
    self->table_ = self->w_.routes();
    const Deployment* now_dep = self->table_->find(name);
    if (!now_dep) {
      // Gone while waiting: give back what was counted on the old entry.
      self->end_exchange(Phase::kAnswering);
      return self->respond_local(404,
                                 error_body("not_found", "no deployment named '" + name + "'"));
    }
    if (now_dep != self->dep_) {
      self->dep_->stats->in_flight.fetch_sub(1, std::memory_order_relaxed);
      now_dep->stats->in_flight.fetch_add(1, std::memory_order_relaxed);
      if (self->phase_ == Phase::kHolding) {
        self->dep_->stats->held.fetch_sub(1, std::memory_order_relaxed);
        now_dep->stats->held.fetch_add(1, std::memory_order_relaxed);
      }
      self->dep_ = now_dep;
    }
    self->try_replica();
  });
  arm_client_watch();
}

void ProxySession::leave_hold() {
  if (phase_ != Phase::kHolding) return;
  if (dep_) dep_->stats->held.fetch_sub(1, std::memory_order_relaxed);
  phase_ = Phase::kPickingReplica;
}

void ProxySession::fail_held(const std::string& message) {
  fail_before_start(503, "unavailable", message, "Retry-After: 5\r\n");
}

void ProxySession::connect() {
  phase_ = Phase::kConnecting;
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

void ProxySession::send_upstream() {
  phase_ = Phase::kSending;
  if (!watch_armed_ && !WatchLink::linked()) w_.watch_later(*this);
  upstream_buf_.clear();
  set_deadline(Deadline::kUpstream, w_.options.first_byte_timeout);
  asio::async_write(*upstream_, asio::buffer(upstream_request_),
                    [self = shared_from_this()](error_code ec, size_t) {
                      if (ec) return self->on_attempt_failed(self->upstream_error(ec));
                      self->read_upstream_head();
                    });
}

void ProxySession::read_upstream_head() {
  phase_ = Phase::kAwaitingResponse;
  res_parser_.emplace(res_);
  if (head_request_) res_parser_->skip(true);
  http::async_read_header(*upstream_, upstream_buf_, *res_parser_,
                          [self = shared_from_this()](error_code ec, size_t) {
                            self->on_upstream_head(self->upstream_error(ec));
                          });
}

// Before any byte reached the client: a stale pooled connection is retried once on a fresh
// one; otherwise the replica is marked down and the request moves to another replica.
void ProxySession::on_attempt_failed(error_code ec) {
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
  if (ec == beast::error::timeout && phase_ == Phase::kAwaitingResponse) {
    // Connected and sent, but no response head in time: the replica is slow, not gone.
    return fail_before_start(504, "unavailable",
                             "replica " + failed->address + " of '" + dep_->name +
                                 "' sent no response within " +
                                 std::to_string(w_.options.first_byte_timeout.count()) + " ms");
  }
  failed->down_until_ns.store(
      now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(w_.options.down_for).count(),
      std::memory_order_relaxed);
  last_error_ = failed->address + ": " + ec.message();
  if (static_cast<int>(tried_.size()) >= w_.options.max_attempts) {
    return fail_before_start(502, "unavailable",
                             "replicas of '" + dep_->name + "' failed; last: " + last_error_);
  }
  phase_ = Phase::kPickingReplica;  // a retry
  try_replica();
}

void ProxySession::on_upstream_head(error_code ec) {
  if (client_gone_) return abort_exchange();
  if (ec) return on_attempt_failed(ec);
  phase_ = Phase::kResponseStarting;
  const unsigned status = res_.status;
  const bool no_body = head_request_ || status / 100 == 1 || status == 204 || status == 304;
  std::optional<uint64_t> length;
  if (auto l = res_parser_->content_length()) length = *l;
  usage_.start(count_usage_, strip_usage_, res_[http::field::content_type], length, !no_body);

  out_.clear();
  append_response_head(res_, out_);
  chunked_out_ = false;
  if (no_body) {
    if (head_request_ && length) {
      out_.append("Content-Length: ").append(std::to_string(*length)).append("\r\n");
    }
  } else if (length && !usage_.edits()) {
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

void ProxySession::read_body() {
  res_.body.clear();
  set_deadline(Deadline::kUpstream, w_.options.idle_timeout);
  http::async_read_some(*upstream_, upstream_buf_, *res_parser_,
                        [self = shared_from_this()](error_code ec, size_t) {
                          self->on_body(self->upstream_error(ec));
                        });
}

void ProxySession::append_body(std::string_view piece) {
  if (piece.empty()) return;
  if (chunked_out_) {
    std::array<char, 20> hex{};
    auto [end, ec] = std::to_chars(hex.data(), hex.data() + hex.size(), piece.size(), 16);
    out_.append(hex.data(), end).append("\r\n").append(piece).append("\r\n");
  } else {
    out_.append(piece);
  }
}

void ProxySession::on_body(error_code ec) {
  if (ec == http::error::need_buffer) ec = {};
  if (client_gone_) return abort_exchange();
  if (ec) {
    if (phase_ != Phase::kStreaming) {
      upstream_.reset();
      return fail_before_start(
          502, "unavailable",
          "replica " + replica_->address + " broke off its response: " + ec.message());
    }
    return abort_exchange();
  }
  const bool done = res_parser_->is_done();
  append_body(usage_.pass(res_.body, done));
  if (done && chunked_out_) out_.append("0\r\n\r\n");
  if (out_.empty()) return done ? finish_exchange() : read_body();
  write_client(done);
}

void ProxySession::write_client(bool done) {
  phase_ = Phase::kStreaming;
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

void ProxySession::finish_exchange() {
  DeploymentStats& stats = *dep_->stats;
  stats.record_latency((now_ns() - started_ns_) / 1000);
  if (std::optional<Usage> usage = usage_.usage()) {
    stats.prompt_tokens.fetch_add(usage->prompt_tokens, std::memory_order_relaxed);
    stats.completion_tokens.fetch_add(usage->completion_tokens, std::memory_order_relaxed);
  }
  bool reusable = res_parser_->keep_alive() && res_parser_->is_done() &&
                  upstream_buf_.size() == 0 && upstream_->is_open();
  clear_deadline();
  if (reusable) {
    w_.pool.give_back(replica_->address, std::move(upstream_));
  } else {
    upstream_.reset();
  }
  end_exchange(Phase::kKeepAlive);  // next_request decides
  next_request();
}

// The response is cut short (upstream failure after the first byte, or the client left).
void ProxySession::abort_exchange() {
  if (dep_ && !client_gone_) dep_->stats->errors.fetch_add(1, std::memory_order_relaxed);
  upstream_.reset();  // closing it cancels the upstream's work
  end_exchange(Phase::kClosed);
  close_client();
}

void ProxySession::fail_before_start(int status, std::string_view code, const std::string& message,
                                     std::string_view extra_headers) {
  upstream_.reset();
  if (dep_) dep_->stats->errors.fetch_add(1, std::memory_order_relaxed);
  end_exchange(Phase::kAnswering);
  respond_local(status, error_body(code, message), "application/json", extra_headers);
}

void ProxySession::end_exchange(Phase next) {
  leave_hold();
  WatchLink::unlink();
  if (replica_) {
    replica_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    replica_ = nullptr;
  }
  if (in_exchange() && dep_) dep_->stats->in_flight.fetch_sub(1, std::memory_order_relaxed);
  phase_ = next;
  dep_ = nullptr;
  res_parser_.reset();
  usage_.reset();
}

}  // namespace lepton::gateway
