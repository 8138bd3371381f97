// The gateway in this process, for what needs its options: how long a request waits for a
// replica of a holding deployment, and how many may wait.
#include "gateway/gateway.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

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

}  // namespace
}  // namespace lepton::gateway
