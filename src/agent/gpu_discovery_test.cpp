#include "agent/gpu_discovery.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>

namespace lepton::agent {
namespace {

std::string declared_error(std::string_view spec) {
  auto r = parse_declared_gpus(spec);
  return r.is_ok() ? "" : r.status().message();
}

TEST(AgentGpuDiscovery, ParsesDeclaredGpus) {
  auto r = parse_declared_gpus("A100-80GB:8");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ((*r)[i].index, i);
    EXPECT_EQ((*r)[i].model, "A100-80GB");
    EXPECT_EQ((*r)[i].memory_mib, 80 * 1024);
    EXPECT_TRUE((*r)[i].uuid.empty());
  }
  auto alias = parse_declared_gpus(" v100m32 : 2 ");
  ASSERT_TRUE(alias.is_ok()) << alias.status().message();
  ASSERT_EQ(alias->size(), 2u);
  EXPECT_EQ((*alias)[1].model, "V100-32GB");
  auto unknown = parse_declared_gpus("G1:1");  // anonymised trace models stay as written
  ASSERT_TRUE(unknown.is_ok()) << unknown.status().message();
  EXPECT_EQ((*unknown)[0].model, "G1");
  EXPECT_EQ((*unknown)[0].memory_mib, 0);
  for (std::string_view none : {"", "none", "NONE", "  "}) {
    auto empty = parse_declared_gpus(none);
    ASSERT_TRUE(empty.is_ok()) << none;
    EXPECT_TRUE(empty->empty()) << none;
  }
}

TEST(AgentGpuDiscovery, DeclaredGpuErrorsNameTheFlag) {
  EXPECT_EQ(declared_error("T4:2,A10:1"),
            "--gpus: expected MODEL:COUNT with one model per node (e.g. A100-80GB:8); a node has "
            "one GPU model, so a list of models is not allowed, got 'T4:2,A10:1'");
  EXPECT_EQ(declared_error("A100"),
            "--gpus: expected MODEL:COUNT with one model per node (e.g. A100-80GB:8), got 'A100'");
  for (std::string_view bad : {"A100:0", "A100:-1", "A100:x", "A100:", "A100:65", "A100:1.5"}) {
    std::string e = declared_error(bad);
    EXPECT_NE(e.find("--gpus: expected a GPU count from 1 to 64 after ':'"), std::string::npos)
        << bad << ": " << e;
    EXPECT_NE(e.find("got '" + std::string(bad) + "'"), std::string::npos) << e;
  }
  for (std::string_view bad : {":8", "A 100:8", "A100/x:8"}) {
    EXPECT_NE(declared_error(bad).find("--gpus: expected a model name"), std::string::npos) << bad;
  }
  EXPECT_EQ(parse_declared_gpus("T4:2,A10:1").status().code(), StatusCode::kInvalidArgument);
}

TEST(AgentGpuDiscovery, MapsNvmlNamesToCanonicalModels) {
  struct Case {
    std::string_view nvml_name;
    int64_t memory_mib;
    std::string_view model;
  };
  const Case cases[] = {
      {"NVIDIA A100-SXM4-80GB", 81920, "A100-80GB"},
      {"NVIDIA A100-SXM4-40GB", 40960, "A100"},
      {"NVIDIA A100-PCIE-40GB", 40536, "A100"},
      {"NVIDIA A100 80GB PCIe", 81920, "A100-80GB"},
      {"NVIDIA A100-SXM4", 81251, "A100-80GB"},  // no size in the name: memory decides
      {"NVIDIA A100-SXM4", 40536, "A100"},
      {"NVIDIA A100-SXM4", 0, "A100"},
      {"NVIDIA H100 80GB HBM3", 81559, "H100"},
      {"NVIDIA H100 PCIe", 81559, "H100"},
      {"NVIDIA H100 NVL", 95830, "H100"},
      {"NVIDIA H200", 143771, "H200"},
      {"NVIDIA L40S", 46068, "L40S"},
      {"NVIDIA L4", 23034, "L4"},
      {"NVIDIA A10G", 23028, "A10G"},
      {"NVIDIA A10", 23028, "A10"},
      {"Tesla T4", 15360, "T4"},
      {"Tesla V100-SXM2-16GB", 16160, "V100"},
      {"Tesla V100-SXM2-32GB", 32510, "V100-32GB"},
      {"Tesla V100-PCIE-32GB", 0, "V100-32GB"},
      {"Tesla P100-PCIE-16GB", 16280, "P100"},
      {"NVIDIA GeForce RTX 4090", 24564, "GeForce-RTX-4090"},
      {"NVIDIA GH200 480GB", 97871, "GH200-480GB"},
      {"NVIDIA L40", 46068, "L40"},
      {"  Tesla T4 ", 15360, "T4"},
      {"NVIDIA", 0, "NVIDIA"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(model_from_nvml_name(c.nvml_name, c.memory_mib), c.model)
        << c.nvml_name << " " << c.memory_mib;
  }
}

TEST(AgentGpuDiscovery, NvmlMissingIsUnavailable) {
  auto r = discover_nvml_gpus();
  if (r.is_ok()) {
    // This machine has an NVIDIA driver: it must then see at least one GPU.
    EXPECT_FALSE(r->empty());
    for (const GpuDevice& g : *r) {
      EXPECT_FALSE(g.model.empty());
      EXPECT_GT(g.memory_mib, 0);
    }
    return;
  }
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(),
            "NVML not found (libnvidia-ml.so.1): no NVIDIA driver on this machine");
  auto node = node_gpus("");
  ASSERT_TRUE(node.is_ok()) << node.status().message();
  EXPECT_TRUE(node->empty());  // a CPU-only node
}

TEST(AgentGpuDiscovery, NodeGpusPrefersDeclared) {
  auto r = node_gpus("T4:2");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->size(), 2u);
  auto none = node_gpus("none");
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(node_gpus("T4:2,A10:1").is_ok());
}

TEST(AgentGpuDiscovery, ReadsDevicesThroughNvml) {
  // Keep the fake loaded so its counters survive discover_nvml_gpus's dlclose.
  void* lib = dlopen(LEPTON_FAKE_NVML, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  auto calls = reinterpret_cast<void (*)(int*, int*)>(dlsym(lib, "fake_nvml_calls"));
  ASSERT_NE(calls, nullptr);

  auto r = discover_nvml_gpus(LEPTON_FAKE_NVML);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1], (GpuDevice{1, "A100-80GB", "GPU-11111111-fake-1111-1111-111111111111", 81920,
                                "NVIDIA A100-SXM4-80GB"}));
  EXPECT_EQ((*r)[0].index, 0);
  int inits = 0;
  int shutdowns = 0;
  calls(&inits, &shutdowns);
  EXPECT_EQ(inits, 1);
  EXPECT_EQ(shutdowns, 1);

  setenv("LEPTON_FAKE_NVML", "no_driver", 1);
  auto no_driver = discover_nvml_gpus(LEPTON_FAKE_NVML);
  unsetenv("LEPTON_FAKE_NVML");
  ASSERT_FALSE(no_driver.is_ok());
  EXPECT_EQ(no_driver.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(no_driver.status().message(), "NVML: nvmlInit_v2 failed: Driver Not Loaded (9)");
  calls(&inits, &shutdowns);
  EXPECT_EQ(inits, 1);  // a failed init is not shut down
  EXPECT_EQ(shutdowns, 1);
  dlclose(lib);
}

TEST(AgentGpuDiscovery, LibraryWithoutNvmlSymbolsIsUnavailable) {
  auto r = discover_nvml_gpus("libm.so.6");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("lacks nvmlInit_v2, nvmlShutdown"), std::string::npos)
      << r.status().message();
  auto missing = discover_nvml_gpus("/nonexistent/libnvidia-ml.so.1");
  EXPECT_EQ(missing.status().message(),
            "NVML not found (/nonexistent/libnvidia-ml.so.1): no NVIDIA driver on this machine");
}

}  // namespace
}  // namespace lepton::agent
