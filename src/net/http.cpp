#include "net/http.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

namespace lepton::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

void parse_target(std::string_view target, HttpRequest& req) {
  size_t q = target.find('?');
  req.path = url_decode(target.substr(0, q));
  if (q != std::string_view::npos) req.query = parse_query(target.substr(q + 1));
}

// One keep-alive connection: read a request, hand it to the handler, write its response, repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Handler& handler, const HttpServerOptions& options)
      : stream_(std::move(socket)), handler_(handler), options_(options) {}

  void run() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(options_.idle_timeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout) {
      close();
      return;
    }
    if (ec == bhttp::error::body_limit) {
      HttpResponse r = error_response(
          Status(StatusCode::kInvalidArgument,
                 "body: larger than " + std::to_string(options_.max_body_bytes) + " bytes"));
      r.status = 413;
      keep_alive_ = false;
      write(std::move(r));
      return;
    }
    if (ec) {
      if (ec == bhttp::error::bad_target || ec == bhttp::error::bad_method ||
          ec == bhttp::error::bad_version || ec == bhttp::error::header_limit) {
        keep_alive_ = false;
        write(error_response(Status::invalid_argument("request: malformed HTTP")));
        return;
      }
      close();
      return;
    }
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    parse_target(std::string_view(msg.target().data(), msg.target().size()), req);
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(field.value());
    }
    req.body = std::move(msg.body());
    beast::error_code ignored;
    auto endpoint = stream_.socket().remote_endpoint(ignored);
    if (!ignored) req.remote_address = endpoint.address().to_string();
    keep_alive_ = msg.keep_alive();
    stream_.expires_never();
    // The handler may answer from any thread: hop back onto this connection's executor.
    auto self = shared_from_this();
    handler_(std::move(req), [self](HttpResponse response) {
      asio::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->write(std::move(response));
      });
    });
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
                         if (ec || !self->keep_alive_) {
                           self->close();
                           return;
                         }
                         self->read();
                       });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  const Handler& handler_;
  const HttpServerOptions& options_;
  bool keep_alive_ = true;
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(HttpServerOptions options, Handler handler)
      : options_(std::move(options)), handler_(std::move(handler)), acceptor_(io_) {}

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
      threads_.emplace_back([this] { io_.run(); });
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
  void accept() {
    acceptor_.async_accept(asio::make_strand(io_), [this](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        beast::error_code ignored;
        s.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(s), handler_, options_)->run();
      }
      accept();
    });
  }

  HttpServerOptions options_;
  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
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
  r.body = nlohmann::json{{"error", error}}.dump();
  return r;
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                      Handler handler) {
  auto server = std::make_unique<BeastServer>(options, std::move(handler));
  if (Status s = server->listen(); !s.is_ok()) return s;
  return std::unique_ptr<HttpServer>(std::move(server));
}

Result<Url> Url::parse(std::string_view text) {
  auto bad = [&] {
    return Status::invalid_argument("server URL '" + std::string(text) +
                                    "': expected http://HOST:PORT");
  };
  constexpr std::string_view kScheme = "http://";
  if (text.substr(0, kScheme.size()) != kScheme) return bad();
  std::string_view rest = text.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  size_t colon = rest.rfind(':');
  Url url;
  if (colon == std::string_view::npos) {
    url.host = std::string(rest);
  } else {
    url.host = std::string(rest.substr(0, colon));
    std::string_view p = rest.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (ec != std::errc() || end != p.data() + p.size() || value == 0 || value > 65535) {
      return bad();
    }
    url.port = static_cast<uint16_t>(value);
  }
  if (url.host.empty() || url.host.find('/') != std::string::npos) return bad();
  return url;
}

std::string Url::to_string() const { return "http://" + host + ":" + std::to_string(port); }

Result<HttpResponse> http_request(const Url& url, std::string_view method, std::string_view target,
                                  std::string_view body, const HttpClientOptions& options) {
  // Asynchronous operations under one deadline: Beast's timeouts apply only to async calls.
  asio::io_context io;
  beast::tcp_stream stream(io);
  tcp::resolver resolver(io);
  bhttp::request<bhttp::string_body> req;
  req.version(11);
  req.method_string(std::string(method));
  req.target(std::string(target));
  req.set(bhttp::field::host, url.host);
  req.set(bhttp::field::user_agent, "lepton");
  if (!options.bearer_token.empty()) {
    req.set(bhttp::field::authorization, "Bearer " + options.bearer_token);
  }
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  req.body() = std::string(body);
  req.keep_alive(false);
  req.prepare_payload();
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(256 << 20);
  beast::error_code result = asio::error::timed_out;
  resolver.async_resolve(
      url.host, std::to_string(url.port),
      [&](beast::error_code ec, const tcp::resolver::results_type& r) {
        if (ec) {
          result = ec;
          return;
        }
        stream.expires_after(options.timeout);
        stream.async_connect(r, [&](beast::error_code ec2, const tcp::endpoint&) {
          if (ec2) {
            result = ec2;
            return;
          }
          bhttp::async_write(stream, req, [&](beast::error_code ec3, size_t) {
            if (ec3) {
              result = ec3;
              return;
            }
            bhttp::async_read(stream, buffer, parser,
                              [&](beast::error_code ec4, size_t) { result = ec4; });
          });
        });
      });
  io.run_for(options.timeout + std::chrono::milliseconds(100));
  if (result) {
    return Status(StatusCode::kUnavailable,
                  "cannot reach the server at " + url.to_string() + ": " + result.message());
  }
  auto& msg = parser.get();
  HttpResponse r;
  r.status = static_cast<int>(msg.result_int());
  r.content_type = std::string(msg[bhttp::field::content_type]);
  r.body = std::move(msg.body());
  for (const auto& field : msg) {
    r.headers[std::string(field.name_string())] = std::string(field.value());
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return r;
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

std::string url_encode(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace lepton::net
