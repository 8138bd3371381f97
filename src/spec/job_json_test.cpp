#include "spec/job_json.h"

#include <gtest/gtest.h>

#include <random>

#include "core/testing/mutate.h"
#include "spec/job_yaml.h"

namespace lepton::spec {
namespace {

std::string error(std::string_view json) {
  auto r = job_spec_from_json(json);
  if (r.is_ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

JobSpec make(std::string name, Resources res, std::vector<std::string> models = {}) {
  JobSpec s;
  s.name = std::move(name);
  s.resources = res;
  s.gpu_models = std::move(models);
  s.run = "echo hi";
  return s;
}

TEST(SpecJobJson, WritesTheCanonicalForm) {
  JobSpec s = make("train", {4000, 16384, 8, 1000}, {"A100"});
  s.num_nodes = 2;
  s.envs = {{"EPOCHS", "3"}};
  s.setup = "pip install x";
  s.run = "python train.py";
  s.max_restarts = 2;
  s.queue = "team-a";
  s.priority = 10;
  s.preemptible = false;
  EXPECT_EQ(job_spec_to_json(s),
            R"({"name":"train","resources":{"accelerators":"A100:8","cpus":4,"memory":16},)"
            R"("num_nodes":2,"envs":{"EPOCHS":"3"},"setup":"pip install x",)"
            R"("run":"python train.py","max_restarts":2,"queue":"team-a","priority":10,)"
            R"("preemptible":false,"use_spot":false,"clouds":[],"regions":[]})");
  EXPECT_EQ(job_spec_to_json(make("c", {500, 512, 0, 0})),
            R"({"name":"c","resources":{"cpus":0.5,"memory":0.5},"num_nodes":1,"envs":{},)"
            R"("setup":"","run":"echo hi","max_restarts":0,"queue":"","priority":0,)"
            R"("preemptible":true,"use_spot":false,"clouds":[],"regions":[]})");
  EXPECT_EQ(job_spec_to_json_value(make("f", {1000, 1024, 1, 250}, {"T4"}))["resources"].dump(),
            R"({"accelerators":"T4:0.25","cpus":1,"memory":1})");
  EXPECT_EQ(job_spec_to_json_value(
                make("m", {1000, 1024, 2, 1000}, {"A100", "H100"}))["resources"]["accelerators"]
                .dump(),
            R"(["A100:2","H100:2"])");
  EXPECT_EQ(
      job_spec_to_json_value(make("a", {1000, 1024, 1, 500}))["resources"]["accelerators"].dump(),
      "0.5");
}

TEST(SpecJobJson, RoundTrips) {
  std::vector<JobSpec> specs = {
      make("cpu-only", {1000, 1024, 0, 0}),
      make("odd-quantities", {1001, 1000, 0, 0}),
      make("zero", {0, 0, 0, 0}),
      make("whole-gpus", {4000, 16384, 8, 1000}, {"A100-80GB"}),
      make("fractional", {2500, 3000, 1, 250}, {"T4"}),
      make("tiny-share", {1, 1, 1, 1}, {"L4"}),
      make("any-model", {1000, 1024, 3, 1000}),
      make("any-model-share", {1000, 1024, 1, 125}),
      make("several-models", {1000, 1024, 4, 1000}, {"H100", "A100", "G1"}),
  };
  JobSpec full = make("full", {64000, 512000, 8, 1000}, {"H100"});
  full.num_nodes = 1024;
  full.max_restarts = 100;
  full.envs = {{"A", ""}, {"B_2", "line\nbreak \"quoted\" \\ \xc3\xa9"}, {"_X", "0.50"}};
  full.setup = "set -e\npip install x\n";
  full.run = "torchrun --nnodes=$LEPTON_NUM_NODES train.py\n";
  full.queue = std::string(63, 'q');
  full.priority = 1000;
  full.preemptible = false;
  specs.push_back(full);
  JobSpec low = make("low", {1000, 1024, 0, 0});
  low.queue = "team-a";
  low.priority = -1000;
  specs.push_back(low);
  for (const JobSpec& s : specs) {
    ASSERT_TRUE(validate_job_spec(s).is_ok()) << s.name;
    std::string text = job_spec_to_json(s);
    auto back = job_spec_from_json(text);
    ASSERT_TRUE(back.is_ok()) << text << ": " << back.status().message();
    EXPECT_EQ(*back, s) << text;
    EXPECT_EQ(job_spec_to_json(*back), text);
  }
}

TEST(SpecJobJson, AgreesWithYaml) {
  auto yaml = parse_job_yaml(
      "name: t\nresources: {accelerators: [a100:2, h100:2], cpus: 4+, memory: 1.5}\n"
      "envs: {N: 3}\nrun: x\n",
      "t.yaml");
  ASSERT_TRUE(yaml.is_ok()) << yaml.status().message();
  auto json = job_spec_from_json(
      R"({"name":"t","resources":{"accelerators":["A100:2","H100:2"],"cpus":"4+","memory":1.5},)"
      R"("envs":{"N":3},"run":"x"})");
  ASSERT_TRUE(json.is_ok()) << json.status().message();
  EXPECT_EQ(*yaml, *json);
  auto back = job_spec_from_json(job_spec_to_json(*yaml));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, *yaml);
}

TEST(SpecJobJson, QueueFields) {
  auto r = job_spec_from_json(
      R"({"name":"j","run":"x","queue":"team-a","priority":-5,"preemptible":false})");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->queue, "team-a");
  EXPECT_EQ(r->priority, -5);
  EXPECT_FALSE(r->preemptible);
  // null means the default, as for every optional field.
  r = job_spec_from_json(R"({"name":"j","run":"x","queue":null,"priority":null,)"
                         R"("preemptible":null})");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->queue, "");
  EXPECT_EQ(r->priority, 0);
  EXPECT_TRUE(r->preemptible);

  EXPECT_EQ(error(R"({"name":"j","run":"x","queue":"Team A"})"),
            "queue: expected 1 to 63 characters of a-z, 0-9 and '-', starting with a letter, got "
            "'Team A'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","queue":7})"), "queue: expected a string, got '7'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","priority":1001})"),
            "priority: expected an integer from -1000 to 1000, got '1001'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","priority":"1"})"),
            "priority: expected an integer from -1000 to 1000, got '1'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","priority":1.5})"),
            "priority: expected an integer from -1000 to 1000, got '1.5'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","preemptible":"false"})"),
            "preemptible: expected true or false, got 'false'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","preemptible":0})"),
            "preemptible: expected true or false, got '0'");
}

// A spec stored by a lepton without queues (no queue, priority or preemptible keys) still reads,
// with the defaults.
TEST(SpecJobJson, SpecsStoredBeforeQueuesStillDecode) {
  auto r = job_spec_from_json(
      R"({"name":"train","resources":{"accelerators":"A100:8","cpus":4,"memory":16},)"
      R"("num_nodes":2,"envs":{"EPOCHS":"3"},"setup":"pip install x",)"
      R"("run":"python train.py","max_restarts":2})");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->queue, "");
  EXPECT_EQ(r->priority, 0);
  EXPECT_TRUE(r->preemptible);
  EXPECT_EQ(r->max_restarts, 2);
}

TEST(SpecJobJson, AcceptsStructuredResources) {
  auto r = job_spec_from_json(
      R"({"name":"s","run":"x","resources":{"cpu_milli":250,"memory_mib":100,"gpu_count":1,)"
      R"("gpu_milli":300,"gpu_models":["t4-16gb"]}})");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->resources, (Resources{250, 100, 1, 300}));
  EXPECT_EQ(r->gpu_models, std::vector<std::string>{"T4"});

  r = job_spec_from_json(R"({"name":"s","run":"x","resources":{"gpu_count":2}})");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->resources, (Resources{1000, 1024, 2, 1000}));

  EXPECT_EQ(error(R"({"name":"s","run":"x","resources":{"cpus":1,"cpu_milli":1}})"),
            "resources: expected either accelerators/cpus/memory or cpu_milli, memory_mib, "
            "gpu_count, gpu_milli, gpu_models, got both 'cpus' and 'cpu_milli'");
  EXPECT_EQ(error(R"({"name":"s","run":"x","resources":{"gpu_count":2,"gpu_milli":500}})"),
            "resources.gpu_milli: a request for several GPUs must take whole GPUs (1000 each), got "
            "'500'");
}

TEST(SpecJobJson, Errors) {
  EXPECT_EQ(error(R"({"name":"j","run":"x","nodes":2})"),
            "nodes: unknown field, expected one of name, resources, num_nodes, envs, setup, run, "
            "max_restarts, queue, priority, preemptible, kind, use_spot, clouds, regions");
  EXPECT_EQ(error(R"({"name":"j","run":"x","num_nodes":"2"})"),
            "num_nodes: expected an integer from 1 to 1024, got '2'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","num_nodes":2.0})"),
            "num_nodes: expected an integer from 1 to 1024, got '2.0'");
  EXPECT_EQ(error(R"({"name":"j","run":5})"), "run: expected a string, got '5'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","resources":{"accelerators":true}})"),
            "resources.accelerators: expected a GPU model with an optional count, such as A100, "
            "A100:8 or T4:0.5, got 'true'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","resources":{"accelerators":1.5}})"),
            "resources.accelerators: expected a GPU count of 1 to 1024 whole GPUs, or a fraction "
            "of one GPU with at most 3 decimals such as 0.5, got '1.5'");
  EXPECT_EQ(error(R"({"name":"j","run":"x","envs":{"A":null}})"),
            "envs.A: expected a string, number or bool, got null");
  EXPECT_EQ(error(R"({"name":"j","run":"x","run":"y"})"),
            "run: expected each field once, got it twice");
  EXPECT_EQ(error(R"({"name":"j","run":"x","envs":{"A":"1","A":"2"}})"),
            "envs.A: expected each field once, got it twice");
  EXPECT_EQ(error(R"({"name":"Bad","run":"x"})"),
            "name: expected 1 to 63 characters of a-z, 0-9 and '-', starting with a letter, got "
            "'Bad'");
  EXPECT_EQ(error(R"({"run":"x"})"),
            "name: expected a job name (the field is required), got nothing");
  EXPECT_EQ(error(""), "expected a job spec (a JSON object), got an empty document");
  EXPECT_EQ(error("[1]"), "expected a job spec (a JSON object), got array");
  EXPECT_EQ(error("null"), "expected a job spec (a JSON object), got null");
  EXPECT_EQ(error(R"({"name":)").rfind("expected JSON, got parse error", 0), 0u)
      << error(R"({"name":)");
  EXPECT_EQ(error("{\"name\":\"j\",\"run\":\"\xff\"}").rfind("expected JSON, got parse error", 0),
            0u);
}

TEST(SpecJobJson, MutatedInputNeverCrashes) {
  JobSpec s = make("train", {4000, 16384, 8, 1000}, {"A100", "H100"});
  s.envs = {{"EPOCHS", "3"}};
  s.queue = "team-a";
  s.priority = -20;
  s.preemptible = false;
  const std::string base = job_spec_to_json(s);
  const std::string_view alphabet = "0123456789:{}[],-.\"e\\ ntul";
  std::mt19937 rng(2);
  int ok = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string t = lepton::test_util::mutate(base, alphabet, rng, 3);
    auto r = job_spec_from_json(t);
    if (r.is_ok()) {
      ++ok;
      auto back = job_spec_from_json(job_spec_to_json(*r));
      ASSERT_TRUE(back.is_ok()) << t;
      EXPECT_EQ(*back, *r) << t;
    }
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace lepton::spec
