#include "sim/queue_sim.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lepton::sim {
namespace {

using sched::QueuePolicy;

const std::string kDir = std::string(LEPTON_SOURCE_DIR) + "/data/traces/alibaba-gpu-v2023/";

// ---- Metrics helpers ----

TEST(QueueSimMetrics, PercentileIsNearestRank) {
  EXPECT_EQ(percentile({}, 99), 0);
  EXPECT_EQ(percentile({5}, 99), 5);
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  EXPECT_EQ(percentile(v, 99), 99);
  EXPECT_EQ(percentile(v, 50), 50);
  EXPECT_EQ(percentile(v, 100), 100);
  // 12 values: rank ceil(0.99 * 12) = 12, the largest.
  EXPECT_EQ(percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 99), 12);
}

TEST(QueueSimMetrics, JainIndex) {
  EXPECT_DOUBLE_EQ(jain_index({1, 1, 1}), 1);
  EXPECT_DOUBLE_EQ(jain_index({2, 0}), 0.5);
  EXPECT_DOUBLE_EQ(jain_index({1, 0, 0, 0}), 0.25);
  EXPECT_DOUBLE_EQ(jain_index({1, 2}), 9.0 / 10);
  EXPECT_DOUBLE_EQ(jain_index({}), 1);
}

// ---- Queue config ----

TEST(QueueConfig, DefaultMapsEveryQosToALeaf) {
  QueueConfig c = default_queue_config();
  auto tree = build_queue_tree(c, Quota{10'000, 100'000, 1'000'000});
  ASSERT_TRUE(tree.is_ok()) << tree.status().message();
  const int prod = tree->find("prod");
  ASSERT_GE(prod, 0);
  EXPECT_EQ(tree->spec(prod).guaranteed, (Quota{4'000, 40'000, 400'000}));
  EXPECT_EQ(tree->spec(tree->find("dev")).guaranteed.gpu_milli, 2'000);
  EXPECT_EQ(c.qos.at("LS").priority, 1);
  EXPECT_FALSE(c.qos.at("Guaranteed").preemptible);
  EXPECT_EQ(c.qos.at("BE").queue, "research");
}

TEST(QueueConfig, ParsesJsonAndNamesBadFields) {
  auto c = parse_queue_config(R"({"queues": [{"name": "a", "guaranteed_pct": 70},
                                             {"name": "b", "guaranteed_pct": 30, "weight": 2}],
                                  "qos": {"LS": "a", "BE": {"queue": "b", "priority": 3,
                                                            "preemptible": false}}})",
                              "q.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->queues.size(), 2u);
  EXPECT_EQ(c->queues[1].weight, 2);
  EXPECT_EQ(c->qos.at("BE").priority, 3);
  EXPECT_FALSE(c->qos.at("BE").preemptible);

  auto bad = parse_queue_config(R"({"queues": [{"name": "a", "guaranteed_pct": 170}],
                                    "qos": {"LS": "a"}})",
                                "q.json");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("q.json: queues[0].guaranteed_pct"), std::string::npos)
      << bad.status().message();
  auto typo = parse_queue_config(R"({"queues": [{"nmae": "a"}], "qos": {"LS": "a"}})", "q.json");
  ASSERT_FALSE(typo.is_ok());
  EXPECT_NE(typo.status().message().find("queues[0].nmae"), std::string::npos);
  EXPECT_FALSE(parse_queue_config("{", "q.json").is_ok());

  QueueConfig dangling = default_queue_config();
  dangling.qos["LS"].queue = "nope";
  auto tree = build_queue_tree(dangling, Quota{1000, 1000, 1000});
  ASSERT_FALSE(tree.is_ok());
  EXPECT_NE(tree.status().message().find("nope"), std::string::npos);
}

// ---- Workload ----

TracePod pod(const std::string& name, const std::string& qos, int64_t created,
             std::optional<int64_t> scheduled, std::optional<int64_t> deleted, int gpus = 1) {
  TracePod p;
  p.name = name;
  p.qos = qos;
  p.res = Resources{1000, 1024, gpus, gpus > 0 ? 1000 : 0};
  p.creation_time = created;
  p.scheduled_time = scheduled;
  p.deletion_time = deleted;
  return p;
}

TEST(QueueWorkload, DurationsArrivalsAndSkips) {
  QueueConfig c = default_queue_config();
  auto tree = build_queue_tree(c, Quota{10'000, 100'000, 1'000'000}).value();
  std::vector<TracePod> pods = {
      pod("a", "LS", 100, 110, 210),           // 100 s
      pod("b", "BE", 200, std::nullopt, 260),  // no scheduled_time: 60 s from creation
      pod("c", "Burstable", 300, 0, 330),      // scheduled_time 0: from creation, 30 s
      pod("d", "LS", 400, 500, 500),           // duration 0: skipped
      pod("e", "LS", 400, 450, std::nullopt),  // no end: skipped
      pod("f", "Guaranteed", 500, 500, 5500),  // 5000 s, capped to 1000
  };
  QueueTraceOptions o{.load = 0, .max_duration_s = 1000, .start_pct = 0};
  auto w = make_queue_workload(pods, tree, c, 10'000, o);
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  ASSERT_EQ(w->jobs.size(), 4u);
  EXPECT_EQ(w->skipped_nonpositive, 1);
  EXPECT_EQ(w->skipped_no_end, 1);
  EXPECT_EQ(w->no_scheduled_time, 2);
  EXPECT_EQ(w->capped, 1);
  EXPECT_EQ(w->jobs[0].name, "a");
  EXPECT_EQ(w->jobs[0].arrival_ms, 0);
  EXPECT_EQ(w->jobs[0].duration_ms, 100'000);
  EXPECT_EQ(w->jobs[0].queue, tree.find("prod"));
  EXPECT_EQ(w->jobs[0].priority, 1);
  EXPECT_EQ(w->jobs[1].arrival_ms, 100'000);
  EXPECT_EQ(w->jobs[1].duration_ms, 60'000);
  EXPECT_EQ(w->jobs[1].queue, tree.find("research"));
  EXPECT_EQ(w->jobs[2].duration_ms, 30'000);
  EXPECT_EQ(w->jobs[3].duration_ms, 1'000'000);
  EXPECT_FALSE(w->jobs[3].preemptible);
  EXPECT_DOUBLE_EQ(w->time_scale, 1);
  EXPECT_DOUBLE_EQ(w->arrival_span_s, 400);
  // Mean demand over the 400 s window with unlimited GPUs: a runs 100 s of it, b 60 s, c 30 s,
  // and f, arriving at its end, none; over 10 GPUs.
  EXPECT_NEAR(w->offered_load, (100 + 60 + 30) / 400.0 / 10, 1e-12);
  // All at once, each job would fill the window from its arrival on: (1 + 0.75 + 0.5 + 0) / 10.
  EXPECT_NEAR(w->max_offered_load, 0.225, 1e-12);

  // At load 0.2 (2 GPUs), a fills the window and b and c do not: 1 + (0.15 + 0.075) s = 2 for
  // arrivals s = 40/9 times faster. Durations are not scaled.
  o.load = 0.2;
  auto fast = make_queue_workload(pods, tree, c, 10'000, o).value();
  EXPECT_NEAR(fast.offered_load, 0.2, 1e-9);
  EXPECT_NEAR(fast.time_scale, 40.0 / 9, 1e-9);
  EXPECT_EQ(fast.jobs[3].arrival_ms, std::llround(400'000 / fast.time_scale));
  EXPECT_EQ(fast.jobs[3].duration_ms, 1'000'000);
  o.load = 0.3;  // beyond 0.225
  auto out_of_reach = make_queue_workload(pods, tree, c, 10'000, o);
  ASSERT_FALSE(out_of_reach.is_ok());
  EXPECT_NE(out_of_reach.status().message().find("out of reach"), std::string::npos);

  // Early pods arrive at the start percentile: 50% of 4 creation times is the 2nd (200).
  o.load = 0;
  o.start_pct = 50;
  auto late = make_queue_workload(pods, tree, c, 10'000, o).value();
  EXPECT_EQ(late.early_arrivals, 1);
  EXPECT_EQ(late.jobs[0].arrival_ms, 0);
  EXPECT_EQ(late.jobs[1].arrival_ms, 0);
  EXPECT_EQ(late.jobs[3].arrival_ms, 300'000);
}

TEST(QueueWorkload, ClearErrors) {
  QueueConfig c = default_queue_config();
  auto tree = build_queue_tree(c, Quota{10'000, 100'000, 1'000'000}).value();
  auto unknown = make_queue_workload({pod("x", "Mystery", 0, 0, 10)}, tree, c, 10'000, {});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("pod x: qos 'Mystery'"), std::string::npos)
      << unknown.status().message();
  // A pod list with resources only (the multigpu variants) has no times.
  TracePod bare;
  bare.name = "y";
  auto no_times = make_queue_workload({bare}, tree, c, 10'000, {});
  ASSERT_FALSE(no_times.is_ok());
  EXPECT_NE(no_times.status().message().find("deletion_time"), std::string::npos);
}

TEST(QueueWorkload, DefaultTraceAtLoad) {
  auto nodes = read_alibaba_nodes(kDir + "openb_node_list_gpu_node.csv").value();
  auto pods = read_alibaba_pods(kDir + "openb_pod_list_default.csv").value();
  QueueConfig c = default_queue_config();
  auto tree = build_queue_tree(c, Quota{6'212'000, 1, 1}).value();
  // On all 6,212 GPUs the trace cannot contend: at most ~45% even if every pod came at once.
  auto full = make_queue_workload(pods, tree, c, 6'212'000, {.load = 0}).value();
  EXPECT_LT(full.max_offered_load, 0.5);
  EXPECT_LT(full.offered_load, 0.01);
  auto w = make_queue_workload(pods, tree, c, 256'000, {.load = 1.3}).value();
  EXPECT_EQ(w.pods, 8152);
  EXPECT_EQ(w.jobs.size() + w.skipped_nonpositive + w.skipped_no_end, 8152u);
  EXPECT_NEAR(w.offered_load, 1.3, 1e-9);
  EXPECT_GT(w.time_scale, 1);
  for (size_t i = 1; i < w.jobs.size(); ++i) {
    ASSERT_LE(w.jobs[i - 1].arrival_ms, w.jobs[i].arrival_ms);
    ASSERT_LE(w.jobs[i].duration_ms, 86'400'000);
  }
  auto subset = select_nodes(nodes, 256, 42);
  int64_t g = 0;
  for (const auto& n : subset) g += n.gpu_count;
  EXPECT_GE(g, 256);
  EXPECT_LT(g, 256 + sched::kMaxGpusPerNode);
  auto again = select_nodes(nodes, 256, 42);
  ASSERT_EQ(again.size(), subset.size());
  for (size_t i = 0; i < subset.size(); ++i) EXPECT_EQ(again[i].name, subset[i].name);
  EXPECT_EQ(select_nodes(nodes, 0, 42).size(), nodes.size());
}

// ---- Replays on small hand-made clusters ----

// Two 4-GPU nodes; queues a and b with 50% each.
struct Small {
  std::vector<sched::NodeSpec> nodes = {{"n1", 64'000, 256'000, 4, "V100"},
                                        {"n2", 64'000, 256'000, 4, "V100"}};
  QueueConfig config;
  sched::QueueTree tree;
  QueueWorkload workload;

  Small() {
    config.queues = {{"a", "", 50, 1, std::nullopt}, {"b", "", 50, 1, std::nullopt}};
    config.qos = {{"A", {"a", 0, true}}, {"B", {"b", 0, true}}};
    tree = build_queue_tree(config, Quota{8'000, 128'000, 512'000}).value();
  }
  void add(const std::string& queue, int count, int64_t arrival_s, int64_t duration_s) {
    for (int i = 0; i < count; ++i) {
      QueueJob j;
      j.name = queue + std::to_string(workload.jobs.size());
      j.queue = tree.find(queue);
      j.arrival_ms = arrival_s * 1000;
      j.duration_ms = duration_s * 1000;
      j.res = Resources{1000, 1024, 1, 1000};
      workload.jobs.push_back(j);
    }
  }
  QueueSimResult run(QueuePolicy policy) const {
    auto r =
        run_queue_sim(nodes, workload, tree, {.policy = policy, .window = MeasureWindow::kRun});
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? *r : QueueSimResult{};
  }
  const QueueSimQueue& queue(const QueueSimResult& r, const std::string& name) const {
    for (const auto& q : r.queues) {
      if (q.name == name) return q;
    }
    static QueueSimQueue none;
    ADD_FAILURE() << "no queue " << name;
    return none;
  }
};

TEST(QueueSim, StaticQuotasLeaveGpusIdleAndBorrowingUsesThem) {
  Small s;
  s.add("a", 8, 0, 100);  // b never submits
  QueueSimResult fifo = s.run(QueuePolicy::kFifo);
  // a is held to its 4 GPUs: two waves, 0-100 and 100-200; half the cluster idles throughout.
  EXPECT_EQ(fifo.completed, 8);
  EXPECT_DOUBLE_EQ(fifo.window_s, 200);
  EXPECT_NEAR(fifo.gpu_alloc_pct, 50, 1e-9);
  EXPECT_NEAR(fifo.avg_jct_s, 150, 1e-9);
  EXPECT_NEAR(fifo.p99_jct_s, 200, 1e-9);
  EXPECT_NEAR(s.queue(fifo, "a").avg_wait_s, 50, 1e-9);
  EXPECT_EQ(fifo.preemptions, 0);

  QueueSimResult lepton = s.run(QueuePolicy::kLepton);
  // a borrows b's idle guarantee: one wave.
  EXPECT_EQ(lepton.completed, 8);
  EXPECT_DOUBLE_EQ(lepton.window_s, 100);
  EXPECT_NEAR(lepton.gpu_alloc_pct, 100, 1e-9);
  EXPECT_NEAR(lepton.avg_jct_s, 100, 1e-9);
  EXPECT_EQ(lepton.preemptions, 0);
  // Only a has GPU demand: its fair share is the whole cluster.
  EXPECT_NEAR(s.queue(lepton, "a").avg_fair_share_gpus, 8, 1e-9);
  EXPECT_NEAR(s.queue(lepton, "a").avg_in_use_gpus, 8, 1e-9);

  // The default window ends at the last arrival: add one at t=50 and measure 0-50 s only.
  s.add("a", 1, 50, 10);
  auto early = run_queue_sim(s.nodes, s.workload, s.tree, {.policy = QueuePolicy::kFifo});
  ASSERT_TRUE(early.is_ok());
  EXPECT_DOUBLE_EQ(early->window_s, 50);
  EXPECT_NEAR(early->gpu_alloc_pct, 50, 1e-9);
  EXPECT_DOUBLE_EQ(early->makespan_s, 210);  // the ninth job waits for the second wave
  // 4 GPUs for 200 s, and one more for 10 s, over 8 GPUs x 210 s.
  EXPECT_NEAR(early->gpu_alloc_pct_to_end, 100 * (4 * 200 + 10) / (8 * 210.0), 1e-9);
}

TEST(QueueSim, ReclaimGivesAQueueItsGuaranteeBack) {
  Small s;
  s.add("a", 8, 0, 1000);  // a borrows the whole cluster
  s.add("b", 4, 10, 100);  // b comes back at t=10 and is owed its 4 GPUs
  QueueSimResult lepton = s.run(QueuePolicy::kLepton);
  EXPECT_EQ(lepton.completed, 12);
  EXPECT_EQ(lepton.preemptions, 4);
  EXPECT_EQ(s.queue(lepton, "a").preempted, 4);
  // Four runs of 10 s lost (grace 0).
  EXPECT_NEAR(lepton.gpu_hours_lost, 4 * 10 / 3600.0, 1e-9);
  // b starts at once: no wait, and its guarantee came back immediately.
  EXPECT_NEAR(s.queue(lepton, "b").avg_wait_s, 0, 1e-9);
  EXPECT_NEAR(s.queue(lepton, "b").max_reclaim_wait_s, 0, 1e-9);
  EXPECT_NEAR(lepton.max_reclaim_wait_s, 0, 1e-9);

  // Plain priority has no quotas and never preempts: b waits until a's work ends at t=1000.
  QueueSimResult prio = s.run(QueuePolicy::kPriority);
  EXPECT_EQ(prio.preemptions, 0);
  EXPECT_NEAR(s.queue(prio, "b").avg_wait_s, 990, 1e-9);
  EXPECT_NEAR(s.queue(prio, "b").max_reclaim_wait_s, 990, 1e-9);
  // Hand-computed: JCTs are 8 x 1000 and 4 x 1090.
  EXPECT_NEAR(prio.avg_jct_s, (8 * 1000 + 4 * 1090) / 12.0, 1e-9);
  EXPECT_NEAR(prio.p99_jct_s, 1090, 1e-9);
  // 8 GPUs for 1000 s, then 4 for 100 s, over 1100 s.
  EXPECT_NEAR(prio.gpu_alloc_pct, 100 * (8 * 1000 + 4 * 100) / (8 * 1100.0), 1e-9);
  // Jain: 0-10 s only a wants GPUs (index 1); 10-1000 s fair shares are 4 and 4 while a uses 8
  // and b 0, x = (2, 0), index 0.5; 1000-1100 s only b (index 1).
  EXPECT_NEAR(prio.jain_fairness, (10 * 1 + 990 * 0.5 + 100 * 1) / 1100.0, 1e-9);

  // Grace: victims keep their GPUs 30 s longer, so b waits 30 s and more work is lost.
  auto graced = run_queue_sim(
      s.nodes, s.workload, s.tree,
      {.policy = QueuePolicy::kLepton, .window = MeasureWindow::kRun, .grace_ms = 30'000});
  ASSERT_TRUE(graced.is_ok()) << graced.status().message();
  EXPECT_EQ(graced->preemptions, 4);
  EXPECT_NEAR(graced->gpu_hours_lost, 4 * 40 / 3600.0, 1e-9);
  EXPECT_NEAR(s.queue(*graced, "b").avg_wait_s, 30, 1e-9);
  EXPECT_NEAR(graced->max_reclaim_wait_s, 30, 1e-9);
}

TEST(QueueSim, HorizonEndsTheWindow) {
  Small s;
  s.add("a", 8, 0, 1000);
  auto r = run_queue_sim(s.nodes, s.workload, s.tree,
                         {.policy = QueuePolicy::kFifo, .horizon_ms = 500'000});
  ASSERT_TRUE(r.is_ok());
  EXPECT_DOUBLE_EQ(r->window_s, 500);
  EXPECT_DOUBLE_EQ(r->makespan_s, 500);
  EXPECT_EQ(r->completed, 0);
  EXPECT_EQ(r->not_completed, 8);
  EXPECT_NEAR(r->gpu_alloc_pct, 50, 1e-9);
}

TEST(QueueSim, UnplaceableJobsAreCountedNotReplayed) {
  Small s;
  s.add("a", 2, 0, 100);
  s.workload.jobs[1].gpu_spec = {"A100"};  // no such node
  auto r = run_queue_sim(s.nodes, s.workload, s.tree, {.policy = QueuePolicy::kLepton});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->unplaceable, 1);
  EXPECT_EQ(r->jobs, 1);
  EXPECT_EQ(r->completed, 1);
}

// The real trace on a small subset of nodes, twice: the same numbers both times.
TEST(QueueSim, Deterministic) {
  auto all_nodes = read_alibaba_nodes(kDir + "openb_node_list_gpu_node.csv").value();
  auto pods = read_alibaba_pods(kDir + "openb_pod_list_default.csv").value();
  pods.resize(500);
  auto nodes = select_nodes(all_nodes, 16, 42);
  Quota capacity;
  for (const auto& n : nodes) {
    capacity += Quota{int64_t{n.gpu_count} * 1000, n.cpu_milli, n.memory_mib};
  }
  QueueConfig c = default_queue_config();
  auto tree = build_queue_tree(c, capacity).value();
  QueueTraceOptions o{.load = 0, .max_duration_s = 3600};
  const double reach = make_queue_workload(pods, tree, c, capacity.gpu_milli, o)->max_offered_load;
  o.load = std::min(1.0, 0.9 * reach);
  auto w = make_queue_workload(pods, tree, c, capacity.gpu_milli, o).value();
  for (QueuePolicy p : {QueuePolicy::kFifo, QueuePolicy::kLepton}) {
    auto a = run_queue_sim(nodes, w, tree, {.policy = p}).value();
    auto b = run_queue_sim(nodes, w, tree, {.policy = p}).value();
    EXPECT_GT(a.completed, 0);
    EXPECT_EQ(a.completed, b.completed);
    EXPECT_EQ(a.avg_jct_s, b.avg_jct_s);
    EXPECT_EQ(a.p99_jct_s, b.p99_jct_s);
    EXPECT_EQ(a.gpu_alloc_pct, b.gpu_alloc_pct);
    EXPECT_EQ(a.jain_fairness, b.jain_fairness);
    EXPECT_EQ(a.preemptions, b.preemptions);
    EXPECT_EQ(a.series_alloc_pct, b.series_alloc_pct);
    EXPECT_EQ(a.cycles, b.cycles);
    if (p == QueuePolicy::kLepton) {
      EXPECT_GT(a.preemptions, 0);  // reclaim happens here
    }
  }
}

}  // namespace
}  // namespace lepton::sim
