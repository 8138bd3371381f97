// The one fixture of the end-to-end tests: a fresh folder per test, free ports, a real `lepton up`
// or `lepton server` (and agents, and any other process) with their logs in that folder, the CLI
// against that server, and a TearDown that stops all of it and removes the folder unless the test
// failed (then its logs are there to read).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tests/process.h"

namespace lepton::e2e {

class LeptonTest : public testing::Test {
 public:
  // What --gateway-port the server gets.
  enum class Gateway {
    kAnyPort,   // 0: the server picks one (a deployment's URL names it)
    kFreePort,  // one picked here before the start: gateway_port_
    kNone,      // -1: no gateway
  };
  // What start() waits for before it returns.
  enum class Wait {
    kNothing,
    kApi,        // `lepton node ls` answers
    kReadyNode,  // `lepton node ls` lists a ready node
  };
  struct Options {
    // `lepton up` (server, gateway and an agent named "local" in one process) or `lepton server`.
    bool up = false;
    // `up` only: its agent's --gpus.
    std::string gpus = "none";
    Gateway gateway = Gateway::kAnyPort;
    // --node-timeout in seconds; 0 leaves the default.
    int node_timeout_s = 0;
    Wait wait = Wait::kApi;
    std::chrono::seconds wait_timeout{10};
    // TearDown stops the server with SIGTERM and waits for it (so it can end what it started,
    // such as emulated clouds' machines), rather than with SIGKILL.
    bool graceful_stop = false;
    // The CLI runs with HOME=dir_/home (for what it keeps under ~/.lepton).
    bool own_home = false;
  };

 protected:
  LeptonTest() = default;
  explicit LeptonTest(Options options) : options_(std::move(options)) {}

  // A fresh TMP/lepton-SUITE-PID-TEST folder and free ports. Starts nothing.
  void SetUp() override;
  // Stops everything (stop_all), then removes the folder unless the test failed.
  void TearDown() override;
  // Stops the processes started here (the others, newest first, then the server), then kills
  // whatever still names the test's folder (tasks, rented machines' agents) and this test's
  // lepton-test-upstream replicas, twice, 300 ms apart (a task wrapper may have been about to
  // start its replica at the first pass). Does it once; later calls do nothing.
  void stop_all();

  // Starts the server as options_ say, with `extra` flags, and waits as options_.wait says (an
  // ASSERT, with the server's log). The data dir is data_dir(), the port port_, the log
  // dir_/up.log or dir_/server.log.
  void start(const std::vector<std::string>& extra = {});
  // Kills the server (SIGKILL) and starts it again with the same flags; waits for nothing.
  void restart();
  // Starts `lepton agent` NAME with its work dir dir_/NAME and log dir_/NAME.log.
  void start_agent(const std::string& name, const std::string& gpus = "A100-80GB:4",
                   const std::vector<std::string>& extra = {});
  // Starts any process, its log dir_/NAME.log; one of the same name is killed first.
  Process& start_process(const std::string& name, const std::vector<std::string>& argv);
  // A process start_process or start_agent started.
  Process& process(const std::string& name);
  // Waits until exactly `n` nodes are ready (an ASSERT, 15 s, with the server's log).
  void wait_for_nodes(size_t n);

  std::filesystem::path data_dir() const { return dir_ / "server"; }
  std::filesystem::path token_file() const { return data_dir() / "token"; }
  // The server's log (what it wrote since the test began, restarts included).
  std::string log() const;
  // The log of a process start_process or start_agent started.
  std::string log(const std::string& name) const;

  // `lepton ARGS` (HOME=dir_/home with options_.own_home); stderr after stdout.
  CommandResult lepton(const std::string& args) const;
  // `lepton ARGS --server URL --token-file TOKEN`: a CLI call against this test's server.
  CommandResult cli(const std::string& args) const;
  // cli(ARGS) parsed as JSON (discarded if it is not); EXPECTs exit code 0.
  nlohmann::json cli_json(const std::string& args) const;
  // Writes dir_/NAME.yaml; returns its path.
  std::string write_spec(const std::string& name, const std::string& yaml) const;
  // `job run -f SPEC` (EXPECTs exit code 0); returns the job's id.
  std::string submit(const std::string& spec_path) const;
  std::string submit(const std::string& name, const std::string& yaml) const {
    return submit(write_spec(name, yaml));
  }
  // `job get ID --json` ({} if it fails), and its state ("" if none).
  nlohmann::json job(const std::string& id) const;
  std::string state(const std::string& id) const;

  // Marks this test binary's lepton-test-upstream replicas (their --id), so stop_all kills only
  // them: they exec the test server, whose command line does not name the test's folder.
  static std::string upstream_tag();

  Options options_;
  std::filesystem::path dir_;
  int port_ = 0;
  int gateway_port_ = 0;  // with Gateway::kFreePort
  std::string url_;
  std::unique_ptr<Process> server_;

 private:
  std::vector<std::string> server_argv_;
  std::filesystem::path server_log_;
  std::vector<std::pair<std::string, std::unique_ptr<Process>>> processes_;
  bool stopped_ = false;
};

}  // namespace lepton::e2e
