#include "core/queue.h"

#include <cmath>
#include <cstdio>

#include "core/job.h"

namespace lepton {

Quota& Quota::operator+=(const Quota& o) {
  gpu_milli += o.gpu_milli;
  cpu_milli += o.cpu_milli;
  memory_mib += o.memory_mib;
  return *this;
}

Quota& Quota::operator-=(const Quota& o) {
  gpu_milli -= o.gpu_milli;
  cpu_milli -= o.cpu_milli;
  memory_mib -= o.memory_mib;
  return *this;
}

bool Quota::fits_in(const Quota& o) const {
  return gpu_milli <= o.gpu_milli && cpu_milli <= o.cpu_milli && memory_mib <= o.memory_mib;
}

std::string Quota::to_string() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "gpu=%g cpu=%g mem=%lldMi", static_cast<double>(gpu_milli) / 1000,
                static_cast<double>(cpu_milli) / 1000, static_cast<long long>(memory_mib));
  return buf;
}

Quota quota_of(const Resources& per_task, int count) {
  return Quota{per_task.total_gpu_milli() * count, per_task.cpu_milli * count,
               per_task.memory_mib * count};
}

Status validate_queue_spec(const QueueSpec& spec) {
  LEPTON_RETURN_IF_ERROR(validate_name("name", spec.name));
  if (!spec.parent.empty()) {
    LEPTON_RETURN_IF_ERROR(validate_name("parent", spec.parent));
    if (spec.parent == spec.name) {
      return Status::invalid_argument("parent: a queue cannot be its own parent");
    }
  }
  if (!(spec.weight > 0 && spec.weight <= kMaxQueueWeight) || !std::isfinite(spec.weight)) {
    return Status::invalid_argument("weight: expected a number > 0 and <= 1000000");
  }
  if (spec.budget_usd && !(*spec.budget_usd >= 0 && *spec.budget_usd <= kMaxQueueBudgetUsd)) {
    return Status::invalid_argument("budget_usd: expected dollars from 0 to 1e12");
  }
  const Quota zero;
  if (!zero.fits_in(spec.guaranteed)) {
    return Status::invalid_argument("guaranteed: expected amounts >= 0");
  }
  if (spec.limit) {
    if (!zero.fits_in(*spec.limit)) return Status::invalid_argument("limit: expected amounts >= 0");
    if (!spec.guaranteed.fits_in(*spec.limit)) {
      return Status::invalid_argument("limit: must hold the guarantee (" +
                                      spec.guaranteed.to_string() + ")");
    }
  }
  return Status::ok();
}

}  // namespace lepton
