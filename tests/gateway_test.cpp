// End-to-end: a real `lepton gateway` in front of two real `lepton-test-upstream` processes, all
// on 127.0.0.1, spoken to over raw sockets so the test sees when each byte arrives.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "tests/lepton_test.h"

namespace lepton::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// A `lepton gateway` (no server) in front of two lepton-test-upstream processes, "a" and "b".
class Gateway : public LeptonTest {
 protected:
  void SetUp() override {
    LeptonTest::SetUp();
    port_a_ = free_port();
    port_b_ = free_port();
    gw_port_ = free_port();
    // 300 ms to the first token, 100 ms per token: slow enough to see streaming happen.
    start_upstream("a", port_a_);
    start_upstream("b", port_b_);
    std::ofstream(dir_ / "routes.json") << json{
        {"two", {addr(port_a_), addr(port_b_)}},
        {"a", {addr(port_a_)}},
        {"b", {addr(port_b_)}},
        {"empty", json::array()}}.dump();
    start_process("gateway", {LEPTON_BINARY, "gateway", "--port", std::to_string(gw_port_),
                              "--routes", (dir_ / "routes.json").string(), "--threads", "2",
                              "--allowed-host", "models.example.com"});
    ASSERT_TRUE(
        wait_until([&] { return request(gw_port_, "GET", "/-/healthz").status == 200; }, 10s))
        << log("gateway");
    ASSERT_TRUE(wait_until([&] { return request(port_a_, "GET", "/healthz").status == 200; }, 10s));
    ASSERT_TRUE(wait_until([&] { return request(port_b_, "GET", "/healthz").status == 200; }, 10s));
  }

  static std::string addr(int port) { return "127.0.0.1:" + std::to_string(port); }

  void start_upstream(const std::string& id, int port) {
    start_process("upstream-" + id, {UPSTREAM_BINARY, "--port", std::to_string(port), "--id", id,
                                     "--ttft-ms", "300", "--token-ms", "100", "--tokens", "8"});
  }

  // One counter from /-/metrics, or -1.
  long metric(const std::string& name, const std::string& deployment) {
    std::string text = request(gw_port_, "GET", "/-/metrics").body;
    std::string key = name + "{deployment=\"" + deployment + "\"} ";
    size_t at = text.find(key);
    return at == std::string::npos ? -1 : std::stol(text.substr(at + key.size()));
  }

  int port_a_ = 0, port_b_ = 0, gw_port_ = 0;
};

TEST_F(Gateway, RoutesByPathAndHostHeader) {
  RawResponse r = request(gw_port_, "GET", "/d/a/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello\n");
  EXPECT_TRUE(r.has_header("x-upstream-id: a")) << r.head;

  r = request(gw_port_, "GET", "/hello", "", "b.models.example.com:8080");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.has_header("x-upstream-id: b")) << r.head;

  r = request(gw_port_, "GET", "/d/a/no-such-path?x=1");  // the rest of the path is forwarded
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(r.has_header("x-upstream-id: a"));

  r = request(gw_port_, "GET", "/d/nope/hello");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "not_found");
  EXPECT_NE(r.body.find("nope"), std::string::npos);

  r = request(gw_port_, "GET", "/d/empty/hello");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "unavailable");

  EXPECT_EQ(metric("lepton_gateway_requests_total", "a"), 2);
}

TEST_F(Gateway, BalancesOverReplicas) {
  std::set<std::string> seen;
  for (int i = 0; i < 30; ++i) {
    RawResponse r = request(gw_port_, "GET", "/d/two/hello");
    ASSERT_EQ(r.status, 200);
    seen.insert(r.has_header("x-upstream-id: a") ? "a" : "b");
  }
  EXPECT_EQ(seen.size(), 2u);
}

TEST_F(Gateway, StreamsTokensAsTheyArrive) {
  // 8 tokens: the first after 300 ms, the last after 1000 ms.
  RawResponse r = request(gw_port_, "POST", "/d/a/v1/chat/completions",
                          R"({"stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200) << r.head << r.body;
  EXPECT_TRUE(r.has_header("Content-Type: text/event-stream")) << r.head;
  EXPECT_GE(r.total_ms, 950);
  EXPECT_GT(r.first_body_ms, 0);
  EXPECT_LT(r.first_body_ms, r.total_ms - 400) << "the first chunk waited for the whole stream";
  size_t chunks = 0;
  for (size_t at = r.body.find("\"chat.completion.chunk\""); at != std::string::npos;
       at = r.body.find("\"chat.completion.chunk\"", at + 1)) {
    ++chunks;
  }
  EXPECT_EQ(chunks, 8u);
  EXPECT_NE(r.body.find("data: [DONE]\n\n"), std::string::npos);
}

TEST_F(Gateway, CountsTokensAndStripsUsageTheClientDidNotAskFor) {
  // Not streamed: usage is in the JSON answer.
  RawResponse r = request(gw_port_, "POST", "/d/b/v1/completions",
                          R"({"prompt":"one two three four","max_tokens":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["usage"]["completion_tokens"], 3);
  EXPECT_EQ(metric("lepton_gateway_prompt_tokens_total", "b"), 4);
  EXPECT_EQ(metric("lepton_gateway_completion_tokens_total", "b"), 3);

  // Streamed without include_usage: the gateway asks for usage and strips it.
  r = request(gw_port_, "POST", "/d/b/v1/chat/completions",
              R"({"stream":true,"max_tokens":2,"messages":[{"role":"user","content":"a b"}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("\"usage\":{"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("data: [DONE]\n\n"), std::string::npos);
  EXPECT_EQ(metric("lepton_gateway_prompt_tokens_total", "b"), 6);
  EXPECT_EQ(metric("lepton_gateway_completion_tokens_total", "b"), 5);

  // Streamed with include_usage: the client gets its usage chunk, and it is counted once.
  r = request(gw_port_, "POST", "/d/b/v1/chat/completions",
              R"({"stream":true,"max_tokens":2,"stream_options":{"include_usage":true},)"
              R"("messages":[{"role":"user","content":"a"}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"usage\":{\"completion_tokens\":2"), std::string::npos) << r.body;
  EXPECT_EQ(metric("lepton_gateway_completion_tokens_total", "b"), 7);

  // A malformed body passes through untouched; the upstream answers it.
  r = request(gw_port_, "POST", "/d/b/v1/chat/completions", R"({"stream":true,)");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(r.has_header("x-upstream-id: b"));
}

TEST_F(Gateway, RetriesOnAnotherReplicaBeforeTheFirstByte) {
  process("upstream-a").kill(SIGKILL);
  for (int i = 0; i < 10; ++i) {
    RawResponse r = request(gw_port_, "GET", "/d/two/hello");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(r.has_header("x-upstream-id: b"));
  }
  EXPECT_GE(metric("lepton_gateway_retries_total", "two"), 1);
  EXPECT_EQ(metric("lepton_gateway_errors_total", "two"), 0);

  RawResponse r = request(gw_port_, "GET", "/d/a/hello");
  EXPECT_EQ(r.status, 502);
  EXPECT_NE(json::parse(r.body)["error"]["message"].get<std::string>().find("refused"),
            std::string::npos)
      << r.body;
}

TEST_F(Gateway, ClientThatLeavesCancelsTheUpstream) {
  int fd = connect_to(gw_port_);
  ASSERT_GE(fd, 0);
  std::string body = R"({"stream":true,"max_tokens":100})";
  std::string raw = "POST /d/a/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_GT(send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), 0);
  char buf[4096];
  std::string got;
  while (got.find("tok0") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.append(buf, n);
  }
  close(fd);
  // 100 tokens would take 10 s; the upstream must see the cut long before.
  EXPECT_TRUE(wait_until(
      [&] { return log("upstream-a").find("cancelled after") != std::string::npos; }, 3s))
      << log("upstream-a");
  EXPECT_TRUE(wait_until([&] { return metric("lepton_gateway_in_flight", "a") == 0; }, 3s));
}

TEST_F(Gateway, MalformedRequestsGet400AndTheGatewayStaysUp) {
  RawResponse r = send_raw(gw_port_, "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(r.status, 400);
  r = send_raw(gw_port_, "GET /d/a/hello HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n");
  EXPECT_EQ(r.status, 400);
  r = send_raw(gw_port_, std::string("GET /d/a/hello HTTP/1.1\r\nHost: ") +
                             std::string(40000, 'x') + "\r\n\r\n");
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(request(gw_port_, "GET", "/d/a/hello").status, 200);
}

TEST(GatewayFlags, BadRoutesFileNamesTheField) {
  fs::path file = fs::temp_directory_path() / ("lepton-bad-routes-" + std::to_string(getpid()));
  std::ofstream(file) << R"({"chat": ["127.0.0.1:9001", "nonsense"]})";
  CommandResult r =
      run_command(std::string(LEPTON_BINARY) + " gateway --port 0 --routes " + file.string());
  fs::remove(file);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("routes.chat[1]: expected host:port"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace lepton::e2e
