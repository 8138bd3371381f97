// Every built-in policy passes the same invariant suite; specific decisions follow.
#include <gtest/gtest.h>

#include <bit>
#include <random>

#include "sched/policy.h"
#include "sched/scheduler.h"

namespace lepton::sched {
namespace {

Request req(int64_t cpu, int gpus, int milli, ModelMask models = kAnyModel) {
  return {Resources{cpu, 1024, gpus, gpus == 0 ? 0 : milli}, models};
}

TypicalWorkload mixed_workload() {
  return {{{req(4000, 1, 500), 0.4}, {req(8000, 1, 1000), 0.4}, {req(16000, 4, 1000), 0.2}}};
}

Scheduler make(std::string_view policy, TypicalWorkload w = mixed_workload()) {
  auto p = make_policy(policy, {std::move(w)});
  EXPECT_TRUE(p.is_ok()) << policy;
  return Scheduler(std::move(*p), {.seed = 11});
}

class EveryPolicy : public testing::TestWithParam<std::string_view> {};

// Fill a mixed cluster with random requests until nothing fits; check every decision against an
// independent recomputation of the filters.
TEST_P(EveryPolicy, NeverOvercommitsAndRespectsFilters) {
  ClusterState c;
  const char* models[] = {"T4", "V100", "A100"};
  for (int i = 0; i < 24; ++i) {
    int gpus = (i % 4 == 3) ? 0 : 1 << (i % 4);  // 1, 2, 4 GPUs or none
    ASSERT_TRUE(c.add_node({"n" + std::to_string(i), 16000 + 8000 * (i % 3), 65536, gpus,
                            gpus ? models[i % 3] : ""})
                    .is_ok());
  }
  Scheduler s = make(GetParam());
  std::mt19937 rng(5);
  int placed = 0, refused = 0;
  for (int i = 0; i < 600; ++i) {
    int kind = static_cast<int>(rng() % 4);
    int gpus = kind == 0 ? 0 : kind == 3 ? 2 : 1;
    int milli = kind == 1 ? 100 * static_cast<int>(1 + rng() % 9) : 1000;
    ModelMask mask = rng() % 3 == 0 ? c.model_mask({"V100"}) : kAnyModel;
    Request r = req(500 * static_cast<int64_t>(1 + rng() % 8), gpus, milli, mask);
    Decision d = s.decide(c, r);
    bool any_fits = false;
    for (size_t n = 0; n < c.node_count(); ++n) {
      any_fits |= ClusterState::fits(c.state(static_cast<NodeId>(n)), r);
    }
    ASSERT_EQ(d.placement.has_value(), any_fits) << "a policy must place whenever a node fits";
    if (!d.placement) {
      ++refused;
      continue;
    }
    const NodeState& st = c.state(d.placement->node);
    ASSERT_TRUE(ClusterState::fits(st, r));
    ASSERT_EQ(std::popcount(d.placement->gpu_mask), r.res.gpu_count);
    for (int g = 0; g < st.gpu_count; ++g) {
      if (d.placement->gpu_mask >> g & 1) {
        ASSERT_GE(c.gpu_free(d.placement->node)[g], r.res.gpu_milli);
      }
    }
    if (r.res.gpu_count > 0) {
      ASSERT_TRUE(mask >> st.model & 1);
    }
    c.bind(r, *d.placement);
    ++placed;
  }
  EXPECT_GT(placed, 50);
  EXPECT_GT(refused, 50);  // the cluster did fill up
  EXPECT_LE(c.gpu_allocated_milli(), c.gpu_capacity_milli());
}

INSTANTIATE_TEST_SUITE_P(Builtins, EveryPolicy,
                         testing::Values("random", "dotprod", "gpupacking", "bestfit", "fgd",
                                         "lepton"));

TEST(Policies, EveryBuiltinIsConstructibleByNameAndDottedName) {
  for (const PolicyInfo& info : builtin_policies()) {
    auto by_name = make_policy(info.name, {});
    ASSERT_TRUE(by_name.is_ok());
    EXPECT_EQ((*by_name)->name(), info.name);
    EXPECT_TRUE(make_policy(info.dotted_name, {}).is_ok());
  }
  auto bad = make_policy("tetris", {});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("random, dotprod"), std::string::npos);
}

// Node 0: GPUs free {1000, 500}; node 1: {1000, 1000}.
ClusterState half_used_pair() {
  ClusterState c;
  EXPECT_TRUE(c.add_node({"a", 32000, 131072, 2, "A100"}).is_ok());
  EXPECT_TRUE(c.add_node({"b", 32000, 131072, 2, "A100"}).is_ok());
  c.bind(req(1000, 1, 500), {0, 0b10});
  return c;
}

TEST(Policies, FragmentationAwarePoliciesFillTheHalfUsedGpu) {
  // Against a workload of whole-GPU tasks, the 500 left on node 0 is fragmented; a half-GPU
  // request that takes it removes that fragmentation, anywhere else it would create some.
  TypicalWorkload whole{{{req(1000, 1, 1000), 1.0}}};
  for (const char* policy : {"fgd", "lepton", "gpupacking", "bestfit"}) {
    ClusterState c = half_used_pair();
    Scheduler s = make(policy, whole);
    Decision d = s.decide(c, req(1000, 1, 500));
    ASSERT_TRUE(d.placement) << policy;
    EXPECT_EQ(d.placement->node, 0) << policy;
    EXPECT_EQ(d.placement->gpu_mask, 0b10u) << policy;
  }
}

TEST(Policies, FgdKeepsWholeGpusForWholeGpuWork) {
  // A 0.3-GPU request: on node 0's half-free GPU it leaves 200 (fragmented for 0.5-GPU tasks);
  // on a whole GPU it leaves 700, still usable. FGD with a 0.5-GPU workload avoids the 200.
  TypicalWorkload halves{{{req(1000, 1, 500), 1.0}}};
  ClusterState c = half_used_pair();
  Scheduler s = make("fgd", halves);
  Decision d = s.decide(c, req(1000, 1, 300));
  ASSERT_TRUE(d.placement);
  EXPECT_EQ(d.placement->node, 0);  // tie with node 1, lowest id wins
  EXPECT_EQ(c.gpu_free(0)[std::countr_zero(d.placement->gpu_mask)], 1000);
}

TEST(Policies, LeptonKeepsCpuWhereGpusWouldBeStrandedWithoutIt) {
  // The workload's GPU tasks take 8 cores per GPU. Node 0 has 4 free GPUs but 24 cores (enough
  // for 3 of them); node 1 has 4 GPUs and 64 cores. A 1-GPU, 12-core request leaves the 8-core
  // task fitting on either node, so FGD's fragmentation does not change and FGD takes the lowest
  // node id. On node 0 it would leave 3 GPUs with 12 cores, enough for 1.5 of them: lepton counts
  // the other 1.5 GPUs as stranded (0.5 more than before) and places on node 1.
  TypicalWorkload eight_cores{{{req(8000, 1, 1000), 1.0}}};
  ClusterState c;
  ASSERT_TRUE(c.add_node({"cpu-poor", 24000, 131072, 4, "V100"}).is_ok());
  ASSERT_TRUE(c.add_node({"cpu-rich", 64000, 131072, 4, "V100"}).is_ok());
  const Request heavy = req(12000, 1, 1000);
  Decision fgd = make("fgd", eight_cores).decide(c, heavy);
  ASSERT_TRUE(fgd.placement);
  EXPECT_EQ(fgd.placement->node, 0);
  Decision lepton = make("lepton", eight_cores).decide(c, heavy);
  ASSERT_TRUE(lepton.placement);
  EXPECT_EQ(lepton.placement->node, 1);
  // A request in the workload's own ratio strands nothing anywhere: the tie goes to node 0.
  Decision light = make("lepton", eight_cores).decide(c, req(8000, 1, 1000));
  ASSERT_TRUE(light.placement);
  EXPECT_EQ(light.placement->node, 0);
}

TEST(Policies, LeptonScoresCpuOnlyPodsOnFgdsMeasureAndPacksThemByFreeGpu) {
  // A CPU-only 8-core pod: on node 0 (2 GPUs, 16 cores) the 8-core GPU task still fits, so FGD's
  // measure does not change anywhere, and the tie-break sends CPU load to the node with the least
  // free GPU, node 0 — even though its second GPU is then short of CPU. The stranding term is for
  // GPU pods only.
  TypicalWorkload eight_cores{{{req(8000, 1, 1000), 1.0}}};
  ClusterState c;
  ASSERT_TRUE(c.add_node({"small", 16000, 131072, 2, "V100"}).is_ok());
  ASSERT_TRUE(c.add_node({"large", 64000, 131072, 4, "V100"}).is_ok());
  Decision d = make("lepton", eight_cores).decide(c, req(8000, 0, 0));
  ASSERT_TRUE(d.placement);
  EXPECT_EQ(d.placement->node, 0);
}

TEST(Policies, DotProdAvoidsAlignedNodes) {
  // Node 0 has little CPU left, node 1 plenty: a CPU-heavy request aligns with node 1's free
  // vector, so dotprod prefers node 0, where the product is smaller.
  ClusterState c;
  ASSERT_TRUE(c.add_node({"a", 64000, 131072, 2, "A100"}).is_ok());
  ASSERT_TRUE(c.add_node({"b", 64000, 131072, 2, "A100"}).is_ok());
  c.bind(req(48000, 0, 0), {0, 0});
  Decision d = make("dotprod").decide(c, req(8000, 1, 1000));
  ASSERT_TRUE(d.placement);
  EXPECT_EQ(d.placement->node, 0);
}

TEST(Policies, MultiGpuRequestsTakeWholeFreeGpusOnOneNode) {
  ClusterState c;
  ASSERT_TRUE(c.add_node({"four", 64000, 131072, 4, "V100"}).is_ok());
  ASSERT_TRUE(c.add_node({"eight", 96000, 393216, 8, "V100"}).is_ok());
  c.bind(req(1000, 1, 100), {1, 0b1});  // node 1 has 7 whole GPUs left
  for (const PolicyInfo& info : builtin_policies()) {
    Scheduler s = make(info.name);
    EXPECT_FALSE(s.decide(c, req(1000, 8, 1000)).placement) << info.name;
    Decision d = s.decide(c, req(1000, 6, 1000));
    ASSERT_TRUE(d.placement) << info.name;
    EXPECT_EQ(d.placement->node, 1) << info.name;
    EXPECT_EQ(d.placement->gpu_mask & 1u, 0u) << info.name;  // not the shared GPU
  }
}

}  // namespace
}  // namespace lepton::sched
