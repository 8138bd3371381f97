// The queue tree (building it, finding a queue), fair shares (how capacity divides among
// queues) and the bounds a round holds queues to (guarantee, fair share, limit: RoundView).
#include <algorithm>
#include <array>
#include <cmath>
#include <unordered_map>

#include "sched/queue_order.h"
#include "sched/queues.h"

namespace lepton::sched {
namespace {

constexpr int kDims = 3;

std::array<double, kDims> as_array(const Quota& q) {
  return {static_cast<double>(q.gpu_milli), static_cast<double>(q.cpu_milli),
          static_cast<double>(q.memory_mib)};
}

int64_t& dim(Quota& q, int d) { return d == 0 ? q.gpu_milli : d == 1 ? q.cpu_milli : q.memory_mib; }
int64_t dim(const Quota& q, int d) {
  return d == 0 ? q.gpu_milli : d == 1 ? q.cpu_milli : q.memory_mib;
}

Quota min_of(const Quota& a, const Quota& b) {
  return Quota{std::min(a.gpu_milli, b.gpu_milli), std::min(a.cpu_milli, b.cpu_milli),
               std::min(a.memory_mib, b.memory_mib)};
}

Quota max_zero(const Quota& a) {
  return Quota{std::max<int64_t>(a.gpu_milli, 0), std::max<int64_t>(a.cpu_milli, 0),
               std::max<int64_t>(a.memory_mib, 0)};
}

// Divides `capacity` among `queues` (siblings) as fair_shares() describes.
void divide(const QueueTree& tree, const std::vector<int>& queues, const Quota& capacity,
            const std::vector<Quota>& demand, std::vector<Quota>& share) {
  if (queues.empty()) return;
  // What each queue may get at most: its demand, within its limit.
  std::vector<Quota> cap(queues.size());
  for (size_t i = 0; i < queues.size(); ++i) {
    const QueueSpec& s = tree.spec(queues[i]);
    cap[i] = s.limit ? min_of(demand[queues[i]], *s.limit) : demand[queues[i]];
  }
  // 1. Guarantees, scaled down in a dimension where they add up to more than there is.
  std::vector<Quota> got(queues.size());
  Quota sum;
  for (size_t i = 0; i < queues.size(); ++i) {
    const Quota& g = tree.spec(queues[i]).guaranteed;
    got[i] = min_of(g, cap[i]);
    // A dimension the guarantee leaves open (0 while others are set) comes along in proportion:
    // a queue guaranteed half the GPUs it wants gets half the CPUs it wants with them.
    if (!g.is_zero()) {
      double ratio = -1;
      for (int d = 0; d < kDims; ++d) {
        if (dim(g, d) > 0 && dim(cap[i], d) > 0) {
          const double r =
              static_cast<double>(dim(got[i], d)) / static_cast<double>(dim(cap[i], d));
          ratio = ratio < 0 ? r : std::min(ratio, r);
        }
      }
      for (int d = 0; d < kDims && ratio > 0; ++d) {
        if (dim(g, d) == 0) {
          dim(got[i], d) = static_cast<int64_t>(std::floor(dim(cap[i], d) * ratio));
        }
      }
    }
    sum += got[i];
  }
  for (int d = 0; d < kDims; ++d) {
    if (dim(sum, d) <= dim(capacity, d)) continue;
    const double scale = static_cast<double>(dim(capacity, d)) / static_cast<double>(dim(sum, d));
    for (Quota& g : got) dim(g, d) = static_cast<int64_t>(std::floor(dim(g, d) * scale));
  }
  Quota remaining = capacity;
  for (const Quota& g : got) remaining -= g;
  remaining = max_zero(remaining);

  // 2. Progressive filling of what is left. At level L, queue i gets the fraction
  //    min(1, L * weight_i / dom_i) of its unmet want, where dom_i is the want's dominant share.
  //    The largest L that fits is found by bisection; queues that need a resource that ran out
  //    stop there, the others go on with what is left.
  const std::array<double, kDims> total = as_array(capacity);
  std::vector<std::array<double, kDims>> want(queues.size());
  std::vector<double> dom(queues.size(), 0);
  std::vector<bool> active(queues.size(), false);
  for (size_t i = 0; i < queues.size(); ++i) {
    want[i] = as_array(max_zero(cap[i] - got[i]));
    for (int d = 0; d < kDims; ++d) {
      if (total[d] > 0) dom[i] = std::max(dom[i], want[i][d] / total[d]);
    }
    active[i] = dom[i] > 0;
  }
  std::array<double, kDims> left = as_array(remaining);
  std::vector<std::array<double, kDims>> extra(queues.size(), {0, 0, 0});
  for (size_t round = 0; round < queues.size() + 1; ++round) {
    double l_max = 0;
    for (size_t i = 0; i < queues.size(); ++i) {
      if (active[i]) l_max = std::max(l_max, dom[i] / tree.spec(queues[i]).weight);
    }
    if (l_max == 0) break;
    auto fraction = [&](size_t i, double level) {
      return std::min(1.0, level * tree.spec(queues[i]).weight / dom[i]);
    };
    auto use_at = [&](double level) {
      std::array<double, kDims> use{0, 0, 0};
      for (size_t i = 0; i < queues.size(); ++i) {
        if (!active[i]) continue;
        const double f = fraction(i, level);
        for (int d = 0; d < kDims; ++d) use[d] += f * want[i][d];
      }
      return use;
    };
    auto fits = [&](const std::array<double, kDims>& use) {
      for (int d = 0; d < kDims; ++d) {
        if (use[d] > left[d] + 1e-9) return false;
      }
      return true;
    };
    double level = l_max;
    if (!fits(use_at(l_max))) {
      double lo = 0, hi = l_max;
      for (int it = 0; it < 64; ++it) {
        const double mid = (lo + hi) / 2;
        (fits(use_at(mid)) ? lo : hi) = mid;
      }
      level = lo;
    }
    const std::array<double, kDims> use = use_at(level);
    std::array<bool, kDims> exhausted{};
    for (int d = 0; d < kDims; ++d) exhausted[d] = use[d] >= left[d] - 1e-6 * (1 + left[d]);
    bool any_active = false;
    for (size_t i = 0; i < queues.size(); ++i) {
      if (!active[i]) continue;
      const double f = fraction(i, level);
      bool blocked = f >= 1.0;
      for (int d = 0; d < kDims; ++d) {
        extra[i][d] += f * want[i][d];
        left[d] -= f * want[i][d];
        want[i][d] -= f * want[i][d];
        if (want[i][d] > 0 && exhausted[d]) blocked = true;
      }
      if (blocked) {
        active[i] = false;
      } else {
        dom[i] = 0;
        for (int d = 0; d < kDims; ++d) {
          if (total[d] > 0) dom[i] = std::max(dom[i], want[i][d] / total[d]);
        }
        active[i] = dom[i] > 0;
      }
      any_active = any_active || active[i];
    }
    for (int d = 0; d < kDims; ++d) left[d] = std::max(0.0, left[d]);
    if (!any_active) break;
  }
  for (size_t i = 0; i < queues.size(); ++i) {
    Quota s = got[i];
    for (int d = 0; d < kDims; ++d) dim(s, d) += static_cast<int64_t>(std::floor(extra[i][d]));
    share[queues[i]] = s;
    divide(tree, tree.children(queues[i]), s, demand, share);
  }
}

}  // namespace

double dominant_share(const Quota& use, const Quota& base) {
  double s = 0;
  for (int d = 0; d < kDims; ++d) {
    const int64_t u = dim(use, d);
    if (u <= 0) continue;
    const int64_t b = dim(base, d);
    s = std::max(s, b > 0 ? static_cast<double>(u) / static_cast<double>(b) : 1e12);
  }
  return s;
}

bool fits_bound(const Quota& use, const Quota& bound) {
  const bool sparse = !bound.is_zero();
  for (int d = 0; d < kDims; ++d) {
    if (sparse && dim(bound, d) == 0) continue;
    if (dim(use, d) > dim(bound, d)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// QueueTree

Result<QueueTree> QueueTree::build(std::vector<QueueSpec> specs) {
  QueueTree t;
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (Status s = validate_queue_spec(specs[i]); !s.is_ok()) {
      return Status::invalid_argument("queue " + specs[i].name + ": " + s.message());
    }
    if (!index.emplace(specs[i].name, static_cast<int>(i)).second) {
      return Status::invalid_argument("queue " + specs[i].name + ": name: defined twice");
    }
  }
  t.parent_.assign(specs.size(), -1);
  t.children_.assign(specs.size(), {});
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].parent.empty()) {
      t.top_.push_back(static_cast<int>(i));
      continue;
    }
    auto p = index.find(specs[i].parent);
    if (p == index.end()) {
      return Status::invalid_argument("queue " + specs[i].name + ": parent: no queue named " +
                                      specs[i].parent);
    }
    t.parent_[i] = p->second;
    t.children_[p->second].push_back(static_cast<int>(i));
  }
  for (size_t i = 0; i < specs.size(); ++i) {  // cycles: walking up must reach the top
    int q = static_cast<int>(i);
    for (size_t steps = 0; q != -1; ++steps) {
      if (steps > specs.size()) {
        return Status::invalid_argument("queue " + specs[i].name +
                                        ": parent: the parents form a cycle");
      }
      q = t.parent_[q];
    }
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (t.children_[i].empty() || specs[i].guaranteed.is_zero()) continue;
    Quota sum;
    for (int c : t.children_[i]) sum += specs[c].guaranteed;
    if (!sum.fits_in(specs[i].guaranteed)) {
      return Status::invalid_argument(
          "queue " + specs[i].name + ": guaranteed: its children are guaranteed " +
          sum.to_string() + ", more than its own " + specs[i].guaranteed.to_string());
    }
  }
  t.specs_ = std::move(specs);
  return t;
}

int QueueTree::find(std::string_view name) const {
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (specs_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<Quota> fair_shares(const QueueTree& tree, const Quota& capacity,
                               const std::vector<Quota>& demand) {
  // Subtree demand: leaves as given, inner queues the sum of their children.
  std::vector<Quota> subtree(tree.size());
  std::vector<int> order;  // children before parents
  std::vector<int> stack(tree.top_level().rbegin(), tree.top_level().rend());
  while (!stack.empty()) {
    const int q = stack.back();
    stack.pop_back();
    order.push_back(q);
    for (int c : tree.children(q)) stack.push_back(c);
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const int q = *it;
    if (tree.is_leaf(q)) {
      subtree[q] = demand[q];
    } else {
      for (int c : tree.children(q)) subtree[q] += subtree[c];
    }
  }
  std::vector<Quota> share(tree.size());
  divide(tree, tree.top_level(), capacity, subtree, share);
  return share;
}

// ---------------------------------------------------------------------------------------------
// RoundView

Quota RoundView::bound(int q, QueueBound b) const {
  const QueueSpec& spec = tree_.spec(q);
  const Quota limit = spec.limit ? *spec.limit : Quota{kUnlimited, kUnlimited, kUnlimited};
  switch (b) {
    case QueueBound::kGuarantee:
      return spec.guaranteed;
    case QueueBound::kLimit:
      return limit;
    case QueueBound::kFairShare:
      // Fair shares are rounded down in every dimension; a few units of slack keep that rounding
      // from turning work that fits its share into work that does not.
      return min_of(fair_[q] + Quota{2, 2, 2}, limit);
  }
  return limit;
}

int RoundView::exceeds(int q, const Quota& need, QueueBound b) const {
  for (int a = q; a != -1; a = tree_.parent(a)) {
    const Quota bound_a = bound(a, b);
    if (a != q && bound_a.is_zero()) continue;  // an inner queue without a guarantee
    if (!fits_bound(in_use_[a] + need, bound_a)) return a;
  }
  return -1;
}

std::string RoundView::exceeds_text(int q, std::string_view what, QueueBound b) const {
  return "queue " + tree_.spec(q).name + " would exceed its " + std::string(what) + " (" +
         bound(q, b).to_string() + "; in use " + in_use_[q].to_string() + ")";
}

bool RoundView::outranks_own_work(const Work& w) const {
  return std::any_of(running_.begin(), running_.end(), [&](const RunningWork& r) {
    return r.work.queue == w.queue && r.work.preemptible && r.work.priority < w.priority &&
           !stopping_.count(r.work.id);
  });
}

}  // namespace lepton::sched
