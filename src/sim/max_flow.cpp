#include "sim/max_flow.h"

#include <algorithm>
#include <limits>

namespace lepton::sim {

int MaxFlow::add_node() {
  adjacent_.emplace_back();
  return static_cast<int>(adjacent_.size()) - 1;
}

int MaxFlow::add_edge(int from, int to, double capacity) {
  int id = static_cast<int>(edges_.size());
  edges_.push_back({to, capacity});
  edges_.push_back({from, 0});
  adjacent_[from].push_back(id);
  adjacent_[to].push_back(id + 1);
  return id;
}

void MaxFlow::raise(int edge, double by) { edges_[edge].residual += by; }

double MaxFlow::run(int source, int sink, double epsilon) {
  epsilon_ = epsilon;
  double total = 0;
  while (levels(source, sink)) {
    next_.assign(adjacent_.size(), 0);
    path_.clear();
    while (true) {
      double pushed = push(source, sink, std::numeric_limits<double>::infinity());
      if (pushed <= epsilon_) break;
      total += pushed;
    }
  }
  return total;
}

bool MaxFlow::levels(int source, int sink) {
  level_.assign(adjacent_.size(), -1);
  std::vector<int> queue = {source};
  level_[source] = 0;
  for (size_t head = 0; head < queue.size(); ++head) {
    int node = queue[head];
    for (int e : adjacent_[node]) {
      const Edge& edge = edges_[e];
      if (edge.residual > epsilon_ && level_[edge.to] < 0) {
        level_[edge.to] = level_[node] + 1;
        queue.push_back(edge.to);
      }
    }
  }
  return level_[sink] >= 0;
}

// Finds one path from `source` to `sink` in the level graph and pushes its bottleneck; 0 when
// none is left. Iterative: paths through reverse edges can be as long as the graph is wide.
double MaxFlow::push(int source, int sink, double limit) {
  std::vector<int>& path = path_;  // edges from the source, kept from the last push
  int node = path.empty() ? source : edges_[path.back()].to;
  while (node != sink) {
    bool advanced = false;
    for (size_t& i = next_[node]; i < adjacent_[node].size(); ++i) {
      const int e = adjacent_[node][i];
      const Edge& edge = edges_[e];
      if (edge.residual > epsilon_ && level_[edge.to] == level_[node] + 1) {
        path.push_back(e);
        node = edge.to;
        advanced = true;
        break;
      }
    }
    if (advanced) continue;
    // A dead end: no path goes through this node again in this phase.
    level_[node] = -1;
    if (path.empty()) return 0;
    const int back = path.back();
    path.pop_back();
    node = edges_[back ^ 1].to;
    ++next_[node];
  }
  double pushed = limit;
  for (int e : path) pushed = std::min(pushed, edges_[e].residual);
  size_t keep = path.size();
  for (size_t i = 0; i < path.size(); ++i) {
    edges_[path[i]].residual -= pushed;
    edges_[path[i] ^ 1].residual += pushed;
    if (edges_[path[i]].residual <= epsilon_) keep = std::min(keep, i);
  }
  path.resize(keep);  // the next path starts below the first edge it used up
  return pushed;
}

}  // namespace lepton::sim
