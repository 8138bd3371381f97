#include "net/http.h"

#include <sys/resource.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "core/hex.h"
#include "spec/json_text.h"

namespace lepton::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using RequestParser = bhttp::request_parser<bhttp::string_body>;

constexpr size_t kMaxHeaderBytes = 64 * 1024;
// How long the accept loop waits after running out of descriptors or memory: accepting again at
// once fails again at once, a busy loop.
constexpr std::chrono::milliseconds kAcceptBackOff{50};
// At the connection cap, a connection waiting for its request may be closed to make room once it
// has waited this long; until then a new one waits (checked every kAdmitRetry).
constexpr std::chrono::milliseconds kEvictableAfter{100};
constexpr std::chrono::milliseconds kAdmitRetry{5};
// After refusing a request whose body was not read, the rest the client sends is read and dropped
// for up to this long (or this much) before closing: closing with unread bytes sends a reset,
// which can destroy the answer before the client reads it.
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr size_t kLingerBytes = 1 << 20;

// '+' is a space in a query string, and itself in a path.
std::string url_decode(std::string_view s, bool plus_is_space = true) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_digit_value(s[i + 1]) >= 0 &&
               hex_digit_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit_value(s[i + 1]) * 16 + hex_digit_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Why a request is refused before the handler sees it.
struct Refusal {
  int status = 400;
  std::string message;
};

// The answer to a parse error; nullopt when there is no one to answer (the client left, or was
// too slow, or the connection was closed here).
std::optional<Refusal> refusal_for(const beast::error_code& ec, size_t max_body_bytes) {
  if (ec.category() != bhttp::make_error_code(bhttp::error::bad_target).category() ||
      ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
    return std::nullopt;
  }
  if (ec == bhttp::error::body_limit) {
    return Refusal{413, "body: larger than " + std::to_string(max_body_bytes) + " bytes"};
  }
  if (ec == bhttp::error::header_limit) {
    return Refusal{431,
                   "request: headers larger than " + std::to_string(kMaxHeaderBytes) + " bytes"};
  }
  return Refusal{400, "request: malformed HTTP (" + ec.message() + ")"};
}

// A request whose length two parsers could read two ways is refused (request smuggling through a
// proxy in front): Transfer-Encoding must end in chunked (RFC 9112 6.3) and never come with
// Content-Length, and the fields that decide framing, routing or identity must appear once (which
// copy wins differs between parsers).
std::optional<Refusal> check_framing(const RequestParser::value_type& msg) {
  for (auto [field, name] : {std::pair{bhttp::field::host, "Host"},
                             {bhttp::field::authorization, "Authorization"},
                             {bhttp::field::content_length, "Content-Length"},
                             {bhttp::field::transfer_encoding, "Transfer-Encoding"}}) {
    if (msg.count(field) > 1) {
      return Refusal{400, "request: more than one " + std::string(name) + " header"};
    }
  }
  auto te = msg.find(bhttp::field::transfer_encoding);
  if (te == msg.end()) return std::nullopt;
  if (msg.count(bhttp::field::content_length) > 0) {
    return Refusal{400, "request: both Transfer-Encoding and Content-Length"};
  }
  bhttp::token_list codings(te->value());
  std::vector<beast::string_view> list(codings.begin(), codings.end());
  if (list.empty() || !beast::iequals(list.back(), "chunked")) {
    return Refusal{400, "transfer-encoding: the last coding must be chunked"};
  }
  if (list.size() > 1) return Refusal{501, "transfer-encoding: only chunked is supported"};
  return std::nullopt;
}

// What the handler sees of a request's head.
HttpRequest head_of(const RequestParser::value_type& msg) {
  HttpRequest req;
  req.method = std::string(msg.method_string());
  std::string_view target(msg.target().data(), msg.target().size());
  size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  req.segments = path_segments(req.path);
  if (q != std::string_view::npos) req.query = parse_query(target.substr(q + 1));
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers[name] = std::string(field.value());
  }
  return req;
}

// A link in the server's list of connections waiting for a request.
struct IdleLink {
  IdleLink* prev = this;
  IdleLink* next = this;
  std::chrono::steady_clock::time_point since{};  // when it began to wait (while linked)
  bool linked() const { return next != this; }
  void unlink() {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
  void link_before(IdleLink& at) {
    prev = at.prev;
    next = &at;
    at.prev->next = this;
    at.prev = this;
  }
};

class Session;

// The open connections of one server, and those waiting for a request (longest waiting first),
// shared by the I/O threads.
struct Connections {
  std::mutex mu;
  size_t open = 0;
  IdleLink idle;
  // The connection that has waited longest, taken off the list, if it began to wait no later
  // than `waited_since`; null when none has.
  std::shared_ptr<Session> take_oldest_idle(std::chrono::steady_clock::time_point waited_since =
                                                std::chrono::steady_clock::time_point::max());
};

// One keep-alive connection: read a request's head, check it, read its body, hand it to the
// handler, write its response, repeat.
class Session : public std::enable_shared_from_this<Session>, public IdleLink {
 public:
  Session(tcp::socket socket, const Handler& handler, const HttpServerOptions& options,
          std::shared_ptr<Connections> connections)
      : stream_(std::move(socket)),
        handler_(handler),
        options_(options),
        connections_(std::move(connections)) {
    std::lock_guard lock(connections_->mu);
    ++connections_->open;
  }
  ~Session() {
    std::lock_guard lock(connections_->mu);
    if (linked()) unlink();
    --connections_->open;
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void run() {
    beast::error_code ignored;
    auto endpoint = stream_.socket().remote_endpoint(ignored);
    if (!ignored) remote_address_ = endpoint.address().to_string();
    wait_for_request();
    read_head();
  }

  // Any thread: closes the connection to make room, unless a request came in meanwhile.
  void evict() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->waiting_) self->close();
    });
  }

 private:
  // ---- waiting for a request (the state in which a connection may be evicted)

  void wait_for_request() {
    waiting_ = true;
    std::lock_guard lock(connections_->mu);
    since = std::chrono::steady_clock::now();
    link_before(connections_->idle);
  }

  void busy() {
    waiting_ = false;
    std::lock_guard lock(connections_->mu);
    if (linked()) unlink();
  }

  // After a response: the next request's first byte within idle_timeout, then its whole head
  // within header_timeout.
  void next_request() {
    wait_for_request();
    if (buffer_.size() > 0) return read_head();
    stream_.expires_after(options_.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->close();
                              self->read_head();
                            });
  }

  void read_head() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(kMaxHeaderBytes);
    stream_.expires_after(options_.header_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_head(ec); });
  }

  // ---- one request

  void on_head(beast::error_code ec) {
    if (ec) return on_error(ec);
    busy();
    auto& msg = parser_->get();
    if (auto refusal = check_framing(msg)) return refuse(*refusal);
    request_ = head_of(msg);
    request_.remote_address = remote_address_;
    keep_alive_ = msg.keep_alive();
    if (options_.check_head) {
      std::optional<HttpResponse> answer;
      try {
        answer = options_.check_head(request_);
      } catch (const std::exception& e) {
        answer = error_response(Status::internal(std::string("checking the request: ") + e.what()));
      }
      if (answer) {
        keep_alive_ = false;  // the body, if any, is not read
        return write(std::move(*answer));
      }
    }
    if (parser_->is_done()) return dispatch();
    // A declared length over the limit is refused without waiting for the body.
    if (auto length = parser_->content_length(); length && *length > options_.max_body_bytes) {
      return on_error(bhttp::error::body_limit);
    }
    stream_.expires_after(options_.body_timeout);
    if (beast::iequals(msg[bhttp::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code e, size_t) {
                          if (e) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->on_error(ec);
                        self->request_.body = std::move(self->parser_->get().body());
                        self->dispatch();
                      });
  }

  void on_error(beast::error_code ec) {
    std::optional<Refusal> refusal = refusal_for(ec, options_.max_body_bytes);
    if (!refusal) return close();
    busy();
    refuse(*refusal);
  }

  void refuse(const Refusal& refusal) {
    HttpResponse r = error_response(Status::invalid_argument(refusal.message));
    r.status = refusal.status;
    keep_alive_ = false;
    write(std::move(r));
  }

  void dispatch() {
    parser_.reset();
    stream_.expires_never();
    // The handler may answer from any thread: hop back onto this connection's executor. Only the
    // first answer counts.
    auto self = shared_from_this();
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Responder respond = [self, answered](HttpResponse response) {
      if (answered->exchange(true)) return;
      asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->write(std::move(response));
      });
    };
    try {
      handler_(std::move(request_), respond);
    } catch (const std::exception& e) {
      keep_alive_ = false;
      respond(error_response(Status::internal(std::string("internal error: ") + e.what())));
    } catch (...) {
      keep_alive_ = false;
      respond(error_response(Status::internal("internal error")));
    }
  }

  void write(HttpResponse r) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    res->set(bhttp::field::server, "lepton");
    res->set(bhttp::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    stream_.expires_after(options_.idle_timeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res](beast::error_code ec, size_t) {
                         if (ec) return self->close();
                         if (!self->keep_alive_) return self->linger();
                         self->next_request();
                       });
  }

  // The answer is out and the connection ends: stop sending, then read and drop what the client
  // still sends (a body not read) for a while, so that closing does not reset the connection
  // under the answer.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTime);
    drain();
  }

  void drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(16384),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ >= kLingerBytes) return self->close();
                              self->drain();
                            });
  }

  void close() {
    waiting_ = false;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  HttpRequest request_;
  std::string remote_address_;
  const Handler& handler_;
  const HttpServerOptions& options_;
  // Shared: a session can outlive its server (a responder kept by the handler's owner past the
  // server's end), and its destructor still takes itself off the lists.
  std::shared_ptr<Connections> connections_;
  bool keep_alive_ = true;
  bool waiting_ = false;  // on the strand; the idle list itself is under connections_->mu
  size_t drained_ = 0;
};

std::shared_ptr<Session> Connections::take_oldest_idle(
    std::chrono::steady_clock::time_point waited_since) {
  while (idle.next != &idle) {
    auto* session = static_cast<Session*>(idle.next);
    if (session->since > waited_since) return nullptr;  // the oldest is too fresh
    session->unlink();
    // Null when its last owner is letting go of it right now (its destructor waits on mu).
    if (auto alive = session->weak_from_this().lock()) return alive;
  }
  return nullptr;
}

bool out_of_resources(const beast::error_code& ec) {
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory ||
         ec == beast::error_code(ENFILE, boost::system::system_category());
}

class BeastServer final : public HttpServer {
 public:
  BeastServer(HttpServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        acceptor_(io_),
        accept_timer_(io_) {}

  ~BeastServer() override { stop(); }

  Status listen() {
    beast::error_code ec;
    auto address = asio::ip::make_address(options_.address, ec);
    if (ec) return Status::invalid_argument("address '" + options_.address + "': " + ec.message());
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status(StatusCode::kUnavailable, "cannot listen on " + options_.address + ":" +
                                                  std::to_string(options_.port) + ": " +
                                                  ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    accept();
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      threads_.emplace_back([this] { run_io(); });
    }
    return Status::ok();
  }

  uint16_t port() const override { return port_; }

  void stop() override {
    if (stopped_.exchange(true)) return;
    io_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    // No I/O thread runs any more, so the acceptor can be closed from here.
    beast::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  // An exception out of a completion handler would end the thread and, uncaught, the process.
  // What threw is dropped (with its connection, when it held the last reference) and the loop
  // goes on.
  void run_io() {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lepton: http: dropped a connection: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "lepton: http: dropped a connection: unknown exception\n");
      }
    }
  }

  void accept() {
    acceptor_.async_accept(asio::make_strand(io_), [this](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) return back_off(ec);
      admit(std::move(s));  // accepts the next one once this one is in
    });
  }

  // At the cap, the connection that has waited longest for a request makes room, once it has
  // waited kEvictableAfter: a client that opened its connection a moment ago has not had time
  // to send its request (a burst of agents' heartbeats). Until one may be closed, the new
  // connection waits and no more are accepted; the kernel's listen backlog holds them.
  void admit(tcp::socket s) {
    beast::error_code ignored;
    s.set_option(tcp::no_delay(true), ignored);
    admit(std::make_shared<Session>(std::move(s), handler_, options_, connections_));
  }

  void admit(const std::shared_ptr<Session>& session) {
    std::shared_ptr<Session> victim;
    {
      std::lock_guard lock(connections_->mu);
      if (connections_->open > options_.max_connections) {
        victim = connections_->take_oldest_idle(std::chrono::steady_clock::now() - kEvictableAfter);
        if (!victim) {
          accept_timer_.expires_after(kAdmitRetry);
          accept_timer_.async_wait([this, session](beast::error_code e) {
            if (e == asio::error::operation_aborted) return;
            admit(session);
          });
          return;
        }
      }
    }
    if (victim) victim->evict();
    session->run();
    accept();
  }

  // Accepting failed (out of descriptors, say): accepting again at once would fail again at once.
  // Wait a little, and close an idle connection to free a descriptor.
  void back_off(const beast::error_code& ec) {
    if (out_of_resources(ec)) {
      std::shared_ptr<Session> victim;
      {
        std::lock_guard lock(connections_->mu);
        victim = connections_->take_oldest_idle();
      }
      if (victim) victim->evict();
    }
    accept_timer_.expires_after(kAcceptBackOff);
    accept_timer_.async_wait([this](beast::error_code e) {
      if (e == asio::error::operation_aborted) return;
      accept();
    });
  }

  HttpServerOptions options_;
  Handler handler_;
  std::shared_ptr<Connections> connections_ = std::make_shared<Connections>();
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_timer_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
  uint16_t port_ = 0;
};

}  // namespace

std::string HttpRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

int http_status(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
      return 409;
    case StatusCode::kConflict:
      return 409;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kPermissionDenied:
      return 401;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse error_response(const Status& status) {
  nlohmann::json error = {{"code", std::string(status_code_name(status.code()))},
                          {"message", status.message()}};
  // "resources.cpus: expected ..." names a field; "file:3:5: ..." does not.
  size_t colon = status.message().find(':');
  if (colon != std::string::npos) {
    std::string head = status.message().substr(0, colon);
    bool field = !head.empty() && head.find_first_of(" /") == std::string::npos;
    if (field) error["field"] = head;
  }
  HttpResponse r;
  r.status = http_status(status.code());
  // The message may quote what a client sent, in any bytes: dump() would throw on bad UTF-8.
  r.body = spec::to_json_text(nlohmann::json{{"error", error}});
  return r;
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                      Handler handler) {
  auto server = std::make_unique<BeastServer>(options, std::move(handler));
  if (Status s = server->listen(); !s.is_ok()) return s;
  return std::unique_ptr<HttpServer>(std::move(server));
}

Result<HttpRequest> parse_request(std::string_view raw, size_t max_body_bytes) {
  RequestParser parser;
  parser.body_limit(max_body_bytes);
  parser.header_limit(kMaxHeaderBytes);
  parser.eager(true);
  auto refused = [&](const beast::error_code& ec) -> Status {
    std::optional<Refusal> r = refusal_for(ec, max_body_bytes);
    return Status::invalid_argument(r ? r->message : "request: incomplete (" + ec.message() + ")");
  };
  bool checked = false;
  while (true) {
    if (!checked && parser.is_header_done()) {
      checked = true;
      if (auto r = check_framing(parser.get())) return Status::invalid_argument(r->message);
    }
    if (parser.is_done()) break;
    beast::error_code ec;
    if (raw.empty()) {
      // To beast, the end before any byte is a complete message.
      if (!parser.got_some()) return Status::invalid_argument("request: empty");
      parser.put_eof(ec);
      if (ec) return refused(ec);
      if (!parser.is_done()) return Status::invalid_argument("request: incomplete");
      continue;
    }
    size_t used = parser.put(asio::buffer(raw.data(), raw.size()), ec);
    raw.remove_prefix(used);
    if (ec == bhttp::error::need_more) {
      // The whole rest was offered: needing more with nothing used means it ends too soon.
      if (used == 0) return Status::invalid_argument("request: incomplete");
      continue;
    }
    if (ec) return refused(ec);
  }
  HttpRequest req = head_of(parser.get());
  req.body = std::move(parser.get().body());
  return req;
}

bool token_equals(std::string_view given, std::string_view expected) {
  // volatile: the compiler may not stop at the first difference.
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = diff | static_cast<unsigned char>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

uint64_t raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return static_cast<uint64_t>(limit.rlim_cur);
}

std::vector<std::string> path_segments(std::string_view raw_path) {
  std::vector<std::string> out;
  while (!raw_path.empty()) {
    size_t slash = raw_path.find('/');
    std::string_view part = raw_path.substr(0, slash);
    if (!part.empty()) out.push_back(url_decode(part, /*plus_is_space=*/false));
    raw_path = slash == std::string_view::npos ? std::string_view{} : raw_path.substr(slash + 1);
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view text) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    size_t amp = text.find('&');
    std::string_view pair = text.substr(0, amp);
    size_t eq = pair.find('=');
    out[url_decode(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
    text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
  }
  return out;
}

}  // namespace lepton::net
