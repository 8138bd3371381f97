#include "core/resources.h"

#include <charconv>
#include <cmath>

namespace lepton {

Status Resources::validate() const {
  if (cpu_milli < 0) return Status::invalid_argument("cpu_milli: expected a value >= 0");
  if (memory_mib < 0) return Status::invalid_argument("memory_mib: expected a value >= 0");
  if (gpu_count < 0) return Status::invalid_argument("gpu_count: expected a value >= 0");
  if (gpu_count == 0 && gpu_milli != 0) {
    return Status::invalid_argument("gpu_milli: expected 0 when no GPU is requested");
  }
  if (gpu_count > 0 && (gpu_milli < 1 || gpu_milli > kMilliPerGpu)) {
    return Status::invalid_argument("gpu_milli: expected 1..1000 milli-GPUs per device");
  }
  if (gpu_count > 1 && gpu_milli != kMilliPerGpu) {
    return Status::invalid_argument(
        "gpu_milli: a request for several GPUs must take whole GPUs (1000 each)");
  }
  return Status::ok();
}

std::string Resources::to_string() const {
  std::string s = "cpu=" + std::to_string(cpu_milli) + "m mem=" + std::to_string(memory_mib) + "Mi";
  if (gpu_count > 0)
    s += " gpu=" + std::to_string(gpu_count) + "x" + std::to_string(gpu_milli) + "m";
  return s;
}

Result<Resources> parse_gpu_amount(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value) ||
      value <= 0) {
    return Status::invalid_argument("gpu amount '" + std::string(text) +
                                    "': expected a positive number such as 0.5, 1 or 8");
  }
  Resources r;
  if (value < 1) {
    double milli = value * kMilliPerGpu;
    if (std::fabs(milli - std::round(milli)) > 1e-6) {
      return Status::invalid_argument("gpu amount '" + std::string(text) +
                                      "': expected a whole number of milli-GPUs (e.g. 0.25)");
    }
    r.gpu_count = 1;
    r.gpu_milli = static_cast<int32_t>(std::lround(milli));
    return r;
  }
  if (value != std::floor(value) || value > 1024) {
    return Status::invalid_argument("gpu amount '" + std::string(text) +
                                    "': above one GPU, expected a whole number of GPUs");
  }
  r.gpu_count = static_cast<int32_t>(value);
  r.gpu_milli = kMilliPerGpu;
  return r;
}

}  // namespace lepton
