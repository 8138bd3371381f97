#include "sched/cluster_state.h"

#include <gtest/gtest.h>

namespace lepton::sched {
namespace {

NodeSpec gpu_node(std::string name, int gpus, std::string model = "A100") {
  return {std::move(name), 32000, 262144, gpus, std::move(model)};
}

Request req(int64_t cpu, int gpus, int milli, ModelMask models = kAnyModel) {
  return {Resources{cpu, 1024, gpus, gpus == 0 ? 0 : milli}, models};
}

TEST(ClusterState, AddNodeValidatesTheSpec) {
  ClusterState c;
  EXPECT_TRUE(c.add_node(gpu_node("a", 8)).is_ok());
  auto no_cpu = c.add_node({"b", 0, 1024, 0, ""});
  EXPECT_NE(no_cpu.status().message().find("cpu_milli"), std::string::npos);
  auto too_many = c.add_node(gpu_node("c", 17));
  EXPECT_NE(too_many.status().message().find("gpu"), std::string::npos);
  auto no_model = c.add_node({"d", 1000, 1024, 2, ""});
  EXPECT_NE(no_model.status().message().find("model"), std::string::npos);
  EXPECT_EQ(c.node_count(), 1u);
  EXPECT_EQ(c.gpu_capacity_milli(), 8000);
}

TEST(ClusterState, FitsChecksEveryDimension) {
  ClusterState c;
  NodeId a = *c.add_node(gpu_node("a", 2, "T4"));
  const NodeState& s = c.state(a);
  EXPECT_TRUE(ClusterState::fits(s, req(1000, 1, 250)));
  EXPECT_TRUE(ClusterState::fits(s, req(1000, 2, 1000)));
  EXPECT_FALSE(ClusterState::fits(s, req(1000, 3, 1000)));
  EXPECT_FALSE(ClusterState::fits(s, req(33000, 0, 0)));
  EXPECT_FALSE(ClusterState::fits(s, Request{Resources{1000, 300000, 0, 0}}));
  EXPECT_FALSE(ClusterState::fits(s, req(1000, 1, 500, ModelMask{1} << 5)));
  EXPECT_TRUE(ClusterState::fits(s, req(1000, 1, 500, c.model_mask({"T4"}))));
  EXPECT_FALSE(ClusterState::fits(s, req(1000, 1, 500, c.model_mask({"V100"}))));
}

TEST(ClusterState, WorkGoesOnlyToNodeGroupsItAccepts) {
  ClusterState c;
  NodeSpec spot = gpu_node("spot-1", 1, "A100");
  spot.group = 3;
  const NodeId own = *c.add_node(gpu_node("own", 1, "A100"));
  const NodeId rented = *c.add_node(spot);
  Request r = req(1000, 1, 1000);
  r.allowed_groups = GroupMask{1};  // own nodes only
  EXPECT_TRUE(ClusterState::fits(c.state(own), r));
  EXPECT_FALSE(ClusterState::fits(c.state(rented), r));
  // Even CPU-only work keeps to its groups.
  Request cpu = req(1000, 0, 0);
  cpu.allowed_groups = GroupMask{1} << 3;
  EXPECT_FALSE(ClusterState::fits(c.state(own), cpu));
  EXPECT_TRUE(ClusterState::fits(c.state(rented), cpu));
  // Same shape, another group: another class.
  EXPECT_EQ(c.live_classes().size(), 2u);
  NodeSpec bad = gpu_node("bad", 1, "A100");
  bad.group = kMaxNodeGroups;
  EXPECT_NE(c.add_node(bad).status().message().find("group"), std::string::npos);
}

TEST(ClusterState, BindAndReleaseTrackFreeCapacity) {
  ClusterState c;
  NodeId a = *c.add_node(gpu_node("a", 2));
  Request quarter = req(4000, 1, 250);
  Placement p{a, c.pick_gpus(a, quarter, 1000)};
  c.bind(quarter, p);
  EXPECT_EQ(c.state(a).cpu_free, 28000);
  EXPECT_EQ(c.gpu_allocated_milli(), 250);
  EXPECT_EQ(c.state(a).gpu_free_sorted[0], 1000);
  EXPECT_EQ(c.state(a).gpu_free_sorted[1], 750);
  // A whole GPU now has to come from the untouched device.
  Request whole = req(1000, 1, 1000);
  EXPECT_TRUE(ClusterState::fits(c.state(a), whole));
  EXPECT_FALSE(ClusterState::fits(c.state(a), req(1000, 2, 1000)));
  c.release(quarter, p);
  EXPECT_EQ(c.gpu_allocated_milli(), 0);
  EXPECT_EQ(c.state(a).cpu_free, 32000);
  EXPECT_EQ(c.state(a).full_free_gpus(), 2);
}

TEST(ClusterState, IdenticalNodesShareAClassWithLowestIdFirst) {
  ClusterState c;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.add_node(gpu_node("n" + std::to_string(i), 4)).is_ok());
  ASSERT_EQ(c.live_classes().size(), 1u);
  Request one = req(1000, 1, 1000);
  c.bind(one, {0, c.pick_gpus(0, one, 0)});
  c.bind(one, {3, c.pick_gpus(3, one, 0)});
  ASSERT_EQ(c.live_classes().size(), 2u);
  for (int32_t cid : c.live_classes()) {
    const auto& cls = c.node_class(cid);
    if (cls.state.full_free_gpus() == 4) {
      EXPECT_EQ(cls.nodes.size(), 3u);
      EXPECT_EQ(cls.nodes[0], 1);  // lowest id of {1, 2, 4}
    } else {
      EXPECT_EQ(cls.nodes.size(), 2u);
      EXPECT_EQ(cls.nodes[0], 0);
    }
  }
  c.release(one, {0, 1});
  c.release(one, {3, 1});
  EXPECT_EQ(c.live_classes().size(), 1u);
  EXPECT_EQ(c.node_class(c.live_classes()[0]).nodes[0], 0);
}

TEST(ClusterState, CordonedNodesLeaveTheClassesButKeepTheirWork) {
  ClusterState c;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.add_node(gpu_node("n" + std::to_string(i), 2)).is_ok());
  Request one = req(1000, 1, 1000);
  c.bind(one, {1, 0b01});
  c.set_cordoned(1, true);
  EXPECT_TRUE(c.cordoned(1));
  size_t visible = 0;
  for (int32_t cid : c.live_classes()) visible += c.node_class(cid).nodes.size();
  EXPECT_EQ(visible, 2u);
  EXPECT_EQ(c.gpu_allocated_milli(), 1000);
  c.release(one, {1, 0b01});  // work on a cordoned node can still end
  EXPECT_EQ(c.gpu_allocated_milli(), 0);
  c.set_cordoned(1, false);
  ASSERT_EQ(c.live_classes().size(), 1u);
  EXPECT_EQ(c.node_class(c.live_classes()[0]).nodes.size(), 3u);
}

TEST(ClusterState, StateAfterMatchesBind) {
  ClusterState c;
  NodeId a = *c.add_node(gpu_node("a", 4));
  Request half = req(1000, 1, 500);
  c.bind(half, {a, c.pick_gpus(a, half, 1000)});
  for (const Request& r : {req(1000, 1, 300), req(2000, 2, 1000), req(500, 0, 0)}) {
    const int16_t value = r.res.fractional() ? 500 : 0;
    NodeState predicted = state_after(c.state(a), r, value);
    ClusterState copy = c;
    copy.bind(r, {a, copy.pick_gpus(a, r, value)});
    EXPECT_EQ(predicted, copy.state(a)) << r.res.to_string();
  }
}

TEST(ClusterStateDeathTest, OvercommitIsABug) {
  ClusterState c;
  NodeId a = *c.add_node(gpu_node("a", 1));
  Request whole = req(1000, 1, 1000);
  c.bind(whole, {a, 1});
  EXPECT_DEATH(c.bind(whole, {a, 1}), "internal check failed");
}

}  // namespace
}  // namespace lepton::sched
