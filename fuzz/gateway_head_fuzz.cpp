// libFuzzer target: the gateway's HTTP heads (src/gateway/http_head.h). The first byte picks the
// side. Requests: any bytes read as a client connection reads them give a request or an error the
// gateway answers with 400, 413 or 431, never a crash; a request it would forward (read whole, no
// framing problem) goes upstream as exactly one request that reads back the same (same body, no
// framing problem, nothing left over), so nothing can be smuggled past the gateway. Responses: a
// head read from a replica is written to the client as one that reads back with the same status.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/http_head.h"

namespace {

using lepton::gateway::Head;
namespace http = boost::beast::http;

constexpr uint64_t kMaxBody = 1 << 16;

void check(bool ok) {
  if (!ok) std::abort();
}

// Every view of the head lies in its text, and no value holds a line break or a NUL.
void check_head(const Head& head) {
  check(size_t{head.method_size} + head.target_size + head.reason_size <= head.text.size());
  for (const Head::Field& f : head.fields) {
    check(size_t{f.name_at} + f.name_size <= head.text.size());
    check(size_t{f.value_at} + f.value_size <= head.text.size());
    check(f.name_size > 0);
    for (char c : head.value(f)) check(c != '\r' && c != '\n' && c != '\0');
  }
}

void fuzz_request(std::string_view raw) {
  Head head;
  lepton::gateway::RequestRead r = lepton::gateway::read_request(raw, head, kMaxBody);
  check(r.used <= raw.size());
  if (r.error && r.error != http::error::need_more) {
    int status = lepton::gateway::request_error_status(r.error);
    check(status == 400 || status == 413 || status == 431);
  }
  if (!r.head_done) return;
  check_head(head);
  check(!head.target().empty());
  if (lepton::gateway::framing_problem(head) || !r.done) return;
  check(head.body.size() <= kMaxBody);

  std::string upstream;
  lepton::gateway::write_upstream_request(head, head.target(), head.body, "10.0.0.1", upstream);
  Head again;
  lepton::gateway::RequestParser parser(again, kMaxBody);
  parser.header_limit(1 << 20);  // the gateway's own fields may take it past the client's limit
  boost::system::error_code ec;
  size_t used = 0;
  while (!ec && !parser.is_done() && used < upstream.size()) {
    size_t n = parser.put(boost::asio::buffer(upstream.data() + used, upstream.size() - used), ec);
    if (n == 0 && !ec) break;
    used += n;
  }
  check(!ec && parser.is_done() && used == upstream.size());
  check(!lepton::gateway::framing_problem(again));
  check(again.body == head.body);
  check(again.method_string() == head.method_string() && again.target() == head.target());
}

void fuzz_response(std::string_view raw) {
  Head head;
  lepton::gateway::ResponseParser parser(head);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  if (!parser.is_header_done()) return;
  check_head(head);
  std::string out;
  lepton::gateway::append_response_head(head, out);
  out += "Content-Length: 0\r\n\r\n";
  Head again;
  lepton::gateway::ResponseParser reparser(again);
  reparser.header_limit(1 << 20);
  ec = {};
  reparser.put(boost::asio::buffer(out), ec);
  check(!ec && reparser.is_header_done());
  check(again.status == head.status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view raw(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    fuzz_response(raw);
  } else {
    fuzz_request(raw);
  }
  return 0;
}
