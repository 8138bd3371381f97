#include "spec/job_yaml.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/testing/mutate.h"
#include "spec/deployment_spec.h"

namespace lepton::spec {
namespace {

std::string error(std::string_view yaml) {
  auto r = parse_job_yaml(yaml, "job.yaml");
  if (r.is_ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(SpecJobYaml, ParsesCpuJobWithDefaults) {
  auto r = parse_job_yaml("name: hello\nrun: echo hello\n", "hello.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->name, "hello");
  EXPECT_EQ(r->run, "echo hello");
  EXPECT_EQ(r->resources, (Resources{1000, 1024, 0, 0}));
  EXPECT_TRUE(r->gpu_models.empty());
  EXPECT_EQ(r->num_nodes, 1);
  EXPECT_EQ(r->max_restarts, 0);
  EXPECT_TRUE(r->envs.empty());
  EXPECT_EQ(r->setup, "");
  EXPECT_EQ(r->queue, "");  // the default queue
  EXPECT_EQ(r->priority, 0);
  EXPECT_TRUE(r->preemptible);
}

TEST(SpecJobYaml, ParsesEveryField) {
  auto r = parse_job_yaml(R"(# a comment
name: train
resources:
  accelerators: a100-80g:8
  cpus: 4+
  memory: 16+
num_nodes: 2
envs:
  EPOCHS: 3
  VERBOSE: true
  RATE: 0.50
  NAME: "x y"
setup: |
  pip install -r requirements.txt
run: |
  python train.py
max_restarts: 2
queue: team-a
priority: 10
preemptible: false
)",
                          "train.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->resources, (Resources{4000, 16384, 8, 1000}));
  EXPECT_EQ(r->gpu_models, std::vector<std::string>{"A100-80GB"});
  EXPECT_EQ(r->num_nodes, 2);
  EXPECT_EQ(r->max_restarts, 2);
  EXPECT_EQ(r->envs, (std::map<std::string, std::string>{
                         {"EPOCHS", "3"}, {"VERBOSE", "true"}, {"RATE", "0.50"}, {"NAME", "x y"}}));
  EXPECT_EQ(r->setup, "pip install -r requirements.txt\n");
  EXPECT_EQ(r->run, "python train.py\n");
  EXPECT_EQ(r->queue, "team-a");
  EXPECT_EQ(r->priority, 10);
  EXPECT_FALSE(r->preemptible);
}

TEST(SpecJobYaml, QueueFields) {
  auto parse = [](const std::string& extra) {
    auto r = parse_job_yaml("name: j\nrun: x\n" + extra, "j.yaml");
    EXPECT_TRUE(r.is_ok()) << extra << ": " << r.status().message();
    return r.is_ok() ? *r : JobSpec{};
  };
  EXPECT_EQ(parse("priority: -1000\n").priority, -1000);
  EXPECT_EQ(parse("priority: 1000\n").priority, 1000);
  EXPECT_TRUE(parse("preemptible: True\n").preemptible);
  EXPECT_FALSE(parse("preemptible: FALSE\n").preemptible);
  JobSpec s = parse("queue:\npriority: ~\npreemptible:\n");  // null: the defaults
  EXPECT_EQ(s.queue, "");
  EXPECT_EQ(s.priority, 0);
  EXPECT_TRUE(s.preemptible);

  EXPECT_EQ(error("name: j\nrun: x\nqueue: Team-A\n"),
            "job.yaml:3:8: queue: expected 1 to 63 characters of a-z, 0-9 and '-', starting with "
            "a letter, got 'Team-A'");
  EXPECT_EQ(error("name: j\nrun: x\nqueue: [a]\n"),
            "job.yaml:3:8: queue: expected a string, got a list");
  EXPECT_EQ(error("name: j\nrun: x\npriority: 1001\n"),
            "job.yaml:3:11: priority: expected an integer from -1000 to 1000, got '1001'");
  EXPECT_EQ(error("name: j\nrun: x\npriority: high\n"),
            "job.yaml:3:11: priority: expected an integer from -1000 to 1000, got 'high'");
  EXPECT_EQ(error("name: j\nrun: x\npreemptible: yes\n"),
            "job.yaml:3:14: preemptible: expected true or false, got 'yes'");
  EXPECT_EQ(error("name: j\nrun: x\npreemptible: 0\n"),
            "job.yaml:3:14: preemptible: expected true or false, got '0'");
}

JobSpec parse_ok(const std::string& resources) {
  auto r = parse_job_yaml("name: j\nrun: x\nresources:\n" + resources, "j.yaml");
  EXPECT_TRUE(r.is_ok()) << resources << ": " << r.status().message();
  return r.is_ok() ? *r : JobSpec{};
}

TEST(SpecJobYaml, AcceleratorForms) {
  using Models = std::vector<std::string>;
  JobSpec s = parse_ok("  accelerators: T4\n");
  EXPECT_EQ(s.resources.gpu_count, 1);
  EXPECT_EQ(s.resources.gpu_milli, 1000);
  EXPECT_EQ(s.gpu_models, Models{"T4"});

  s = parse_ok("  accelerators: L4:0.25\n");
  EXPECT_TRUE(s.resources.fractional());
  EXPECT_EQ(s.resources.gpu_milli, 250);

  s = parse_ok("  accelerators: {H100: 4}\n");
  EXPECT_EQ(s.resources.gpu_count, 4);
  EXPECT_EQ(s.gpu_models, Models{"H100"});

  s = parse_ok("  accelerators: [A100:8, h100-sxm:8, A100-40GB:8]\n");
  EXPECT_EQ(s.resources.gpu_count, 8);
  EXPECT_EQ(s.gpu_models, (Models{"A100", "H100"}));  // canonical, duplicates dropped

  s = parse_ok("  accelerators:\n    - A100\n    - H100\n");
  EXPECT_EQ(s.resources.gpu_count, 1);
  EXPECT_EQ(s.gpu_models, (Models{"A100", "H100"}));

  s = parse_ok("  accelerators: {A100:2, V100:2}\n");  // SkyPilot's set form
  EXPECT_EQ(s.resources.gpu_count, 2);
  EXPECT_EQ(s.gpu_models, (Models{"A100", "V100"}));

  s = parse_ok("  accelerators: 2\n");  // any model
  EXPECT_EQ(s.resources.gpu_count, 2);
  EXPECT_TRUE(s.gpu_models.empty());

  s = parse_ok("  accelerators: G1:1\n");  // unknown models pass through
  EXPECT_EQ(s.gpu_models, Models{"G1"});
}

TEST(SpecJobYaml, CpuAndMemoryQuantities) {
  JobSpec s = parse_ok("  cpus: 0.5\n  memory: 0.5\n");
  EXPECT_EQ(s.resources.cpu_milli, 500);
  EXPECT_EQ(s.resources.memory_mib, 512);
  s = parse_ok("  cpus: \"2.125+\"\n  memory: 1.3+\n");
  EXPECT_EQ(s.resources.cpu_milli, 2125);
  EXPECT_EQ(s.resources.memory_mib, 1332);  // 1331.2 MiB rounded up
  s = parse_ok("  cpus: 0\n  memory: 0\n");
  EXPECT_EQ(s.resources.cpu_milli, 0);
  EXPECT_EQ(s.resources.memory_mib, 0);
}

TEST(SpecJobYaml, NullOptionalFieldsMeanDefaults) {
  auto r = parse_job_yaml("name: j\nrun: x\nresources:\nenvs:\nsetup:\nnum_nodes: ~\n", "j.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->resources.cpu_milli, 1000);
  EXPECT_EQ(r->num_nodes, 1);
}

TEST(SpecJobYaml, ErrorMessagesNamePositionFieldAndValue) {
  EXPECT_EQ(error("name: j\nrun: x\nresources:\n  accelerators: A100:1.5\n"),
            "job.yaml:4:17: resources.accelerators: expected a GPU count of 1 to 1024 whole GPUs, "
            "or a fraction of one GPU with at most 3 decimals such as 0.5, got 'A100:1.5'");
  EXPECT_EQ(error("name: j\nrun: x\nresources:\n  accelerators: A100:x:8\n"),
            "job.yaml:4:17: resources.accelerators: expected a GPU model with an optional count, "
            "such as A100, A100:8 or T4:0.5, got 'A100:x:8'");
  EXPECT_EQ(error("name: j\nrun: x\nresources:\n  accelerators: [A100:8, H100:4]\n"),
            "job.yaml:4:26: resources.accelerators: expected the same count for every GPU model, "
            "got 'H100:4'");
  EXPECT_EQ(error("name: j\nrun: x\nresources:\n  cpus: four\n"),
            "job.yaml:4:9: resources.cpus: expected a number of CPU cores from 0 to 1000000, "
            "optionally ending in '+', such as 4, 0.5 or 4+, got 'four'");
  EXPECT_EQ(error("name: j\nrun: x\nresources:\n  cpus: 0.0001\n"),
            "job.yaml:4:9: resources.cpus: expected a whole number of milli-cores (0.001), got "
            "'0.0001'");
  EXPECT_EQ(error("name: j\nrun: x\nresources:\n  memory: -1\n"),
            "job.yaml:4:11: resources.memory: expected a size in GiB from 0 to 1048576, "
            "optionally ending in '+', such as 16, 0.5 or 16+, got '-1'");
  EXPECT_EQ(error("name: j\nrun: x\nnum_nodes: 0\n"),
            "job.yaml:3:12: num_nodes: expected an integer from 1 to 1024, got '0'");
  EXPECT_EQ(error("name: j\nrun: x\nmax_restarts: 2.5\n"),
            "job.yaml:3:15: max_restarts: expected an integer from 0 to 100, got '2.5'");
}

TEST(SpecJobYaml, WhereToRentMachines) {
  auto r = parse_job_yaml(
      "name: t\nrun: x\nresources: {accelerators: A100:1}\nuse_spot: true\nclouds: [AWS, gcp]\n"
      "regions: us-east-1\n",
      "job.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(r->use_spot);
  EXPECT_EQ(r->clouds, (std::vector<std::string>{"aws", "gcp"}));
  EXPECT_EQ(r->regions, (std::vector<std::string>{"us-east-1"}));
  EXPECT_EQ(error("name: t\nrun: x\nuse_spot: maybe\n"),
            "job.yaml:3:11: use_spot: expected true or false, got 'maybe'");
  EXPECT_NE(
      error("name: t\nrun: x\nclouds: [aws, {a: 1}]\n").find("clouds: expected a list of names"),
      std::string::npos);
  EXPECT_NE(error("name: t\nrun: x\nclouds: [aws_1]\n").find("clouds: expected names"),
            std::string::npos);
}

TEST(SpecJobYaml, UnknownFieldsListTheAllowedOnes) {
  EXPECT_EQ(error("name: j\nrun: x\nworkdir: .\n"),
            "job.yaml:3:1: workdir: unknown field, expected one of name, resources, num_nodes, "
            "envs, setup, run, max_restarts, queue, priority, preemptible, kind, use_spot, clouds, "
            "regions");
  EXPECT_EQ(error("name: j\nrun: x\nresources:\n  gpus: 1\n"),
            "job.yaml:4:3: resources.gpus: unknown field, expected one of accelerators, cpus, "
            "memory");
}

TEST(SpecJobYaml, WrongTypes) {
  EXPECT_EQ(error("name: j\nrun: [a, b]\n"), "job.yaml:2:6: run: expected a string, got a list");
  EXPECT_EQ(error("name: {a: 1}\nrun: x\n"), "job.yaml:1:7: name: expected a string, got a map");
  EXPECT_EQ(error("name: j\nrun: x\nresources: [1]\n"),
            "job.yaml:3:12: resources: expected a map of accelerators, cpus, memory, got a list");
  EXPECT_EQ(error("name: j\nrun: x\nenvs: [A]\n"),
            "job.yaml:3:7: envs: expected a map of names to values, got a list");
  EXPECT_EQ(error("name: j\nrun: x\nenvs:\n  A: [1]\n"),
            "job.yaml:4:6: envs.A: expected a string, number or bool, got a list");
  EXPECT_EQ(error("name: j\nrun:\n"), "job.yaml:2:1: run: expected a string, got null");
  EXPECT_EQ(error("- name: j\n"),
            "job.yaml:1:1: expected a job spec (a map with name, run and more), got a list");
}

TEST(SpecJobYaml, MissingAndDuplicateFields) {
  EXPECT_EQ(error("run: x\n"),
            "job.yaml:1:1: name: expected a job name (the field is required), got nothing");
  EXPECT_EQ(error("name: j\n"),
            "job.yaml:1:1: run: expected a command to run (the field is required), got nothing");
  EXPECT_EQ(error("name: j\nrun: x\nname: k\n"),
            "job.yaml:3:1: name: expected each field once, got it twice");
  EXPECT_EQ(error("name: j\nrun: x\nenvs: {A: 1, A: 2}\n"),
            "job.yaml:3:14: envs.A: expected each field once, got it twice");
}

TEST(SpecJobYaml, DocumentErrors) {
  EXPECT_EQ(error(""),
            "job.yaml:1:1: expected a job spec (a map with name, run and more), got an "
            "empty document");
  EXPECT_EQ(error("# only a comment\n"),
            "job.yaml:1:1: expected a job spec (a map with name, run and more), got an empty "
            "document");
  EXPECT_EQ(error("name: j\nrun: x\n---\nname: k\n"),
            "job.yaml:3:1: expected one YAML document, got 2");
  EXPECT_EQ(error("name: [j\nrun: x\n").rfind("job.yaml:", 0), 0u);
  EXPECT_NE(error("name: [j\nrun: x\n").find("invalid YAML"), std::string::npos);
  EXPECT_EQ(error("name: j\n  run: x\n").rfind("job.yaml:2:", 0), 0u)
      << error("name: j\n  run: x\n");
  // yaml-cpp 0.7 loops forever on a stray ',' unless the reader guards against it.
  EXPECT_EQ(error(",-ame: train\nrun: x\n"), "job.yaml:1:1: invalid YAML: unexpected ','");
  EXPECT_EQ(error("- x\n,"), "job.yaml:2:1: invalid YAML: unexpected ','");
  std::string big = "name: j\nrun: x\n# " + std::string(1 << 20, 'x') + "\n";
  EXPECT_EQ(error(big), "job.yaml:1:1: expected a document of at most 1048576 bytes, got " +
                            std::to_string(big.size()));
}

TEST(SpecJobYaml, ValidationErrorsArePlacedAtTheField) {
  EXPECT_EQ(error("name: Hello\nrun: x\n"),
            "job.yaml:1:7: name: expected 1 to 63 characters of a-z, 0-9 and '-', starting with "
            "a letter, got 'Hello'");
  EXPECT_EQ(error("name: j\nrun: ''\n"), "job.yaml:2:6: run: expected a command to run, got ''");
  EXPECT_EQ(error("name: j\nrun: x\nenvs:\n  1X: a\n"),
            "job.yaml:4:3: envs.1X: expected a name of letters, digits and '_', not starting "
            "with a digit, got '1X'");
}

TEST(SpecJobYaml, ErrorValuesAreEscapedAndShortened) {
  std::string m =
      error("name: j\nrun: x\nnum_nodes: \"a\\tb\\x01" + std::string(100, 'c') + "\"\n");
  EXPECT_NE(m.find("got 'a\\tb\\x01ccc"), std::string::npos) << m;
  EXPECT_NE(m.find("...'"), std::string::npos) << m;
  EXPECT_LT(m.size(), 200u);
}

TEST(SpecJobYaml, AliasExpansionIsBounded) {
  // Aliases let a short document name a huge tree; only what the schema reads is visited.
  std::string yaml = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    yaml += std::string(1, c) + ": &" + c + " [";
    for (int k = 0; k < 10; ++k) yaml += std::string(k ? ", *" : "*") + static_cast<char>(c - 1);
    yaml += "]\n";
  }
  std::string m = error(yaml);
  EXPECT_EQ(m.rfind("job.yaml:", 0), 0u) << m;
}

TEST(SpecJobYaml, InvalidUtf8IsRejected) {
  std::string m = error("name: j\nrun: \"\\uD800\"\n");
  EXPECT_NE(m, "");
  EXPECT_EQ(m.rfind("job.yaml:", 0), 0u) << m;
}

TEST(SpecJobYaml, MutatedInputNeverCrashes) {
  const std::string base =
      "name: train\n"
      "resources:\n"
      "  accelerators: [A100:8, H100:8]\n"
      "  cpus: 4+\n"
      "  memory: 16.5\n"
      "num_nodes: 2\n"
      "envs: {EPOCHS: 3, LR: '0.1'}\n"
      "setup: |\n"
      "  pip install x\n"
      "run: python train.py\n"
      "max_restarts: 2\n"
      "queue: team-a\n"
      "priority: -3\n"
      "preemptible: false\n";
  ASSERT_TRUE(parse_job_yaml(base, "fuzz.yaml").is_ok());
  const std::string_view alphabet = "0123456789:{}[],-+.&*!|>'\"#\n abxAH";
  std::mt19937 rng(1);
  int errors = 0;
  for (int i = 0; i < 5000; ++i) {
    const std::string s = lepton::test_util::mutate(base, alphabet, rng, 4);
    auto r = parse_job_yaml(s, "fuzz.yaml");
    if (!r.is_ok()) {
      ++errors;
      EXPECT_EQ(r.status().message().rfind("fuzz.yaml:", 0), 0u) << r.status().message();
    }
  }
  EXPECT_GT(errors, 1000);
}

// Job specs and deployment specs (kind: deployment) alike.
TEST(SpecJobYaml, EveryExampleParses) {
  const std::filesystem::path dir = std::filesystem::path(LEPTON_SOURCE_DIR) / "examples";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string t = text.str();
    const bool deployment =
        t.starts_with("kind: deployment\n") || t.find("\nkind: deployment\n") != std::string::npos;
    Status s = deployment ? parse_deployment_yaml(t, entry.path().string()).status()
                          : parse_job_yaml(t, entry.path().string()).status();
    EXPECT_TRUE(s.is_ok()) << s.message();
    ++count;
  }
  EXPECT_GE(count, 3);
}

}  // namespace
}  // namespace lepton::spec
