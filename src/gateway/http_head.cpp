#include "gateway/http_head.h"

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/status.hpp>
#include <cctype>

namespace lepton::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
using error_code = boost::system::error_code;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

bool ends_with_domain(std::string_view host, std::string_view domain) {
  return host == domain || (host.size() > domain.size() + 1 && host.ends_with(domain) &&
                            host[host.size() - domain.size() - 1] == '.');
}

}  // namespace

std::optional<std::string> framing_problem(const Head& request) {
  int host = 0, auth = 0, length = 0, coding = 0;
  for (const Head::Field& f : request.fields) {
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
  std::string_view te = request[http::field::transfer_encoding];
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

int request_error_status(const error_code& ec) {
  const bool from_parser =
      ec.category() == http::make_error_code(http::error::bad_target).category();
  if (!from_parser || ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return 0;
  }
  if (ec == http::error::body_limit) return 413;
  if (ec == http::error::header_limit) return 431;
  return 400;
}

RequestRead read_request(std::string_view bytes, Head& head, uint64_t max_body_bytes) {
  RequestParser parser(head, max_body_bytes);
  RequestRead out;
  while (!parser.is_done()) {
    const size_t n = parser.put(
        boost::asio::buffer(bytes.data() + out.used, bytes.size() - out.used), out.error);
    out.used += n;
    if (out.error) break;
    if (n == 0) {  // nothing taken and no error: only more bytes can help
      out.error = http::error::need_more;
      break;
    }
  }
  out.head_done = parser.is_header_done();
  out.done = parser.is_done();
  if (out.head_done) out.keep_alive = parser.keep_alive();
  return out;
}

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

void write_upstream_request(const Head& request, std::string_view target, std::string_view body,
                            std::string_view client_ip, std::string& out) {
  out.clear();
  out.append(request.method_string()).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool forwarded = false;
  for (const Head::Field& f : request.fields) {
    if (hop_by_hop(f.name) || f.name == http::field::expect) continue;
    std::string_view n = request.name(f);
    out.append(n).append(": ").append(request.value(f));
    if (iequals(n, "x-forwarded-for")) {
      out.append(", ").append(client_ip);
      forwarded = true;
    }
    out.append("\r\n");
  }
  if (!forwarded) out.append("X-Forwarded-For: ").append(client_ip).append("\r\n");
  if (!body.empty() || request.method == http::verb::post || request.method == http::verb::put ||
      request.method == http::verb::patch) {
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  out.append("\r\n").append(body);
}

void append_response_head(const Head& response, std::string& out) {
  std::string_view reason = response.reason();
  if (reason.empty()) {
    auto r = http::obsolete_reason(static_cast<http::status>(response.status));
    reason = {r.data(), r.size()};
  }
  // Three digits as the replica sent them: beast reads "020" as 20, which is not "20".
  const unsigned status = response.status % 1000;
  const std::array<char, 3> code = {static_cast<char>('0' + status / 100),
                                    static_cast<char>('0' + status / 10 % 10),
                                    static_cast<char>('0' + status % 10)};
  out.append("HTTP/1.1 ").append(code.data(), code.size()).append(" ");
  out.append(reason).append("\r\n");
  for (const Head::Field& f : response.fields) {
    if (hop_by_hop(f.name)) continue;
    out.append(response.name(f)).append(": ").append(response.value(f)).append("\r\n");
  }
}

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
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

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

}  // namespace lepton::gateway
