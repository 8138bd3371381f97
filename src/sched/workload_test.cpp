#include "sched/workload.h"

#include <gtest/gtest.h>

namespace lepton::sched {
namespace {

Request req(int64_t cpu, int gpus, int milli, ModelMask models = kAnyModel) {
  return {Resources{cpu, 2048, gpus, gpus == 0 ? 0 : milli}, models};
}

TEST(TypicalWorkload, KeepsTheMostPopularShapesUpToCoverage) {
  std::vector<Request> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(req(1000, 1, 500));
  for (int i = 0; i < 3; ++i) rs.push_back(req(2000, 1, 1000));
  rs.push_back(req(4000, 0, 0));
  auto w = TypicalWorkload::from_requests(rs, 0.9);
  ASSERT_EQ(w.types.size(), 2u);
  EXPECT_EQ(w.types[0].request.res.gpu_milli, 500);
  EXPECT_DOUBLE_EQ(w.types[0].weight, 6.0 / 9);
  EXPECT_DOUBLE_EQ(w.types[1].weight, 3.0 / 9);
  EXPECT_EQ(w.types[0].request.res.memory_mib, 0);  // memory is not part of a shape
  EXPECT_EQ(TypicalWorkload::from_requests(rs, 1.0).types.size(), 3u);
}

TEST(GpuFrag, FollowsThePapersCases) {
  ClusterState c;
  NodeId n = *c.add_node({"n", 16000, 65536, 2, "T4"});
  Request quarter = req(1000, 1, 700);
  c.bind(quarter, {n, 1});  // GPUs now free: 1000 and 300
  const NodeState& s = c.state(n);
  EXPECT_EQ(gpu_frag_milli(s, req(1000, 1, 500)), 300);    // fits: the 300 GPU is too small
  EXPECT_EQ(gpu_frag_milli(s, req(1000, 1, 200)), 0);      // fits anywhere
  EXPECT_EQ(gpu_frag_milli(s, req(1000, 1, 1000)), 300);   // whole GPU: the partial one is lost
  EXPECT_EQ(gpu_frag_milli(s, req(1000, 2, 1000)), 1300);  // does not fit: all free is lost
  EXPECT_EQ(gpu_frag_milli(s, req(1000, 0, 0)), 1300);     // needs no GPU
  EXPECT_EQ(gpu_frag_milli(s, req(16000, 1, 100)), 1300);  // not enough CPU left
  EXPECT_EQ(gpu_frag_milli(s, req(1000, 1, 100, c.model_mask({"V100"}))), 1300);
  TypicalWorkload w{{{req(1000, 1, 500), 0.5}, {req(1000, 0, 0), 0.5}}};
  EXPECT_DOUBLE_EQ(gpu_frag_milli(s, w), 0.5 * 300 + 0.5 * 1300);
}

}  // namespace
}  // namespace lepton::sched
