// The published per-seed curves of the FGD simulator (analysis_allo_discrete.csv and
// analysis_frag_discrete.csv from hkust-adsl/kubernetes-scheduler-simulator), for comparing our
// runs with the paper's. Columns: workload, sc_policy, tune, seed, [total_gpus,] 0..130.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lepton::sim {

struct PublishedCurve {
  std::string workload;  // e.g. "openb_pod_list_default"
  std::string policy;    // e.g. "06-FGD"
  std::string tune;      // e.g. "1.3"
  int64_t seed = 0;
  std::vector<double> values;  // index = arrived percent; NaN where the file has no value
};

Result<std::vector<PublishedCurve>> parse_published_curves(std::string_view content,
                                                           std::string_view file);
Result<std::vector<PublishedCurve>> read_published_curves(const std::string& path);

// The simulator's name for one of our policies ("fgd" -> "06-FGD"), or empty when it has none.
std::string_view published_policy_name(std::string_view policy);

// Mean over seeds of the value at `percent` for a workload and one of our policy names.
std::optional<double> published_mean(const std::vector<PublishedCurve>& curves,
                                     std::string_view workload, std::string_view policy,
                                     size_t percent);

}  // namespace lepton::sim
