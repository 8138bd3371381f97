#include "cloud/https_client.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <optional>
#include <string_view>
#include <utility>

namespace lepton::cloud::aws {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr uint64_t kMaxBodyBytes = uint64_t{64} << 20;

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// "example.com:8443" -> "example.com", "[::1]:443" -> "::1".
Result<std::string> host_name_of(std::string_view host) {
  std::string_view name = host;
  if (!name.empty() && name.front() == '[') {
    const size_t close = name.find(']');
    if (close == std::string_view::npos) {
      return Status::invalid_argument("https: Host header '" + std::string(host) +
                                      "': unclosed '['");
    }
    name = name.substr(1, close - 1);
  } else if (const size_t colon = name.find(':'); colon != std::string_view::npos) {
    name = name.substr(0, colon);
  }
  if (name.empty())
    return Status::invalid_argument("https: Host header '" + std::string(host) + "': no name");
  return std::string(name);
}

bool is_ip_address(const std::string& name) {
  boost::system::error_code ec;
  (void)asio::ip::make_address(name, ec);
  return !ec;
}

struct Prepared {
  bhttp::request<bhttp::string_body> message;
  std::string host_name;  // for verification and SNI
};

// Checks that `request` can be sent as given and builds the message.
Result<Prepared> prepare(const HttpRequest& request) {
  // The checks SigV4 makes on header names and values (tokens; no CR, LF or NUL in values) are
  // the ones that keep a header from splitting the message.
  auto canonical = canonical_headers(request.headers);
  if (!canonical.is_ok()) return Status::invalid_argument("https: " + canonical.status().message());
  if (request.method.empty() || !std::all_of(request.method.begin(), request.method.end(),
                                             [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return Status::invalid_argument("https: method '" + request.method +
                                    "': expected upper-case letters");
  }
  if (request.path.empty() || request.path.front() != '/' ||
      std::any_of(request.path.begin(), request.path.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7f || c == '?' || c == '#';
      })) {
    return Status::invalid_argument("https: path '" + request.path +
                                    "': expected an absolute path of visible ASCII without ? or #");
  }

  Prepared out;
  out.message.version(11);
  out.message.method_string(request.method);
  std::string target = request.path;
  if (!request.query.empty()) target += '?' + canonical_query(request.query);
  out.message.target(target);
  std::optional<std::string> host;
  bool has_length = false;
  for (const auto& [name, value] : request.headers) {
    if (equals_ignoring_case(name, "host")) {
      if (host) return Status::invalid_argument("https: more than one Host header");
      host = value;
    } else if (equals_ignoring_case(name, "content-length")) {
      if (value != std::to_string(request.body.size())) {
        return Status::invalid_argument("https: Content-Length '" + value +
                                        "' is not the body's size " +
                                        std::to_string(request.body.size()));
      }
      has_length = true;
    } else if (equals_ignoring_case(name, "transfer-encoding")) {
      return Status::invalid_argument(
          "https: Transfer-Encoding: the body is sent whole, not encoded");
    }
    out.message.insert(name, value);
  }
  if (!host) return Status::invalid_argument("https: the request has no Host header");
  auto name = host_name_of(*host);
  if (!name.is_ok()) return name.status();
  out.host_name = std::move(name.value());
  const bool expects_body =
      request.method == "POST" || request.method == "PUT" || request.method == "PATCH";
  if (!has_length && (expects_body || !request.body.empty())) {
    out.message.insert(bhttp::field::content_length, std::to_string(request.body.size()));
  }
  out.message.body() = request.body;
  return out;
}

// One exchange on one connection. Every step is asynchronous because Beast's deadline (the
// tcp_stream expiry, set once before connecting) applies only to asynchronous operations; the
// caller runs the io_context until the chain ends.
class Exchange {
 public:
  Exchange(asio::io_context& io, ssl::context& tls, Prepared prepared, std::string connect_host,
           uint16_t port, std::chrono::steady_clock::time_point deadline)
      : resolver_(io),
        stream_(io, tls),
        prepared_(std::move(prepared)),
        connect_host_(std::move(connect_host)),
        port_(port),
        deadline_(deadline) {
    parser_.body_limit(kMaxBodyBytes);
  }

  // Sets up SNI and the peer's name check; an error Status when OpenSSL refuses them.
  Status configure() {
    const std::string& name = prepared_.host_name;
    // SNI carries DNS names only (RFC 6066, section 3).
    if (!is_ip_address(name) &&
        SSL_set_tlsext_host_name(stream_.native_handle(), name.c_str()) != 1) {
      return Status::invalid_argument("host name '" + name + "' cannot be sent as SNI");
    }
    // host_name_verification matches DNS names and IP addresses against the leaf's
    // subjectAltName. A mismatch is recorded as X509_V_ERR_HOSTNAME_MISMATCH so that the error
    // says why the handshake failed.
    beast::error_code ec;
    stream_.set_verify_callback(
        [check = ssl::host_name_verification(name)](bool preverified, ssl::verify_context& ctx) {
          if (check(preverified, ctx)) return true;
          if (preverified) {
            X509_STORE_CTX_set_error(ctx.native_handle(), X509_V_ERR_HOSTNAME_MISMATCH);
          }
          return false;
        },
        ec);
    if (ec) return Status::internal("TLS verify callback: " + ec.message());
    return Status::ok();
  }

  void start() {
    resolver_.async_resolve(
        connect_host_, std::to_string(port_),
        [this](beast::error_code ec, const tcp::resolver::results_type& r) { on_resolve(ec, r); });
  }

  // After the io_context ran out of work: the response, or the failed step and its error.
  bool done() const { return done_; }
  const char* step() const { return step_; }
  beast::error_code error() const { return error_; }
  long verify_result() { return SSL_get_verify_result(stream_.native_handle()); }
  bhttp::response<bhttp::string_body>& response() { return parser_.get(); }

 private:
  bool failed(const char* step, beast::error_code ec) {
    step_ = step;
    error_ = ec;
    return static_cast<bool>(ec);
  }

  void on_resolve(beast::error_code ec, const tcp::resolver::results_type& results) {
    if (failed("resolve", ec)) return;
    if (std::chrono::steady_clock::now() >= deadline_) {
      failed("resolve", beast::error::timeout);
      return;
    }
    beast::get_lowest_layer(stream_).expires_at(deadline_);
    beast::get_lowest_layer(stream_).async_connect(
        results, [this](beast::error_code ec2, const tcp::endpoint&) { on_connect(ec2); });
  }

  void on_connect(beast::error_code ec) {
    if (failed("connect", ec)) return;
    stream_.async_handshake(ssl::stream_base::client,
                            [this](beast::error_code ec2) { on_handshake(ec2); });
  }

  void on_handshake(beast::error_code ec) {
    if (failed("TLS handshake", ec)) return;
    bhttp::async_write(stream_, prepared_.message,
                       [this](beast::error_code ec2, size_t) { on_write(ec2); });
  }

  void on_write(beast::error_code ec) {
    if (failed("sending the request", ec)) return;
    bhttp::async_read(stream_, buffer_, parser_,
                      [this](beast::error_code ec2, size_t) { on_read(ec2); });
  }

  void on_read(beast::error_code ec) {
    if (failed("reading the answer", ec)) return;
    // The answer is complete by its own framing, so there is no close_notify exchange to wait
    // for: closing the socket (the stream's destructor) is enough.
    done_ = true;
  }

  tcp::resolver resolver_;
  ssl::stream<beast::tcp_stream> stream_;
  Prepared prepared_;
  std::string connect_host_;
  uint16_t port_;
  std::chrono::steady_clock::time_point deadline_;
  beast::flat_buffer buffer_;
  bhttp::response_parser<bhttp::string_body> parser_;
  const char* step_ = "resolve";
  beast::error_code error_;
  bool done_ = false;
};

}  // namespace

Result<Ec2HttpResponse> https_send(const HttpRequest& request, const HttpsOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  auto prepared = prepare(request);
  if (!prepared.is_ok()) return prepared.status();
  const std::string connect_host =
      options.connect_host.empty() ? prepared->host_name : options.connect_host;
  std::string endpoint = "https " + prepared->host_name;
  if (connect_host != prepared->host_name) endpoint += " via " + connect_host;
  endpoint += ':' + std::to_string(options.connect_port);
  const auto invalid = [&](const std::string& what) {
    return Status::invalid_argument(endpoint + ": " + what);
  };
  if (options.timeout.count() <= 0) return invalid("timeout must be positive");
  if (options.connect_port == 0) return invalid("port 0");

  ssl::context tls(ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION) != 1) {
    return Status::internal(endpoint + ": cannot require TLS 1.2");
  }
  beast::error_code ec;
  tls.set_verify_mode(ssl::verify_peer, ec);
  if (ec) return Status::internal(endpoint + ": TLS verify mode: " + ec.message());
  if (options.ca_file.empty()) {
    tls.set_default_verify_paths(ec);
    if (ec) return Status::internal(endpoint + ": the system's CA certificates: " + ec.message());
  } else {
    tls.load_verify_file(options.ca_file, ec);
    if (ec) return invalid("CA file " + options.ca_file + ": " + ec.message());
  }

  asio::io_context io;
  Exchange exchange(io, tls, std::move(prepared.value()), connect_host, options.connect_port,
                    deadline);
  LEPTON_RETURN_IF_ERROR(exchange.configure());
  exchange.start();
  io.run();

  if (!exchange.done()) {
    const beast::error_code error = exchange.error();
    std::string why = endpoint + ": " + exchange.step() + ": ";
    if (error == beast::error::timeout) {
      why += "timed out after " + std::to_string(options.timeout.count()) + " ms";
    } else if (const long verify = exchange.verify_result(); verify != X509_V_OK) {
      // A failed verification fails the handshake; OpenSSL's error queue then names whichever
      // library reported last ("EVP lib"), the verify result says what was wrong.
      why += std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    } else {
      why += error.message();
    }
    return Status(StatusCode::kUnavailable, why);
  }
  auto& answer = exchange.response();
  return Ec2HttpResponse{.status = static_cast<int>(answer.result_int()),
                         .body = std::move(answer.body())};
}

Ec2Transport https_transport(HttpsOptions options) {
  return [options = std::move(options)](const HttpRequest& request) {
    return https_send(request, options);
  };
}

}  // namespace lepton::cloud::aws
