// The HTTP client: one request on a connection of its own, under one deadline; URLs.
// clang-format off
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
// clang-format on

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <cctype>
#include <charconv>

#include "core/hex.h"
#include "net/http.h"

namespace lepton::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

Result<HttpResponse> http_request_or_throw(const Url& url, std::string_view method,
                                           std::string_view target, std::string_view body,
                                           const HttpClientOptions& options) {
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
  for (const auto& [name, value] : options.headers) req.set(name, value);
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

}  // namespace

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
  // Asio throws where it cannot create what it needs (out of descriptors for the io_context or
  // the socket, a header value beast refuses); a caller on a loop must get an error instead.
  try {
    return http_request_or_throw(url, method, target, body, options);
  } catch (const std::exception& e) {
    return Status(StatusCode::kUnavailable,
                  "cannot reach the server at " + url.to_string() + ": " + e.what());
  } catch (...) {
    return Status(StatusCode::kUnavailable, "cannot reach the server at " + url.to_string());
  }
}

std::string url_encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      append_hex(out, c, HexCase::kUpper);
    }
  }
  return out;
}

}  // namespace lepton::net
