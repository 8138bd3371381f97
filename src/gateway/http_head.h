// HTTP/1 heads as the gateway reads and writes them: a request or response head parsed into
// storage kept from one message to the next, the checks a request's head must pass before it is
// routed, and the heads the gateway writes from them (hop-by-hop fields left out).
//
// Parsing is beast's (`basic_parser`): a head over kMaxRequestHeadBytes, a body over the limit, a
// Content-Length that is not one decimal number (or a list of equal ones), a second
// Transfer-Encoding, Transfer-Encoding with Content-Length, control bytes (NUL, a bare LF) in a
// value, or a field name that is not a token are errors. obs-fold is unfolded: the continuation
// joins the value after one space, so a value never holds a line break. What beast accepts and a
// proxy must still refuse (two Content-Length fields, a repeated Host or Authorization, a coding
// other than chunked) is `framing_problem`'s.
#pragma once

#include <algorithm>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lepton::gateway {

// A request's head (request line and fields) is read whole into the connection's buffer first, and
// must fit this; more is 431.
constexpr size_t kMaxRequestHeadBytes = 32 * 1024;

// The parts of an HTTP/1 message that the gateway uses, in storage kept from one message to the
// next: beast's own message parsers allocate every field on its own, twice per proxied request.
struct Head {
  struct Field {
    boost::beast::http::field name;
    uint32_t name_at, name_size, value_at, value_size;
  };
  std::string text;  // method, target, reason, field names and values
  std::vector<Field> fields;
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  uint32_t method_size = 0, target_size = 0, reason_size = 0;  // at the start of `text`, in order
  unsigned status = 0;
  unsigned version = 11;
  std::string body;  // a request's whole body; the part of a response's body parsed last

  void clear() {
    text.clear();
    fields.clear();
    body.clear();
    method = boost::beast::http::verb::unknown;
    method_size = target_size = reason_size = 0;
    status = 0;
  }
  std::string_view method_string() const { return {text.data(), method_size}; }
  std::string_view target() const { return {text.data() + method_size, target_size}; }
  std::string_view reason() const { return {text.data() + method_size + target_size, reason_size}; }
  std::string_view name(const Field& f) const { return {text.data() + f.name_at, f.name_size}; }
  std::string_view value(const Field& f) const { return {text.data() + f.value_at, f.value_size}; }
  // The first field called `name`; empty when there is none.
  std::string_view operator[](boost::beast::http::field name) const {
    for (const Field& f : fields) {
      if (f.name == name) return value(f);
    }
    return {};
  }
};

// beast's parser, filling a Head (which it clears first). A request parser is made with the
// gateway's limits; a response parser takes any body length (it is relayed, not held).
template <bool isRequest>
class HeadParser final : public boost::beast::http::basic_parser<isRequest> {
 public:
  explicit HeadParser(Head& head) requires(!isRequest) : head_(head) {
    head_.clear();
    this->body_limit(std::numeric_limits<uint64_t>::max());
  }
  HeadParser(Head& head, uint64_t max_body_bytes) requires isRequest : head_(head) {
    head_.clear();
    this->header_limit(kMaxRequestHeadBytes);
    this->body_limit(max_body_bytes);
  }

 private:
  using string_view = boost::beast::string_view;
  using error_code = boost::system::error_code;

  uint32_t add(string_view s) {
    auto at = static_cast<uint32_t>(head_.text.size());
    head_.text.append(s.data(), s.size());
    return at;
  }
  void on_request_impl(boost::beast::http::verb method, string_view method_str, string_view target,
                       int version, error_code&) override {
    head_.method = method;
    add(method_str);
    add(target);
    head_.method_size = static_cast<uint32_t>(method_str.size());
    head_.target_size = static_cast<uint32_t>(target.size());
    head_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int code, string_view reason, int version, error_code&) override {
    add(reason);
    head_.reason_size = static_cast<uint32_t>(reason.size());
    head_.status = static_cast<unsigned>(code);
    head_.version = static_cast<unsigned>(version);
  }
  void on_field_impl(boost::beast::http::field name, string_view name_string, string_view value,
                     error_code&) override {
    uint32_t name_at = add(name_string);
    uint32_t value_at = add(value);
    head_.fields.push_back({name, name_at, static_cast<uint32_t>(name_string.size()), value_at,
                            static_cast<uint32_t>(value.size())});
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<uint64_t>& length, error_code&) override {
    if (isRequest && length) head_.body.reserve(std::min<uint64_t>(*length, 1 << 20));
  }
  size_t on_body_impl(string_view body, error_code&) override {
    head_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(uint64_t, string_view, error_code&) override {}
  size_t on_chunk_body_impl(uint64_t, string_view body, error_code& ec) override {
    return on_body_impl(body, ec);
  }
  void on_finish_impl(error_code&) override {}

  Head& head_;
};

using RequestParser = HeadParser<true>;
using ResponseParser = HeadParser<false>;

// A request two parsers could frame two ways (smuggling past a proxy in front), or with a
// repeated field that decides routing or identity (which copy wins differs between parsers):
// what is wrong, for a 400; nullopt when the head is fine.
std::optional<std::string> framing_problem(const Head& request);

// The status for a request that could not be read (an error from its parser): 413 (body over the
// limit), 431 (head over kMaxRequestHeadBytes), 400 (malformed), or 0 when the client ended or
// broke off the connection and there is no one to answer (the connection just closes).
int request_error_status(const boost::system::error_code& ec);

// Reads one request from `bytes` as a client connection does: the head, then (once the head is
// whole) the body. For tests and fuzzing; the proxy drives the same parser over its socket.
struct RequestRead {
  boost::system::error_code error;  // http::error::need_more: `bytes` ended first
  bool head_done = false;
  bool done = false;        // head and body
  bool keep_alive = false;  // the parser's view: HTTP/1.1 without "Connection: close", ...
  size_t used = 0;          // bytes of `bytes` consumed
};
RequestRead read_request(std::string_view bytes, Head& head, uint64_t max_body_bytes);

// Hop-by-hop fields, and those the gateway writes itself (framing).
bool hop_by_hop(boost::beast::http::field f);

// The request sent upstream: the method, `target`, "HTTP/1.1", the client's fields less hop-by-hop
// ones and Expect, X-Forwarded-For with `client_ip` appended (or added), a Content-Length for
// `body` (when there is one, or the method is one that has one), then `body`. Replaces `out`.
void write_upstream_request(const Head& request, std::string_view target, std::string_view body,
                            std::string_view client_ip, std::string& out);

// The status line of `response` as HTTP/1.1 (its reason, or the standard one when it sent none)
// and its end-to-end fields, each with its CRLF; framing fields and the final CRLF are the
// caller's. Appends to `out`.
void append_response_head(const Head& response, std::string& out);

// The name in a Host header, lower-case, without port, brackets or a final dot.
std::string host_name(std::string_view host);

bool is_ip_literal(const std::string& host);

// Whether the gateway answers a request for `host` (from host_name). A web page can point a name of
// its own at the gateway's address (DNS rebinding) and then reach it as same-origin; such requests
// carry that name in Host. IP literals, localhost, *.localhost and names without a dot (a
// machine's own name on its network: no one can register one in public DNS) cannot be rebound by
// a web page; other names must be in `allowed` (an entry D allows D and any NAME.D).
bool host_allowed(const std::string& host, const std::vector<std::string>& allowed);

}  // namespace lepton::gateway
