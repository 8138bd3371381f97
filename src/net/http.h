// HTTP/1.1 server and client on Boost.Beast/Asio: the one network stack of lepton.
//
// HttpServer runs its own I/O threads. Each request is handed to the Handler on an I/O thread
// together with a Responder; the handler may answer at once or later from any thread (the server
// posts the work to its control loop and answers from there). Connections are keep-alive; bodies
// over `max_body_bytes` get 413 before the handler sees them.
//
// Every client is hostile: the server holds at most `max_connections` connections (a new one closes
// the one that has waited longest for its next request, once that one has waited 100 ms; until
// then new connections wait in the listen backlog), a client has `header_timeout` to send a
// request's head and `body_timeout` its body, `check_head` refuses a request (a missing token)
// before its body is read, and requests that could be read two ways by two parsers (request
// smuggling: a Transfer-Encoding other than chunked, Transfer-Encoding with Content-Length,
// repeated Host, Authorization, Content-Length or Transfer-Encoding) get 400.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::net {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  // The path as the client sent it, NOT percent-decoded, without the query: "/api/v1/jobs/j%2D1".
  // Compare it only with literal paths ("/healthz"); route on `segments`, so that an encoded '/'
  // ("/api/v1/jobs%2Fj-1%2Fcancel") cannot pose as a separator.
  std::string path;
  // `path` split on '/', empty segments dropped, then each percent-decoded ('+' stays '+'):
  // "/api/v1/jobs/a%2Fb/" -> {"api", "v1", "jobs", "a/b"}. May hold any bytes, not only UTF-8.
  std::vector<std::string> segments{};
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
// Sees a request once its head is read (method, path, segments, query, headers, remote_address;
// body empty), before the body is read. A response refuses the request: it is sent at once with
// `Connection: close` and the body is never read. On an I/O thread; must not block.
using HeadCheck = std::function<std::optional<HttpResponse>(const HttpRequest& head)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  int io_threads = 2;
  size_t max_body_bytes = 4 << 20;
  // A keep-alive connection's wait for the first byte of its next request.
  std::chrono::milliseconds idle_timeout{60000};
  // A new connection must send a request's whole head within this of connecting; a kept-alive
  // one within this of the request's first byte (slowloris).
  std::chrono::milliseconds header_timeout{10000};
  // From the end of a request's head to the end of its body (slow senders).
  std::chrono::milliseconds body_timeout{60000};
  // Open connections at most. At the cap a new connection closes the one that has waited longest
  // for a request (never one whose request is being handled), or is closed itself when every
  // connection is busy. The default leaves room under a 1024-descriptor limit for the gateway
  // (GatewayOptions::max_connections, twice that counting upstreams), the agent and the store.
  size_t max_connections = 256;
  HeadCheck check_head{};
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
  std::map<std::string, std::string> headers{};  // more request headers, by name
};

// One request on a fresh connection; blocking. Transport failures are kUnavailable, and so is
// anything else that goes wrong (out of descriptors, the resolver): it never throws. HTTP error
// statuses are returned as responses, not as errors.
Result<HttpResponse> http_request(const Url& url, std::string_view method, std::string_view target,
                                  std::string_view body, const HttpClientOptions& options);

// Parses one whole HTTP/1.1 request (head and body; bytes after it are ignored) with the parser,
// limits and checks HttpServer uses, into what the handler would see (no remote_address). A
// refused request is kInvalidArgument, its message the reason. The seam for fuzzing the server.
Result<HttpRequest> parse_request(std::string_view raw, size_t max_body_bytes = 4 << 20);

// Compares a secret the client gave with the expected one in time that depends only on the
// expected one's length, so the time taken does not tell how much of a guess was right.
bool token_equals(std::string_view given, std::string_view expected);

// Raises this process's soft limit on open descriptors (RLIMIT_NOFILE) to its hard limit, and
// returns the soft limit now in force (0 when it cannot be read). For servers at start.
uint64_t raise_fd_limit();

// Percent-encoding for query values.
std::string url_encode(std::string_view text);
// "a=1&b=x%20y" (a query string or a form-encoded body) as decoded names and values.
std::map<std::string, std::string> parse_query(std::string_view text);
// "/a/b%2Fc//d" -> {"a", "b/c", "d"}: HttpRequest::segments of a raw path.
std::vector<std::string> path_segments(std::string_view raw_path);

}  // namespace lepton::net
