// The web console in a real browser: `lepton up` (server, gateway and agent in one process), work
// submitted with the CLI, then headless Chromium opens the console link `lepton up` printed and
// the test reads the page its scripts built from the API (--dump-dom, after the page's fetches).
// Chromium comes from Debian (scripts/install-deps); without it these tests fail and say so,
// unless LEPTON_SKIP_BROWSER_TESTS=1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "tests/lepton_test.h"

namespace lepton::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

std::string browser() {
  if (const char* b = std::getenv("LEPTON_BROWSER"); b && *b) return b;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    if (run_command(std::string("command -v ") + name + " >/dev/null").exit_code == 0) return name;
  }
  return "";
}

// `lepton up` with two GPUs, started before each test, and the console link it printed.
class Console : public LeptonTest {
 protected:
  Console()
      : LeptonTest(
            {.up = true, .gpus = "A100-80GB:2", .wait = Wait::kReadyNode, .wait_timeout = 20s}) {}
  void SetUp() override {
    browser_ = browser();
    if (browser_.empty()) {
      const char* skip = std::getenv("LEPTON_SKIP_BROWSER_TESTS");
      if (skip && std::string(skip) == "1")
        GTEST_SKIP() << "no browser; LEPTON_SKIP_BROWSER_TESTS=1";
      FAIL() << "no chromium on PATH: install it (scripts/install-deps) or set "
                "LEPTON_SKIP_BROWSER_TESTS=1";
    }
    LeptonTest::SetUp();
    start();
    if (HasFatalFailure()) return;
    // The link `lepton up` prints, with the token after '#'.
    const std::regex link("console: (http://\\S+/#token=[0-9a-f]+)");
    std::smatch m;
    const std::string text = log();
    ASSERT_TRUE(std::regex_search(text, m, link)) << text;
    link_ = m[1];
  }

  // The page at `url` as the browser built it. The browser's profile is kept in the test's
  // folder, so a token the page stored is there on the next load.
  std::string page(const std::string& url) {
    auto r = run_command("timeout 60 " + browser_ +
                         " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage"
                         " --no-first-run"
                         " --user-data-dir=" +
                         (dir_ / "browser").string() + " --virtual-time-budget=5000 --dump-dom '" +
                         url + "' 2>>" + (dir_ / "browser.log").string());
    EXPECT_EQ(r.exit_code, 0) << read_text(dir_ / "browser.log");
    return r.out;
  }

  std::string browser_;
  std::string link_;
};

// What `page` shows of the element with this id, from its opening tag to the line's end (each
// part of index.html ends a line; what the scripts put in them has no "</div>" and a new line).
std::string section(const std::string& html, const std::string& id) {
  const size_t at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  const size_t end = html.find("</div>\n", at);
  return html.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

TEST_F(Console, ShowsNodesJobsAndQueuesFromTheApi) {
  const std::string done = submit("hello", "name: hello\nrun: echo hello from the console test\n");
  const std::string waiting =
      submit("big", "name: too-big\nresources: {accelerators: A100-80GB:4}\nrun: 'true'\n");
  const std::string running =
      submit("busy", "name: busy\nresources: {accelerators: A100-80GB:1}\nrun: sleep 60\n");
  ASSERT_TRUE(wait_until([&] { return state(done) == "SUCCEEDED"; }, 20s));
  ASSERT_TRUE(wait_until([&] { return state(running) == "RUNNING"; }, 20s));

  const std::string html = page(link_);
  // The overview is shown (index.html has it hidden until the page's first refresh).
  EXPECT_NE(html.find(R"(<div id="overview">)"), std::string::npos) << html;
  EXPECT_NE(html.find(R"(<span id="status" class="">updated )"), std::string::npos) << html;
  const std::string jobs = section(html, "jobs");
  for (const std::string& text :
       {done, waiting, running, std::string("hello"), std::string("too-big"),
        std::string(">SUCCEEDED<"), std::string(">PENDING<"), std::string(">RUNNING<")}) {
    EXPECT_NE(jobs.find(text), std::string::npos) << text << " in " << jobs;
  }
  const std::string nodes = section(html, "nodes");
  EXPECT_NE(nodes.find("<td>local</td>"), std::string::npos) << nodes;
  EXPECT_NE(nodes.find("1/2 A100-80GB"), std::string::npos) << nodes;  // `busy` holds one
  EXPECT_NE(section(html, "summary").find("1 running, 0 starting, 1 pending"), std::string::npos)
      << html;
  EXPECT_NE(section(html, "queues").find("<td>default</td>"), std::string::npos) << html;
  // The token is not written into the page. (That it leaves the address bar is not seen here:
  // --dump-dom has no address.)
  EXPECT_EQ(html.find(link_.substr(link_.find("#token=") + 7)), std::string::npos);
}

TEST_F(Console, ShowsADeploymentWithItsReplicasLoadAndGatewayLink) {
  const fs::path spec = dir_ / "chat.yaml";
  std::ofstream(spec) << "kind: deployment\nname: chat\nresources: {cpus: 0.5, memory: 0.25}\n"
                         "run: exec " UPSTREAM_BINARY " --port $PORT --id "
                      << upstream_tag() << "\nreplicas: 2\nreadiness: {path: /healthz}\n";
  auto created = cli("deploy create -f " + spec.string() + " --wait --timeout 60");
  ASSERT_EQ(created.exit_code, 0) << created.out;
  json d;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = cli("deploy get chat --json");
        d = json::parse(r.out, nullptr, false);
        return r.exit_code == 0 && d.value("ready_replicas", 0) == 2;
      },
      30s))
      << d.dump(2);
  // Requests through the gateway, so the page has load to show.
  const std::string url = d.value("url", "");
  const int gateway = std::stoi(url.substr(url.rfind(':') + 1));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(request(gateway, "POST", "/d/chat/v1/completions", R"({"prompt": "hi"})").status,
              200);
  }
  std::string deployments;
  // The server samples the gateway's counters once a second: a page without load yet is loaded
  // again (a few times at most).
  for (int i = 0; i < 5; ++i) {
    deployments = section(page(link_), "deployments");
    if (deployments.find(" ms</td>") != std::string::npos) break;
    std::this_thread::sleep_for(1s);
  }
  EXPECT_NE(deployments.find("<td>chat</td>"), std::string::npos) << deployments;
  EXPECT_NE(deployments.find("<td>2/2</td>"), std::string::npos) << deployments;
  EXPECT_NE(deployments.find(R"(<a href=")" + url + R"(">)"), std::string::npos) << deployments;
  EXPECT_NE(deployments.find(" ms</td>"), std::string::npos) << "latency: " << deployments;
  int replicas = 0;
  for (const json& r : d["replicas"]) {
    replicas += deployments.find(r.value("job", "") + "@local") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(replicas, 2) << deployments;
}

TEST_F(Console, AJobsViewShowsItsTasksAndLogWithTheStoredToken) {
  const std::string id = submit("hello", "name: hello\nrun: echo 'hello <from> the log'\n");
  ASSERT_TRUE(wait_until([&] { return state(id) == "SUCCEEDED"; }, 20s));
  (void)page(link_);  // stores the token in the browser's profile
  const std::string html = page(url_ + "/#/jobs/" + id);
  const std::string view = section(html, "job-view");
  EXPECT_NE(view.find("Job " + id), std::string::npos) << html;
  EXPECT_NE(view.find("hello &lt;from&gt; the log"), std::string::npos) << view;  // escaped
  EXPECT_NE(view.find("<td>local</td>"), std::string::npos) << view;
  EXPECT_EQ(view.find("data-cancel"), std::string::npos) << "a finished job has no cancel button";
}

TEST_F(Console, AWrongTokenShowsTheTokenFormWithTheServersAnswer) {
  const std::string html = page(url_ + "/#token=not-the-token");
  EXPECT_NE(html.find(R"(<form id="login">)"), std::string::npos) << html;
  EXPECT_NE(html.find("The server refused the token: authorization: expected"), std::string::npos)
      << html;
  EXPECT_EQ(html.find("<table>"), std::string::npos) << "no data without a token: " << html;
}

}  // namespace
}  // namespace lepton::e2e
