// One client connection of the gateway, on one worker, from accept to close. Requests on it are
// handled one at a time: read a request, answer it (the gateway's own answer, or one exchange with
// a replica relayed back), then read the next. See gateway.h for what the gateway promises and
// docs/serving.md for retries, holding and cancellation.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/http_head.h"
#include "gateway/io.h"
#include "gateway/openai.h"
#include "gateway/routing.h"
#include "gateway/worker.h"

namespace lepton::gateway {

// {"error": {"code": CODE, "message": MESSAGE}} and a newline: the body of the gateway's errors.
std::string error_body(std::string_view code, const std::string& message);

class ProxySession : public std::enable_shared_from_this<ProxySession>,
                     public WatchLink,
                     public IdleLink {
 public:
  // Where the session is with its current request. Each phase waits on one thing; moving on is a
  // completion handler's decision. The phases from kPickingReplica on are an exchange with a
  // replica: the request is counted in its deployment's in_flight (the autoscaler's signal) for
  // exactly as long as the session is in one of them.
  enum class Phase : uint8_t {
    kReadingHead,  // a request's head, within header_timeout (the first read may be the watch's)
    kReadingBody,  // routed and its token checked: its body, within body_timeout
    kKeepAlive,    // between requests: the next one's first byte, within keep_alive_timeout
    kAnswering,    // writing an answer of the gateway's own (health, metrics, errors)
    kLingering,    // no more requests: reading and dropping what the client still sends
    kClosed,       // the client connection is closed. Not set during an exchange, which keeps
                   // its phase (and its counts) until its next step finds the socket closed
    // The exchange. It starts in kPickingReplica, and comes back there for a retry (the attempt
    // failed before any byte reached the client); it ends in finish, abort or a gateway error.
    kPickingReplica,    // choosing a replica (takes no time: it ends in one of the next three)
    kHolding,           // no ready replica: waiting for one, counted in the deployment's `held`
    kConnecting,        // a fresh connection to the replica, within connect_timeout
    kSending,           // writing the request to a replica; first_byte_timeout starts here
    kAwaitingResponse,  // the response head: a timeout here is a 504, not a failed replica
    kResponseStarting,  // head read; its first body bytes are read to go in the same write, and
                        // nothing has reached the client: a failure is still a 502
    kStreaming,         // the response is going to the client: a failure cuts it short
  };

  ProxySession(Worker& worker, Socket socket);
  ~ProxySession();
  ProxySession(const ProxySession&) = delete;
  ProxySession& operator=(const ProxySession&) = delete;

  void start();
  // Closes the connection to make room for a new one (it waits for a request).
  void evict();

 private:
  friend struct Worker;

  bool in_exchange() const { return phase_ >= Phase::kPickingReplica; }
  // A client socket is open from accept until close_client; while it is, it counts in w_.open.
  bool client_open() const { return client_.is_open(); }

  // ---- the client side
  void wait_for_request();
  void read_request();
  void on_request_head(boost::system::error_code ec);
  void on_request(boost::system::error_code ec);
  bool route();
  void refuse(int status, const std::string& body,
              std::string_view content_type = "application/json",
              std::string_view extra_headers = {});
  void respond_local(int status, const std::string& body,
                     std::string_view content_type = "application/json",
                     std::string_view extra_headers = {});
  void next_request();
  void linger();
  void drain();
  void close_client();
  void arm_client_watch();
  void on_client_watch(boost::system::error_code ec, size_t n);

  // ---- the exchange with a replica
  void prepare_upstream_request(const std::string& target);
  void try_replica();
  void hold();
  void leave_hold();
  void fail_held(const std::string& message);
  void connect();
  void send_upstream();
  void read_upstream_head();
  void on_attempt_failed(boost::system::error_code ec);
  void on_upstream_head(boost::system::error_code ec);
  void read_body();
  void append_body(std::string_view piece);
  void on_body(boost::system::error_code ec);
  void write_client(bool done);
  void finish_exchange();
  void abort_exchange();
  void fail_before_start(int status, std::string_view code, const std::string& message,
                         std::string_view extra_headers = {});
  // Gives back what the exchange counted (the deployment's in_flight and held, the replica's in
  // flight), forgets the exchange and moves to `next`. Does nothing to the counts outside one.
  void end_exchange(Phase next);

  // ---- deadlines
  //
  // One deadline per session at a time: the client's (reading a request, writing a response) or
  // the upstream's (connect, first byte, between body reads); the exchange never waits on both.
  // Setting one only stores it: the timer is armed at most min_timeout ahead, never later than
  // any deadline that can be set before it fires, so it never has to be moved earlier; when it
  // fires it acts on a deadline that has passed and otherwise re-arms.
  enum class Deadline : uint8_t { kNone, kClient, kUpstream };
  void set_deadline(Deadline kind, std::chrono::milliseconds after);
  void clear_deadline() { deadline_kind_ = Deadline::kNone; }
  void arm_timer(int64_t now);
  void on_timer(boost::system::error_code ec);
  // An upstream operation's error, as beast::error::timeout when the deadline closed the socket.
  boost::system::error_code upstream_error(boost::system::error_code ec);

  static constexpr size_t kClientReadSize = 4096;

  // The booleans below are facts independent of the phase; each says why.

  Worker& w_;
  Phase phase_ = Phase::kReadingHead;
  Socket client_;
  boost::beast::flat_buffer client_buf_;
  std::string client_ip_;
  std::optional<RequestParser> req_parser_;
  Head req_;
  std::string upstream_target_;
  size_t drained_ = 0;
  // Of the request being read or answered (HTTP/1.1; the connection stays open after it; HEAD).
  bool client_http11_ = true;
  bool client_keep_alive_ = true;
  bool head_request_ = false;
  // The client has gone (its end of stream or a reset, seen by the watch, or a failed write).
  // Noticed at any phase of an exchange, acted on at its next step, which aborts it.
  bool client_gone_ = false;
  // A read on the client is pending (the watch): it outlives exchanges, and becomes the first read
  // of the next request when the connection goes back to kKeepAlive.
  bool watch_armed_ = false;

  // The exchange in progress.
  std::shared_ptr<const RouteTable> table_;
  const Deployment* dep_ = nullptr;
  int64_t started_ns_ = 0;
  int64_t hold_until_ns_ = 0;  // until when the request may wait for a replica; 0: not yet held
  std::optional<Timer> hold_timer_;
  std::vector<Replica*> tried_;
  std::vector<std::shared_ptr<Replica>> tried_keep_;
  Replica* replica_ = nullptr;
  std::string last_error_;
  // The request's body was rewritten to ask for usage, so the usage-only chunk is removed.
  bool strip_usage_ = false;
  bool count_usage_ = false;  // its path is one whose responses carry usage
  std::string upstream_request_;
  std::unique_ptr<Socket> upstream_;
  // This attempt's connection came from the pool (a failure may be a stale connection, retried
  // once on a fresh one); and that retry has been used by this exchange.
  bool reused_ = false;
  bool stale_retry_used_ = false;
  // The deadline closed the upstream socket: the operation that fails next failed on a timeout.
  bool upstream_timed_out_ = false;
  Timer timer_;
  bool timer_armed_ =
      false;  // a wait on timer_ is pending (it may outlive the deadline it was for)
  Deadline deadline_kind_ = Deadline::kNone;
  int64_t deadline_ns_ = 0;
  boost::beast::flat_buffer upstream_buf_;
  std::optional<ResponseParser> res_parser_;
  Head res_;
  std::string out_;
  bool chunked_out_ = false;  // the response goes to the client chunked (its framing)
  UsageTap usage_;
};

}  // namespace lepton::gateway
