// Dinic's maximum flow on real capacities, for the cost replay's capacity bound (cost_bound.h).
#pragma once

#include <cstddef>
#include <vector>

namespace lepton::sim {

// Capacities may be raised between runs; a run goes on from the flow already found.
class MaxFlow {
 public:
  int add_node();
  // Returns the edge's id, for raise().
  int add_edge(int from, int to, double capacity);
  void raise(int edge, double by);
  // Pushes as much more flow from `source` to `sink` as fits; returns how much. Residual
  // capacities at or below `epsilon` count as none.
  double run(int source, int sink, double epsilon);

 private:
  struct Edge {
    int to;
    double residual;
  };
  bool levels(int source, int sink);
  double push(int source, int sink, double limit);

  std::vector<Edge> edges_;
  std::vector<std::vector<int>> adjacent_;
  std::vector<int> level_;
  std::vector<size_t> next_;
  std::vector<int> path_;
  double epsilon_ = 0;
};

}  // namespace lepton::sim
