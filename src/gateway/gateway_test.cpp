// The gateway in this process, for what needs its options: how long a request waits for a
// replica of a holding deployment, and how many may wait.
#include "gateway/gateway.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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
      c.res.set("x-target", c.req.target());
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

// Sends `raw` on a fresh connection and reads until the gateway closes it or `limit` passes.
struct Raw {
  std::string reply;
  bool closed = false;  // the gateway closed the connection within the limit
};
Raw send_raw(uint16_t port, std::string_view raw,
             std::chrono::milliseconds limit = std::chrono::milliseconds(3000)) {
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(s, asio::buffer(raw));
  s.non_blocking(true);
  Raw out;
  std::array<char, 4096> buf{};
  const auto until = std::chrono::steady_clock::now() + limit;
  for (auto now = std::chrono::steady_clock::now(); now < until;
       now = std::chrono::steady_clock::now()) {
    boost::system::error_code ec;
    size_t n = s.read_some(asio::buffer(buf), ec);
    out.reply.append(buf.data(), n);
    if (ec == asio::error::would_block) {
      pollfd p{s.native_handle(), POLLIN, 0};
      ::poll(&p, 1,
             static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count()));
      continue;
    }
    if (ec) {
      out.closed = true;
      break;
    }
  }
  return out;
}

std::string status_of(const Raw& r) { return r.reply.substr(0, 12); }

std::shared_ptr<Router> one_deployment(const std::string& address, const std::string& token = "") {
  auto router = std::make_shared<Router>();
  RouteSpec spec;
  spec["chat"].replicas = {address};
  spec["chat"].token = token;
  EXPECT_TRUE(router->update(spec).is_ok());
  return router;
}

TEST(GatewaySafety, BadUtf8InANameIsA404NotACrash) {
  auto gateway = start(std::make_shared<Router>(), GatewayOptions{});
  ASSERT_NE(gateway, nullptr);
  for (std::string target : {"/d/%ff/x", "/d/\xff\xfe/x"}) {
    Raw r = send_raw(gateway->port(), "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     std::chrono::milliseconds(500));
    EXPECT_EQ(status_of(r), "HTTP/1.1 404") << r.reply;
    EXPECT_NE(r.reply.find("\xEF\xBF\xBD"), std::string::npos) << r.reply;
  }
  EXPECT_EQ(get(gateway->port(), "/-/healthz").result_int(), 200);
  gateway->stop();
}

TEST(GatewaySafety, TheNameIsDecodedAndTheRestForwardedAsSent) {
  TestUpstream upstream(/*answer=*/true);
  auto gateway = start(one_deployment(upstream.address()), GatewayOptions{});
  ASSERT_NE(gateway, nullptr);
  auto res = get(gateway->port(), "/d/ch%61t/a%2Fb?q=%20");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res["x-target"], "/a%2Fb?q=%20");
  gateway->stop();
}

TEST(GatewaySafety, OnlyHostsThatCannotBeReboundAreAnswered) {
  TestUpstream upstream(/*answer=*/true);
  GatewayOptions options;
  options.allowed_hosts = {"example.com"};
  auto gateway = start(one_deployment(upstream.address()), options);
  ASSERT_NE(gateway, nullptr);
  auto ask = [&](const std::string& target, const std::string& host) {
    return send_raw(gateway->port(), "GET " + target + " HTTP/1.1\r\nHost: " + host +
                                         "\r\nConnection: close\r\n\r\n");
  };
  Raw evil = ask("/d/chat/x", "attacker.net:8081");
  EXPECT_EQ(status_of(evil), "HTTP/1.1 421") << evil.reply;
  EXPECT_NE(evil.reply.find("host 'attacker.net'"), std::string::npos) << evil.reply;
  EXPECT_EQ(status_of(ask("/d/chat/x", "example.com.attacker.net")), "HTTP/1.1 421");
  for (const char* host : {"127.0.0.1:1", "[::1]:1", "localhost", "LOCALHOST:1", "gpubox",
                           "chat.localhost", "example.com", "a.example.com"}) {
    EXPECT_EQ(status_of(ask("/d/chat/x", host)), "HTTP/1.1 200") << host;
  }
  // Routing by Host under an allowed domain.
  Raw by_host = ask("/x", "chat.example.com");
  EXPECT_EQ(status_of(by_host), "HTTP/1.1 200") << by_host.reply;
  EXPECT_NE(by_host.reply.find("x-target: /x"), std::string::npos) << by_host.reply;
  gateway->stop();
}

TEST(GatewaySafety, MetricsNeedTheirToken) {
  GatewayOptions options;
  options.metrics_token = "m-secret";
  auto gateway = start(std::make_shared<Router>(), options);
  ASSERT_NE(gateway, nullptr);
  Raw none = send_raw(gateway->port(),
                      "GET /-/metrics HTTP/1.1\r\nHost: localhost\r\n"
                      "Connection: close\r\n\r\n");
  EXPECT_EQ(status_of(none), "HTTP/1.1 401") << none.reply;
  Raw wrong = send_raw(gateway->port(),
                       "GET /-/metrics HTTP/1.1\r\nHost: localhost\r\n"
                       "Authorization: Bearer m-secreT\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(wrong), "HTTP/1.1 401") << wrong.reply;
  Raw right = send_raw(gateway->port(),
                       "GET /-/metrics HTTP/1.1\r\nHost: localhost\r\n"
                       "Authorization: Bearer m-secret\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(status_of(right), "HTTP/1.1 200") << right.reply;
  gateway->stop();
}

TEST(GatewaySafety, ADeploymentTokenIsCheckedBeforeTheBodyIsRead) {
  TestUpstream upstream(/*answer=*/true);
  auto gateway = start(one_deployment(upstream.address(), "t"), GatewayOptions{});
  ASSERT_NE(gateway, nullptr);
  // 4 MB announced, none sent: the answer must not wait for it.
  Raw r = send_raw(gateway->port(),
                   "POST /d/chat/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000000\r\n\r\n");
  EXPECT_EQ(status_of(r), "HTTP/1.1 401") << r.reply;
  EXPECT_TRUE(r.closed);
  gateway->stop();
}

TEST(GatewaySafety, AmbiguousFramingAndRepeatedHeadersAre400) {
  TestUpstream upstream(/*answer=*/true);
  auto gateway = start(one_deployment(upstream.address()), GatewayOptions{});
  ASSERT_NE(gateway, nullptr);
  for (const char* head : {
           "Transfer-Encoding: gzip\r\nContent-Length: 3\r\n",
           "Transfer-Encoding: gzip\r\n",
           "Transfer-Encoding: chunked, gzip\r\n",
           "Content-Length: 3\r\nContent-Length: 3\r\n",
           "Host: other\r\n",
           "Authorization: Bearer a\r\nAuthorization: Bearer b\r\nContent-Length: 3\r\n",
       }) {
    Raw r =
        send_raw(gateway->port(),
                 std::string("POST /d/chat/x HTTP/1.1\r\nHost: localhost\r\n") + head + "\r\nabc",
                 std::chrono::milliseconds(300));
    EXPECT_EQ(status_of(r), "HTTP/1.1 400") << head << "\n--\n" << r.reply;
  }
  gateway->stop();
}

TEST(GatewaySafety, ASlowHeadIsCutOffAtTheHeaderDeadline) {
  GatewayOptions options;
  options.header_timeout = std::chrono::milliseconds(200);
  auto gateway = start(std::make_shared<Router>(), options);
  ASSERT_NE(gateway, nullptr);
  Raw r = send_raw(gateway->port(), "GET /-/healthz HTTP/1.1\r\nHost: localhost\r\n");
  EXPECT_TRUE(r.closed);
  gateway->stop();
}

TEST(GatewaySafety, AtTheCapTheLongestIdleConnectionMakesRoomNotABusyOne) {
  TestUpstream silent(/*answer=*/false);
  GatewayOptions options;
  options.max_connections = 2;
  options.first_byte_timeout = std::chrono::milliseconds(1000);
  auto router = one_deployment(silent.address());
  auto gateway = start(router, options);
  ASSERT_NE(gateway, nullptr);
  asio::io_context ioc;
  const asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), gateway->port());
  beast::tcp_stream busy(ioc);
  busy.connect(at);
  std::string request = "GET /d/chat/x HTTP/1.1\r\nHost: localhost\r\n\r\n";
  asio::write(busy, asio::buffer(request));
  // In flight once the upstream holds it.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (router->snapshot()->find("chat")->stats->in_flight.load() == 0 &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  asio::ip::tcp::socket idle(ioc);
  idle.connect(at);
  asio::ip::tcp::socket newer(ioc);
  newer.connect(at);  // the third: `idle` is closed for it
  idle.non_blocking(false);
  timeval limit{5, 0};
  setsockopt(idle.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::array<char, 16> buf{};
  boost::system::error_code ec;
  idle.read_some(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  // The busy one still gets its answer (504 from the silent upstream), not a cut connection.
  busy.expires_after(std::chrono::seconds(10));
  beast::flat_buffer b;
  http::response<http::string_body> res;
  http::read(busy, b, res);
  EXPECT_EQ(res.result_int(), 504);
  gateway->stop();
}

// `count` connections to 127.0.0.1:port that never send a byte, held by a child process (as
// they would be by other clients: in this process they would share the gateway's descriptor
// limit) until this is destroyed.
class IdleConnections {
 public:
  IdleConnections(uint16_t port, int count) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ready[2];
    if (pipe(ready) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      // Only system calls from here: the parent has threads.
      alarm(60);  // never outlives a test that forgot it
      rlimit l{};
      getrlimit(RLIMIT_NOFILE, &l);
      l.rlim_cur = l.rlim_max;
      setrlimit(RLIMIT_NOFILE, &l);
      int made = 0;
      for (; made < count; ++made) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) break;
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
            errno != EINPROGRESS) {
          break;
        }
      }
      char done = made == count ? 1 : 0;
      (void)!write(ready[1], &done, 1);
      pause();
      _exit(0);
    }
    close(ready[1]);
    char done = 0;
    ok_ = pid_ > 0 && read(ready[0], &done, 1) == 1 && done == 1;
    close(ready[0]);
  }
  ~IdleConnections() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  IdleConnections(const IdleConnections&) = delete;
  IdleConnections& operator=(const IdleConnections&) = delete;
  bool ok() const { return ok_; }

 private:
  pid_t pid_ = -1;
  bool ok_ = false;
};

TEST(GatewaySafety, HealthzIsAnsweredWith3000IdleConnectionsOpen) {
  rlimit saved{};
  getrlimit(RLIMIT_NOFILE, &saved);
  if (saved.rlim_max < 3200) GTEST_SKIP() << "the descriptor limit is too low to hold 3000";
  // As under `ulimit -n 1024`: without a cap the gateway runs out of descriptors.
  rlimit low = saved;
  low.rlim_cur = std::min<rlim_t>(1024, saved.rlim_max);
  setrlimit(RLIMIT_NOFILE, &low);
  auto gateway = start(std::make_shared<Router>(), GatewayOptions{});
  ASSERT_NE(gateway, nullptr);
  {
    IdleConnections idle(gateway->port(), 3000);
    EXPECT_TRUE(idle.ok());
    const auto begin = std::chrono::steady_clock::now();
    EXPECT_EQ(get(gateway->port(), "/-/healthz").result_int(), 200);
    EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(3));
  }
  gateway->stop();
  setrlimit(RLIMIT_NOFILE, &saved);
}

}  // namespace
}  // namespace lepton::gateway
