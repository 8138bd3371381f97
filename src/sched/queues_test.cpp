#include "sched/queues.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>

namespace lepton::sched {
namespace {

constexpr int64_t kGpu = 1000;

QueueSpec queue(std::string name, int64_t gpus, double weight = 1, std::string parent = "") {
  QueueSpec s;
  s.name = std::move(name);
  s.parent = std::move(parent);
  s.guaranteed = Quota{gpus * kGpu, 0, 0};
  s.weight = weight;
  return s;
}

QueueTree tree_of(std::vector<QueueSpec> specs) {
  auto t = QueueTree::build(std::move(specs));
  EXPECT_TRUE(t.is_ok()) << t.status().message();
  return std::move(*t);
}

ClusterState nodes(int n, int gpus) {
  ClusterState c;
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(c.add_node({"n" + std::to_string(i), 64000, 262144, gpus, "A100"}).is_ok());
  }
  return c;
}

Scheduler placer(std::string_view policy = "lepton") {
  auto p = make_policy(policy, {});
  EXPECT_TRUE(p.is_ok());
  return Scheduler(std::move(*p), {});
}

Work job(uint64_t id, int queue, int gpus, int64_t submit_ms = 0, int priority = 0, int tasks = 1,
         int milli = 1000) {
  Work w;
  w.id = id;
  w.queue = queue;
  w.priority = priority;
  w.submit_ms = submit_ms == 0 ? static_cast<int64_t>(id) : submit_ms;
  w.task.res = Resources{1000, 1024, gpus, gpus == 0 ? 0 : milli};
  w.tasks = tasks;
  return w;
}

// A tiny cluster driver: pending and running work, cycles, and completion of preempted work.
struct Harness {
  ClusterState cluster;
  Scheduler place;
  QueueScheduler qs;
  std::vector<Work> pending;
  std::vector<RunningWork> running;
  std::vector<uint64_t> stopping;
  int64_t now = 1000;
  int preemptions = 0;

  Harness(ClusterState c, QueueTree t, QueuePolicy policy, int64_t reserve_after_ms = 60'000)
      : cluster(std::move(c)),
        place(placer()),
        qs(std::move(t), QueueOptions{.policy = policy, .reserve_after_ms = reserve_after_ms}) {}

  CycleResult cycle() {
    CycleResult r = qs.cycle(cluster, place, pending, running, stopping, now);
    for (auto& [id, placements] : r.started) {
      auto it =
          std::find_if(pending.begin(), pending.end(), [&](const Work& w) { return w.id == id; });
      running.push_back({*it, placements, now});
      pending.erase(it);
    }
    for (uint64_t id : r.preempted) stopping.push_back(id);
    return r;
  }
  // Preempted work stops: released and back in the pending list.
  void stop_preempted() {
    for (uint64_t id : stopping) {
      auto it = std::find_if(running.begin(), running.end(),
                             [&](const RunningWork& r) { return r.work.id == id; });
      for (const Placement& p : it->placements) cluster.release(it->work.task, p);
      pending.push_back(it->work);
      running.erase(it);
      ++preemptions;
    }
    stopping.clear();
  }
  void finish(uint64_t id) {
    auto it = std::find_if(running.begin(), running.end(),
                           [&](const RunningWork& r) { return r.work.id == id; });
    ASSERT_NE(it, running.end());
    for (const Placement& p : it->placements) cluster.release(it->work.task, p);
    running.erase(it);
  }
  int64_t gpus_of(int queue) const {
    int64_t g = 0;
    for (const RunningWork& r : running) {
      if (r.work.queue == queue) g += r.work.task.res.total_gpu_milli() * r.work.tasks;
    }
    return g / kGpu;
  }
  bool is_running(uint64_t id) const {
    return std::any_of(running.begin(), running.end(),
                       [&](const RunningWork& r) { return r.work.id == id; });
  }
};

// --- the queue tree ---

TEST(QueueTree, RejectsBadHierarchies) {
  auto dup = QueueTree::build({queue("a", 1), queue("a", 1)});
  ASSERT_FALSE(dup.is_ok());
  EXPECT_NE(dup.status().message().find("queue a: name: defined twice"), std::string::npos);

  auto orphan = QueueTree::build({queue("a", 1, 1, "nope")});
  ASSERT_FALSE(orphan.is_ok());
  EXPECT_NE(orphan.status().message().find("parent: no queue named nope"), std::string::npos);

  auto cycle = QueueTree::build({queue("a", 0, 1, "b"), queue("b", 0, 1, "a")});
  ASSERT_FALSE(cycle.is_ok());
  EXPECT_NE(cycle.status().message().find("cycle"), std::string::npos);

  auto over =
      QueueTree::build({queue("dept", 4), queue("p1", 3, 1, "dept"), queue("p2", 2, 1, "dept")});
  ASSERT_FALSE(over.is_ok());
  EXPECT_NE(over.status().message().find("queue dept: guaranteed: its children"),
            std::string::npos);

  QueueSpec bad = queue("a", 1);
  bad.weight = 0;
  auto weight = QueueTree::build({bad});
  ASSERT_FALSE(weight.is_ok());
  EXPECT_NE(weight.status().message().find("queue a: weight"), std::string::npos);
}

TEST(QueueTree, FindsParentsAndChildren) {
  QueueTree t = tree_of({queue("p1", 1, 1, "dept"), queue("dept", 4), queue("p2", 2, 1, "dept")});
  EXPECT_EQ(t.find("dept"), 1);
  EXPECT_EQ(t.parent(0), 1);
  EXPECT_EQ(t.children(1), (std::vector<int>{0, 2}));
  EXPECT_EQ(t.top_level(), (std::vector<int>{1}));
  EXPECT_TRUE(t.is_leaf(0));
  EXPECT_FALSE(t.is_leaf(1));
  EXPECT_EQ(t.find("nope"), -1);
}

// --- fair share ---

TEST(FairShare, AnIdleQueueLendsItsGuarantee) {
  QueueTree t = tree_of({queue("a", 4), queue("b", 4)});
  const Quota cap{8 * kGpu, 64000, 1 << 20};
  auto s = fair_shares(t, cap, {Quota{8 * kGpu, 8000, 8192}, Quota{}});
  EXPECT_EQ(s[0].gpu_milli, 8 * kGpu);
  EXPECT_EQ(s[1].gpu_milli, 0);
}

TEST(FairShare, GuaranteesFirstThenTheRestByWeight) {
  // a is guaranteed 2 of 12, b nothing; both want everything. The 10 left go 1:4.
  QueueTree t = tree_of({queue("a", 2, 1), queue("b", 0, 4)});
  const Quota cap{12 * kGpu, 0, 0};
  auto s = fair_shares(t, cap, {Quota{12 * kGpu, 0, 0}, Quota{12 * kGpu, 0, 0}});
  EXPECT_EQ(s[0].gpu_milli, 4 * kGpu);
  EXPECT_EQ(s[1].gpu_milli, 8 * kGpu);
}

TEST(FairShare, ASatisfiedQueueLeavesTheRestToOthers) {
  QueueTree t = tree_of({queue("a", 0), queue("b", 0), queue("c", 0)});
  const Quota cap{9 * kGpu, 0, 0};
  auto s =
      fair_shares(t, cap, {Quota{1 * kGpu, 0, 0}, Quota{9 * kGpu, 0, 0}, Quota{9 * kGpu, 0, 0}});
  EXPECT_EQ(s[0].gpu_milli, 1 * kGpu);
  EXPECT_EQ(s[1].gpu_milli, 4 * kGpu);
  EXPECT_EQ(s[2].gpu_milli, 4 * kGpu);
}

TEST(FairShare, DominantResourceDecides) {
  // a wants CPU-heavy work, b GPU-heavy: DRF equalizes their dominant shares. With demands
  // (1 GPU, 100 CPUs) and (10 GPUs, 10 CPUs) on (10 GPUs, 100 CPUs), both get the fraction f of
  // their demand with 100f + 10f = 100 CPUs and f + 10f = 10 GPUs: f = 10/11, not one half.
  QueueTree t = tree_of({queue("a", 0), queue("b", 0)});
  const Quota cap{10 * kGpu, 100000, 0};
  auto s = fair_shares(t, cap, {Quota{1 * kGpu, 100000, 0}, Quota{10 * kGpu, 10000, 0}});
  EXPECT_NEAR(static_cast<double>(s[0].cpu_milli) / 100000, 10.0 / 11, 0.001);
  EXPECT_NEAR(static_cast<double>(s[1].gpu_milli) / (10 * kGpu), 10.0 / 11, 0.001);
  EXPECT_LE(s[0].cpu_milli + s[1].cpu_milli, cap.cpu_milli);
  EXPECT_LE(s[0].gpu_milli + s[1].gpu_milli, cap.gpu_milli);
}

TEST(FairShare, HierarchyDividesTheParentsShare) {
  // dept (guaranteed 6) holds p1 and p2; other (guaranteed 2). All want more than there is.
  QueueTree t = tree_of(
      {queue("dept", 6), queue("p1", 2, 1, "dept"), queue("p2", 2, 3, "dept"), queue("other", 2)});
  const Quota cap{8 * kGpu, 0, 0};
  const Quota lots{100 * kGpu, 0, 0};
  auto s = fair_shares(t, cap, {Quota{}, lots, lots, lots});
  EXPECT_EQ(s[0].gpu_milli, 6 * kGpu);
  EXPECT_EQ(s[3].gpu_milli, 2 * kGpu);
  // p1 and p2 split dept's 6: 2 + 2 guaranteed, the 2 left 1:3.
  EXPECT_EQ(s[1].gpu_milli, 2500);
  EXPECT_EQ(s[2].gpu_milli, 3500);
}

TEST(FairShare, OpenDimensionsComeAlongWithTheGuaranteedOnes) {
  // research is guaranteed GPUs only; its child vision wants 8 GPUs and 8 CPUs of a 4-GPU,
  // 64-CPU cluster. vision's share must include the CPUs that go with its GPUs, or no job of it
  // could ever be within its share.
  QueueTree t = tree_of(
      {queue("research", 4), queue("vision", 2, 1, "research"), queue("nlp", 2, 2, "research")});
  auto s = fair_shares(t, Quota{4 * kGpu, 64000, 1 << 20},
                       {Quota{}, Quota{8 * kGpu, 8000, 8192}, Quota{}});
  EXPECT_EQ(s[0].gpu_milli, 4 * kGpu);
  EXPECT_EQ(s[1].gpu_milli, 4 * kGpu);  // nlp is idle: vision gets all of research's GPUs
  EXPECT_EQ(s[1].cpu_milli, 4000);      // and half the CPUs it asks for, as with the GPUs
  EXPECT_EQ(s[2].gpu_milli, 0);
}

TEST(FairShare, LimitCapsBorrowing) {
  QueueSpec a = queue("a", 1);
  a.limit = Quota{3 * kGpu, kUnlimited, kUnlimited};
  QueueTree t = tree_of({a, queue("b", 1)});
  auto s = fair_shares(t, Quota{8 * kGpu, 0, 0}, {Quota{8 * kGpu, 0, 0}, Quota{2 * kGpu, 0, 0}});
  EXPECT_EQ(s[0].gpu_milli, 3 * kGpu);
  EXPECT_EQ(s[1].gpu_milli, 2 * kGpu);
}

// --- cycles ---

TEST(QueueScheduler, LeptonBorrowsIdleGuaranteesStaticQuotasDoNot) {
  for (QueuePolicy policy : {QueuePolicy::kFifo, QueuePolicy::kDrf, QueuePolicy::kLepton}) {
    Harness h(nodes(1, 4), tree_of({queue("a", 2), queue("b", 2)}), policy);
    for (uint64_t id = 1; id <= 4; ++id) h.pending.push_back(job(id, 0, 1));
    CycleResult r = h.cycle();
    if (policy == QueuePolicy::kLepton) {
      EXPECT_EQ(h.gpus_of(0), 4) << "lepton lends b's idle guarantee to a";
    } else {
      EXPECT_EQ(h.gpus_of(0), 2) << queue_policy_name(policy) << " keeps a at its quota";
      ASSERT_EQ(r.waiting.size(), 2u);
      EXPECT_NE(r.waiting.begin()->second.text.find("queue a would exceed its quota"),
                std::string::npos)
          << r.waiting.begin()->second.text;
    }
  }
}

TEST(QueueScheduler, ReclaimGivesAQueueItsShareBackFromBorrowers) {
  Harness h(nodes(1, 4), tree_of({queue("a", 2), queue("b", 2)}), QueuePolicy::kLepton);
  for (uint64_t id = 1; id <= 4; ++id) h.pending.push_back(job(id, 0, 1));
  h.cycle();
  ASSERT_EQ(h.gpus_of(0), 4);
  h.now += 10'000;
  h.pending.push_back(job(10, 1, 1));
  h.pending.push_back(job(11, 1, 1));
  CycleResult r = h.cycle();
  // Two of a's jobs are preempted (the youngest: least progress lost); b waits for them.
  ASSERT_EQ(r.preempted.size(), 2u);
  for (uint64_t v : r.preempted) EXPECT_TRUE(v == 3 || v == 4) << v;
  EXPECT_EQ(r.waiting.at(10).preempting.size() + r.waiting.at(11).preempting.size(), 2u);
  // Nothing else is preempted while the victims stop.
  EXPECT_TRUE(h.cycle().preempted.empty());
  h.stop_preempted();
  h.cycle();
  EXPECT_EQ(h.gpus_of(1), 2);
  EXPECT_EQ(h.gpus_of(0), 2);
  // a's preempted jobs wait: a is at its fair share and nothing is idle.
  h.now += 10'000;
  r = h.cycle();
  EXPECT_TRUE(r.preempted.empty());
  EXPECT_EQ(h.pending.size(), 2u);
}

TEST(QueueScheduler, ReclaimNeverTakesWorkWithinItsShareOrNonPreemptible) {
  Harness h(nodes(1, 4), tree_of({queue("a", 2), queue("b", 2)}), QueuePolicy::kLepton);
  h.pending = {job(1, 0, 1), job(2, 0, 1), job(3, 1, 1), job(4, 1, 1)};
  h.cycle();
  ASSERT_EQ(h.running.size(), 4u);
  h.pending.push_back(job(5, 1, 1));  // b wants more than its share: no reclaim for that
  CycleResult r = h.cycle();
  EXPECT_TRUE(r.preempted.empty());
  EXPECT_NE(r.waiting.at(5).text.find("queue b is at its fair share (2 GPUs)"), std::string::npos)
      << r.waiting.at(5).text;
}

TEST(QueueScheduler, NonPreemptibleWorkStaysWithinTheGuarantee) {
  Harness h(nodes(1, 4), tree_of({queue("a", 1), queue("b", 3)}), QueuePolicy::kLepton);
  Work w1 = job(1, 0, 1), w2 = job(2, 0, 1);
  w1.preemptible = w2.preemptible = false;
  h.pending = {w1, w2};
  CycleResult r = h.cycle();
  EXPECT_TRUE(h.is_running(1));
  EXPECT_FALSE(h.is_running(2));
  EXPECT_NE(r.waiting.at(2).text.find("within the guarantee"), std::string::npos);
}

TEST(QueueScheduler, LimitsHoldForWorkThatBorrowsLateInTheRound) {
  // a (limit 3 GPUs) is owed 2.5 of the 8 GPUs: b, weighted 3, wants 9 it can never get on one
  // 8-GPU node. Job 1 (3 GPUs) is over a's fair share, so it may only borrow what is idle at the
  // end of the round; by then jobs 2 and 3 run, and it would take a past its limit.
  QueueSpec a = queue("a", 1);
  a.limit = Quota{3 * kGpu, kUnlimited, kUnlimited};
  Harness h(nodes(1, 8), tree_of({a, queue("b", 1, 3)}), QueuePolicy::kLepton);
  h.pending = {job(1, 0, 3, 10, /*priority=*/5), job(2, 0, 1, 20), job(3, 0, 1, 30),
               job(4, 1, 9, 40)};
  CycleResult r = h.cycle();
  EXPECT_EQ(h.qs.usage()[0].fair_share.gpu_milli, 2500);
  EXPECT_TRUE(h.is_running(2));
  EXPECT_TRUE(h.is_running(3));
  EXPECT_FALSE(h.is_running(1));
  EXPECT_EQ(h.gpus_of(0), 2);
  EXPECT_NE(r.waiting.at(1).text.find("queue a would exceed its limit"), std::string::npos)
      << r.waiting.at(1).text;
}

TEST(QueueScheduler, DrfHoldsALimitTheGuaranteeLeavesOpen) {
  // a is guaranteed CPUs only, which leaves its GPUs open; its limit still caps them.
  QueueSpec a;
  a.name = "a";
  a.guaranteed = Quota{0, 8000, 0};
  a.limit = Quota{2 * kGpu, kUnlimited, kUnlimited};
  Harness h(nodes(1, 8), tree_of({a}), QueuePolicy::kDrf);
  h.pending = {job(1, 0, 1), job(2, 0, 1), job(3, 0, 1)};
  CycleResult r = h.cycle();
  EXPECT_EQ(h.gpus_of(0), 2);
  EXPECT_NE(r.waiting.at(3).text.find("queue a would exceed its limit"), std::string::npos)
      << r.waiting.at(3).text;
}

TEST(QueueScheduler, NoPartialGangs) {
  // A 3-task gang on 2 nodes cannot run: nothing of it may hold GPUs.
  Harness h(nodes(2, 8), tree_of({queue("a", 16)}), QueuePolicy::kLepton);
  h.pending = {job(1, 0, 8, 0, 0, /*tasks=*/3)};
  CycleResult r = h.cycle();
  EXPECT_TRUE(r.started.empty());
  EXPECT_EQ(h.cluster.gpu_allocated_milli(), 0);
  EXPECT_NE(r.waiting.at(1).text.find("rank 2 of 3"), std::string::npos) << r.waiting.at(1).text;
  // A 2-task gang runs, one task per node.
  h.pending = {job(2, 0, 4, 0, 0, 2)};
  r = h.cycle();
  ASSERT_EQ(r.started.size(), 1u);
  ASSERT_EQ(r.started[0].second.size(), 2u);
  EXPECT_NE(r.started[0].second[0].node, r.started[0].second[1].node);
}

TEST(QueueScheduler, ALargeGangIsNotStarvedBySmallJobs) {
  // Two 8-GPU nodes kept busy by a stream of 1-GPU jobs; an 8-GPU job waits. Without a
  // reservation the small jobs would always refill the GPUs that free up.
  for (int64_t reserve_after : {int64_t{30'000}, int64_t{1'000'000'000}}) {
    Harness h(nodes(2, 8), tree_of({queue("a", 16)}), QueuePolicy::kLepton, reserve_after);
    uint64_t next = 1;
    for (int i = 0; i < 16; ++i) h.pending.push_back(job(next++, 0, 1));
    h.cycle();
    ASSERT_EQ(h.running.size(), 16u);
    const uint64_t big = 1000;
    h.pending.push_back(job(big, 0, 8, h.now));
    bool started = false;
    for (int step = 0; step < 200 && !started; ++step) {
      h.now += 5'000;
      // The oldest small job ends and a new one arrives.
      uint64_t oldest = UINT64_MAX;
      for (const RunningWork& r : h.running) {
        if (r.work.id != big) oldest = std::min(oldest, r.work.id);
      }
      h.finish(oldest);
      h.pending.push_back(job(next++, 0, 1, h.now));
      h.cycle();
      started = h.is_running(big);
    }
    if (reserve_after < 1'000'000) {
      EXPECT_TRUE(started) << "the 8-GPU job must get a node";
    } else {
      EXPECT_FALSE(started) << "without reservations small jobs keep refilling the GPUs";
    }
  }
}

TEST(QueueScheduler, HigherPriorityGoesFirstAndMayPreemptLowerInItsQueue) {
  Harness h(nodes(1, 2), tree_of({queue("a", 2)}), QueuePolicy::kLepton);
  h.pending = {job(1, 0, 1, 10, 0), job(2, 0, 1, 20, 5), job(3, 0, 1, 30, 1)};
  h.cycle();
  EXPECT_TRUE(h.is_running(2));
  EXPECT_TRUE(h.is_running(3));
  EXPECT_FALSE(h.is_running(1));  // the oldest, but the lowest priority
  h.pending.push_back(job(4, 0, 1, 40, 9));
  CycleResult r = h.cycle();
  ASSERT_EQ(r.preempted, (std::vector<uint64_t>{3}));  // the lowest-priority running job
  h.stop_preempted();
  h.cycle();
  EXPECT_TRUE(h.is_running(4));
}

TEST(QueueScheduler, PlainPriorityOrdersAcrossQueuesAndIgnoresQuotas) {
  Harness h(nodes(1, 2), tree_of({queue("a", 0), queue("b", 0)}), QueuePolicy::kPriority);
  h.pending = {job(1, 0, 1, 10, 0), job(2, 1, 1, 20, 3), job(3, 0, 1, 30, 2)};
  CycleResult r = h.cycle();
  EXPECT_TRUE(h.is_running(2));
  EXPECT_TRUE(h.is_running(3));
  EXPECT_TRUE(r.preempted.empty());
}

TEST(QueueScheduler, FifoBlocksBehindTheFirstWaitingJobOfAQueue) {
  Harness h(nodes(1, 4), tree_of({queue("a", 4)}), QueuePolicy::kFifo);
  h.pending = {job(1, 0, 3), job(2, 0, 2), job(3, 0, 1)};
  CycleResult r = h.cycle();
  EXPECT_TRUE(h.is_running(1));
  EXPECT_FALSE(h.is_running(3));  // would fit, but job 2 is first in line
  EXPECT_NE(r.waiting.at(3).text.find("behind older work"), std::string::npos);
}

TEST(QueueScheduler, FractionsShareAGpuAndKeepWholeGpusFree) {
  Harness h(nodes(1, 2), tree_of({queue("a", 2)}), QueuePolicy::kLepton);
  // The placement policy measures fragmentation against the workload seen, as the server does.
  std::vector<Request> seen;
  for (int milli : {1000, 1000, 500, 250}) seen.push_back(job(0, 0, 1, 0, 0, 1, milli).task);
  auto policy = make_policy("lepton", {TypicalWorkload::from_requests(seen, 1.0)});
  ASSERT_TRUE(policy.is_ok());
  h.place = Scheduler(std::move(*policy), {});
  h.pending = {job(1, 0, 1, 0, 0, 1, 500), job(2, 0, 1, 0, 0, 1, 250), job(3, 0, 1, 0, 0, 1, 250)};
  h.cycle();
  ASSERT_EQ(h.running.size(), 3u);
  uint32_t masks = 0;
  for (const RunningWork& r : h.running) masks |= r.placements[0].gpu_mask;
  EXPECT_EQ(std::popcount(masks), 1) << "three fractions fill one GPU";
  h.pending = {job(4, 0, 1)};
  h.cycle();
  EXPECT_TRUE(h.is_running(4)) << "the other GPU is still whole";
}

TEST(QueueScheduler, UsageReportsGuaranteeFairShareInUseAndPending) {
  Harness h(nodes(1, 4), tree_of({queue("a", 1), queue("b", 1)}), QueuePolicy::kLepton);
  h.pending = {job(1, 0, 2), job(2, 0, 2), job(3, 0, 2)};
  h.cycle();
  const QueueUsage& a = h.qs.usage()[0];
  EXPECT_EQ(a.guaranteed.gpu_milli, 1 * kGpu);
  EXPECT_EQ(a.fair_share.gpu_milli, 4 * kGpu);  // b wants nothing
  EXPECT_EQ(a.pending.gpu_milli, 6 * kGpu);     // as the cycle began
  h.cycle();
  EXPECT_EQ(h.qs.usage()[0].in_use.gpu_milli, 4 * kGpu);
  EXPECT_EQ(h.qs.usage()[0].pending.gpu_milli, 2 * kGpu);
}

TEST(QueueScheduler, CordonsAreRestoredAfterACycle) {
  Harness h(nodes(3, 8), tree_of({queue("a", 24)}), QueuePolicy::kLepton, 0);
  h.cluster.set_cordoned(2, true);
  for (uint64_t id = 1; id <= 16; ++id) h.pending.push_back(job(id, 0, 1));
  h.pending.push_back(job(100, 0, 8));  // waits; gets a reservation at once (reserve_after 0)
  h.cycle();
  h.cycle();
  EXPECT_TRUE(h.cluster.cordoned(2));
  EXPECT_FALSE(h.cluster.cordoned(0));
  EXPECT_FALSE(h.cluster.cordoned(1));
}

TEST(QueueScheduler, IsDeterministic) {
  auto run = [] {
    Harness h(nodes(3, 8), tree_of({queue("a", 8), queue("b", 8), queue("c", 8)}),
              QueuePolicy::kLepton, 10'000);
    uint64_t id = 1;
    std::vector<uint64_t> trace;
    for (int step = 0; step < 60; ++step) {
      h.now += 3'000;
      h.pending.push_back(job(id, static_cast<int>(id % 3), static_cast<int>(1 + id % 4)));
      ++id;
      if (step % 7 == 3 && !h.running.empty()) h.finish(h.running.front().work.id);
      CycleResult r = h.cycle();
      for (auto& [s, p] : r.started) trace.push_back(s);
      for (uint64_t v : r.preempted) trace.push_back(100000 + v);
      h.stop_preempted();
    }
    return trace;
  };
  EXPECT_EQ(run(), run());
}

TEST(QueuePolicyNames, RoundTrip) {
  for (auto name : {"fifo", "priority", "drf", "lepton"}) {
    auto p = parse_queue_policy(name);
    ASSERT_TRUE(p.is_ok());
    EXPECT_EQ(queue_policy_name(*p), name);
  }
  auto bad = parse_queue_policy("sjf");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("expected fifo, priority, drf or lepton"),
            std::string::npos);
}

}  // namespace
}  // namespace lepton::sched
