// HTTP/1.1 server and client on Boost.Beast/Asio: the one network stack of lepton.
//
// HttpServer runs its own I/O threads. Each request is handed to the Handler on an I/O thread
// together with a Responder; the handler may answer at once or later from any thread (the server
// posts the work to its control loop and answers from there). Connections are keep-alive; bodies
// over `max_body_bytes` get 413 before the handler sees them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lepton::net {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // "/api/v1/jobs" (no query)
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body{};
  std::string remote_address;  // peer IP
  std::string header(const std::string& lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body{};
  std::map<std::string, std::string> headers{};
};

// The HTTP status for an error code, and the JSON error body
// {"error": {"code": "...", "message": "...", "field": "..."}} (field: the part of the message
// before the first ':' when it names one).
int http_status(StatusCode code);
HttpResponse error_response(const Status& status);

using Responder = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest, Responder)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  int io_threads = 2;
  size_t max_body_bytes = 4 << 20;
  std::chrono::seconds idle_timeout{60};
};

class HttpServer {
 public:
  // Binds and starts serving; fails with kUnavailable when the address cannot be bound.
  static Result<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                   Handler handler);
  virtual ~HttpServer() = default;
  virtual uint16_t port() const = 0;
  // Stops accepting and closes connections; joins the I/O threads. Idempotent.
  virtual void stop() = 0;
};

// "http://127.0.0.1:8080" -> host, port. Only plain http on this milestone.
struct Url {
  std::string host;
  uint16_t port = 80;
  static Result<Url> parse(std::string_view text);
  std::string to_string() const;
};

struct HttpClientOptions {
  std::chrono::milliseconds timeout{10000};
  std::string bearer_token{};  // sent as "Authorization: Bearer ..." when not empty
};

// One request on a fresh connection; blocking. Transport failures are kUnavailable; HTTP error
// statuses are returned as responses, not as errors.
Result<HttpResponse> http_request(const Url& url, std::string_view method, std::string_view target,
                                  std::string_view body, const HttpClientOptions& options);

// Percent-encoding for query values.
std::string url_encode(std::string_view text);
// "a=1&b=x%20y" (a query string or a form-encoded body) as decoded names and values.
std::map<std::string, std::string> parse_query(std::string_view text);

}  // namespace lepton::net
