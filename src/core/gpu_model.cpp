#include "core/gpu_model.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace lepton {
namespace {

constexpr std::array kModels = {
    GpuModelInfo{"H200", 141, "h200-141gb"},
    GpuModelInfo{"H100", 80, "h100-80gb,h100-sxm,h100-pcie"},
    GpuModelInfo{"A100-80GB", 80, "a100-80g,a100_80gb"},
    GpuModelInfo{"A100", 40, "a100-40gb,a100-40g"},
    GpuModelInfo{"L40S", 48, "l40s-48gb"},
    GpuModelInfo{"L4", 24, "l4-24gb"},
    GpuModelInfo{"A10G", 24, "a10g-24gb"},
    GpuModelInfo{"A10", 24, "a10-24gb"},
    GpuModelInfo{"V100-32GB", 32, "v100m32,v100-32g"},
    GpuModelInfo{"V100", 16, "v100m16,v100-16gb"},
    GpuModelInfo{"T4", 16, "t4-16gb"},
    GpuModelInfo{"P100", 16, "p100-16gb"},
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::span<const GpuModelInfo> known_gpu_models() { return kModels; }

std::optional<GpuModelInfo> find_gpu_model(std::string_view name) {
  for (const GpuModelInfo& m : kModels) {
    if (iequals(m.name, name)) return m;
    std::string_view rest = m.aliases;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      if (iequals(rest.substr(0, comma), name)) return m;
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
  }
  return std::nullopt;
}

std::string canonical_gpu_model(std::string_view name) {
  auto m = find_gpu_model(name);
  return m ? std::string(m->name) : std::string(name);
}

}  // namespace lepton
