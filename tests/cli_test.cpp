// End-to-end: runs `lepton` as a child process and checks its output, files and exit codes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/process.h"

namespace {

namespace fs = std::filesystem;

using lepton::e2e::CommandResult;
using CliRun = CommandResult;

// `lepton ARGS`, its stderr apart from its stdout.
CliRun lepton(const std::string& args) {
  return lepton::e2e::run_command(std::string(LEPTON_BINARY) + " " + args,
                                  lepton::e2e::Stderr::kApart);
}

const std::string kTrace = std::string(LEPTON_SOURCE_DIR) + "/data/traces/alibaba-gpu-v2023/";
const std::string kNodes = kTrace + "openb_node_list_gpu_node.csv";
const std::string kPods = kTrace + "openb_pod_list_default.csv";

TEST(SimAlloc, PrintsOneJsonObject) {
  CliRun r = lepton("sim alloc --nodes " + kNodes + " --pods " + kPods +
                    " --policy fgd --seeds 42..43 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["policy"], "fgd");
  EXPECT_GT(j["gpu_alloc_pct"].get<double>(), 90);
  EXPECT_LT(j["gpu_alloc_pct"].get<double>(), 100);
  EXPECT_GT(j["frag_pct"].get<double>(), 0);
  EXPECT_GT(j["seconds"].get<double>(), 0);
  EXPECT_EQ(j["seeds"].size(), 2u);
  EXPECT_NEAR(j["published_gpu_alloc_pct"].get<double>(), 95.39, 0.01);
}

TEST(SimAlloc, WritesCsvJsonAndSvg) {
  const fs::path out = fs::temp_directory_path() / ("lepton-e2e-out-" + std::to_string(getpid()));
  CliRun r = lepton("sim alloc --policy random,bestfit --seeds 42 --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("bestfit"), std::string::npos);  // the table
  for (const char* ext : {".csv", ".json", ".svg"}) {
    fs::path f = out / (std::string("alloc-openb_pod_list_default") + ext);
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_GT(fs::file_size(f), 100u) << f;
  }
  std::ifstream svg(out / "alloc-openb_pod_list_default.svg");
  std::string text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_NE(text.find("bestfit (published)"), std::string::npos);
  fs::remove_all(out);
}

TEST(SimAlloc, BadInputGetsAClearErrorAndExitCode2) {
  CliRun seeds = lepton("sim alloc --seeds 9..1");
  EXPECT_EQ(seeds.exit_code, 2);
  EXPECT_NE(seeds.err.find("--seeds '9..1'"), std::string::npos) << seeds.err;
  CliRun policy = lepton("sim alloc --policy tetris");
  EXPECT_EQ(policy.exit_code, 2);
  EXPECT_NE(policy.err.find("expected one of random, dotprod"), std::string::npos) << policy.err;
  CliRun missing = lepton("sim alloc --pods /nonexistent.csv");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("/nonexistent.csv: cannot open"), std::string::npos) << missing.err;

  const fs::path bad = fs::temp_directory_path() / ("lepton-e2e-bad-" + std::to_string(getpid()));
  std::ofstream(bad) << "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,1,abc\n";
  CliRun malformed = lepton("sim alloc --pods " + bad.string());
  EXPECT_EQ(malformed.exit_code, 2);
  EXPECT_NE(malformed.err.find(bad.string() + ":2:16: field 'gpu_milli'"), std::string::npos)
      << malformed.err;
  fs::remove(bad);
  CliRun flag = lepton("sim alloc --no-such-flag");
  EXPECT_NE(flag.exit_code, 0);
  EXPECT_NE(flag.err.find("no-such-flag"), std::string::npos) << flag.err;
}

TEST(SimQueues, PrintsOneJsonObject) {
  CliRun r = lepton("sim queues --nodes " + kNodes + " --pods " + kPods + " --policy fifo --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["policy"], "fifo");
  for (const char* key : {"avg_jct_s", "p99_jct_s", "gpu_alloc_pct", "jain_fairness"}) {
    EXPECT_GT(j[key].get<double>(), 0) << key;
  }
  EXPECT_LE(j["gpu_alloc_pct"].get<double>(), 100);
  EXPECT_LE(j["jain_fairness"].get<double>(), 1);
  EXPECT_EQ(j["preemptions"], 0);  // static quotas never preempt
  EXPECT_EQ(j["jobs_completed"].get<int64_t>() + j["jobs_not_completed"].get<int64_t>(),
            j["jobs"].get<int64_t>());
  EXPECT_EQ(j["queues"].size(), 3u);
  EXPECT_NEAR(j["replay"]["offered_load"].get<double>(), 1.3, 1e-3);
}

TEST(SimQueues, AllPoliciesWriteCsvJsonAndSvg) {
  const fs::path out = fs::temp_directory_path() / ("lepton-e2e-q-" + std::to_string(getpid()));
  // The trace's first 800 pods on a small cluster keep this quick.
  fs::create_directories(out);
  const fs::path pods = out / "openb_pod_list_small.csv";
  {
    std::ifstream in(kPods);
    std::ofstream small(pods);
    std::string line;
    for (int i = 0; i <= 800 && std::getline(in, line); ++i) small << line << "\n";
  }
  CliRun r = lepton("sim queues --cluster-gpus 16 --load 1 --pods " + pods.string() + " --out " +
                    out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* policy : {"fifo", "priority", "drf", "lepton"}) {
    EXPECT_NE(r.out.find(policy), std::string::npos) << policy;  // the table
    EXPECT_TRUE(
        fs::exists(out / ("queues-openb_pod_list_small-" + std::string(policy) + "-shares.svg")));
  }
  for (const char* name : {".json", ".csv", "-series.csv", "-alloc.svg"}) {
    fs::path f = out / ("queues-openb_pod_list_small" + std::string(name));
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_GT(fs::file_size(f), 100u) << f;
  }
  std::ifstream json_file(out / "queues-openb_pod_list_small.json");
  auto j = nlohmann::json::parse(json_file);
  ASSERT_EQ(j["policies"].size(), 4u);
  EXPECT_EQ(j["policies"][3]["policy"], "lepton");
  EXPECT_FALSE(j["policies"][3]["series"]["gpu_alloc_pct"].empty());
  fs::remove_all(out);
}

TEST(SimQueues, BadInputGetsAClearErrorAndExitCode2) {
  CliRun policy = lepton("sim queues --policy tetris");
  EXPECT_EQ(policy.exit_code, 2);
  EXPECT_NE(policy.err.find("--policy"), std::string::npos) << policy.err;
  CliRun load = lepton("sim queues --load -1");
  EXPECT_NE(load.exit_code, 0);
  EXPECT_NE(load.err.find("--load"), std::string::npos) << load.err;
  CliRun reach = lepton("sim queues --cluster-gpus 0 --policy fifo");
  EXPECT_EQ(reach.exit_code, 2);
  EXPECT_NE(reach.err.find("out of reach"), std::string::npos) << reach.err;
  CliRun placement = lepton("sim queues --placement tetris");
  EXPECT_EQ(placement.exit_code, 2);
  EXPECT_NE(placement.err.find("--placement"), std::string::npos) << placement.err;
  // The multigpu variants carry resources only: no times to replay.
  CliRun no_times = lepton("sim queues --pods " + kTrace + "openb_pod_list_multigpu50.csv");
  EXPECT_EQ(no_times.exit_code, 2);
  EXPECT_NE(no_times.err.find("deletion_time"), std::string::npos) << no_times.err;
  const fs::path bad = fs::temp_directory_path() / ("lepton-e2e-qb-" + std::to_string(getpid()));
  std::ofstream(bad) << R"({"queues": [{"name": "a", "guaranteed_pct": "lots"}], "qos": {}})";
  CliRun queues = lepton("sim queues --queues " + bad.string());
  EXPECT_EQ(queues.exit_code, 2);
  EXPECT_NE(queues.err.find("--queues: " + bad.string() + ": queues[0].guaranteed_pct"),
            std::string::npos)
      << queues.err;
  fs::remove(bad);
}

TEST(SimCost, PrintsEveryPolicyWithItsBoundInJson) {
  CliRun r = lepton("sim cost --pods " + kPods + " --max-pods 400 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["jobs"], 400);
  ASSERT_EQ(j["policies"].size(), 3u);
  std::vector<std::string> names;
  for (const auto& p : j["policies"]) {
    names.push_back(p["policy"].get<std::string>());
    SCOPED_TRACE(names.back());
    double cost = p["cost_usd"].get<double>();
    double bound = p["lower_bound_usd"].get<double>();
    EXPECT_GT(bound, 0);
    EXPECT_GE(cost, bound);
    EXPECT_GT(p["avg_jct_s"].get<double>(), 0);
    // The bound's parts add up to it, and it is at least the bound without completion times.
    const auto& parts = p["bound_usd"];
    EXPECT_NEAR(parts["work"].get<double>() + parts["packing"].get<double>() +
                    parts["capacity"].get<double>(),
                bound, 0.02);
    EXPECT_GE(bound + 0.01, p["lower_bound_any_time_usd"].get<double>());
    EXPECT_NEAR(p["gap_pct"].get<double>(), (cost / bound - 1) * 100, 0.02);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"single-cloud", "cheapest-first", "lepton"}));
}

TEST(SimCost, BadInputGetsAClearErrorAndExitCode2) {
  CliRun policy = lepton("sim cost --policy fastest");
  EXPECT_EQ(policy.exit_code, 2);
  EXPECT_NE(policy.err.find("fastest"), std::string::npos) << policy.err;
  CliRun missing = lepton("sim cost --pods /nonexistent.csv");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("/nonexistent.csv"), std::string::npos) << missing.err;
  // The multigpu variants carry resources only: no times to replay.
  CliRun no_times = lepton("sim cost --pods " + kTrace + "openb_pod_list_multigpu50.csv");
  EXPECT_EQ(no_times.exit_code, 2);
  EXPECT_NE(no_times.err.find("no GPU job to replay"), std::string::npos) << no_times.err;
  EXPECT_NE(no_times.err.find("deletion_time"), std::string::npos) << no_times.err;
}

TEST(BenchSched, PrintsThroughputAndLatency) {
  CliRun r = lepton("bench sched --nodes 1000 --policy lepton --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["placements_per_sec"].get<double>(), 0);
  EXPECT_GT(j["p99_us"].get<double>(), 0);
  EXPECT_GT(j["decisions"].get<int64_t>(), 1000);
  CliRun bad = lepton("bench sched --nodes 0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--nodes"), std::string::npos) << bad.err;
}

TEST(BenchApi, SubmitsAndRunsJobsThroughTheApi) {
  CliRun r = lepton("bench api --submissions 40 --clients 4 --agents 2 --jobs 20 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["submit_errors"], 0);
  EXPECT_GT(j["submissions_per_sec"].get<double>(), 0);
  EXPECT_GT(j["submit_p99_ms"].get<double>(), 0);
  EXPECT_GT(j["seconds_to_all_done"].get<double>(), 0);  // -1 if the jobs never finished
}

TEST(Help, ListsTheSubcommands) {
  CliRun r = lepton("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("sim"), std::string::npos);
  EXPECT_NE(r.out.find("bench"), std::string::npos);
  EXPECT_NE(r.out.find("up"), std::string::npos);
  EXPECT_NE(r.out.find("job"), std::string::npos);
}

TEST(Offers, ListsCheapestFirst) {
  CliRun r = lepton("offers --gpu H100:8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 20u);  // --limit defaults to 20
  // The fields the issue's check names are all there.
  for (const char* field : {"cloud", "region", "instance_type", "gpus", "spot", "price_per_hour"}) {
    EXPECT_TRUE(j[0].contains(field)) << field;
  }
  EXPECT_EQ(j[0]["cloud"], "runpod");  // 8x_H100_SECURE at $19.12/h (runpod_v7.csv)
  EXPECT_EQ(j[0]["instance_type"], "8x_H100_SECURE");
  EXPECT_DOUBLE_EQ(j[0]["price_per_hour"].get<double>(), 19.12);
  EXPECT_DOUBLE_EQ(j[0]["price_per_gpu_hour"].get<double>(), 2.39);
  for (size_t i = 0; i < j.size(); ++i) {
    EXPECT_EQ(j[i]["gpu_model"], "H100");
    EXPECT_EQ(j[i]["gpus"].get<double>(), 8);
    if (i > 0) {
      EXPECT_LE(j[i - 1]["price_per_hour"], j[i]["price_per_hour"]);
    }
  }
  CliRun bad = lepton("offers --gpu NOPE:1");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--gpu 'NOPE:1'"), std::string::npos) << bad.err;
}

TEST(Up, BadCloudFlagsGetAClearErrorAndExitCode2) {
  // Each fails before anything starts: no data directory is written.
  const fs::path dir = lepton::e2e::fresh_test_dir("up-flags", "BadCloudFlags");
  const std::string up =
      "up --data-dir " + (dir / "data").string() + " --port 0 --gateway-port -1 --gpus none ";
  const std::pair<std::string, std::string> cases[] = {
      {"--pool-limit aws", "--pool-limit 'aws': expected POOL=MIN:MAX, such as aws=0:4"},
      {"--pool-limit aws=3:1", "--pool-limit 'aws=3:1': expected MIN <= MAX"},
      {"--pool-limit aws=x:2", "--pool-limit 'aws=x:2': MIN: expected a whole number"},
      {"--pool-limit aws=0:y", "MAX: expected a whole number, or nothing for no max"},
      {"--pool-limit aws=2:", "a MIN above 0 needs a whole pool"},
      {"--demo-clouds-config " + (dir / "missing.json").string(), "cannot open the file"},
      {"--demo-clouds-config " + (dir / "negative.json").string(),
       "sim clouds: boot_s: expected a number >= 0"},
      {"--demo-clouds-config " + (dir / "unknown.json").string(),
       "sim clouds: bogus: unknown field (expected boot_s, notice_s"},
  };
  std::ofstream(dir / "negative.json") << R"({"boot_s": -1})";
  std::ofstream(dir / "unknown.json") << R"({"capacity": 4, "bogus": 1})";
  for (const auto& [flags, message] : cases) {
    CliRun r = lepton(up + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << flags << ": " << r.err;
    EXPECT_FALSE(fs::exists(dir / "data")) << flags;
  }
  fs::remove_all(dir);
}

}  // namespace
