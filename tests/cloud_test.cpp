// End-to-end: the cloud autoscaler through a real `lepton server --demo-clouds-config`. Machines
// are rented from the emulated clouds (cloud/sim_provider.h): each is a real `lepton agent`
// process on this machine. Covers renting the cheapest fitting offer, failing over past a pool
// without capacity, a spot interruption (notice, checkpoint, requeue, resume on a new machine),
// cost records, and returning idle machines.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/lepton_test.h"

namespace lepton::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// `lepton server` renting from the emulated clouds of each test's configuration. It is stopped
// with SIGTERM at the end: the emulated clouds end their machines with the server.
class Clouds : public LeptonTest {
 protected:
  Clouds() : LeptonTest({.wait_timeout = 20s, .graceful_stop = true}) {}
  void SetUp() override {
    LeptonTest::SetUp();
    // Replicas run `lepton-test-upstream` by name; rented machines' agents inherit this PATH.
    put_first_on_path(fs::path(UPSTREAM_BINARY).parent_path().string());
  }

  void start_server(const json& clouds) {
    std::ofstream(dir_ / "clouds.json") << clouds.dump();
    start({"--demo-clouds-config", (dir_ / "clouds.json").string(), "--cloud-idle", "2",
           "--preempt-grace", "10"});
  }

  std::string job_state(const std::string& id) {
    json j = cli_json("job get " + id + " --json");
    return j.is_object() ? j.value("state", "") : "";
  }
};

// Counts to 20 in steps of 0.3 s from its checkpoint; on SIGTERM it reads the notice, saves the
// step and the notice, and exits.
constexpr const char* kTrainer = R"(name: train
resources: {accelerators: "A100:1", cpus: 1, memory: 1}
use_spot: true
run: |
  n=0; [ -f "$LEPTON_CHECKPOINT_DIR/step" ] && n=$(cat "$LEPTON_CHECKPOINT_DIR/step")
  echo "resuming at step $n"
  trap '. "$LEPTON_NOTICE_FILE"; echo "$LEPTON_PREEMPTION_NOTICE $LEPTON_PREEMPTION_GRACE_S" > "$LEPTON_CHECKPOINT_DIR/notice"; echo $n > "$LEPTON_CHECKPOINT_DIR/step"; exit 143' TERM
  while [ $n -lt 20 ]; do n=$((n+1)); sleep 0.3; done
  echo "finished at step $n"
)";

TEST_F(Clouds, SpotJobFailsOverIsInterruptedAndResumesFromItsCheckpoint) {
  // The cheapest A100 spot pool has no capacity: the job must go to the next one.
  json offers = json::parse(
      run_command(std::string(LEPTON_BINARY) + " offers --gpu A100:1 --spot --json").out, nullptr,
      false);
  ASSERT_TRUE(offers.is_array() && offers.size() >= 3) << offers.dump();
  auto pool = [](const json& o) {
    std::string zone = o.value("zone", "");
    return o.value("cloud", "") + "/" + o.value("region", "") + (zone.empty() ? "" : "/" + zone) +
           "/" + o.value("instance_type", "") + "/spot";
  };
  const std::string cheapest = pool(offers[0]);
  ASSERT_NE(cheapest, pool(offers[1]));
  start_server(
      {{"boot_s", 0.5}, {"notice_s", 8}, {"capacity", 4}, {"pool_capacity", {{cheapest, 0}}}});
  std::ofstream(dir_ / "train.yaml") << kTrainer;
  CommandResult run = cli("job run -f " + (dir_ / "train.yaml").string());
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string id = run.out.substr(0, run.out.find_first_of(" \n"));
  ASSERT_TRUE(wait_until([&] { return job_state(id) == "RUNNING"; }, 30s)) << log();

  json instances = cli_json("cloud ls --json");
  ASSERT_EQ(instances.size(), 1u) << instances.dump();
  const json first = instances[0];
  EXPECT_TRUE(first.value("spot", false));
  EXPECT_EQ(first.value("for_job", ""), id);
  EXPECT_NE(pool(first), cheapest) << "rented the pool that has no capacity";
  EXPECT_EQ(pool(first), pool(offers[1])) << "did not fail over to the next-cheapest offer";
  EXPECT_EQ(first.value("node", ""), first.value("id", ""));

  // Let it make progress, then interrupt its machine.
  std::this_thread::sleep_for(1500ms);
  CommandResult interrupt = cli("cloud interrupt " + first.value("id", ""));
  ASSERT_EQ(interrupt.exit_code, 0) << interrupt.out;
  // A replacement is rented at once, while the notice runs out.
  ASSERT_TRUE(wait_until([&] { return cli_json("cloud ls --json").size() == 2; }, 10s)) << log();
  ASSERT_TRUE(wait_until([&] { return job_state(id) == "SUCCEEDED"; }, 60s))
      << log() << cli("cloud ls").out;

  // The task got the notice and a grace, checkpointed, and the next attempt resumed from it.
  const fs::path checkpoints = data_dir() / "checkpoints" / id;
  std::ifstream notice(checkpoints / "notice");
  int flag = 0, grace = -1;
  notice >> flag >> grace;
  EXPECT_EQ(flag, 1);
  EXPECT_GE(grace, 1);
  EXPECT_LE(grace, 10);
  int step = 0;
  std::ifstream(checkpoints / "step") >> step;
  EXPECT_GT(step, 0);
  EXPECT_LT(step, 20);
  const std::string logs = cli("job logs " + id).out;
  EXPECT_NE(logs.find("resuming at step " + std::to_string(step)), std::string::npos) << logs;
  EXPECT_NE(logs.find("finished at step 20"), std::string::npos) << logs;
  json job = cli_json("job get " + id + " --json");
  EXPECT_EQ(job.value("restarts", -1), 0) << "an interruption is not the job's failure";

  // Both machines are billed; the job's cost covers its time on both.
  json by_job = cli_json("cost --by job --json");
  ASSERT_EQ(by_job["rows"].size(), 1u) << by_job.dump();
  EXPECT_EQ(by_job["rows"][0].value("key", ""), id);
  EXPECT_GT(by_job["rows"][0].value("cost_usd", 0.0), 0.0);
  EXPECT_GE(by_job.value("total_usd", 0.0), by_job["rows"][0].value("cost_usd", 0.0));
  json by_instance = cli_json("cost --by instance --json");
  EXPECT_EQ(by_instance["rows"].size(), 2u) << by_instance.dump();

  // Idle machines go back (--cloud-idle 2), and their agents with them.
  ASSERT_TRUE(wait_until(
      [&] {
        json all = cli_json("cloud ls --json");
        return std::all_of(all.begin(), all.end(),
                           [](const json& i) { return i.value("state", "") == "terminated"; });
      },
      20s))
      << cli("cloud ls").out;
  EXPECT_EQ(cli_json("node ls --json"), json::array());
  EXPECT_TRUE(wait_until(
      [&] {
        // "[d]emo": the pattern does not match the shell running pgrep.
        return run_command("pgrep -f '" + data_dir().string() + "/[d]emo-clouds'").exit_code != 0;
      },
      10s));
}

TEST_F(Clouds, WorkThatFitsNoOfferWaitsAndSaysSo) {
  start_server({{"boot_s", 0.5}, {"clouds", {"lambda"}}});
  std::ofstream(dir_ / "spot.yaml") << "name: spot\nresources: {accelerators: \"H100:1\"}\n"
                                       "use_spot: true\nrun: 'true'\n";
  CommandResult run = cli("job run -f " + (dir_ / "spot.yaml").string());
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string id = run.out.substr(0, run.out.find_first_of(" \n"));
  // Lambda sells no spot machines.
  ASSERT_TRUE(wait_until(
      [&] {
        json j = cli_json("job get " + id + " --json");
        return j.value("reason", "").find("no cloud offer fits it") != std::string::npos;
      },
      15s))
      << cli("job get " + id).out;
  EXPECT_EQ(job_state(id), "PENDING");
  EXPECT_TRUE(cli_json("cloud ls --json").empty());
}

TEST_F(Clouds, PlanShowsTheMachinesToRentAndAsksFirst) {
  start_server({{"boot_s", 0.5}, {"clouds", {"aws"}}});
  std::ofstream(dir_ / "big.yaml") << "name: big\nresources: {accelerators: \"A100:8\"}\n"
                                      "num_nodes: 2\nrun: 'true'\n";
  const std::string file = (dir_ / "big.yaml").string();
  // No terminal to ask on, no --yes: nothing is submitted.
  CommandResult asked = cli("job run -f " + file + " --plan < /dev/null");
  EXPECT_EQ(asked.exit_code, 1) << asked.out;
  EXPECT_NE(asked.out.find("does not fit on the current nodes; the cheapest machines to rent"),
            std::string::npos)
      << asked.out;
  EXPECT_NE(asked.out.find("p4d.24xlarge"), std::string::npos) << asked.out;
  EXPECT_NE(asked.out.find("x 2 = $"), std::string::npos) << asked.out;
  EXPECT_NE(asked.out.find("add --yes to submit"), std::string::npos) << asked.out;
  EXPECT_TRUE(cli_json("job ls --json").empty());
  CommandResult yes = cli("job run -f " + file + " --plan --yes");
  EXPECT_EQ(yes.exit_code, 0) << yes.out;
  EXPECT_EQ(cli_json("job ls --json").size(), 1u);
}

TEST_F(Clouds, AQueueThatSpentItsBudgetRentsNothing) {
  start_server({{"boot_s", 0.5}, {"clouds", {"aws"}}});
  ASSERT_EQ(cli("queue create team --budget 0").exit_code, 0);
  std::ofstream(dir_ / "job.yaml") << "name: job\nqueue: team\nresources: {accelerators: "
                                      "\"A10G:1\", cpus: 1, memory: 1}\nrun: 'true'\n";
  CommandResult run = cli("job run -f " + (dir_ / "job.yaml").string());
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string id = run.out.substr(0, run.out.find_first_of(" \n"));
  ASSERT_TRUE(wait_until(
      [&] {
        return cli_json("job get " + id + " --json")
                   .value("reason", "")
                   .find("queue team has spent $0.00 of its $0.00 budget") != std::string::npos;
      },
      15s))
      << cli("job get " + id).out;
  EXPECT_TRUE(cli_json("cloud ls --json").empty());
  EXPECT_NE(cli("queue get team").out.find("budget:      $0 (spent $0.00"), std::string::npos)
      << cli("queue get team").out;
  // A budget raised: the machine is rented and the job runs.
  ASSERT_EQ(cli("queue set team --budget 100").exit_code, 0);
  ASSERT_TRUE(wait_until([&] { return job_state(id) == "SUCCEEDED"; }, 30s))
      << cli("job get " + id).out << cli("cloud ls").out;
  EXPECT_EQ(cli_json("cloud ls --json").size(), 1u);
  json team = cli_json("queue get team --json");
  EXPECT_GT(team.value("spent_usd", 0.0), 0.0) << team.dump();
}

TEST_F(Clouds, SpotReplicasKeepAnOnDemandFloorAndAreReplacedWhenInterrupted) {
  start_server({{"boot_s", 0.5}, {"notice_s", 3}, {"capacity", 4}});
  const std::string upstream = "run: exec lepton-test-upstream --port $PORT --id " +
                               upstream_tag() + " --ttft-ms 10 --token-ms 10\n";
  // Two replicas: one on demand (the floor), one on spot.
  std::ofstream(dir_ / "chat.yaml")
      << "kind: deployment\nname: chat\nresources: {accelerators: \"A100:1\", cpus: 1, "
         "memory: 1}\nuse_spot: true\nreplicas: {min: 2, max: 2, min_on_demand: 1}\n"
         "readiness: {path: /healthz}\n"
      << upstream;
  // Lambda sells no spot machines: a spot replica falls back to on demand.
  std::ofstream(dir_ / "fallback.yaml")
      << "kind: deployment\nname: fallback\nresources: {accelerators: \"A100:1\", cpus: 1, "
         "memory: 1}\nuse_spot: true\nclouds: [lambda]\nreplicas: 1\n"
         "readiness: {path: /healthz}\n"
      << upstream;
  ASSERT_EQ(cli("deploy create -f " + (dir_ / "chat.yaml").string()).exit_code, 0);
  ASSERT_EQ(cli("deploy create -f " + (dir_ / "fallback.yaml").string()).exit_code, 0);
  auto ready = [&](const std::string& name) {
    json all = cli_json("deploy ls --json");
    for (const json& d : all) {
      if (d.value("name", "") == name) return d.value("ready_replicas", 0);
    }
    return -1;
  };
  ASSERT_TRUE(wait_until([&] { return ready("chat") == 2 && ready("fallback") == 1; }, 60s))
      << cli("deploy ls").out << cli("cloud ls").out << log();
  // The machines in use (a replica that failed to start, on a slow machine, may have had its
  // machine returned and another rented: only the live ones count).
  json instances = json::array();
  for (const json& i : cli_json("cloud ls --json")) {
    if (i.value("state", "") != "terminated") instances.push_back(i);
  }
  ASSERT_EQ(instances.size(), 3u) << cli("cloud ls").out;
  // chat: its floor replica on demand, the other on spot; fallback: on demand on Lambda.
  int spot = 0, on_demand = 0;
  std::string spot_id;
  for (const json& i : instances) {
    if (i.value("spot", false)) {
      ++spot;
      spot_id = i.value("id", "");
    } else {
      ++on_demand;
    }
  }
  EXPECT_EQ(spot, 1) << instances.dump();
  EXPECT_EQ(on_demand, 2) << instances.dump();
  json fallback = cli_json("deploy get fallback --json");
  ASSERT_EQ(fallback["replicas"].size(), 1u) << fallback.dump();
  const std::string fallback_node = fallback["replicas"][0].value("node", "");
  for (const json& i : instances) {
    if (i.value("id", "") == fallback_node) {
      EXPECT_EQ(i.value("cloud", ""), "lambda");
      EXPECT_FALSE(i.value("spot", true));
    }
  }
  EXPECT_TRUE(fallback_node.rfind("sim-lambda-", 0) == 0) << fallback.dump();

  // The spot replica's machine is interrupted: a new spot machine replaces it, and the
  // deployment is back to two ready replicas.
  ASSERT_EQ(cli("cloud interrupt " + spot_id).exit_code, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        json all = cli_json("cloud ls --json");
        int live_spot = 0;
        for (const json& i : all) {
          if (i.value("spot", false) && i.value("state", "") != "terminated" &&
              i.value("id", "") != spot_id) {
            ++live_spot;
          }
        }
        return live_spot == 1 && ready("chat") == 2;
      },
      60s))
      << cli("deploy ls").out << cli("cloud ls").out;
  // The interrupted machine has ended.
  ASSERT_TRUE(wait_until(
      [&] {
        for (const json& i : cli_json("cloud ls --json")) {
          if (i.value("id", "") == spot_id) return i.value("state", "") == "terminated";
        }
        return false;
      },
      30s));
  ASSERT_EQ(cli("deploy rm chat").exit_code, 0);
  ASSERT_EQ(cli("deploy rm fallback").exit_code, 0);
}

}  // namespace
}  // namespace lepton::e2e
