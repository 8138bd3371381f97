#include "tests/lepton_test.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace lepton::e2e {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

void LeptonTest::SetUp() {
  const testing::TestInfo* test = testing::UnitTest::GetInstance()->current_test_info();
  std::string suite = test->test_suite_name();
  std::transform(suite.begin(), suite.end(), suite.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  dir_ = fresh_test_dir(suite, test->name());
  if (options_.own_home) fs::create_directories(dir_ / "home");
  port_ = free_port();
  if (options_.gateway == Gateway::kFreePort) gateway_port_ = free_port();
  url_ = "http://127.0.0.1:" + std::to_string(port_);
}

void LeptonTest::TearDown() {
  if (dir_.empty()) return;  // SetUp stopped before making anything
  stop_all();
  if (!HasFailure()) fs::remove_all(dir_);
}

void LeptonTest::stop_all() {
  if (stopped_ || dir_.empty()) return;
  stopped_ = true;
  while (!processes_.empty()) processes_.pop_back();
  if (server_ && server_->pid() > 0) {
    ::kill(server_->pid(), SIGCONT);  // if a test stopped it
    if (options_.graceful_stop) server_->stop();
  }
  server_.reset();
  for (int pass = 0; pass < 2; ++pass) {
    if (pass) std::this_thread::sleep_for(300ms);
    run_command("pkill -KILL -f " + dir_.string() + " >/dev/null 2>&1");
    run_command("pkill -KILL -f 'lepton-test-upstream --port [0-9]+ --id " + upstream_tag() +
                "( |$)' >/dev/null 2>&1");
  }
}

std::string LeptonTest::upstream_tag() { return "t" + std::to_string(getpid()); }

void LeptonTest::start(const std::vector<std::string>& extra) {
  std::string gateway = "0";
  if (options_.gateway == Gateway::kFreePort) gateway = std::to_string(gateway_port_);
  if (options_.gateway == Gateway::kNone) gateway = "-1";
  server_argv_ = {
      LEPTON_BINARY, options_.up ? "up" : "server", "--data-dir",     data_dir().string(),
      "--port",      std::to_string(port_),         "--gateway-port", gateway};
  if (options_.node_timeout_s > 0) {
    server_argv_.insert(server_argv_.end(),
                        {"--node-timeout", std::to_string(options_.node_timeout_s)});
  }
  if (options_.up) {
    server_argv_.insert(server_argv_.end(), {"--gpus", options_.gpus, "--name", "local"});
  }
  server_argv_.insert(server_argv_.end(), extra.begin(), extra.end());
  server_log_ = dir_ / (options_.up ? "up.log" : "server.log");
  server_ = std::make_unique<Process>(server_argv_, server_log_.string());
  switch (options_.wait) {
    case Wait::kNothing:
      break;
    case Wait::kApi:
      ASSERT_TRUE(wait_until([&] { return cli("node ls").exit_code == 0; }, options_.wait_timeout))
          << log();
      break;
    case Wait::kReadyNode:
      ASSERT_TRUE(wait_until(
          [&] {
            auto r = cli("node ls --json");
            return r.exit_code == 0 && r.out.find("\"ready\":true") != std::string::npos;
          },
          options_.wait_timeout))
          << log();
      break;
  }
}

void LeptonTest::restart() {
  if (server_) server_->kill(SIGKILL);
  server_ = std::make_unique<Process>(server_argv_, server_log_.string());
}

void LeptonTest::start_agent(const std::string& name, const std::string& gpus,
                             const std::vector<std::string>& extra) {
  std::vector<std::string> argv{
      LEPTON_BINARY, "agent", "--server", url_, "--token-file", token_file().string(),
      "--name",      name,    "--gpus",   gpus, "--work-dir",   (dir_ / name).string(),
      "--cpus",      "8",     "--memory", "16"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  start_process(name, argv);
}

Process& LeptonTest::start_process(const std::string& name, const std::vector<std::string>& argv) {
  std::erase_if(processes_, [&](const auto& p) { return p.first == name; });
  processes_.emplace_back(name, std::make_unique<Process>(argv, (dir_ / (name + ".log")).string()));
  return *processes_.back().second;
}

Process& LeptonTest::process(const std::string& name) {
  for (auto& [n, p] : processes_) {
    if (n == name) return *p;
  }
  throw std::out_of_range("no process named " + name);
}

void LeptonTest::wait_for_nodes(size_t n) {
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = cli("node ls --json");
        if (r.exit_code != 0) return false;
        size_t ready = 0;
        for (const json& node : json::parse(r.out)) ready += node.value("ready", false) ? 1 : 0;
        return ready == n;
      },
      15s))
      << log();
}

std::string LeptonTest::log() const { return server_log_.empty() ? "" : read_text(server_log_); }

std::string LeptonTest::log(const std::string& name) const {
  return read_text(dir_ / (name + ".log"));
}

CommandResult LeptonTest::lepton(const std::string& args) const {
  const std::string home = options_.own_home ? "HOME=" + (dir_ / "home").string() + " " : "";
  return run_command(home + LEPTON_BINARY + " " + args);
}

CommandResult LeptonTest::cli(const std::string& args) const {
  return lepton(args + " --server " + url_ + " --token-file " + token_file().string());
}

json LeptonTest::cli_json(const std::string& args) const {
  CommandResult r = cli(args);
  EXPECT_EQ(r.exit_code, 0) << args << ": " << r.out;
  return json::parse(r.out, nullptr, false);
}

std::string LeptonTest::write_spec(const std::string& name, const std::string& yaml) const {
  const fs::path p = dir_ / (name + ".yaml");
  std::ofstream(p) << yaml;
  return p.string();
}

std::string LeptonTest::submit(const std::string& spec_path) const {
  auto r = cli("job run -f " + spec_path);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return r.out.substr(0, r.out.find('\n'));
}

json LeptonTest::job(const std::string& id) const {
  auto r = cli("job get " + id + " --json");
  if (r.exit_code != 0) return json::object();
  return json::parse(r.out, nullptr, false);
}

std::string LeptonTest::state(const std::string& id) const {
  const json j = job(id);
  return j.is_object() ? j.value("state", "") : "";
}

}  // namespace lepton::e2e
