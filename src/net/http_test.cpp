#include "net/http.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>
#include <thread>

namespace lepton::net {
namespace {

std::unique_ptr<HttpServer> echo_server(size_t max_body = 1024) {
  auto server = HttpServer::start(
      {.port = 0, .io_threads = 2, .max_body_bytes = max_body},
      [](HttpRequest req, Responder respond) {
        if (req.path == "/later") {
          // Answer from another thread, as the control loop does.
          std::thread([respond] { respond({.status = 202, .body = "later"}); }).detach();
          return;
        }
        if (req.path == "/missing") {
          respond(error_response(Status::not_found("job j-9: no such job")));
          return;
        }
        nlohmann::json j = {{"method", req.method},
                            {"path", req.path},
                            {"body", req.body},
                            {"q", req.query},
                            {"auth", req.header("authorization")}};
        respond({.body = j.dump()});
      });
  EXPECT_TRUE(server.is_ok()) << server.status().message();
  return std::move(server.value());
}

TEST(Http, RoundTripsRequestsAndQueries) {
  auto server = echo_server();
  Url url{"127.0.0.1", server->port()};
  auto r = http_request(url, "POST", "/api/v1/jobs?x=1&name=a%20b", R"({"a":1})",
                        {.bearer_token = "secret"});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["path"], "/api/v1/jobs");
  EXPECT_EQ(j["body"], R"({"a":1})");
  EXPECT_EQ(j["q"]["name"], "a b");
  EXPECT_EQ(j["auth"], "Bearer secret");
  auto later = http_request(url, "GET", "/later", "", {});
  ASSERT_TRUE(later.is_ok());
  EXPECT_EQ(later->status, 202);
  EXPECT_EQ(later->body, "later");
}

TEST(Http, ErrorsMapToStatusAndJson) {
  auto server = echo_server();
  auto r = http_request({"127.0.0.1", server->port()}, "GET", "/missing", "", {});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->status, 404);
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], "not_found");
  EXPECT_EQ(j["error"]["message"], "job j-9: no such job");
  EXPECT_FALSE(j["error"].contains("field"));  // "job j-9" is not a field name
  auto field = error_response(Status::invalid_argument("resources.cpus: expected a number"));
  EXPECT_EQ(field.status, 400);
  EXPECT_EQ(nlohmann::json::parse(field.body)["error"]["field"], "resources.cpus");
}

TEST(Http, RejectsOversizedBodies) {
  auto server = echo_server(100);
  auto r = http_request({"127.0.0.1", server->port()}, "POST", "/x", std::string(5000, 'a'), {});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->status, 413);
}

TEST(Http, MalformedRequestsGetAnErrorNotACrash) {
  auto server = echo_server();
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), server->port()});
  std::string garbage = "NOT A REQUEST\r\n\r\n";
  asio::write(s, asio::buffer(garbage));
  std::string reply(512, '\0');
  boost::system::error_code ec;
  size_t n = s.read_some(asio::buffer(reply), ec);
  reply.resize(n);
  EXPECT_NE(reply.find("400"), std::string::npos) << reply;
  // The server still serves others.
  EXPECT_TRUE(http_request({"127.0.0.1", server->port()}, "GET", "/ok", "", {}).is_ok());
}

TEST(Http, UnreachableServerIsUnavailable) {
  auto server = echo_server();
  uint16_t port = server->port();
  server->stop();
  auto r = http_request({"127.0.0.1", port}, "GET", "/", "", {.timeout = std::chrono::seconds(2)});
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("cannot reach the server at http://127.0.0.1:"),
            std::string::npos);
}

TEST(Url, ParsesAndRejects) {
  auto u = Url::parse("http://127.0.0.1:8080/");
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(Url::parse("http://localhost")->port, 80);
  for (const char* bad : {"127.0.0.1:80", "https://x:1", "http://:80", "http://x:0",
                          "http://x:99999", "http://x:8a"}) {
    EXPECT_FALSE(Url::parse(bad).is_ok()) << bad;
  }
  EXPECT_EQ(url_encode("a b/c"), "a%20b%2Fc");
}

}  // namespace
}  // namespace lepton::net
