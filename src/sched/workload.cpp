#include "sched/workload.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace lepton::sched {

TypicalWorkload TypicalWorkload::from_requests(std::span<const Request> requests, double coverage) {
  // Memory is not part of a type: fragmentation is about GPUs, CPU and models (as in the paper).
  using Key = std::tuple<int64_t, int32_t, int32_t, ModelMask>;
  std::map<Key, int64_t> counts;
  for (const Request& r : requests) {
    ++counts[Key{r.res.cpu_milli, r.res.gpu_milli, r.res.gpu_count, r.allowed_models}];
  }
  // Equally popular types are ordered by larger CPU, then GPU share, then GPU count, as the FGD
  // simulator orders them (it matters only for the type that crosses the coverage threshold).
  std::vector<std::pair<Key, int64_t>> groups(counts.rbegin(), counts.rend());
  std::stable_sort(groups.begin(), groups.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  TypicalWorkload w;
  const double total = static_cast<double>(requests.size());
  double covered = 0;
  for (const auto& [key, count] : groups) {
    if (total > 0 && covered / total >= coverage) break;
    auto [cpu, milli, gpus, models] = key;
    w.types.push_back(
        TaskType{Request{Resources{cpu, 0, gpus, milli}, models}, static_cast<double>(count)});
    covered += static_cast<double>(count);
  }
  for (TaskType& t : w.types) t.weight /= covered;
  return w;
}

int64_t gpu_frag_milli(const NodeState& state, const Request& type) {
  if (state.gpu_count == 0) return 0;
  const int64_t free_total = state.gpu_free_total();
  if (type.res.gpu_count == 0 || !ClusterState::fits(state, type)) return free_total;
  // The task fits: only GPUs with less free capacity than it needs per GPU are fragments.
  int64_t frag = 0;
  for (int i = state.gpu_count - 1; i >= 0 && state.gpu_free_sorted[i] < type.res.gpu_milli; --i) {
    frag += state.gpu_free_sorted[i];
  }
  return frag;
}

double gpu_frag_milli(const NodeState& state, const TypicalWorkload& workload) {
  if (state.gpu_count == 0) return 0;
  // The same cases as gpu_frag_milli(state, type), with the node's summaries computed once: this
  // is the inner loop of fragmentation-aware scoring.
  const int64_t free_total = state.gpu_free_total();
  const int full = state.full_free_gpus();
  const int16_t largest = state.gpu_free_sorted[0];
  double frag = 0;
  for (const TaskType& t : workload.types) {
    const Resources& r = t.request.res;
    const bool fits = r.gpu_count > 0 && r.cpu_milli <= state.cpu_free &&
                      r.memory_mib <= state.mem_free &&
                      (t.request.allowed_models >> state.model & 1) &&
                      (r.gpu_milli >= kMilliPerGpu ? full >= r.gpu_count
                                                   : r.gpu_count == 1 && largest >= r.gpu_milli);
    if (!fits) {
      frag += t.weight * static_cast<double>(free_total);
      continue;
    }
    int64_t partial = 0;
    for (int i = state.gpu_count - 1; i >= 0 && state.gpu_free_sorted[i] < r.gpu_milli; --i) {
      partial += state.gpu_free_sorted[i];
    }
    frag += t.weight * static_cast<double>(partial);
  }
  return frag;
}

}  // namespace lepton::sched
