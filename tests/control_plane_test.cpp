// End-to-end: real `lepton server`, `lepton agent` and CLI processes on 127.0.0.1.
#include <gtest/gtest.h>

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

// `lepton server` (nodes lost after 2 s without heartbeats) and agents started by each test.
class Cluster : public LeptonTest {
 protected:
  Cluster() : LeptonTest({.node_timeout_s = 2}) {}

  bool all_in_state(const std::string& state, size_t n) {
    auto r = cli("job ls --json");
    if (r.exit_code != 0) return false;
    json jobs = json::parse(r.out, nullptr, false);
    if (jobs.is_discarded() || jobs.size() != n) return false;
    for (const json& j : jobs) {
      if (j.value("state", "") != state) return false;
    }
    return true;
  }
};

TEST_F(Cluster, TwoHundredJobsOnThreeAgentsRunExactlyOnce) {
  start();
  for (const char* name : {"a1", "a2", "a3"}) start_agent(name);
  wait_for_nodes(3);
  const fs::path ran = dir_ / "ran.txt";
  const std::string spec = write_spec(
      "echo", "name: echo\nresources: {cpus: 1, memory: 0.1}\nrun: echo $LEPTON_JOB_ID >> " +
                  ran.string() + "\n");
  std::set<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.insert(submit(spec));
  ASSERT_EQ(ids.size(), 200u);
  ASSERT_TRUE(wait_until([&] { return all_in_state("SUCCEEDED", 200); }, 120s))
      << cli("job ls").out;
  auto ran_ids = read_lines(ran);
  EXPECT_EQ(ran_ids.size(), 200u);
  EXPECT_EQ(std::set<std::string>(ran_ids.begin(), ran_ids.end()), ids);
}

TEST_F(Cluster, ServerKilledAndRestartedMidRunLosesNothing) {
  start();
  start_agent("a1");
  start_agent("a2");
  wait_for_nodes(2);
  const fs::path ran = dir_ / "ran.txt";
  const std::string spec = write_spec(
      "slow",
      "name: slow\nresources: {cpus: 2, memory: 0.1}\nrun: sleep 2; echo $LEPTON_JOB_ID >> " +
          ran.string() + "\n");
  std::set<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.insert(submit(spec));
  ASSERT_TRUE(
      wait_until([&] { return cli("job ls").out.find("RUNNING") != std::string::npos; }, 20s));
  server_->kill(SIGKILL);
  std::this_thread::sleep_for(500ms);
  start();  // same data dir and port
  ASSERT_TRUE(wait_until([&] { return all_in_state("SUCCEEDED", 10); }, 90s))
      << cli("job ls").out << log();
  auto ran_ids = read_lines(ran);
  EXPECT_EQ(ran_ids.size(), 10u);  // nothing started twice
  EXPECT_EQ(std::set<std::string>(ran_ids.begin(), ran_ids.end()), ids);
}

TEST_F(Cluster, AKilledAgentsTaskIsRescheduled) {
  start();
  start_agent("a1");
  start_agent("a2");
  wait_for_nodes(2);
  const fs::path ran = dir_ / "ran.txt";
  const std::string id =
      submit(write_spec("lost",
                        "name: lost\nresources: {cpus: 1, memory: 0.1}\nrun: sleep 3; echo "
                        "$LEPTON_JOB_ID-$LEPTON_TASK_ATTEMPT >> " +
                            ran.string() + "\n"));
  ASSERT_TRUE(wait_until([&] { return job(id).value("state", "") == "RUNNING"; }, 20s));
  const std::string first = job(id)["tasks"][0]["node"];
  process(first).kill(SIGKILL);
  ASSERT_TRUE(wait_until([&] { return job(id).value("state", "") == "SUCCEEDED"; }, 30s))
      << job(id).dump() << log();
  json j = job(id);
  EXPECT_NE(j["tasks"][0]["node"], first);
  EXPECT_EQ(j["tasks"][0]["attempt"], 1);
  EXPECT_EQ(j["restarts"], 0);  // a lost node is not the job's failure
  auto done = read_lines(ran);
  EXPECT_NE(std::find(done.begin(), done.end(), id + "-1"), done.end());
}

TEST_F(Cluster, MultiNodeJobsGetConsistentRankVariables) {
  start();
  start_agent("a1");
  start_agent("a2");
  wait_for_nodes(2);
  const std::string id = submit(write_spec(
      "ranks",
      "name: ranks\nnum_nodes: 2\nresources: {accelerators: A100-80GB:2, cpus: 1, "
      "memory: 0.1}\nrun: echo rank=$LEPTON_NODE_RANK nodes=$LEPTON_NUM_NODES "
      "world=$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT gpus=$CUDA_VISIBLE_DEVICES\n"));
  ASSERT_TRUE(wait_until([&] { return job(id).value("state", "") == "SUCCEEDED"; }, 30s))
      << job(id).dump();
  json j = job(id);
  EXPECT_NE(j["tasks"][0]["node"], j["tasks"][1]["node"]);
  for (int rank : {0, 1}) {
    auto logs = cli("job logs " + id + " --rank " + std::to_string(rank));
    EXPECT_EQ(logs.out, "rank=" + std::to_string(rank) +
                            " nodes=2 world=2 master=127.0.0.1:29500 gpus=0,1\n");
  }
}

TEST_F(Cluster, CancelledJobsLeaveNoProcesses) {
  start();
  start_agent("a1");
  wait_for_nodes(1);
  const std::string marker = "98765" + std::to_string(getpid() % 1000);
  const std::string id = submit(
      write_spec("forever", "name: forever\nresources: {cpus: 1, memory: 0.1}\nrun: |\n  sleep " +
                                marker + " &\n  sleep " + marker + "\n"));
  ASSERT_TRUE(wait_until([&] { return job(id).value("state", "") == "RUNNING"; }, 20s));
  ASSERT_TRUE(wait_until(
      [&] { return run_command("pgrep -f 'slee[p] " + marker + "'").exit_code == 0; }, 5s));
  auto r = cli("job cancel " + id);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, id + " CANCELLED\n");
  EXPECT_TRUE(wait_until(
      [&] { return run_command("pgrep -f 'slee[p] " + marker + "'").exit_code == 1; }, 20s))
      << run_command("ps aux | grep " + marker).out;
}

TEST_F(Cluster, AnOrdinaryStopReadsNoPreemptionNotice) {
  // A task that checkpoints on a spot notice sources $LEPTON_NOTICE_FILE in its SIGTERM handler;
  // on a plain cancel the file must say there is no notice.
  start();
  start_agent("a1");
  wait_for_nodes(1);
  const fs::path out = dir_ / "notice.txt";
  const std::string id = submit(write_spec(
      "trap",
      "name: trap\nresources: {cpus: 1, memory: 0.1}\nrun: |\n  trap '. \"$LEPTON_NOTICE_FILE\"; "
      "echo \"notice=$LEPTON_PREEMPTION_NOTICE grace=$LEPTON_PREEMPTION_GRACE_S\" > " +
          out.string() + "; exit 143' TERM\n  touch " + out.string() +
          ".ready\n  while true; do sleep 0.1; done\n"));
  ASSERT_TRUE(wait_until([&] { return fs::exists(out.string() + ".ready"); }, 20s));
  ASSERT_EQ(cli("job cancel " + id).exit_code, 0);
  ASSERT_TRUE(wait_until([&] { return fs::exists(out) && fs::file_size(out) > 0; }, 20s));
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "notice=0 grace=0");
}

TEST_F(Cluster, LargeAndBinaryOutputArrivesWhole) {
  start();
  start_agent("a1");
  wait_for_nodes(1);
  const std::string id =
      submit(write_spec("noisy",
                        "name: noisy\nresources: {cpus: 1, memory: 0.1}\nrun: |\n  head -c 3000000 "
                        "/dev/zero | tr '\\0' x\n  printf '\\377end\\n'\n"));
  ASSERT_TRUE(wait_until([&] { return job(id).value("state", "") == "SUCCEEDED"; }, 60s))
      << job(id).dump();
  auto logs = cli("job logs " + id);
  EXPECT_EQ(logs.exit_code, 0);
  ASSERT_GE(logs.out.size(), 3000000u);
  EXPECT_EQ(logs.out.substr(0, 3), "xxx");
  EXPECT_EQ(logs.out.substr(logs.out.size() - 7),
            "\xEF\xBF\xBD"
            "end\n");  // U+FFFD, then the rest
}

TEST_F(Cluster, UpRunsJobsAndPicksThemUpAfterAKill) {
  // `lepton up`: server and agent in one process. Killed with SIGKILL mid-job and started again,
  // it finds the still-running task and records its end; nothing runs twice.
  options_ = {.up = true, .gpus = "A100-80GB:2", .wait = Wait::kNothing};
  start();
  wait_for_nodes(1);
  auto hello = cli("job run -f " LEPTON_SOURCE_DIR "/examples/hello.yaml --follow");
  EXPECT_EQ(hello.exit_code, 0) << hello.out;
  EXPECT_NE(hello.out.find("hello from "), std::string::npos) << hello.out;
  const fs::path ran = dir_ / "ran.txt";
  const std::string id = submit(write_spec(
      "gpu",
      "name: gpu\nresources: {accelerators: A100-80GB:1, cpus: 1, memory: 0.1}\nrun: sleep "
      "2; echo $LEPTON_JOB_ID $CUDA_VISIBLE_DEVICES >> " +
          ran.string() + "\n"));
  ASSERT_TRUE(wait_until([&] { return job(id).value("state", "") == "RUNNING"; }, 20s));
  restart();
  ASSERT_TRUE(wait_until([&] { return job(id).value("state", "") == "SUCCEEDED"; }, 30s))
      << job(id).dump();
  EXPECT_EQ(read_lines(ran), std::vector<std::string>{id + " 0"});
  auto retry = cli("job run -f " LEPTON_SOURCE_DIR "/examples/retry.yaml --wait");
  EXPECT_EQ(retry.exit_code, 0) << retry.out;
}

TEST_F(Cluster, TwoQueuesCompeteAndAReclaimGivesGpusBack) {
  // team-a and team-b are each guaranteed 2 of the node's 4 GPUs. team-a borrows all 4 while
  // team-b is idle; when team-b submits, two of team-a's jobs get SIGTERM, go back to their
  // queue, and later resume from their checkpoint directory.
  start({"--preempt-grace", "1"});
  start_agent("n1", "A100-80GB:4");
  wait_for_nodes(1);
  for (const char* q : {"team-a", "team-b"}) {
    auto r = cli(std::string("queue create ") + q + " --gpus 2");
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  const std::string train = write_spec("train", R"(name: train
queue: team-a
resources: {accelerators: A100-80GB:1, cpus: 1, memory: 0.1}
run: |
  step=$(cat "$LEPTON_CHECKPOINT_DIR/step" 2>/dev/null || echo 0)
  echo "resuming at step $step"
  cat "$LEPTON_CHECKPOINT_DIR/notes" 2>/dev/null
  trap 'echo "SIGTERM at step $step" >> "$LEPTON_CHECKPOINT_DIR/notes"; exit 143' TERM
  while [ "$step" -lt 40 ]; do
    step=$((step + 1)); echo "$step" > "$LEPTON_CHECKPOINT_DIR/step"; sleep 0.2
  done
  echo done
)");
  std::vector<std::string> a;
  for (int i = 0; i < 4; ++i) a.push_back(submit(train));
  ASSERT_TRUE(wait_until(
      [&] {
        return std::all_of(a.begin(), a.end(),
                           [&](const std::string& id) { return job(id)["state"] == "RUNNING"; });
      },
      20s))
      << log();
  auto queues = json::parse(cli("queue ls --json").out, nullptr, false);
  ASSERT_TRUE(queues.is_array()) << cli("queue ls --json").out;
  for (const json& q : queues) {
    if (q["name"] == "team-a") {
      EXPECT_EQ(q["in_use"]["gpus"], 4) << q.dump();  // borrowing b's idle guarantee
      EXPECT_EQ(q["guaranteed"]["gpus"], 2) << q.dump();
    }
  }

  const std::string serve = write_spec("serve", R"(name: serve
queue: team-b
resources: {accelerators: A100-80GB:1, cpus: 1, memory: 0.1}
run: sleep 1; echo served
)");
  std::vector<std::string> b{submit(serve), submit(serve)};
  ASSERT_TRUE(wait_until(
      [&] {
        return std::all_of(b.begin(), b.end(),
                           [&](const std::string& id) { return job(id)["state"] == "SUCCEEDED"; });
      },
      30s))
      << job(b[0]).dump() << log();
  ASSERT_TRUE(wait_until(
      [&] {
        return std::all_of(a.begin(), a.end(),
                           [&](const std::string& id) { return job(id)["state"] == "SUCCEEDED"; });
      },
      60s))
      << job(a[0]).dump();
  int preempted = 0;
  for (const std::string& id : a) {
    const json j = job(id);
    EXPECT_EQ(j["restarts"], 0) << "a preemption is not a failure: " << j.dump();
    const int attempt = j["tasks"][0]["attempt"];
    if (attempt == 0) continue;
    ++preempted;
    // The preempted attempt got SIGTERM; the new one resumed from the same checkpoint dir.
    auto log = cli("job logs " + id);
    EXPECT_NE(log.out.find("done"), std::string::npos) << log.out;
    EXPECT_EQ(log.out.find("resuming at step 0"), std::string::npos) << log.out;
    EXPECT_NE(log.out.find("SIGTERM at step"), std::string::npos) << log.out;
  }
  EXPECT_EQ(preempted, 2) << "team-b needed exactly two GPUs back";

  // The queue commands: get, and rm once no job of the queue is unfinished.
  auto got = cli("queue get team-b --json");
  ASSERT_EQ(got.exit_code, 0) << got.out;
  EXPECT_EQ(json::parse(got.out, nullptr, false).value("name", ""), "team-b") << got.out;
  EXPECT_EQ(cli("queue rm team-a").exit_code, 0);
  auto gone = cli("queue rm team-a");
  EXPECT_EQ(gone.exit_code, 2) << gone.out;
  EXPECT_NE(gone.out.find("no such queue"), std::string::npos) << gone.out;
}

TEST_F(Cluster, FractionalTasksGetTheirMemoryShareEnforcedByMps) {
  // The agent runs an MPS control daemon (here a stand-in that records its calls: CI has no GPU)
  // and points fractional tasks at it with their memory and SM limits.
  const fs::path bin = dir_ / "bin";
  fs::create_directories(bin);
  std::ofstream(bin / "nvidia-cuda-mps-control")
      << "#!/bin/sh\necho \"$* $CUDA_MPS_PIPE_DIRECTORY\" >> " << (dir_ / "mps-calls").string()
      << "\n";
  fs::permissions(bin / "nvidia-cuda-mps-control", fs::perms::owner_all);
  const std::string path = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";
  setenv("PATH", (bin.string() + ":" + path).c_str(), 1);
  start();
  start_agent("n1", "A100-80GB:1", {"--mps"});
  setenv("PATH", path.c_str(), 1);
  wait_for_nodes(1);
  const std::string id = submit(write_spec("half", R"(name: half
resources: {accelerators: A100-80GB:0.5, cpus: 1, memory: 0.1}
run: env | grep -E '^(CUDA_MPS|LEPTON_GPU)' | sort
)"));
  ASSERT_TRUE(wait_until([&] { return job(id)["state"] == "SUCCEEDED"; }, 20s)) << job(id).dump();
  const std::string out = cli("job logs " + id).out;
  const std::string pipe = (dir_ / "n1" / "mps" / "pipe").string();
  EXPECT_NE(out.find("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=40960M"), std::string::npos) << out;
  EXPECT_NE(out.find("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=50"), std::string::npos) << out;
  EXPECT_NE(out.find("CUDA_MPS_PIPE_DIRECTORY=" + pipe), std::string::npos) << out;
  EXPECT_NE(out.find("LEPTON_GPU_FRACTION=0.5"), std::string::npos) << out;
  EXPECT_EQ(read_lines(dir_ / "mps-calls"), std::vector<std::string>{"-d " + pipe});
}

TEST_F(Cluster, BadInputGetsClearErrors) {
  start();
  auto bad =
      cli("job run -f " + write_spec("bad", "name: bad\nresources:\n  gpus: 2\nrun: true\n"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("bad.yaml:3:3: resources.gpus: unknown field"), std::string::npos)
      << bad.out;
  auto missing = cli("job get j-424242");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.out.find("job j-424242: no such job"), std::string::npos) << missing.out;
  std::ofstream(dir_ / "wrong-token") << "0123456789abcdef0123456789abcdef\n";
  auto denied = run_command(std::string(LEPTON_BINARY) + " job ls --server " + url_ +
                            " --token-file " + (dir_ / "wrong-token").string());
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_NE(denied.out.find("authorization: expected 'Bearer TOKEN'"), std::string::npos)
      << denied.out;
  auto down = run_command(std::string(LEPTON_BINARY) + " job ls --server http://127.0.0.1:1" +
                          " --token-file " + (dir_ / "wrong-token").string());
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.out.find("cannot reach the server"), std::string::npos) << down.out;
}

}  // namespace
}  // namespace lepton::e2e
