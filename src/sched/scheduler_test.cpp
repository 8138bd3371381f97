#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <bit>

namespace lepton::sched {
namespace {

Request req(int64_t cpu, int gpus, int milli, ModelMask models = kAnyModel) {
  return {Resources{cpu, 1024, gpus, gpus == 0 ? 0 : milli}, models};
}

ClusterState identical_nodes(int n, int gpus) {
  ClusterState c;
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(c.add_node({"n" + std::to_string(i), 32000, 131072, gpus, "A100"}).is_ok());
  }
  return c;
}

Scheduler make(std::string_view policy, SchedulerOptions options = {}) {
  auto p = make_policy(policy, {});
  EXPECT_TRUE(p.is_ok());
  return Scheduler(std::move(*p), options);
}

TEST(Scheduler, TiesGoToTheLowestNodeId) {
  ClusterState c = identical_nodes(4, 2);
  Scheduler s = make("dotprod");
  Decision d = s.decide(c, req(1000, 1, 1000));
  ASSERT_TRUE(d.placement);
  EXPECT_EQ(d.placement->node, 0);
}

TEST(Scheduler, RandomTiesSpreadOverAllTiedNodes) {
  ClusterState c = identical_nodes(4, 2);
  Scheduler s = make("dotprod", {.seed = 7, .ties = TieBreak::kRandom});
  std::vector<int> hits(4);
  for (int i = 0; i < 400; ++i) ++hits[s.decide(c, req(1000, 1, 1000)).placement->node];
  for (int h : hits) EXPECT_GT(h, 60);
}

TEST(Scheduler, SameSeedSameDecisions) {
  for (const char* policy : {"random", "lepton"}) {
    ClusterState a = identical_nodes(20, 4), b = identical_nodes(20, 4);
    Scheduler sa = make(policy, {.seed = 3}), sb = make(policy, {.seed = 3});
    for (int i = 0; i < 60; ++i) {
      Request r = req(1000 + 100 * (i % 5), 1, i % 3 == 0 ? 1000 : 250);
      Decision da = sa.decide(a, r), db = sb.decide(b, r);
      ASSERT_EQ(da.placement.has_value(), db.placement.has_value());
      if (!da.placement) continue;
      EXPECT_EQ(da.placement->node, db.placement->node);
      EXPECT_EQ(da.placement->gpu_mask, db.placement->gpu_mask);
      a.bind(r, *da.placement);
      b.bind(r, *db.placement);
    }
  }
}

TEST(Scheduler, CachedScoresFollowStateChanges) {
  // Best-fit must move to the fuller node once a bind changes which node that is.
  ClusterState c = identical_nodes(2, 4);
  Scheduler s = make("bestfit");
  Request one = req(1000, 1, 1000);
  Decision first = s.decide(c, one);
  c.bind(one, *first.placement);
  Decision second = s.decide(c, one);
  EXPECT_EQ(second.placement->node, first.placement->node);
}

TEST(Scheduler, TiedClassesKeepTheirOwnGpuChoice) {
  // Node 0: GPUs free {700, 900}; node 1: {800, 800}. Best-fit scores both the same for a 0.5-GPU
  // request (same CPU and GPU left), but the tightest GPU differs: 700 on node 0, 800 on node 1.
  // Node 1 sits in a lower capacity bucket and is scored first; node 0 must win the tie with its
  // own GPU choice.
  ClusterState c = identical_nodes(2, 2);
  c.bind(req(0, 1, 300), {0, 0b01});
  c.bind(req(0, 1, 100), {0, 0b10});
  c.bind(req(0, 1, 200), {1, 0b01});
  c.bind(req(0, 1, 200), {1, 0b10});
  for (TieBreak ties : {TieBreak::kLowestNodeId, TieBreak::kRandom}) {
    Scheduler s = make("bestfit", {.seed = 1, .ties = ties});
    for (int i = 0; i < 20; ++i) {
      Decision d = s.decide(c, req(1000, 1, 500));
      ASSERT_TRUE(d.placement);
      const int gpu = std::countr_zero(d.placement->gpu_mask);
      EXPECT_EQ(c.gpu_free(d.placement->node)[gpu], d.placement->node == 0 ? 700 : 800);
      if (ties == TieBreak::kLowestNodeId) {
        EXPECT_EQ(d.placement->node, 0);
      }
    }
  }
}

TEST(Scheduler, ExplainsWhyNothingFits) {
  ClusterState c;
  ASSERT_TRUE(c.add_node({"small", 2000, 4096, 1, "T4"}).is_ok());
  ASSERT_TRUE(c.add_node({"t4", 64000, 262144, 2, "T4"}).is_ok());
  ASSERT_TRUE(c.add_node({"cpu", 64000, 262144, 0, ""}).is_ok());
  Scheduler s = make("fgd");
  Decision d = s.decide(c, req(4000, 2, 1000, c.model_mask({"T4"})));
  ASSERT_TRUE(d.placement);  // the 2-GPU T4 node
  EXPECT_EQ(d.placement->node, 1);
  c.bind(req(4000, 2, 1000), *d.placement);
  d = s.decide(c, req(4000, 2, 1000));
  EXPECT_FALSE(d.placement);
  EXPECT_EQ(d.report.nodes, 3);
  EXPECT_EQ(d.report.insufficient_cpu, 1);
  EXPECT_EQ(d.report.gpu_model_mismatch, 1);
  EXPECT_EQ(d.report.insufficient_gpu, 1);
  EXPECT_EQ(d.report.to_string(),
            "0/3 nodes fit: 1 insufficient cpu, 1 no gpu of an allowed model, 1 insufficient gpu");
}

}  // namespace
}  // namespace lepton::sched
