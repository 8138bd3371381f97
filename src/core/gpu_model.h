// GPU models known to lepton: canonical names, aliases and device memory. Clusters may also carry
// models that are not in this table (a trace's anonymised "G1"); those are still schedulable by
// name, they only lack metadata.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace lepton {

struct GpuModelInfo {
  std::string_view name;     // canonical name, e.g. "A100-80GB"
  int memory_gib;            // device memory
  std::string_view aliases;  // comma-separated other spellings, compared case-insensitively
};

std::span<const GpuModelInfo> known_gpu_models();

// Looks a model up by canonical name or alias, case-insensitively.
std::optional<GpuModelInfo> find_gpu_model(std::string_view name);

// The canonical name for `name` when known, otherwise `name` unchanged.
std::string canonical_gpu_model(std::string_view name);

}  // namespace lepton
