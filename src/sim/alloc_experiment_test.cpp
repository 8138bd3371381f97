#include "sim/alloc_experiment.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lepton::sim {
namespace {

const std::string kDir = std::string(LEPTON_SOURCE_DIR) + "/data/traces/alibaba-gpu-v2023/";

struct Trace {
  std::vector<sched::NodeSpec> nodes;
  std::vector<TracePod> pods;
};

const Trace& default_trace() {
  static const Trace t = [] {
    Trace x;
    x.nodes = std::move(read_alibaba_nodes(kDir + "openb_node_list_gpu_node.csv").value());
    x.pods = std::move(read_alibaba_pods(kDir + "openb_pod_list_default.csv").value());
    return x;
  }();
  return t;
}

int64_t total_gpu(const std::vector<const TracePod*>& seq) {
  int64_t t = 0;
  for (const TracePod* p : seq) t += p->res.total_gpu_milli();
  return t;
}

TEST(ArrivalSequence, TunesUpToTheTarget) {
  const auto& t = default_trace();
  const int64_t capacity = 6212 * 1000;
  auto seq = arrival_sequence(t.pods, capacity, 130, 42);
  EXPECT_GT(seq.size(), t.pods.size());  // the trace alone is below 130%
  const int64_t target = capacity * 130 / 100;
  EXPECT_LE(total_gpu(seq), target + 8000);  // the last pod may overshoot by one multi-GPU pod
  EXPECT_GT(total_gpu(seq), target - 1000);
  EXPECT_EQ(seq, arrival_sequence(t.pods, capacity, 130, 42));
  EXPECT_NE(seq, arrival_sequence(t.pods, capacity, 130, 43));
}

TEST(ArrivalSequence, TunesDownAboveTheTarget) {
  const auto& t = default_trace();
  auto seq = arrival_sequence(t.pods, 1000 * 1000, 100, 1);  // a 1,000-GPU cluster
  EXPECT_LT(seq.size(), t.pods.size());
  EXPECT_LE(total_gpu(seq), 1000 * 1000);
  EXPECT_GT(total_gpu(seq), 1000 * 1000 - 8000);
}

TEST(AllocExperiment, DeterministicForAFixedSeed) {
  const auto& t = default_trace();
  AllocOptions o{.policy = "fgd", .seeds = {44}};
  auto a = run_alloc_experiment(t.nodes, t.pods, o);
  auto b = run_alloc_experiment(t.nodes, t.pods, o);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_EQ(a->runs.size(), 1u);
  EXPECT_EQ(a->runs[0].pods_placed, b->runs[0].pods_placed);
  for (size_t k = 0; k < a->runs[0].alloc_pct.size(); ++k) {
    if (std::isnan(a->runs[0].alloc_pct[k])) continue;
    EXPECT_EQ(a->runs[0].alloc_pct[k], b->runs[0].alloc_pct[k]) << k;
    EXPECT_EQ(a->runs[0].frag_pct[k], b->runs[0].frag_pct[k]) << k;
  }
}

TEST(AllocExperiment, CurvesAreSane) {
  const auto& t = default_trace();
  auto r = run_alloc_experiment(t.nodes, t.pods, {.policy = "bestfit", .seeds = {42, 43}});
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->mean_alloc_pct.size(), 131u);
  // Below saturation every arrival is placed: allocation tracks arrivals.
  EXPECT_NEAR(r->mean_alloc_pct[50], 50, 1);
  for (size_t k = 1; k < 131; ++k) {
    EXPECT_GE(r->mean_alloc_pct[k] + 0.01, r->mean_alloc_pct[k - 1]) << k;
  }
  EXPECT_LT(r->gpu_alloc_pct, 100);
  EXPECT_NEAR(r->gpu_alloc_pct + r->frag_pct, 100, 1.0);
}

// Quality bands against the FGD simulator's published means on the default trace (10 seeds each):
// FGD 95.39, BestFit 93.08. Three seeds keep this test fast; the band allows their spread.
TEST(AllocExperiment, ReproducesPublishedFgdAndBestFit) {
  const auto& t = default_trace();
  auto fgd = run_alloc_experiment(t.nodes, t.pods, {.policy = "fgd", .seeds = {42, 43, 44}});
  auto bestfit =
      run_alloc_experiment(t.nodes, t.pods, {.policy = "bestfit", .seeds = {42, 43, 44}});
  auto lepton = run_alloc_experiment(t.nodes, t.pods, {.policy = "lepton", .seeds = {42, 43, 44}});
  ASSERT_TRUE(fgd.is_ok() && bestfit.is_ok() && lepton.is_ok());
  EXPECT_NEAR(fgd->gpu_alloc_pct, 95.39, 1.0);
  EXPECT_NEAR(bestfit->gpu_alloc_pct, 93.08, 1.0);
  EXPECT_GT(fgd->gpu_alloc_pct, bestfit->gpu_alloc_pct);
  EXPECT_GT(lepton->gpu_alloc_pct, fgd->gpu_alloc_pct);
}

TEST(AllocExperiment, RejectsBadOptions) {
  const auto& t = default_trace();
  EXPECT_EQ(run_alloc_experiment(t.nodes, t.pods, {.policy = "nope"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(run_alloc_experiment(t.nodes, t.pods, {.seeds = {}}).is_ok());
  EXPECT_FALSE(run_alloc_experiment({}, t.pods, {}).is_ok());
}

}  // namespace
}  // namespace lepton::sim
