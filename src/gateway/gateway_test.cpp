// The gateway in this process, for what needs its options: how long a request waits for a
// replica of a holding deployment, and how many may wait.
#include "gateway/gateway.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace lepton::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// One GET to 127.0.0.1:port, answered in full.
http::response<http::string_body> get(uint16_t port, const std::string& target) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  stream.expires_after(std::chrono::seconds(10));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  return res;
}

// An upstream on 127.0.0.1 that answers every request with 200 "ok" (keeping the connection), or
// one that accepts connections and never answers.
class TestUpstream {
 public:
  explicit TestUpstream(bool answer)
      : answer_(answer),
        acceptor_(ioc_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TestUpstream() {
    ioc_.stop();
    thread_.join();
  }
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;
  std::string address() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }

 private:
  struct Connection {
    explicit Connection(asio::ip::tcp::socket s) : socket(std::move(s)) {}
    asio::ip::tcp::socket socket;
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      connections_.push_back(std::make_unique<Connection>(std::move(s)));
      if (answer_) serve(*connections_.back());
      accept();
    });
  }

  void serve(Connection& c) {
    c.req = {};
    http::async_read(c.socket, c.buf, c.req, [this, &c](boost::system::error_code ec, size_t) {
      if (ec) return;
      c.res = {http::status::ok, 11};
      c.res.body() = "ok";
      c.res.prepare_payload();
      http::async_write(c.socket, c.res, [this, &c](boost::system::error_code e, size_t) {
        if (!e) serve(c);
      });
    });
  }

  bool answer_;
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::thread thread_;
};

std::unique_ptr<Gateway> start(std::shared_ptr<Router> router, GatewayOptions options) {
  options.address = "127.0.0.1";
  options.port = 0;
  options.io_threads = 1;
  auto g = Gateway::start(options, std::move(router));
  EXPECT_TRUE(g.is_ok()) << g.status().message();
  return g.is_ok() ? std::move(*g) : nullptr;
}

TEST(GatewayHold, ARequestWaitsForAReplicaThenGets503WithRetryAfter) {
  auto router = std::make_shared<Router>();
  RouteSpec spec;
  spec["chat"].hold_when_empty = true;  // no replica yet
  ASSERT_TRUE(router->update(spec).is_ok());
  GatewayOptions options;
  options.hold_for = std::chrono::milliseconds(300);
  auto gateway = start(router, options);
  ASSERT_NE(gateway, nullptr);
  const auto begin = std::chrono::steady_clock::now();
  auto res = get(gateway->port(), "/d/chat/hello");
  const auto waited = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res[http::field::retry_after], "5");
  EXPECT_GE(waited, std::chrono::milliseconds(300)) << "answered without waiting";
  EXPECT_NE(res.body().find("no ready replica after"), std::string::npos) << res.body();
  // Without holding, no replica is 503 at once, with no Retry-After.
  spec["chat"].hold_when_empty = false;
  ASSERT_TRUE(router->update(spec).is_ok());
  res = get(gateway->port(), "/d/chat/hello");
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res.count(http::field::retry_after), 0u);
  gateway->stop();
}

TEST(GatewayHold, PastMaxHeldARequestIsRefusedAtOnce) {
  auto router = std::make_shared<Router>();
  RouteSpec spec;
  spec["chat"].hold_when_empty = true;
  ASSERT_TRUE(router->update(spec).is_ok());
  GatewayOptions options;
  options.hold_for = std::chrono::milliseconds(5000);
  options.max_held = 0;
  auto gateway = start(router, options);
  ASSERT_NE(gateway, nullptr);
  const auto begin = std::chrono::steady_clock::now();
  auto res = get(gateway->port(), "/d/chat/hello");
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(4000));
  EXPECT_NE(res.body().find("requests already waiting"), std::string::npos) << res.body();
  EXPECT_EQ(router->snapshot()->find("chat")->stats->held.load(), 0);
  gateway->stop();
}

TEST(GatewayTimeouts, AnUpstreamThatSendsNothingGets504) {
  TestUpstream upstream(/*answer=*/false);
  auto router = std::make_shared<Router>();
  RouteSpec spec;
  spec["chat"].replicas = {upstream.address()};
  ASSERT_TRUE(router->update(spec).is_ok());
  GatewayOptions options;
  options.first_byte_timeout = std::chrono::milliseconds(200);
  auto gateway = start(router, options);
  ASSERT_NE(gateway, nullptr);
  auto res = get(gateway->port(), "/d/chat/hello");
  EXPECT_EQ(res.result_int(), 504);
  EXPECT_NE(res.body().find("sent no response within 200 ms"), std::string::npos) << res.body();
  EXPECT_EQ(router->snapshot()->find("chat")->stats->in_flight.load(), 0);
  gateway->stop();
}

TEST(GatewayKeepAlive, PipelinedRequestsAreAnsweredInOrderOnOneConnection) {
  TestUpstream upstream(/*answer=*/true);
  auto router = std::make_shared<Router>();
  RouteSpec spec;
  spec["chat"].replicas = {upstream.address()};
  ASSERT_TRUE(router->update(spec).is_ok());
  auto gateway = start(router, GatewayOptions{});
  ASSERT_NE(gateway, nullptr);
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), gateway->port()));
  stream.expires_after(std::chrono::seconds(10));
  // Three requests in one write: an upstream one, the gateway's own, an upstream one.
  std::string three =
      "GET /d/chat/a HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /d/chat/b HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(stream, asio::buffer(three));
  beast::flat_buffer buf;
  for (const char* body : {"ok", "ok\n", "ok"}) {
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), body);
    EXPECT_TRUE(res.keep_alive());
  }
  // And one more after a pause, on the same connection.
  asio::write(stream, asio::buffer(std::string("GET /d/chat/c HTTP/1.1\r\nHost: x\r\n\r\n")));
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  EXPECT_EQ(res.body(), "ok");
  EXPECT_EQ(router->snapshot()->find("chat")->stats->requests.load(), 3u);
  gateway->stop();
}

}  // namespace
}  // namespace lepton::gateway
