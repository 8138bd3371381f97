#include "sim/alibaba_trace.h"

#include <gtest/gtest.h>

#include <random>

#include "core/testing/mutate.h"

namespace lepton::sim {
namespace {

const char* kPodHeader =
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n";

std::string pods_error(const std::string& body) {
  auto r = parse_alibaba_pods(std::string(kPodHeader) + body, "pods.csv");
  return r.is_ok() ? "" : r.status().message();
}

TEST(AlibabaTrace, ParsesNodes) {
  auto r = parse_alibaba_nodes(
      "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\r\nn1,32000,131072,0,\n", "n.csv");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].gpu_model, "P100");
  EXPECT_EQ((*r)[0].gpu_count, 2);
  EXPECT_EQ((*r)[1].gpu_count, 0);
}

TEST(AlibabaTrace, ParsesPodsWithAndWithoutOptionalColumns) {
  auto r = parse_alibaba_pods(std::string(kPodHeader) +
                                  "p0,12000,16384,1,460,,LS,Running,0,12537496,0\n"
                                  "p1,6000,12288,2,1000,V100M16|T4,BE,Pending,5,,\n"
                                  "p2,4000,8192,0,0,nan,BE,Failed,7,9,8\n",
                              "pods.csv");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].res, (Resources{12000, 16384, 1, 460}));
  EXPECT_EQ((*r)[1].gpu_spec, (std::vector<std::string>{"V100M16", "T4"}));
  EXPECT_FALSE((*r)[1].scheduled_time.has_value());
  EXPECT_TRUE((*r)[2].gpu_spec.empty());
  auto minimal = parse_alibaba_pods(
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,8,1000\n", "m.csv");
  ASSERT_TRUE(minimal.is_ok()) << minimal.status().message();
  EXPECT_EQ((*minimal)[0].res.gpu_count, 8);
}

TEST(AlibabaTrace, ErrorsNameFileLineColumnAndField) {
  EXPECT_EQ(pods_error("p0,12x00,16384,1,460,,LS,Running,0,1,0\n"),
            "pods.csv:2:4: field 'cpu_milli': expected an integer from 0 to 100000000, got "
            "'12x00'");
  EXPECT_EQ(pods_error("p0,1,1,1,460,,LS,Running,0,1,0\np1,1,1,2,500,,LS,Running,0,1,0\n"),
            "pods.csv:3:10: field 'gpu_milli': expected 1000 for a pod with several GPUs, got "
            "'500'");
  EXPECT_NE(pods_error("p0,1,1,1,460\n").find("pods.csv:2:"), std::string::npos);
  EXPECT_NE(pods_error("p0,1,1,1,460\n").find("expected 11 fields, got 5"), std::string::npos);
  EXPECT_NE(pods_error("p0,1,1,1,0,,LS,Running,0,1,0\n").find("'gpu_milli'"), std::string::npos);
  EXPECT_NE(pods_error("p0,1,1,99,1000,,LS,Running,0,1,0\n").find("'num_gpu'"), std::string::npos);
  EXPECT_NE(pods_error("p0,1,1,1,500,A||B,LS,Running,0,1,0\n").find("'gpu_spec'"),
            std::string::npos);
  EXPECT_NE(pods_error("p0,1,1,1,500,,LS,Running,-4,1,0\n").find("'creation_time'"),
            std::string::npos);
  EXPECT_NE(pods_error(",1,1,1,500,,LS,Running,0,1,0\n").find("'name'"), std::string::npos);
  auto no_header = parse_alibaba_pods("name,cpu_milli\n", "h.csv");
  EXPECT_EQ(no_header.status().message(), "h.csv:1:1: header: missing column 'memory_mib'");
  EXPECT_EQ(parse_alibaba_pods("", "e.csv").status().message(),
            "e.csv:1:1: header: the file is empty");
  auto nodes = parse_alibaba_nodes("sn,cpu_milli,memory_mib,gpu,model\nn0,1000,1024,2,\n", "n.csv");
  EXPECT_EQ(nodes.status().message(),
            "n.csv:2:16: field 'model': expected a GPU model for a node with GPUs, got ''");
  EXPECT_EQ(read_alibaba_pods("/nonexistent/pods.csv").status().code(), StatusCode::kNotFound);
}

TEST(AlibabaTrace, BundledFilesParse) {
  const std::string dir = std::string(LEPTON_SOURCE_DIR) + "/data/traces/alibaba-gpu-v2023/";
  auto nodes = read_alibaba_nodes(dir + "openb_node_list_gpu_node.csv");
  ASSERT_TRUE(nodes.is_ok()) << nodes.status().message();
  EXPECT_EQ(nodes->size(), 1213u);
  int gpus = 0;
  for (const auto& n : *nodes) gpus += n.gpu_count;
  EXPECT_EQ(gpus, 6212);
  auto pods = read_alibaba_pods(dir + "openb_pod_list_default.csv");
  ASSERT_TRUE(pods.is_ok()) << pods.status().message();
  EXPECT_EQ(pods->size(), 8152u);
}

// Random byte-level mutations of real rows: every outcome is a parse or an error, never a crash
// (run under ASan/UBSan by the sanitizer build). The libFuzzer target in fuzz/ goes further.
TEST(AlibabaTrace, MutatedInputNeverCrashes) {
  const std::string base = std::string(kPodHeader) +
                           "p0,12000,16384,1,460,,LS,Running,0,12537496,0\n"
                           "p1,6000,12288,2,1000,V100M16|T4,BE,Pending,5,,\n";
  const std::string_view alphabet = "0123456789,|\n\r-.xan ";
  std::mt19937 rng(1);
  int errors = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string s = lepton::test_util::mutate(base, alphabet, rng, 4);
    auto r = parse_alibaba_pods(s, "fuzz.csv");
    if (!r.is_ok()) {
      ++errors;
      EXPECT_EQ(r.status().message().rfind("fuzz.csv:", 0), 0u) << r.status().message();
    }
  }
  EXPECT_GT(errors, 1000);
}

}  // namespace
}  // namespace lepton::sim
