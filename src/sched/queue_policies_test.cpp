// The invariant suite of the queue policies: every policy in builtin_queue_policies() runs the
// same seeded random workloads (clusters of 2 to 6 nodes, 2 to 4 queues, sometimes a hierarchy,
// guarantees, limits, priorities, gangs, fractional GPUs, non-preemptible work, preempted work that
// takes a while to stop) and must keep the same promises: never past a queue's limit, gangs all or
// nothing on distinct nodes, no node over-committed (checked against the ClusterState), consistent
// answers, cordons restored, the same decisions for the same inputs. A policy's own promise, where
// it is simple, is checked too. A new policy in the table runs all of it without a line here.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "sched/queue_order.h"
#include "sched/queues.h"

namespace lepton::sched {
namespace {

// ---- seeded random workloads ----

struct Rng {
  uint64_t state;
  uint64_t next() {  // SplitMix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  int between(int lo, int hi) { return lo + below(hi - lo + 1); }
  bool chance(int pct) { return below(100) < pct; }
};

struct Scenario {
  std::vector<NodeSpec> nodes;
  std::vector<QueueSpec> queues;
  std::vector<int> leaves;
  int64_t reserve_after_ms = 60'000;
  int steps = 0;
};

Scenario make_scenario(uint64_t seed) {
  Rng rng{seed};
  Scenario s;
  const int n = rng.between(2, 6);
  int64_t gpus = 0, cpu = 0;
  for (int i = 0; i < n; ++i) {
    NodeSpec spec;
    spec.name = "n" + std::to_string(i);
    spec.cpu_milli = 16000 * rng.between(1, 4);
    spec.memory_mib = 65536 * rng.between(1, 4);
    spec.gpu_count = std::vector<int>{0, 2, 4, 8}[rng.below(4)];
    if (i == 0 && spec.gpu_count == 0) spec.gpu_count = 4;
    if (spec.gpu_count > 0) spec.gpu_model = rng.chance(70) ? "A100" : "H100";
    gpus += spec.gpu_count;
    cpu += spec.cpu_milli;
    s.nodes.push_back(spec);
  }
  auto make_queue = [&](std::string name, std::string parent, int64_t gpu_budget,
                        int64_t cpu_budget) {
    QueueSpec q;
    q.name = std::move(name);
    q.parent = std::move(parent);
    q.guaranteed.gpu_milli = gpu_budget;
    if (rng.chance(30)) q.guaranteed.cpu_milli = cpu_budget;
    q.weight = rng.between(1, 3);
    if (rng.chance(35)) {
      q.limit =
          Quota{gpu_budget + 1000 * rng.between(0, 4),
                rng.chance(50) ? kUnlimited : cpu_budget + 1000 * rng.between(4, 16), kUnlimited};
      if (q.limit->cpu_milli < q.guaranteed.cpu_milli) q.limit->cpu_milli = kUnlimited;
    }
    return q;
  };
  // Guarantees: random parts of the cluster that add up to at most all of it.
  const int leaves = rng.between(2, 4);
  const bool hierarchy = leaves >= 3 && rng.chance(40);
  std::vector<int64_t> part(leaves);
  int64_t left = gpus;
  for (int i = 0; i < leaves; ++i) {
    part[i] = left > 0 ? rng.between(0, static_cast<int>(left)) : 0;
    if (rng.chance(20)) part[i] = 0;
    left -= part[i];
  }
  if (hierarchy) {
    const int64_t dept = part[0] + part[1];
    const int64_t dept_cpu = cpu / 2;
    s.queues.push_back(make_queue("dept", "", dept * 1000, dept_cpu));
    s.queues.back().limit.reset();
    s.queues.push_back(make_queue("q0", "dept", part[0] * 1000, dept_cpu / 4));
    s.queues.push_back(make_queue("q1", "dept", part[1] * 1000, dept_cpu / 4));
    if (s.queues[0].guaranteed.cpu_milli == 0) {
      s.queues[1].guaranteed.cpu_milli = s.queues[2].guaranteed.cpu_milli = 0;
    }
    for (int i = 2; i < leaves; ++i) {
      s.queues.push_back(make_queue("q" + std::to_string(i), "", part[i] * 1000, cpu / 8));
    }
  } else {
    for (int i = 0; i < leaves; ++i) {
      s.queues.push_back(make_queue("q" + std::to_string(i), "", part[i] * 1000, cpu / 8));
    }
  }
  for (int q = 0; q < static_cast<int>(s.queues.size()); ++q) {
    if (s.queues[q].name != "dept") s.leaves.push_back(q);
  }
  s.reserve_after_ms = std::vector<int64_t>{0, 10'000, 60'000}[rng.below(3)];
  s.steps = rng.between(20, 40);
  return s;
}

Work random_work(Rng& rng, uint64_t id, const Scenario& s, int64_t now, ModelMask h100) {
  Work w;
  w.id = id;
  w.queue = s.leaves[rng.below(static_cast<int>(s.leaves.size()))];
  w.priority = rng.below(4);
  w.preemptible = rng.chance(85);
  w.submit_ms = now - rng.below(3) * 500;
  const int kind = rng.below(100);
  int gpus = 0, milli = 0;
  if (kind < 15) {
    gpus = 0;
  } else if (kind < 30) {
    gpus = 1;
    milli = rng.chance(50) ? 250 : 500;
  } else {
    gpus = rng.between(1, 4);
    milli = 1000;
  }
  w.task.res = Resources{1000 * rng.between(1, 8), 1024 * rng.between(1, 16), gpus, milli};
  if (gpus > 0 && rng.chance(15)) w.task.allowed_models = h100;
  w.tasks = rng.chance(15) ? rng.between(2, 3) : 1;
  return w;
}

// One cycle as the invariants see it: the inputs (before the cycle) and what it decided.
struct CycleRecord {
  const Scenario& scenario;
  const QueueTree& tree;
  const ClusterState& cluster;  // after the cycle: started work is bound
  const std::vector<Work>& pending;
  const std::vector<RunningWork>& running;  // before the cycle (stopping work included)
  const std::vector<uint64_t>& stopping;
  const std::vector<bool>& cordoned_before;
  const CycleResult& result;
  int64_t now;
};

// Replays `s` with `options`: arrivals, completions, preempted work that stops one or more steps
// later and comes back. `check` sees every cycle. Returns a transcript of every decision.
template <typename Check>
std::string replay(const Scenario& s, uint64_t seed, const QueueOptions& options, Check&& check) {
  Rng rng{seed ^ 0x5EEDull};
  ClusterState cluster;
  for (const NodeSpec& n : s.nodes) {
    if (!cluster.add_node(n).is_ok()) return "bad node";
  }
  auto tree = QueueTree::build(s.queues);
  if (!tree.is_ok()) return "bad tree: " + tree.status().message();
  auto policy = make_policy("lepton", {});
  Scheduler placer(std::move(*policy), {});
  QueueScheduler qs(*tree, options);
  const ModelMask h100 = cluster.model_mask(std::vector<std::string>{"H100"});
  std::vector<Work> pending;
  std::vector<RunningWork> running;
  std::vector<uint64_t> stopping;
  std::string out;
  int64_t now = 1000;
  uint64_t next_id = 1;
  auto release = [&](size_t i) {
    for (const Placement& p : running[i].placements) cluster.release(running[i].work.task, p);
    running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
  };
  for (int step = 0; step < s.steps; ++step) {
    now += 1000 * rng.between(1, 20);
    // Preempted work stops (most of it at once) and waits again.
    std::vector<uint64_t> still;
    for (uint64_t id : stopping) {
      if (!rng.chance(70)) {
        still.push_back(id);
        continue;
      }
      for (size_t i = 0; i < running.size(); ++i) {
        if (running[i].work.id != id) continue;
        pending.push_back(running[i].work);
        release(i);
        break;
      }
    }
    stopping = still;
    // Some running work ends.
    for (size_t i = 0; i < running.size();) {
      const bool is_stopping =
          std::find(stopping.begin(), stopping.end(), running[i].work.id) != stopping.end();
      if (!is_stopping && rng.chance(15)) {
        release(i);
      } else {
        ++i;
      }
    }
    for (int a = rng.between(0, 3); a > 0; --a) {
      pending.push_back(random_work(rng, next_id++, s, now, h100));
    }
    std::vector<bool> cordoned(cluster.node_count());
    for (size_t n = 0; n < cluster.node_count(); ++n) {
      cordoned[n] = cluster.cordoned(static_cast<NodeId>(n));
    }
    CycleResult r = qs.cycle(cluster, placer, pending, running, stopping, now);
    check(CycleRecord{s, *tree, cluster, pending, running, stopping, cordoned, r, now});
    out += "t=" + std::to_string(now);
    for (const auto& [id, placements] : r.started) {
      out += " S" + std::to_string(id) + "[";
      for (const Placement& p : placements) {
        out += std::to_string(p.node) + ":" + std::to_string(p.gpu_mask) + ",";
      }
      out += "]";
    }
    for (uint64_t id : r.preempted) out += " P" + std::to_string(id);
    for (const auto& [id, why] : r.waiting) {
      out += " W" + std::to_string(id) + (why.no_capacity ? "!" : "") + ":" + why.text;
      for (uint64_t v : why.preempting) out += " <" + std::to_string(v);
    }
    for (const QueueUsage& u : qs.usage()) out += " U" + u.fair_share.to_string();
    out += "\n";
    // Apply: started work runs, preempted work is told to stop.
    for (const auto& [id, placements] : r.started) {
      auto it =
          std::find_if(pending.begin(), pending.end(), [&](const Work& w) { return w.id == id; });
      if (it == pending.end()) return out + "started work that was not pending\n";
      running.push_back({*it, placements, now});
      pending.erase(it);
    }
    for (uint64_t id : r.preempted) stopping.push_back(id);
  }
  return out;
}

// ---- the invariants ----

constexpr uint64_t kSeeds = 60;

// Collects violations (the first few are reported, with their seed and time).
struct Violations {
  std::vector<std::string> list;
  uint64_t seed = 0;
  void add(const CycleRecord& c, const std::string& what) {
    list.push_back("seed " + std::to_string(seed) + ", t=" + std::to_string(c.now) + ": " + what);
  }
  std::string report() const {
    std::string s = std::to_string(list.size()) + " violation(s)";
    for (size_t i = 0; i < list.size() && i < 8; ++i) s += "\n  " + list[i];
    return s;
  }
};

// Runs every seed through the policy; `check` sees every cycle.
void for_each_cycle(const QueuePolicyInfo& info, Violations& v,
                    const std::function<void(const CycleRecord&)>& check) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    v.seed = seed;
    const Scenario s = make_scenario(seed);
    replay(s, seed, QueueOptions{.policy = info.policy, .reserve_after_ms = s.reserve_after_ms},
           check);
  }
}

const Work* find_pending(const CycleRecord& c, uint64_t id) {
  for (const Work& w : c.pending) {
    if (w.id == id) return &w;
  }
  return nullptr;
}

// Running work after the cycle: what ran before and what it started.
std::vector<RunningWork> running_after(const CycleRecord& c) {
  std::vector<RunningWork> all = c.running;
  for (const auto& [id, placements] : c.result.started) {
    if (const Work* w = find_pending(c, id)) all.push_back({*w, placements, c.now});
  }
  return all;
}

// What running work takes from each queue, its subtree included.
std::vector<Quota> use_per_queue(const CycleRecord& c, const std::vector<RunningWork>& running,
                                 bool non_preemptible_only = false) {
  std::vector<Quota> use(c.tree.size());
  for (const RunningWork& r : running) {
    if (non_preemptible_only && r.work.preemptible) continue;
    for (int q = r.work.queue; q != -1; q = c.tree.parent(q)) {
      use[q] += quota_of(r.work.task.res, r.work.tasks);
    }
  }
  return use;
}

// Every queue within its guarantee (an inner queue guaranteed nothing bounds nothing).
void check_within_guarantees(const CycleRecord& c, const std::vector<Quota>& use, Violations& v,
                             const char* what) {
  for (int q = 0; q < c.tree.size(); ++q) {
    const Quota& g = c.tree.spec(q).guaranteed;
    if (!c.tree.is_leaf(q) && g.is_zero()) continue;
    if (!fits_bound(use[q], g)) {
      v.add(c, std::string(what) + " of queue " + c.tree.spec(q).name + " is " +
                   use[q].to_string() + ", past its guarantee " + g.to_string());
    }
  }
}

class QueuePolicyInvariants : public ::testing::TestWithParam<QueuePolicyInfo> {};

TEST_P(QueuePolicyInvariants, NeverPastAQueuesLimit) {
  Violations v;
  int limited = 0;
  for_each_cycle(GetParam(), v, [&](const CycleRecord& c) {
    const std::vector<Quota> use = use_per_queue(c, running_after(c));
    for (int q = 0; q < c.tree.size(); ++q) {
      const auto& limit = c.tree.spec(q).limit;
      if (!limit) continue;
      ++limited;
      if (!fits_bound(use[q], *limit)) {
        v.add(c, "queue " + c.tree.spec(q).name + " uses " + use[q].to_string() +
                     ", past its limit " + limit->to_string());
      }
    }
  });
  EXPECT_GT(limited, 0) << "the workloads should have queues with limits";
  EXPECT_TRUE(v.list.empty()) << v.report();
}

TEST_P(QueuePolicyInvariants, GangsAllOrNothingOnDistinctNodes) {
  Violations v;
  int gangs = 0;
  for_each_cycle(GetParam(), v, [&](const CycleRecord& c) {
    for (const auto& [id, placements] : c.result.started) {
      const Work* w = find_pending(c, id);
      if (!w) continue;  // reported by DecisionsAreConsistent
      if (static_cast<int>(placements.size()) != w->tasks) {
        v.add(c, "work " + std::to_string(id) + " started with " +
                     std::to_string(placements.size()) + " of its " + std::to_string(w->tasks) +
                     " tasks");
      }
      std::set<NodeId> nodes;
      for (const Placement& p : placements) nodes.insert(p.node);
      if (nodes.size() != placements.size()) {
        v.add(c, "gang " + std::to_string(id) + " has two tasks on one node");
      }
      if (w->tasks > 1) ++gangs;
    }
  });
  EXPECT_GT(gangs, 0) << "the workloads should start some gangs";
  EXPECT_TRUE(v.list.empty()) << v.report();
}

// Every node holds what its running work asks for and no more, and the ClusterState agrees: no
// partial gang or dropped placement stays bound.
TEST_P(QueuePolicyInvariants, StartedWorkFitsAndTheClusterAgrees) {
  Violations v;
  for_each_cycle(GetParam(), v, [&](const CycleRecord& c) {
    const size_t n = c.cluster.node_count();
    std::vector<int64_t> cpu(n, 0), mem(n, 0);
    std::vector<std::array<int, kMaxGpusPerNode>> gpu(n);
    for (auto& g : gpu) g.fill(0);
    int64_t gpu_total = 0;
    for (const RunningWork& r : running_after(c)) {
      const Resources& res = r.work.task.res;
      for (const Placement& p : r.placements) {
        if (p.node < 0 || static_cast<size_t>(p.node) >= n) {
          v.add(c, "work " + std::to_string(r.work.id) + " on no node");
          continue;
        }
        const NodeState& s = c.cluster.state(p.node);
        cpu[p.node] += res.cpu_milli;
        mem[p.node] += res.memory_mib;
        gpu_total += res.total_gpu_milli();
        if (std::popcount(p.gpu_mask) != res.gpu_count ||
            (res.gpu_count > 0 && !(r.work.task.allowed_models >> s.model & 1))) {
          v.add(c, "work " + std::to_string(r.work.id) + " has GPUs it did not ask for");
        }
        for (int g = 0; g < kMaxGpusPerNode; ++g) {
          if (!(p.gpu_mask >> g & 1)) continue;
          if (g >= s.gpu_count) v.add(c, "a GPU the node does not have");
          gpu[p.node][g] += res.gpu_milli;
        }
      }
    }
    for (size_t i = 0; i < n; ++i) {
      const NodeId id = static_cast<NodeId>(i);
      const NodeState& s = c.cluster.state(id);
      if (cpu[i] > s.cpu_total || mem[i] > s.mem_total) {
        v.add(c, "node " + std::to_string(i) + " over-committed in CPU or memory");
      }
      if (s.cpu_free != s.cpu_total - cpu[i] || s.mem_free != s.mem_total - mem[i]) {
        v.add(c, "node " + std::to_string(i) + ": the cluster's free CPU or memory disagrees");
      }
      for (int g = 0; g < s.gpu_count; ++g) {
        if (gpu[i][g] > kMilliPerGpu) v.add(c, "GPU over-committed");
        if (c.cluster.gpu_free(id)[g] != kMilliPerGpu - gpu[i][g]) {
          v.add(c, "node " + std::to_string(i) + ": the cluster's free GPU share disagrees");
        }
      }
    }
    if (c.cluster.gpu_allocated_milli() != gpu_total) {
      v.add(c, "the cluster's allocated GPUs disagree with the running work");
    }
  });
  EXPECT_TRUE(v.list.empty()) << v.report();
}

// Started work was pending; preempted work was running, preemptible and not already stopping;
// every pending piece not started has a reason; cordons are as they were.
TEST_P(QueuePolicyInvariants, DecisionsAreConsistent) {
  Violations v;
  int started = 0;
  for_each_cycle(GetParam(), v, [&](const CycleRecord& c) {
    std::set<uint64_t> started_ids;
    for (const auto& [id, placements] : c.result.started) {
      if (!find_pending(c, id)) v.add(c, "started work " + std::to_string(id) + " not pending");
      if (!started_ids.insert(id).second) v.add(c, "started twice: " + std::to_string(id));
      ++started;
    }
    std::set<uint64_t> preempted;
    for (uint64_t id : c.result.preempted) {
      auto r = std::find_if(c.running.begin(), c.running.end(),
                            [&](const RunningWork& x) { return x.work.id == id; });
      if (r == c.running.end() || !r->work.preemptible ||
          std::count(c.stopping.begin(), c.stopping.end(), id) > 0 ||
          !preempted.insert(id).second) {
        v.add(c, "preempted " + std::to_string(id) +
                     ", which was not running, preemptible and still going");
      }
    }
    for (const Work& w : c.pending) {
      const bool waits = c.result.waiting.count(w.id) > 0;
      if (waits == (started_ids.count(w.id) > 0)) {
        v.add(c, "work " + std::to_string(w.id) + " must either start or wait with a reason");
      } else if (waits && c.result.waiting.at(w.id).text.empty()) {
        v.add(c, "work " + std::to_string(w.id) + " waits without a reason");
      }
    }
    if (c.result.waiting.size() + started_ids.size() != c.pending.size()) {
      v.add(c, "a wait reason for work that is not pending");
    }
    for (size_t n = 0; n < c.cluster.node_count(); ++n) {
      if (c.cluster.cordoned(static_cast<NodeId>(n)) != c.cordoned_before[n]) {
        v.add(c, "node " + std::to_string(n) + "'s cordon was not restored");
      }
    }
  });
  EXPECT_GT(started, 0);
  EXPECT_TRUE(v.list.empty()) << v.report();
}

TEST_P(QueuePolicyInvariants, SameInputsSameDecisions) {
  const auto noop = [](const CycleRecord&) {};
  int starting = 0, runs = 0;
  for (uint64_t seed = 1; seed <= kSeeds; seed += 3, ++runs) {
    const Scenario s = make_scenario(seed);
    const QueueOptions o{.policy = GetParam().policy, .reserve_after_ms = s.reserve_after_ms};
    const std::string first = replay(s, seed, o, noop);
    EXPECT_EQ(first, replay(s, seed, o, noop)) << "seed " << seed;
    if (first.find(" S") != std::string::npos) ++starting;
  }
  EXPECT_GT(starting, runs / 2) << "most runs should start work";
}

// ---- each policy's own promise, where it is simple ----

// Higher priority first, then the oldest, then the lowest id.
bool ranks_before(const Work& a, const Work& b) {
  return std::tie(b.priority, a.submit_ms, a.id) < std::tie(a.priority, b.submit_ms, b.id);
}

// Whether work ranked after `w` took room `w` needed: with what ranks after it and started in
// this cycle taken away again, `w` would fit.
bool took_room_of(const CycleRecord& c, const Work& w) {
  ClusterState cluster = c.cluster;
  for (const auto& [id, placements] : c.result.started) {
    const Work* s = find_pending(c, id);
    if (!s || !ranks_before(w, *s)) continue;
    for (const Placement& p : placements) cluster.release(s->task, p);
  }
  int fit = 0;
  for (size_t n = 0; n < cluster.node_count(); ++n) {
    if (ClusterState::fits(cluster.state(static_cast<NodeId>(n)), w.task)) ++fit;
  }
  return fit >= w.tasks;
}

void no_preemption(const CycleRecord& c, Violations& v) {
  if (!c.result.preempted.empty()) v.add(c, "this policy never preempts");
}

using Promise = std::function<void(const CycleRecord&, Violations&)>;

const std::map<std::string_view, Promise>& promises() {
  static const std::map<std::string_view, Promise> kPromises = {
      // fifo: static quotas; within a queue, nothing starts while older work waits (but for work
      // held back by its limit, which does not block the queue).
      {"fifo",
       [](const CycleRecord& c, Violations& v) {
         no_preemption(c, v);
         check_within_guarantees(c, use_per_queue(c, running_after(c)), v, "use");
         for (const auto& [id, placements] : c.result.started) {
           const Work* s = find_pending(c, id);
           for (const Work& w : c.pending) {
             if (!s || w.queue != s->queue ||
                 std::tie(w.submit_ms, w.id) >= std::tie(s->submit_ms, s->id)) {
               continue;
             }
             auto why = c.result.waiting.find(w.id);
             if (why != c.result.waiting.end() &&
                 why->second.text.find("would exceed its limit") == std::string::npos) {
               v.add(c, "work " + std::to_string(id) + " started before older work " +
                            std::to_string(w.id) + " of its queue (" + why->second.text + ")");
             }
           }
         }
       }},
      // priority: higher priority first, across queues; no preemption.
      {"priority",
       [](const CycleRecord& c, Violations& v) {
         no_preemption(c, v);
         for (const auto& [id, why] : c.result.waiting) {
           const Work* w = find_pending(c, id);
           if (w && why.no_capacity && took_room_of(c, *w)) {
             v.add(c, "lower-priority work took the room of work " + std::to_string(id));
           }
         }
       }},
      // drf: static quotas; no preemption.
      {"drf",
       [](const CycleRecord& c, Violations& v) {
         no_preemption(c, v);
         check_within_guarantees(c, use_per_queue(c, running_after(c)), v, "use");
       }},
      // lepton: non-preemptible work stays within its queue's guarantee.
      {"lepton",
       [](const CycleRecord& c, Violations& v) {
         check_within_guarantees(c, use_per_queue(c, running_after(c), true), v,
                                 "non-preemptible use");
       }},
  };
  return kPromises;
}

TEST_P(QueuePolicyInvariants, KeepsItsOwnPromise) {
  auto p = promises().find(GetParam().name);
  if (p == promises().end()) GTEST_SKIP() << "no promise of its own is checked";
  Violations v;
  int preemptions = 0;
  for_each_cycle(GetParam(), v, [&](const CycleRecord& c) {
    preemptions += static_cast<int>(c.result.preempted.size());
    p->second(c, v);
  });
  if (GetParam().name == "lepton") {
    EXPECT_GT(preemptions, 0) << "the workloads should preempt";
  }
  EXPECT_TRUE(v.list.empty()) << v.report();
}

INSTANTIATE_TEST_SUITE_P(All, QueuePolicyInvariants, ::testing::ValuesIn(builtin_queue_policies()),
                         [](const ::testing::TestParamInfo<QueuePolicyInfo>& p) {
                           return std::string(p.param.name);
                         });

// ---- the table ----

TEST(QueuePolicyTable, NamesAreUniqueAndRoundTrip) {
  std::set<std::string_view> names;
  std::set<QueuePolicy> ids;
  for (const QueuePolicyInfo& p : builtin_queue_policies()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    EXPECT_TRUE(ids.insert(p.policy).second) << p.name;
    EXPECT_EQ(queue_policy_name(p.policy), p.name);
    auto parsed = parse_queue_policy(p.name);
    ASSERT_TRUE(parsed.is_ok());
    EXPECT_EQ(*parsed, p.policy);
    EXPECT_EQ(p.make()->name(), p.name);
    EXPECT_FALSE(p.summary.empty());
  }
}

}  // namespace
}  // namespace lepton::sched
