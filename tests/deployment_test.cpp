// End-to-end: deployments through a real `lepton up` (server, scheduler, agent and gateway in one
// process), real `lepton-test-upstream` replicas started by the agent, and the CLI, all on
// 127.0.0.1.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/lepton_test.h"

namespace lepton::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kChat =
    R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})";

// `lepton up` with no GPUs, started before each test; replicas are lepton-test-upstream.
class Deployments : public LeptonTest {
 protected:
  Deployments() : LeptonTest({.up = true, .wait_timeout = 15s}) {}
  void SetUp() override {
    LeptonTest::SetUp();
    // Replicas run `lepton-test-upstream` by name: the agent's tasks inherit this PATH.
    put_first_on_path(fs::path(UPSTREAM_BINARY).parent_path().string());
    start();
  }

  // Writes a deployment spec; `extra` is more YAML. Tokens come 50 ms apart.
  std::string spec(const std::string& name, const std::string& extra, int token_ms = 50) {
    fs::path p = dir_ / (name + ".yaml");
    std::ofstream(p) << "kind: deployment\nname: " << name
                     << "\nresources: {cpus: 0.1, memory: 0.1}\n"
                        "run: exec lepton-test-upstream --port $PORT --id "
                     << upstream_tag() << " --ttft-ms 100 --token-ms " << token_ms
                     << " --tokens 4\nreadiness: {path: /healthz}\n"
                     << extra;
    return p.string();
  }

  json get(const std::string& name) {
    auto r = cli("deploy get " + name + " --json");
    if (r.exit_code != 0) return json::object();
    return json::parse(r.out, nullptr, false);
  }

  // The gateway's port, from the deployment's URL.
  int gateway_port(const std::string& name) {
    const std::string url = get(name).value("url", "");
    size_t colon = url.rfind(':');
    return colon == std::string::npos ? 0 : std::stoi(url.substr(colon + 1));
  }

  int ready(const std::string& name) { return get(name).value("ready_replicas", -1); }
};

TEST_F(Deployments, RoutesStreamsAndListsThroughTheGateway) {
  auto created = cli("deploy create -f " + spec("chat", "replicas: 2\n") + " --wait");
  ASSERT_EQ(created.exit_code, 0) << created.out << log();
  ASSERT_TRUE(wait_until([&] { return ready("chat") == 2; }, 20s)) << get("chat").dump(2);
  const int gw = gateway_port("chat");
  ASSERT_GT(gw, 0);

  RawResponse r = request(gw, "POST", "/d/chat/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.head << r.body;
  EXPECT_NE(r.body.find("\"usage\""), std::string::npos) << r.body;

  // Streaming passes through as server-sent events, token by token.
  r = request(gw, "POST", "/d/chat/v1/chat/completions",
              R"({"stream": true, "messages": [], "max_tokens": 4})");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("data: [DONE]"), std::string::npos) << r.body;
  EXPECT_GT(r.total_ms - r.first_body_ms, 100) << "the tokens came at once, not streamed";

  auto ls = cli("deploy ls --json");
  ASSERT_EQ(ls.exit_code, 0) << ls.out;
  json list = json::parse(ls.out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "chat");
  EXPECT_EQ(list[0]["ready_replicas"], 2);
  EXPECT_EQ(list[0]["desired_replicas"], 2);

  // Two replicas on distinct ports, both in the table `get` prints.
  json d = get("chat");
  std::set<std::string> addresses;
  for (const json& rep : d["replicas"]) addresses.insert(rep.value("address", ""));
  EXPECT_EQ(addresses.size(), 2u) << d.dump(2);
  auto text = cli("deploy get chat");
  EXPECT_NE(text.out.find("2 ready of 2 desired"), std::string::npos) << text.out;

  auto rm = cli("deploy rm chat");
  EXPECT_EQ(rm.exit_code, 0) << rm.out;
  EXPECT_TRUE(wait_until([&] { return request(gw, "GET", "/d/chat/healthz").status == 404; }, 10s));
}

TEST_F(Deployments, TokenAuthAndBadSpecs) {
  auto created = cli("deploy create -f " + spec("secret", "auth: token\n") + " --wait");
  ASSERT_EQ(created.exit_code, 0) << created.out << log();
  json d = get("secret");
  const std::string token = d.value("token", "");
  ASSERT_EQ(token.size(), 64u) << d.dump(2);
  const int gw = gateway_port("secret");
  RawResponse r = request(gw, "POST", "/d/secret/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 401) << r.head;
  EXPECT_TRUE(r.has_header("WWW-Authenticate: Bearer")) << r.head;
  r = request(gw, "POST", "/d/secret/v1/chat/completions", kChat, "127.0.0.1",
              "Authorization: Bearer " + token + "\r\n");
  EXPECT_EQ(r.status, 200) << r.head << r.body;

  // A bad spec names the field and where it is; nothing is created.
  auto bad = cli("deploy create -f " + spec("bad", "replicas: {min: 3, max: 1}\n"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("bad.yaml:"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("replicas: expected min <= max"), std::string::npos) << bad.out;
  auto twice = cli("deploy create -f " + spec("secret", ""));
  EXPECT_NE(twice.exit_code, 0);
  EXPECT_NE(twice.out.find("already exists"), std::string::npos) << twice.out;
  auto missing = cli("deploy get nope");
  EXPECT_NE(missing.out.find("no such deployment"), std::string::npos) << missing.out;
  auto ls = json::parse(cli("deploy ls --json").out);
  EXPECT_EQ(ls.size(), 1u);
}

TEST_F(Deployments, AFailedReplicaIsReplacedAndHeldRequestsWait) {
  auto created = cli("deploy create -f " + spec("chat", "") + " --wait");
  ASSERT_EQ(created.exit_code, 0) << created.out << log();
  const int gw = gateway_port("chat");
  const std::string first = get("chat")["replicas"][0].value("job", "");
  const std::string address = get("chat")["replicas"][0].value("address", "");
  ASSERT_FALSE(address.empty());
  const std::string port = address.substr(address.rfind(':') + 1);
  // The replica's process dies.
  run_command("pkill -KILL -f 'lepton-test-upstream --port " + port + " '");
  // A request sent now waits in the gateway for the replacement instead of failing.
  RawResponse r = request(gw, "POST", "/d/chat/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.head << r.body;
  json d = get("chat");
  ASSERT_EQ(d["replicas"].size(), 1u) << d.dump(2);
  EXPECT_NE(d["replicas"][0].value("job", ""), first) << d.dump(2);
  EXPECT_EQ(d.value("ready_replicas", 0), 1);
}

TEST_F(Deployments, ReplicasKeepServingAcrossAKillOfUp) {
  auto created = cli("deploy create -f " + spec("chat", "replicas: 2\n") + " --wait");
  ASSERT_EQ(created.exit_code, 0) << created.out << log();
  ASSERT_TRUE(wait_until([&] { return ready("chat") == 2; }, 20s)) << get("chat").dump(2);
  std::set<std::string> before;
  const json first = get("chat");
  for (const json& rep : first["replicas"]) before.insert(rep.value("job", ""));
  // `lepton up` dies; its replicas keep running, and the next start finds them and routes to
  // them again (the gateway comes back on a new port).
  restart();
  ASSERT_TRUE(wait_until([&] { return ready("chat") == 2; }, 20s)) << get("chat").dump(2) << log();
  std::set<std::string> after;
  const json second = get("chat");
  for (const json& rep : second["replicas"]) after.insert(rep.value("job", ""));
  EXPECT_EQ(after, before);
  RawResponse r = request(gateway_port("chat"), "POST", "/d/chat/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200) << r.head << r.body;
}

TEST_F(Deployments, RollingUpdateLosesNoRequest) {
  auto created = cli("deploy create -f " + spec("chat", "replicas: 2\n") + " --wait");
  ASSERT_EQ(created.exit_code, 0) << created.out << log();
  ASSERT_TRUE(wait_until([&] { return ready("chat") == 2; }, 20s)) << get("chat").dump(2);
  const int gw = gateway_port("chat");

  // Four clients send requests (each streams for about 300 ms) for the whole update.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::string> failures;
  std::mutex mu;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        RawResponse r = request(gw, "POST", "/d/chat/v1/chat/completions",
                                R"({"stream": true, "messages": [], "max_tokens": 4})");
        if (r.status == 200 && r.body.find("data: [DONE]") != std::string::npos) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard lock(mu);
          failures.push_back(std::to_string(r.status) + " " + r.body);
        }
      }
    });
  }
  std::this_thread::sleep_for(1s);
  auto updated = cli("deploy update chat -f " + spec("chat", "replicas: 2\nenvs: {VERSION: 2}\n"));
  EXPECT_EQ(updated.exit_code, 0) << updated.out;
  EXPECT_NE(updated.out.find("generation 2"), std::string::npos) << updated.out;
  const bool rolled = wait_until(
      [&] {
        json d = get("chat");
        if (d.value("ready_replicas", 0) != 2 || d["replicas"].size() != 2) return false;
        for (const json& rep : d["replicas"]) {
          if (rep.value("generation", 0) != 2) return false;
        }
        return true;
      },
      40s);
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(rolled) << get("chat").dump(2);
  EXPECT_EQ(failed.load(), 0) << (failures.empty() ? "" : failures.front());
  EXPECT_GT(ok.load(), 10);
}

TEST_F(Deployments, ScalesUpUnderLoadThenToZeroAndBack) {
  // Target 2 in flight per replica, 2 s windows, zero after 8 s with nothing in flight. Each
  // request streams 4 tokens 500 ms apart (about 2 s). No --wait: the load starts at once, and
  // the first requests wait in the gateway for the first replica.
  auto created = cli("deploy create -f " +
                     spec("chat",
                          "replicas: {min: 0, max: 3}\nautoscale: {target_in_flight: 2, window: 2, "
                          "panic_window: 1, scale_to_zero_after: 8}\n",
                          500));
  ASSERT_EQ(created.exit_code, 0) << created.out << log();
  const int gw = gateway_port("chat");

  // Six clients keep six requests in flight: 6 / 2 = 3 replicas.
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        RawResponse r = request(gw, "POST", "/d/chat/v1/completions",
                                R"({"stream": true, "prompt": "x", "max_tokens": 4})");
        if (r.status != 200) ++failed;
      }
    });
  }
  const bool scaled_up = wait_until([&] { return ready("chat") == 3; }, 40s);
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_TRUE(scaled_up) << get("chat").dump(2);
  EXPECT_EQ(failed.load(), 0);

  // No traffic: to zero replicas.
  ASSERT_TRUE(wait_until(
      [&] {
        json d = get("chat");
        return d.value("desired_replicas", -1) == 0 && d["replicas"].empty();
      },
      40s))
      << get("chat").dump(2);

  // The first request after zero waits for a replica to start and is served.
  RawResponse r =
      request(gw, "POST", "/d/chat/v1/completions", R"({"prompt": "x", "max_tokens": 1})");
  EXPECT_EQ(r.status, 200) << r.head << r.body;
  EXPECT_EQ(get("chat").value("ready_replicas", 0), 1);
}

}  // namespace
}  // namespace lepton::e2e
