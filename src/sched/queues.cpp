// The queue scheduler's round: admission in the policy's order, placement (gangs all or
// nothing), reclaim and preemption (victim choice), borrowing and reservations.
#include "sched/queues.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <unordered_map>

#include "sched/queue_order.h"

namespace lepton::sched {
namespace {

struct ShapeKey {
  Resources res;
  ModelMask models;
  GroupMask groups;
  int tasks;
  bool operator==(const ShapeKey&) const = default;
};
struct ShapeKeyHash {
  size_t operator()(const ShapeKey& k) const {
    uint64_t h = static_cast<uint64_t>(k.res.cpu_milli) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<uint64_t>(k.res.memory_mib) + (h << 6) + (h >> 2);
    h ^= (static_cast<uint64_t>(k.res.gpu_count) << 32 | static_cast<uint32_t>(k.res.gpu_milli)) +
         (h << 6) + (h >> 2);
    h ^= k.models + static_cast<uint64_t>(k.tasks) * 0x100000001B3ull + (h << 6) + (h >> 2);
    h ^= k.groups + (h << 6) + (h >> 2);
    return static_cast<size_t>(h);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// QueueScheduler

QueueScheduler::QueueScheduler(QueueTree tree, QueueOptions options)
    : tree_(std::move(tree)), options_(options) {
  const QueuePolicyInfo* info = find_queue_policy(options_.policy);
  LEPTON_CHECK(info != nullptr);
  order_ = info->make();
}

void QueueScheduler::set_tree(QueueTree tree) {
  tree_ = std::move(tree);
  reservations_.clear();
  reclaims_.clear();
}

namespace {

// The state of one cycle: the cluster with this cycle's cordons, usage per queue, and the
// helpers that place work.
class Cycle {
 public:
  Cycle(ClusterState& cluster, Scheduler& placer) : cluster_(cluster), placer_(placer) {
    base_cordon_.resize(cluster.node_count());
    for (size_t n = 0; n < cluster.node_count(); ++n) {
      base_cordon_[n] = cluster.cordoned(static_cast<NodeId>(n));
    }
  }
  ~Cycle() {
    for (size_t n = 0; n < cluster_.node_count(); ++n) {
      if (cluster_.cordoned(static_cast<NodeId>(n)) != base_cordon_[n]) {
        cluster_.set_cordoned(static_cast<NodeId>(n), base_cordon_[n]);
      }
    }
  }
  Cycle(const Cycle&) = delete;
  Cycle& operator=(const Cycle&) = delete;

  Quota capacity() const {
    Quota c;
    for (size_t n = 0; n < cluster_.node_count(); ++n) {
      if (base_cordon_[n]) continue;
      const NodeState& s = cluster_.state(static_cast<NodeId>(n));
      c += Quota{int64_t{s.gpu_count} * kMilliPerGpu, s.cpu_total, s.mem_total};
    }
    return c;
  }
  bool usable(NodeId n) const { return !base_cordon_[n]; }

  // Keeps other work off `nodes` for the rest of the cycle. Holds are counted: a node held for
  // two pieces of work opens when both have let go.
  void hold(const std::vector<NodeId>& nodes) {
    for (NodeId n : nodes) {
      if (base_cordon_[n]) continue;
      if (holds_[n]++ == 0) cluster_.set_cordoned(n, true);
    }
  }
  void unhold(const std::vector<NodeId>& nodes) {
    for (NodeId n : nodes) {
      if (base_cordon_[n]) continue;
      LEPTON_CHECK(holds_[n] > 0);
      if (--holds_[n] == 0) cluster_.set_cordoned(n, false);
    }
  }
  // Opens `nodes` for one placement attempt, whoever else holds them; close() restores.
  void open(const std::vector<NodeId>& nodes) {
    for (NodeId n : nodes) {
      if (!base_cordon_[n]) cluster_.set_cordoned(n, false);
    }
  }
  void close(const std::vector<NodeId>& nodes) {
    for (NodeId n : nodes) {
      if (!base_cordon_[n]) cluster_.set_cordoned(n, holds_[n] > 0);
    }
  }

  // Places every task of `w` on distinct nodes, all or nothing; binds on success.
  std::optional<std::vector<Placement>> place(const Work& w, std::string& why) {
    const ShapeKey key{w.task.res, w.task.allowed_models, w.task.allowed_groups, w.tasks};
    if (auto f = failed_.find(key); f != failed_.end()) {
      why = f->second;
      return std::nullopt;
    }
    std::vector<Placement> placed;
    for (int t = 0; t < w.tasks; ++t) {
      Decision d = placer_.decide(cluster_, w.task);
      if (!d.placement) {
        why = w.tasks == 1 ? d.report.to_string()
                           : "rank " + std::to_string(t) + " of " + std::to_string(w.tasks) + ": " +
                                 d.report.to_string();
        break;
      }
      cluster_.bind(w.task, *d.placement);
      cluster_.set_cordoned(d.placement->node, true);  // one task of a gang per node
      placed.push_back(*d.placement);
    }
    for (const Placement& p : placed) cluster_.set_cordoned(p.node, false);  // was not held
    if (static_cast<int>(placed.size()) < w.tasks) {
      for (const Placement& p : placed) cluster_.release(w.task, p);
      return std::nullopt;
    }
    return placed;
  }
  // Remembers that work of this shape does not fit in this cycle (binds only take capacity away,
  // so it will not fit later in the cycle either). Not for work placed under a reservation.
  void remember_failure(const Work& w, const std::string& why) {
    failed_.emplace(ShapeKey{w.task.res, w.task.allowed_models, w.task.allowed_groups, w.tasks},
                    why);
  }

  // Nodes a reservation for `w` should hold: those that could hold a task when empty, with the
  // most of the task's scarcest resource free now (ties: lowest id).
  std::vector<NodeId> reservation_for(const Work& w) const {
    std::vector<std::pair<double, NodeId>> candidates;
    for (size_t i = 0; i < cluster_.node_count(); ++i) {
      const NodeId n = static_cast<NodeId>(i);
      if (cluster_.cordoned(n)) continue;
      const NodeState& s = cluster_.state(n);
      NodeState empty = s;
      empty.cpu_free = s.cpu_total;
      empty.mem_free = s.mem_total;
      for (int g = 0; g < s.gpu_count; ++g) empty.gpu_free_sorted[g] = kMilliPerGpu;
      if (!ClusterState::fits(empty, w.task)) continue;
      const double gpu = w.task.res.gpu_count > 0
                             ? static_cast<double>(s.gpu_free_total()) / (s.gpu_count * 1000.0)
                             : 1.0;
      const double cpu = static_cast<double>(s.cpu_free) / static_cast<double>(s.cpu_total);
      candidates.emplace_back(std::min(gpu, cpu), n);
    }
    if (static_cast<int>(candidates.size()) < w.tasks) return {};
    std::partial_sort(candidates.begin(), candidates.begin() + w.tasks, candidates.end(),
                      [](const auto& a, const auto& b) {
                        return a.first != b.first ? a.first > b.first : a.second < b.second;
                      });
    std::vector<NodeId> nodes;
    for (int t = 0; t < w.tasks; ++t) nodes.push_back(candidates[t].second);
    return nodes;
  }

 private:
  ClusterState& cluster_;
  Scheduler& placer_;
  std::vector<bool> base_cordon_;
  std::unordered_map<NodeId, int> holds_;
  std::unordered_map<ShapeKey, std::string, ShapeKeyHash> failed_;
};

// Cost of preempting a piece of work: priority first, then progress lost (GPU-milli-seconds,
// or CPU when it has no GPU).
struct VictimCost {
  int priority = 0;
  double lost = 0;
  int64_t start_ms = 0;  // ties: the latest started, then the latest submitted
  int64_t submit_ms = 0;
  bool operator<(const VictimCost& o) const {
    return std::tie(priority, lost, o.start_ms, o.submit_ms) <
           std::tie(o.priority, o.lost, start_ms, submit_ms);
  }
};

VictimCost cost_of(const RunningWork& r, int64_t now_ms) {
  const Quota q = quota_of(r.work.task.res, r.work.tasks);
  const double size = q.gpu_milli > 0 ? static_cast<double>(q.gpu_milli)
                                      : static_cast<double>(q.cpu_milli) / 1000.0;
  return VictimCost{r.work.priority,
                    size * static_cast<double>(std::max<int64_t>(0, now_ms - r.start_ms)),
                    r.start_ms, r.work.submit_ms};
}

}  // namespace

CycleResult QueueScheduler::cycle(ClusterState& cluster, Scheduler& placer,
                                  const std::vector<Work>& pending,
                                  const std::vector<RunningWork>& running,
                                  const std::vector<uint64_t>& stopping, int64_t now_ms) {
  CycleResult result;
  Cycle cy(cluster, placer);
  const int nq = tree_.size();
  const QueueOrder& policy = *order_;

  // --- usage and fair shares ---
  std::vector<Quota> in_use(nq), waiting(nq);
  auto add_up = [&](std::vector<Quota>& v, int q, const Quota& amount) {
    for (; q != -1; q = tree_.parent(q)) v[q] += amount;
  };
  for (const RunningWork& r : running) {
    if (r.work.queue >= 0 && r.work.queue < nq) {
      add_up(in_use, r.work.queue, quota_of(r.work.task.res, r.work.tasks));
    }
  }
  for (const Work& w : pending) {
    if (w.queue >= 0 && w.queue < nq) add_up(waiting, w.queue, quota_of(w.task.res, w.tasks));
  }
  const Quota capacity = cy.capacity();
  std::vector<Quota> demand(nq);
  for (int q = 0; q < nq; ++q) demand[q] = in_use[q] + waiting[q];
  const std::vector<Quota> fair = fair_shares(tree_, capacity, demand);
  usage_.assign(nq, {});
  for (int q = 0; q < nq; ++q) {
    usage_[q] = QueueUsage{tree_.spec(q).guaranteed, fair[q], in_use[q], waiting[q]};
  }

  // --- bookkeeping of reservations and reclaims ---
  std::set<uint64_t> pending_ids;
  for (const Work& w : pending) pending_ids.insert(w.id);
  std::set<uint64_t> running_ids;
  for (const RunningWork& r : running) running_ids.insert(r.work.id);
  const std::set<uint64_t> stopping_ids(stopping.begin(), stopping.end());
  std::erase_if(reservations_, [&](const auto& kv) { return !pending_ids.count(kv.first); });
  std::erase_if(first_blocked_ms_, [&](const auto& kv) { return !pending_ids.count(kv.first); });
  std::erase_if(reclaims_, [&](const auto& kv) { return !pending_ids.count(kv.first); });
  for (auto& [id, nodes] : reservations_) {  // a reserved node that went away ends it
    if (std::any_of(nodes.begin(), nodes.end(), [&](NodeId n) { return !cy.usable(n); })) {
      nodes.clear();
    }
  }
  std::erase_if(reservations_, [](const auto& kv) { return kv.second.empty(); });
  for (const auto& [id, nodes] : reservations_) cy.hold(nodes);

  // --- order ---
  std::vector<const Work*> order;
  for (const Work& w : pending) {
    if (w.queue < 0 || w.queue >= nq || !tree_.is_leaf(w.queue)) {
      result.waiting[w.id].text = "its queue is not a leaf queue of this cluster";
      continue;
    }
    order.push_back(&w);
  }
  std::sort(order.begin(), order.end(),
            [&](const Work* a, const Work* b) { return policy.before(*a, *b); });
  const RoundView view(tree_, capacity, in_use, fair, running, stopping_ids);

  auto start = [&](const Work& w, std::vector<Placement> placements) {
    add_up(in_use, w.queue, quota_of(w.task.res, w.tasks));
    add_up(waiting, w.queue, Quota{} - quota_of(w.task.res, w.tasks));
    first_blocked_ms_.erase(w.id);
    reclaims_.erase(w.id);
    result.waiting.erase(w.id);
    result.started.emplace_back(w.id, std::move(placements));
  };
  // Tries to place `w` now (under its reservation, if it has one). Records why not.
  auto try_place = [&](const Work& w) {
    std::string why;
    auto r = reservations_.find(w.id);
    std::optional<std::vector<Placement>> placed;
    if (r != reservations_.end()) {
      cy.unhold(r->second);
      cy.open(r->second);
      placed = cy.place(w, why);
      cy.close(r->second);
      if (placed) {
        reservations_.erase(r);
      } else {
        cy.hold(r->second);
        why = "holding " + std::to_string(r->second.size()) + " node(s) for it: " + why;
      }
    } else {
      placed = cy.place(w, why);
      if (!placed) cy.remember_failure(w, why);
    }
    if (placed) {
      start(w, std::move(*placed));
      return true;
    }
    first_blocked_ms_.try_emplace(w.id, now_ms);
    result.waiting[w.id].text = why;
    result.waiting[w.id].no_capacity = true;
    return false;
  };

  // Turns: all work in one line, or queues taking turns, the least served first.
  std::vector<std::vector<const Work*>> per_queue(nq);
  for (const Work* w : order) per_queue[w->queue].push_back(w);
  auto in_turn = [&](auto&& visit) {
    if (!policy.takes_turns()) {
      for (const Work* w : order) visit(*w);
      return;
    }
    std::vector<size_t> cursor(nq, 0);
    while (true) {
      int best = -1;
      double best_served = 0;
      for (int q = 0; q < nq; ++q) {
        if (cursor[q] >= per_queue[q].size()) continue;
        const double s = policy.served(view, q);
        if (best == -1 || s < best_served) best = q, best_served = s;
      }
      if (best == -1) return;
      visit(*per_queue[best][cursor[best]++]);
    }
  };

  // Limits are hard whatever the policy: nothing is placed past one. (A policy's admission may
  // have been asked before other work of the queue started in this round: borrowers are placed
  // after everything else.) Work held back here does not block its queue.
  auto past_limit = [&](const Work& w) {
    const int a = view.exceeds(w.queue, quota_of(w.task.res, w.tasks), QueueBound::kLimit);
    if (a == -1) return false;
    result.waiting[w.id].text = view.exceeds_text(a, "limit", QueueBound::kLimit);
    return true;
  };

  // Round 1: what the policy admits starts if it fits. Admitted work that finds no room is a
  // candidate for reclaim; work the policy marks as borrowing waits for round 2.
  struct ReclaimCandidate {
    const Work* work;
    bool own_queue_only;  // may only preempt lower priority in its queue
  };
  std::vector<ReclaimCandidate> reclaim_candidates;
  std::set<uint64_t> borrowers;
  std::vector<bool> blocked(nq, false);  // a queue's later work waits behind its first
  in_turn([&](const Work& w) {
    if (blocked[w.queue]) {
      result.waiting[w.id].text = "behind older work in queue " + tree_.spec(w.queue).name;
      return;
    }
    Admission a = policy.admit(view, w);
    switch (a.verdict) {
      case Admission::Verdict::kWait:
        result.waiting[w.id].text = std::move(a.reason);
        break;
      case Admission::Verdict::kBorrow:
        borrowers.insert(w.id);
        return;
      case Admission::Verdict::kStart:
        if (past_limit(w)) return;
        if (try_place(w)) return;
        if (a.reclaim != Admission::Reclaim::kNone) {
          reclaim_candidates.push_back({&w, a.reclaim == Admission::Reclaim::kOwnQueue});
        }
        break;
    }
    if (a.blocks_queue) blocked[w.queue] = true;
  });

  // Reclaim and priority preemption, for work that is within its fair share but found no room:
  // take over-fair-share work of other queues, or lower-priority work of its own queue.
  std::vector<bool> victim_taken(running.size(), false);
  std::vector<Quota> reclaimed(nq);  // what victims chosen in this cycle will give back
  for (size_t i = 0; i < running.size(); ++i) {
    if (stopping_ids.count(running[i].work.id)) victim_taken[i] = true;
  }
  std::map<NodeId, std::vector<size_t>> victims_on;  // running work by node
  for (size_t i = 0; i < running.size(); ++i) {
    for (const Placement& p : running[i].placements) victims_on[p.node].push_back(i);
  }
  int reclaim_attempts = 0;
  for (const ReclaimCandidate& candidate : reclaim_candidates) {
    const Work* w = candidate.work;
    const bool own_queue_only = candidate.own_queue_only;
    if (reclaim_attempts >= 16) break;  // bounds the work of one cycle; the rest next cycle
    if (auto r = reclaims_.find(w->id); r != reclaims_.end()) {
      const bool still = std::any_of(r->second.begin(), r->second.end(),
                                     [&](uint64_t v) { return running_ids.count(v) > 0; });
      if (still) {
        result.waiting[w->id].text =
            "waiting for " + std::to_string(r->second.size()) + " preempted job(s) to stop";
        result.waiting[w->id].no_capacity = false;
        result.waiting[w->id].preempting = r->second;
        continue;
      }
    }
    ++reclaim_attempts;
    auto may_take = [&](size_t i) {
      const RunningWork& r = running[i];
      if (victim_taken[i] || !r.work.preemptible) return false;
      if (r.work.queue == w->queue) return r.work.priority < w->priority;
      if (own_queue_only) return false;
      const int q = r.work.queue;
      if (q < 0 || q >= nq) return false;
      return policy.reclaimable(view, q, in_use[q] - reclaimed[q], *w);
    };
    // For each task, the node where the cheapest set of victims makes room.
    std::vector<size_t> chosen;
    std::vector<NodeId> nodes;
    std::vector<std::pair<size_t, Placement>> released;  // to rebind afterwards
    bool ok = true;
    for (int t = 0; t < w->tasks && ok; ++t) {
      NodeId best_node = -1;
      std::vector<size_t> best_set;
      VictimCost best_cost{INT32_MAX, 0};
      for (auto& [node, list] : victims_on) {
        if (!cy.usable(node) || std::find(nodes.begin(), nodes.end(), node) != nodes.end()) {
          continue;
        }
        std::vector<size_t> cands;
        for (size_t i : list) {
          if (may_take(i)) cands.push_back(i);
        }
        if (cands.empty()) continue;
        std::sort(cands.begin(), cands.end(), [&](size_t a, size_t b) {
          return cost_of(running[a], now_ms) < cost_of(running[b], now_ms);
        });
        std::vector<std::pair<size_t, Placement>> here;
        VictimCost cost{INT32_MIN, 0};
        bool fits = false;
        for (size_t i : cands) {
          for (const Placement& p : running[i].placements) {
            if (p.node != node) continue;
            cluster.release(running[i].work.task, p);
            here.emplace_back(i, p);
          }
          const VictimCost c = cost_of(running[i], now_ms);
          cost.priority = std::max(cost.priority, c.priority);
          cost.lost += c.lost;
          if (ClusterState::fits(cluster.state(node), w->task)) {
            fits = true;
            break;
          }
        }
        for (const auto& [i, p] : here) cluster.bind(running[i].work.task, p);
        if (!fits) continue;
        std::vector<size_t> set;
        for (const auto& [i, p] : here) {
          if (std::find(set.begin(), set.end(), i) == set.end()) set.push_back(i);
        }
        const auto key = std::make_tuple(cost.priority, set.size(), cost.lost);
        const auto best_key = std::make_tuple(best_cost.priority, best_set.size(), best_cost.lost);
        if (best_node == -1 || key < best_key) {
          best_node = node;
          best_set = std::move(set);
          best_cost = cost;
        }
      }
      if (best_node == -1) {
        ok = false;
        break;
      }
      nodes.push_back(best_node);
      for (size_t i : best_set) {
        victim_taken[i] = true;
        chosen.push_back(i);
      }
    }
    if (!ok) {
      for (size_t i : chosen) victim_taken[i] = false;
      continue;
    }
    WaitReason& why = result.waiting[w->id];
    why.text = "preempting " + std::to_string(chosen.size()) + " job(s) to make room";
    why.no_capacity = false;  // room is being made: renting a machine too would waste one
    std::vector<uint64_t> ids;
    for (size_t i : chosen) {
      const RunningWork& v = running[i];
      ids.push_back(v.work.id);
      result.preempted.push_back(v.work.id);
      reclaimed[v.work.queue] += quota_of(v.work.task.res, v.work.tasks);
    }
    why.preempting = ids;
    reclaims_[w->id] = ids;
    if (auto r = reservations_.find(w->id); r != reservations_.end()) cy.unhold(r->second);
    reservations_[w->id] = nodes;  // the freed room is kept for this work
    cy.hold(nodes);
  }

  std::vector<bool> has_running(nq, false);
  int queues_running = 0;
  for (const RunningWork& r : running) {
    if (r.work.queue >= 0 && r.work.queue < nq && !has_running[r.work.queue]) {
      has_running[r.work.queue] = true;
      ++queues_running;
    }
  }
  // Round 2: borrowers take what is still idle (as preemptible work), in the same turns.
  // Reservations for work that has waited too long keep room for it meanwhile.
  if (!borrowers.empty()) {
    in_turn([&](const Work& w) {
      if (!borrowers.count(w.id) || past_limit(w)) return;
      if (try_place(w)) return;
      // Say why it cannot take room back, when others hold the room.
      if (queues_running > (has_running[w.queue] ? 1 : 0)) {  // other queues hold room
        if (std::string note = policy.borrow_note(view, w); !note.empty()) {
          result.waiting[w.id].text += "; " + note;
        }
      }
    });
  }

  if (!policy.reserves()) return result;
  // Reservations: the first waiting job of a queue that has waited long gets nodes held for it,
  // so the queue's smaller jobs behind it (and borrowers) stop refilling them. One per queue.
  std::set<int> queues_with_reservation;
  for (const auto& [id, nodes] : reservations_) {
    for (const Work& w : pending) {
      if (w.id == id) queues_with_reservation.insert(w.queue);
    }
  }
  std::set<int> queue_seen;
  for (const Work* w : order) {
    if (!result.waiting.count(w->id) || !queue_seen.insert(w->queue).second) continue;
    if (reservations_.count(w->id) || queues_with_reservation.count(w->queue)) continue;
    auto first = first_blocked_ms_.find(w->id);
    if (first == first_blocked_ms_.end() || now_ms - first->second < options_.reserve_after_ms) {
      continue;
    }
    // Only work that fits its queue's fair share by itself: a reservation must end.
    if (!fits_bound(quota_of(w->task.res, w->tasks),
                    view.bound(w->queue, QueueBound::kFairShare))) {
      continue;
    }
    std::vector<NodeId> nodes = cy.reservation_for(*w);
    if (nodes.empty()) continue;
    reservations_[w->id] = nodes;
    cy.hold(nodes);
    queues_with_reservation.insert(w->queue);
    result.waiting[w->id].text +=
        "; holding " + std::to_string(nodes.size()) + " node(s) for it until it fits";
  }
  return result;
}

}  // namespace lepton::sched
