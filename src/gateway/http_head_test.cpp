// The gateway's request heads on hostile input: what it would answer from the bytes alone (before
// routing), and what it would send upstream for what it accepts.
#include "gateway/http_head.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>
#include <string>

namespace lepton::gateway {
namespace {

namespace http = boost::beast::http;

constexpr uint64_t kMaxBody = 1 << 16;

// What a client connection does with `raw` before routing, as ProxySession does it: a head that
// cannot be read is answered with request_error_status (the body is not looked at); a head that
// is read must pass framing_problem before its body is; then the body. 0: the request would be
// routed; -1: it waits for more bytes.
int verdict(std::string_view raw, Head& head) {
  RequestRead r = read_request(raw, head, kMaxBody);
  const bool waits = r.error == http::error::need_more;
  if (!r.head_done) return waits ? -1 : request_error_status(r.error);
  if (framing_problem(head)) return 400;
  if (r.error && !waits) return request_error_status(r.error);
  return r.done ? 0 : -1;
}
int verdict(std::string_view raw) {
  Head head;
  return verdict(raw, head);
}

std::string post(std::string_view fields, std::string_view body = "") {
  return "POST /d/chat/x HTTP/1.1\r\nHost: localhost\r\n" + std::string(fields) + "\r\n" +
         std::string(body);
}

TEST(HttpHead, AnOrdinaryRequestIsReadWhole) {
  Head head;
  const std::string raw = post("Content-Length: 3\r\nX-A: b\r\n", "abc");
  RequestRead r = read_request(raw, head, kMaxBody);
  EXPECT_FALSE(r.error) << r.error.message();
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.used, raw.size());
  EXPECT_EQ(head.method, http::verb::post);
  EXPECT_EQ(head.method_string(), "POST");
  EXPECT_EQ(head.target(), "/d/chat/x");
  EXPECT_EQ(head.version, 11u);
  EXPECT_EQ(head[http::field::host], "localhost");
  ASSERT_EQ(head.fields.size(), 3u);
  EXPECT_EQ(head.name(head.fields[2]), "X-A");
  EXPECT_EQ(head.value(head.fields[2]), "b");
  EXPECT_EQ(head.body, "abc");
  EXPECT_EQ(framing_problem(head), std::nullopt);
}

TEST(HttpHead, AHeadIsReadAgainIntoTheSameStorage) {
  Head head;
  ASSERT_TRUE(
      read_request(post("X-Long: " + std::string(1000, 'v') + "\r\n"), head, kMaxBody).head_done);
  RequestRead r = read_request("GET /a HTTP/1.0\r\n\r\n", head, kMaxBody);
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.keep_alive);  // HTTP/1.0 without keep-alive
  EXPECT_EQ(head.target(), "/a");
  EXPECT_TRUE(head.fields.empty());
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head[http::field::host], "");
}

TEST(HttpHead, PipelinedRequestsAreReadOneAtATime) {
  Head head;
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestRead r = read_request(first + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", head, kMaxBody);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.used, first.size());
  EXPECT_EQ(head.target(), "/a");
}

TEST(HttpHead, AnUnfinishedHeadWaitsAndAConnectionThatEndsInOneIsJustClosed) {
  EXPECT_EQ(verdict("GET /a HTTP/1.1\r\nHost: x\r\n"), -1);
  EXPECT_EQ(verdict("GET /a HT"), -1);
  EXPECT_EQ(verdict(post("Content-Length: 10\r\n", "abc")), -1);
  // What the connection's read gives when the client ends there: nobody to answer.
  EXPECT_EQ(request_error_status(http::error::partial_message), 0);
  EXPECT_EQ(request_error_status(http::error::end_of_stream), 0);
  EXPECT_EQ(request_error_status(boost::asio::error::operation_aborted), 0);
  EXPECT_EQ(request_error_status(boost::asio::error::connection_reset), 0);
}

TEST(HttpHead, AnOversizeHeadIs431) {
  // One field past the limit, and many small ones.
  EXPECT_EQ(verdict(post("X-Big: " + std::string(kMaxRequestHeadBytes, 'a') + "\r\n")), 431);
  std::string many;
  for (int i = 0; many.size() <= kMaxRequestHeadBytes; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  EXPECT_EQ(verdict(post(many)), 431);
  // A long target counts too.
  EXPECT_EQ(verdict("GET /" + std::string(kMaxRequestHeadBytes, 'a') + " HTTP/1.1\r\n\r\n"), 431);
  // Just under the limit is fine.
  EXPECT_EQ(verdict(post("Content-Length: 0\r\nX-Big: " + std::string(30000, 'a') + "\r\n")), 0);
}

TEST(HttpHead, ABodyOverTheLimitIs413FromItsLengthOrAsItArrives) {
  EXPECT_EQ(verdict(post("Content-Length: " + std::to_string(kMaxBody + 1) + "\r\n")), 413);
  EXPECT_EQ(verdict(post("Content-Length: " + std::to_string(kMaxBody) + "\r\n",
                         std::string(kMaxBody, 'b'))),
            0);
  // Chunked: no length up front; the chunks add up past the limit.
  std::string chunks;
  for (int i = 0; i < 3; ++i) chunks += "8000\r\n" + std::string(0x8000, 'c') + "\r\n";
  EXPECT_EQ(verdict(post("Transfer-Encoding: chunked\r\n", chunks + "0\r\n\r\n")), 413);
}

TEST(HttpHead, ABadContentLengthIs400) {
  for (const char* length :
       {"abc", "-1", "1 2", "3, 4", "", "0x10", "+3", "3;", "1e3", "99999999999999999999999999"}) {
    EXPECT_EQ(verdict(post(std::string("Content-Length: ") + length + "\r\n", "abc")), 400)
        << "Content-Length: " << length;
  }
}

TEST(HttpHead, RepeatedOrConflictingFramingIs400) {
  for (const char* fields : {
           "Content-Length: 3\r\nContent-Length: 3\r\n",  // the same twice: beast takes it, we do
                                                          // not
           "Content-Length: 3\r\nContent-Length: 4\r\n",
           "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
           "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
           "Transfer-Encoding: chunked, chunked\r\n",
           "Transfer-Encoding: gzip\r\n",
           "Transfer-Encoding: gzip, chunked\r\n",
           "Transfer-Encoding: chunked, gzip\r\n",
           "Transfer-Encoding: \r\n",
           "Content-Length: 0\r\nTransfer-Encoding: identity\r\n",
           "Host: other\r\n",  // a second Host
           "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
       }) {
    EXPECT_EQ(verdict(post(fields, "3\r\nabc\r\n0\r\n\r\n")), 400) << fields;
  }
  Head head;
  ASSERT_TRUE(
      read_request(post("Content-Length: 3\r\nContent-Length: 3\r\n", "abc"), head, kMaxBody)
          .head_done);
  EXPECT_NE(framing_problem(head)->find("more than one"), std::string::npos);
}

TEST(HttpHead, ChunkedInAnyCaseIsTheOneCodingAccepted) {
  Head head;
  EXPECT_EQ(verdict(post("Transfer-Encoding: Chunked\r\n", "3\r\nabc\r\n0\r\n\r\n"), head), 0);
  EXPECT_EQ(head.body, "abc");
  EXPECT_EQ(verdict(post("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n")), 400);
}

TEST(HttpHead, AListOfEqualLengthsIsOneLengthAndGoesUpstreamAsOne) {
  Head head;
  ASSERT_EQ(verdict(post("Content-Length: 3, 3\r\n", "abc"), head), 0);
  EXPECT_EQ(head.body, "abc");
  std::string out;
  write_upstream_request(head, "/x", head.body, "10.0.0.1", out);
  EXPECT_EQ(out.find("3, 3"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\nContent-Length: 3\r\n\r\nabc"), std::string::npos) << out;
}

TEST(HttpHead, ObsFoldIsUnfoldedAndNeverForwarded) {
  Head head;
  ASSERT_EQ(verdict(post("Content-Length: 0\r\nX-A: one\r\n two\r\n\tthree\r\n"), head), 0);
  std::string_view value;
  for (const Head::Field& f : head.fields) {
    if (head.name(f) == "X-A") value = head.value(f);
  }
  EXPECT_EQ(value, "one two three");
  std::string out;
  write_upstream_request(head, "/x", head.body, "10.0.0.1", out);
  EXPECT_NE(out.find("\r\nX-A: one two three\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("\r\n "), std::string::npos) << out;
  EXPECT_EQ(out.find("\r\n\t"), std::string::npos) << out;
  // A fold cannot smuggle a second Host or a Content-Length in: it joins the field before it.
  ASSERT_EQ(verdict(post("Content-Length: 0\r\nX-B: a\r\n Host: evil\r\n"), head), 0);
  EXPECT_EQ(head[http::field::host], "localhost");
  // A head that starts with a fold (no field to continue) is malformed.
  EXPECT_EQ(verdict("GET / HTTP/1.1\r\n folded: x\r\n\r\n"), 400);
}

TEST(HttpHead, ControlBytesAreRefused) {
  using namespace std::string_literals;
  for (const std::string& raw : {
           post("X-A: a\0b\r\n"s),          // NUL in a value
           post("X-\0A: b\r\n"s),           // in a name
           "GET /a\0b HTTP/1.1\r\n\r\n"s,   // in the target
           "G\0T / HTTP/1.1\r\n\r\n"s,      // in the method
           post("X-A: a\rb\r\n"),           // a lone CR
           post("X-A: a\nX-B: b\r\n"),      // a bare LF inside the head
           "GET / HTTP/1.1\nHost: x\n\n"s,  // bare LF line endings
           post("X-A: a\x7f\r\n"),          // DEL
           post("X A: b\r\n"),              // a space in a name
           post("Host : x\r\n"),            // a space before the colon
           post(": b\r\n"),                 // no name
       }) {
    EXPECT_EQ(verdict(raw), 400) << testing::PrintToString(raw);
  }
  // Bytes >= 0x80 are obs-text: allowed in values, passed on as they are.
  Head head;
  EXPECT_EQ(verdict(post("Content-Length: 0\r\nX-A: caf\xc3\xa9\xff\r\n"), head), 0);
}

TEST(HttpHead, BadRequestLinesAre400) {
  for (const char* raw :
       {"GET\r\n\r\n", "GET / FTP/1.1\r\n\r\n", "GET / HTTP/1\r\n\r\n", " GET / HTTP/1.1\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1 \r\n\r\n"}) {
    EXPECT_EQ(verdict(raw), 400) << raw;
  }
}

TEST(HttpHead, StatusForEachReadError) {
  EXPECT_EQ(request_error_status(http::error::body_limit), 413);
  EXPECT_EQ(request_error_status(http::error::header_limit), 431);
  EXPECT_EQ(request_error_status(http::error::bad_method), 400);
  EXPECT_EQ(request_error_status(http::error::bad_content_length), 400);
  EXPECT_EQ(request_error_status(http::error::bad_transfer_encoding), 400);
}

TEST(HttpHead, TheUpstreamRequestLeavesOutHopByHopFieldsAndSaysWhoAsked) {
  Head head;
  ASSERT_EQ(verdict(post("Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
                         "Proxy-Connection: x\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\n"
                         "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n"
                         "X-Forwarded-For: 1.2.3.4\r\nAuthorization: Bearer t\r\n",
                         "3\r\nabc\r\n0\r\n\r\n"),
                    head),
            0);
  std::string out;
  write_upstream_request(head, "/v1/x?q=1", head.body, "10.0.0.1", out);
  EXPECT_EQ(out,
            "POST /v1/x?q=1 HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"
            "Authorization: Bearer t\r\nContent-Length: 3\r\n\r\nabc");
  // What goes upstream reads back as the same request, with nothing ambiguous in it.
  Head again;
  EXPECT_EQ(verdict(out, again), 0);
  EXPECT_EQ(again.body, "abc");
}

TEST(HttpHead, TheUpstreamRequestHasALengthWhenItsMethodHasABody) {
  Head head;
  std::string out;
  ASSERT_EQ(verdict("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", head), 0);
  write_upstream_request(head, "/a", head.body, "::1", out);
  EXPECT_EQ(out, "GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ::1\r\n\r\n");
  ASSERT_EQ(verdict("PUT /a HTTP/1.1\r\nHost: x\r\n\r\n", head), 0);
  write_upstream_request(head, "/a", head.body, "::1", out);
  EXPECT_EQ(out, "PUT /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ::1\r\nContent-Length: 0\r\n\r\n");
  // A rewritten body (include_usage) gets its own length.
  ASSERT_EQ(verdict(post("Content-Length: 2\r\n", "{}"), head), 0);
  write_upstream_request(head, "/a", "{\"x\":1}", "::1", out);
  EXPECT_NE(out.find("Content-Length: 7\r\n\r\n{\"x\":1}"), std::string::npos) << out;
}

TEST(HttpHead, TheResponseHeadKeepsEndToEndFieldsAndAStandardReason) {
  Head head;
  ResponseParser parser(head);
  boost::system::error_code ec;
  const std::string raw =
      "HTTP/1.1 404 \r\nConnection: keep-alive\r\nContent-Length: 2\r\nX-Id: a\r\n"
      "Keep-Alive: timeout=5\r\n\r\n";
  parser.put(boost::asio::buffer(raw), ec);
  ASSERT_TRUE(parser.is_header_done()) << ec.message();
  std::string out;
  append_response_head(head, out);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\nX-Id: a\r\n");
}

// Found by fuzz_gateway_head: "020" was written back as "20", a status line no client can read.
TEST(HttpHead, TheResponseStatusKeepsItsThreeDigits) {
  Head head;
  ResponseParser parser(head);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(std::string_view("HTTP/1.1 020 Odd\r\n\r\n")), ec);
  ASSERT_TRUE(parser.is_header_done()) << ec.message();
  EXPECT_EQ(head.status, 20u);
  std::string out;
  append_response_head(head, out);
  EXPECT_EQ(out, "HTTP/1.1 020 Odd\r\n");
}

TEST(HttpHead, HostNames) {
  EXPECT_EQ(host_name("Example.COM:8081"), "example.com");
  EXPECT_EQ(host_name("example.com."), "example.com");
  EXPECT_EQ(host_name("[::1]:80"), "::1");
  EXPECT_EQ(host_name("[::1"), "::1");
  EXPECT_EQ(host_name(""), "");
  EXPECT_EQ(host_name("["), "");
  EXPECT_TRUE(is_ip_literal("10.0.0.1"));
  EXPECT_TRUE(is_ip_literal("::1"));
  EXPECT_FALSE(is_ip_literal("chat.example.com"));
}

TEST(HttpHead, OnlyHostsThatCannotBeReboundAreAllowed) {
  const std::vector<std::string> allowed = {"*.Example.com", ".models.test."};
  for (const char* host : {"10.0.0.1", "::1", "localhost", "chat.localhost", "gpubox",
                           "example.com", "chat.example.com", "models.test", "a.models.test"}) {
    EXPECT_TRUE(host_allowed(host, allowed)) << host;
  }
  for (const char* host : {"attacker.net", "example.com.attacker.net", "badexample.com",
                           "localhost.attacker.net", "xmodels.test"}) {
    EXPECT_FALSE(host_allowed(host, allowed)) << host;
  }
  EXPECT_FALSE(host_allowed("a.b", {"", ".", "*."}));
}

}  // namespace
}  // namespace lepton::gateway
