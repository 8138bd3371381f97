#include "server/server.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "net/http.h"
#include "server/api_routes.h"
#include "server/openapi.h"

namespace lepton::server {
namespace {

namespace fs = std::filesystem;

class ServerTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lepton-server-test-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    ServerOptions o;
    o.data_dir = dir_.string();
    o.port = 0;
    auto s = Server::start(o);
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    server_ = std::move(*s);
    url_ = net::Url::parse(server_->url()).value();
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  net::HttpResponse call(const std::string& method, const std::string& target,
                         const std::string& body = "", bool auth = true) {
    auto r = net::http_request(url_, method, target, body,
                               {.bearer_token = auth ? server_->token() : ""});
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? *r : net::HttpResponse{};
  }

  fs::path dir_;
  std::unique_ptr<Server> server_;
  net::Url url_;
};

// Runs `script` with /bin/sh in `dir`, with PATH = dir and `env` added; returns its exit code.
int run_script(const fs::path& dir, const std::string& script, const std::string& env) {
  const fs::path file = dir / "bootstrap.sh";
  std::ofstream(file) << script;
  const std::string cmd = "cd " + dir.string() + " && env -i PATH=" + dir.string() +
                          ":/usr/bin:/bin " + env + " /bin/sh " + file.string();
  return std::system(cmd.c_str());
}

TEST(BootstrapScript, StartsTheAgentJoinedUnderTheMachinesName) {
  const fs::path dir = fs::temp_directory_path() / ("lepton-bootstrap-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A stand-in agent that records how it was started.
  const fs::path fake = dir / "fake-lepton";
  std::ofstream(fake) << "#!/bin/sh\necho \"$LEPTON_TOKEN $*\" > " << (dir / "args").string()
                      << "\n";
  fs::permissions(fake, fs::perms::owner_all);
  auto args = [&] {
    std::ifstream in(dir / "args");
    std::string line;
    std::getline(in, line);
    fs::remove(dir / "args");
    return line;
  };
  // An emulated machine: this machine's binary, the declared resources, the instance's folder.
  std::string script = bootstrap_script("http://10.0.0.5:8080", "t0k'en", fake.string());
  ASSERT_EQ(run_script(dir, script,
                       "LEPTON_INSTANCE_ID=sim-aws-1 LEPTON_INSTANCE_DIR=/i LEPTON_SIM_GPUS=A100:1 "
                       "LEPTON_SIM_CPUS=8 LEPTON_SIM_MEMORY_GIB=32"),
            0);
  EXPECT_EQ(args(),
            "t0k'en agent --server http://10.0.0.5:8080 --name sim-aws-1 --gpus A100:1 --cpus 8 "
            "--memory 32 --work-dir /i/agent");
  // A real machine has no binary at the server's path: `lepton` from its PATH, which discovers
  // the machine's own resources.
  fs::rename(fake, dir / "lepton");
  script = bootstrap_script("http://10.0.0.5:8080", "tok", (dir / "gone").string());
  ASSERT_EQ(run_script(dir, script, "LEPTON_INSTANCE_ID=i-0abc HOME=/home/u"), 0);
  EXPECT_EQ(
      args(),
      "tok agent --server http://10.0.0.5:8080 --name i-0abc --work-dir /home/u/.lepton/agent");
  fs::remove_all(dir);
}

TEST_F(ServerTest, OpenEndpoints) {
  EXPECT_EQ(call("GET", "/healthz", "", false).body, "ok\n");
  // The console: its page and scripts need no token (its API calls do).
  auto root = call("GET", "/", "", false);
  EXPECT_EQ(root.status, 200);
  EXPECT_NE(root.body.find(R"(<script type="module" src="/console.js">)"), std::string::npos);
  for (const char* path : {"/console.js", "/render.js", "/console.css", "/index.html"}) {
    auto asset = call("GET", path, "", false);
    EXPECT_EQ(asset.status, 200) << path;
    EXPECT_GT(asset.body.size(), 500u) << path;
  }
  EXPECT_NE(call("GET", "/render.js", "", false).body.find("export function jobs"),
            std::string::npos);
  EXPECT_EQ(root.headers["Content-Security-Policy"], "default-src 'self'; frame-ancestors 'none'");
  EXPECT_EQ(root.headers["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(root.headers["Cache-Control"], "no-cache");
  EXPECT_EQ(root.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(call("GET", "/nothing.js", "", false).status, 404);
  EXPECT_EQ(call("POST", "/console.js", "", false).status, 404);
  // Metrics name nodes and jobs: they need the token.
  EXPECT_EQ(call("GET", "/metrics", "", false).status, 401);
  auto metrics = call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("lepton_jobs{state=\"PENDING\"} 0"), std::string::npos);
  auto openapi = nlohmann::json::parse(call("GET", "/api/v1/openapi.json", "", false).body);
  EXPECT_EQ(openapi["openapi"], "3.0.3");
  EXPECT_TRUE(openapi["paths"].contains("/api/v1/jobs"));
  for (const char* path : {"/api/v1/plan", "/api/v1/instances", "/api/v1/cost"}) {
    EXPECT_TRUE(openapi["paths"].contains(path)) << path;
  }
  // The data dir and everything in it are private.
  for (const char* name : {"token", "", "logs", "lepton.db", "lepton.db-wal", "store-id"}) {
    auto perms = fs::status(dir_ / name).permissions();
    EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none) << name;
  }
}

TEST_F(ServerTest, EncodedSlashesAndTokensInTheWrongPlaceRouteNowhere) {
  auto created = call("POST", "/api/v1/jobs",
                      R"({"name":"a","resources":{"cpus":1,"memory":1},"run":"true"})");
  ASSERT_EQ(created.status, 201);
  // "jobs%2Fj-1%2Fcancel" is one segment, not a cancel of j-1.
  EXPECT_EQ(call("POST", "/api/v1/jobs%2Fj-1%2Fcancel").status, 404);
  EXPECT_EQ(nlohmann::json::parse(call("GET", "/api/v1/jobs/j-1").body)["state"], "PENDING");
  // A bad byte in the path is answered, not fatal.
  EXPECT_EQ(call("GET", "/%ff", "", false).status, 404);
  EXPECT_EQ(call("GET", "/api/v1/jobs/%ff").status, 404);
  EXPECT_EQ(call("GET", "/healthz", "", false).status, 200);
  // A wrong token of the right length is refused like any other.
  auto wrong = net::http_request(url_, "GET", "/api/v1/jobs", "",
                                 {.bearer_token = std::string(server_->token().size(), 'a')});
  ASSERT_TRUE(wrong.is_ok());
  EXPECT_EQ(wrong->status, 401);
}

TEST_F(ServerTest, JobListsArePaged) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(call("POST", "/api/v1/jobs",
                   R"({"name":"a","resources":{"cpus":1,"memory":1},"run":"true"})")
                  .status,
              201);
  }
  auto page = call("GET", "/api/v1/jobs?limit=2");
  EXPECT_EQ(nlohmann::json::parse(page.body).size(), 2u);
  EXPECT_EQ(page.headers["X-Next-After"], "j-2");
  page = call("GET", "/api/v1/jobs?limit=2&after=j-2");
  EXPECT_EQ(nlohmann::json::parse(page.body).size(), 1u);
  EXPECT_EQ(page.headers.count("X-Next-After"), 0u);
  EXPECT_EQ(nlohmann::json::parse(call("GET", "/api/v1/jobs?order=newest").body)[0]["id"], "j-3");
  EXPECT_EQ(call("GET", "/api/v1/jobs?limit=0").status, 400);
  EXPECT_EQ(call("GET", "/api/v1/jobs?state=NOPE").status, 400);
}

TEST_F(ServerTest, OneServerPerDataDir) {
  ServerOptions o;
  o.data_dir = dir_.string();
  o.port = 0;
  auto second = Server::start(o);
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), StatusCode::kConflict);
  EXPECT_NE(second.status().message().find("in use by another lepton server"), std::string::npos)
      << second.status().message();
}

// A store that was emptied (or swapped for another) would reuse job ids, and new jobs would find
// the old jobs' logs: it is refused, saying why.
TEST_F(ServerTest, AnEmptiedStoreIsRefused) {
  server_.reset();
  fs::remove(dir_ / "lepton.db");
  fs::remove(dir_ / "lepton.db-wal");
  fs::remove(dir_ / "lepton.db-shm");
  ServerOptions o;
  o.data_dir = dir_.string();
  o.port = 0;
  auto again = Server::start(o);
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.status().message().find("is not the store this data dir was used with"),
            std::string::npos)
      << again.status().message();
}

// A store whose pages were damaged is refused at the start with what to do, not opened to fail
// every write later.
TEST_F(ServerTest, ADamagedStoreIsRefusedAtTheStart) {
  call("POST", "/api/v1/jobs", R"({"name":"a","resources":{"cpus":1,"memory":1},"run":"true"})");
  server_.reset();
  const fs::path db = dir_ / "lepton.db";
  fs::remove(dir_ / "lepton.db-wal");  // checkpointed at close
  const auto size = fs::file_size(db);
  ASSERT_GE(size, 8192u);
  {
    // Zero the last page, as a torn write would leave it.
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 4096));
    const std::string zeros(4096, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  ServerOptions o;
  o.data_dir = dir_.string();
  o.port = 0;
  auto again = Server::start(o);
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.status().message().find("damaged"), std::string::npos)
      << again.status().message();
}

TEST_F(ServerTest, ApiNeedsTheTokenAndAnswersErrorsAsJson) {
  EXPECT_EQ(call("GET", "/api/v1/jobs", "", false).status, 401);
  auto created = call("POST", "/api/v1/jobs",
                      R"({"name":"a","resources":{"cpus":1,"memory":1},"run":"true"})");
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(nlohmann::json::parse(created.body)["id"], "j-1");
  auto bad = call("POST", "/api/v1/jobs", R"({"name":"a","run":"true","resources":{"cpus":"x"}})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad.body)["error"]["field"], "resources.cpus");
  EXPECT_EQ(call("GET", "/api/v1/jobs/j-9").status, 404);
  EXPECT_EQ(call("DELETE", "/api/v1/jobs").status, 405);
  EXPECT_EQ(call("GET", "/api/v1/nothing").status, 404);
  EXPECT_EQ(call("GET", "/api/v1/jobs/j-1/logs?rank=x").status, 400);
  auto logs = call("GET", "/api/v1/jobs/j-1/logs?rank=0");
  EXPECT_EQ(logs.status, 200);
  EXPECT_EQ(nlohmann::json::parse(logs.body)["data"], "");
  EXPECT_EQ(call("POST", "/api/v1/jobs/j-1/cancel").status, 200);
  EXPECT_EQ(nlohmann::json::parse(call("GET", "/api/v1/jobs").body)[0]["state"], "CANCELLED");
}

TEST_F(ServerTest, TheTokenSurvivesARestart) {
  const std::string token = server_->token();
  server_->stop();
  ServerOptions o;
  o.data_dir = dir_.string();
  o.port = 0;
  auto again = Server::start(o);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ((*again)->token(), token);
  EXPECT_EQ(Server::start({.data_dir = "/proc/no-such-dir"}).status().code(),
            StatusCode::kInvalidArgument);
}

// The server dispatches on the route table: every route answers at its path for its method, and
// its permission decides whether the token is needed.
TEST_F(ServerTest, EveryRouteIsServedWithItsPermission) {
  for (const Route& route : api_routes()) {
    std::string path(route.path);
    for (const char* param : {"{id}", "{name}"}) {
      if (auto at = path.find(param); at != std::string::npos)
        path.replace(at, strlen(param), "x1");
    }
    SCOPED_TRACE(std::string(route.method) + " " + path);
    const int open = call(std::string(route.method), path, "", false).status;
    EXPECT_EQ(open == 401, route.permission != Permission::kPublic) << open;
    const net::HttpResponse r = call(std::string(route.method), path);
    EXPECT_NE(r.status, 401);
    EXPECT_NE(r.status, 405);
    EXPECT_EQ(r.body.find("no such endpoint"), std::string::npos) << r.body;
  }
  EXPECT_EQ(call("GET", "/api/v1/openapi.json", "", false).body, openapi_document());
}

TEST_F(ServerTest, AKnownPathWithAnotherMethodIs405WithItsMethods) {
  auto r = call("DELETE", "/api/v1/jobs");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["Allow"], "GET, POST");
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["message"],
            "method: DELETE is not allowed on /api/v1/jobs");
  r = call("GET", "/api/v1/jobs/j-1/cancel");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["Allow"], "POST");
  r = call("PUT", "/api/v1/queues/q");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["Allow"], "GET, PATCH, DELETE");
  EXPECT_EQ(call("POST", "/healthz", "", false).status, 405);
  // The token is checked first, on the path alone: another method gets no further without it.
  EXPECT_EQ(call("DELETE", "/api/v1/jobs", "", false).status, 401);
  EXPECT_EQ(call("POST", "/metrics", "", false).status, 401);
  EXPECT_EQ(call("GET", "/api/v1/nothing", "", false).status, 401);
  EXPECT_EQ(call("GET", "/api/v1/jobs/j-1/nothing").status, 404);
  EXPECT_EQ(call("GET", "/nothing", "", false).status, 404);
}

}  // namespace
}  // namespace lepton::server
