#include "sim/max_flow.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <queue>
#include <vector>

namespace lepton::sim {
namespace {

// Edmonds-Karp on a capacity matrix: slow and plain, to check MaxFlow against.
double reference_max_flow(std::vector<std::vector<double>> cap, int source, int sink) {
  const size_t n = cap.size();
  double total = 0;
  while (true) {
    std::vector<int> parent(n, -1);
    parent[source] = source;
    std::queue<int> queue;
    queue.push(source);
    while (!queue.empty() && parent[sink] < 0) {
      int u = queue.front();
      queue.pop();
      for (size_t v = 0; v < n; ++v) {
        if (parent[v] < 0 && cap[u][v] > 1e-12) {
          parent[v] = u;
          queue.push(static_cast<int>(v));
        }
      }
    }
    if (parent[sink] < 0) return total;
    double pushed = std::numeric_limits<double>::infinity();
    for (int v = sink; v != source; v = parent[v]) pushed = std::min(pushed, cap[parent[v]][v]);
    for (int v = sink; v != source; v = parent[v]) {
      cap[parent[v]][v] -= pushed;
      cap[v][parent[v]] += pushed;
    }
    total += pushed;
  }
}

uint64_t next(uint64_t& s) {
  s = s * 6364136223846793005ULL + 1442695040888963407ULL;
  return s >> 33;
}

TEST(MaxFlow, HandComputed) {
  // source -> a (3), source -> b (2), a -> b (1), a -> sink (2), b -> sink (3): 5.
  MaxFlow flow;
  int s = flow.add_node(), a = flow.add_node(), b = flow.add_node(), t = flow.add_node();
  flow.add_edge(s, a, 3);
  flow.add_edge(s, b, 2);
  flow.add_edge(a, b, 1);
  flow.add_edge(a, t, 2);
  int bt = flow.add_edge(b, t, 3);
  EXPECT_DOUBLE_EQ(flow.run(s, t, 1e-12), 5);
  EXPECT_DOUBLE_EQ(flow.run(s, t, 1e-12), 0);  // nothing more
  flow.raise(bt, 10);                          // the source's edges are full
  EXPECT_DOUBLE_EQ(flow.run(s, t, 1e-12), 0);
}

TEST(MaxFlow, MatchesEdmondsKarpOnRandomLayeredGraphsWithRaisedSinkEdges) {
  // Graphs shaped like the capacity bound's: source -> jobs -> slots -> sink, the slots' edges
  // to the sink raised step by step.
  uint64_t seed = 3;
  for (int trial = 0; trial < 300; ++trial) {
    const int jobs = 1 + static_cast<int>(next(seed) % 12);
    const int slots = 1 + static_cast<int>(next(seed) % 12);
    const int n = 2 + jobs + slots;
    std::vector<std::vector<double>> cap(n, std::vector<double>(n, 0));
    MaxFlow flow;
    for (int i = 0; i < n; ++i) flow.add_node();
    const int source = 0, sink = 1;
    for (int j = 0; j < jobs; ++j) {
      double c = static_cast<double>(next(seed) % 100) / 7.0;
      cap[source][2 + j] = c;
      flow.add_edge(source, 2 + j, c);
      for (int s = 0; s < slots; ++s) {
        if (next(seed) % 3 == 0) continue;
        double r = static_cast<double>(next(seed) % 50) / 3.0;
        cap[2 + j][2 + jobs + s] = r;
        flow.add_edge(2 + j, 2 + jobs + s, r);
      }
    }
    std::vector<int> sink_edges;
    for (int s = 0; s < slots; ++s) sink_edges.push_back(flow.add_edge(2 + jobs + s, sink, 0));
    double total = 0;
    for (int step = 0; step < 4; ++step) {
      for (int s = 0; s < slots; ++s) {
        double by = static_cast<double>(next(seed) % 40) / 9.0;
        cap[2 + jobs + s][sink] += by;
        flow.raise(sink_edges[s], by);
      }
      total += flow.run(source, sink, 1e-12);
      ASSERT_NEAR(total, reference_max_flow(cap, source, sink), 1e-9 * (1 + total))
          << "trial " << trial << " step " << step;
    }
  }
}

TEST(MaxFlow, LongPathsDoNotExhaustTheStack) {
  // A chain of 200,000 nodes: one path as long as the graph.
  MaxFlow flow;
  const int n = 200000;
  for (int i = 0; i < n; ++i) flow.add_node();
  for (int i = 0; i + 1 < n; ++i) flow.add_edge(i, i + 1, 1.5);
  EXPECT_DOUBLE_EQ(flow.run(0, n - 1, 1e-12), 1.5);
}

}  // namespace
}  // namespace lepton::sim
