#include "core/job.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace lepton {
namespace {

constexpr std::array<std::string_view, 7> kStateNames = {
    "PENDING", "SCHEDULED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"};

bool is_env_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

}  // namespace

Status validate_name(std::string_view field, std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxJobNameLength &&
            std::islower(static_cast<unsigned char>(name[0]));
  for (char c : name) {
    ok = ok && (std::islower(static_cast<unsigned char>(c)) ||
                std::isdigit(static_cast<unsigned char>(c)) || c == '-');
  }
  if (ok) return Status::ok();
  return Status::invalid_argument(
      std::string(field) +
      ": expected 1 to 63 characters of a-z, 0-9 and '-', starting with a letter");
}

Status validate_job_spec(const JobSpec& spec) {
  LEPTON_RETURN_IF_ERROR(validate_name("name", spec.name));
  if (spec.num_nodes < 1 || spec.num_nodes > kMaxNodesPerJob) {
    return Status::invalid_argument("num_nodes: expected 1.." + std::to_string(kMaxNodesPerJob));
  }
  if (spec.max_restarts < 0 || spec.max_restarts > kMaxRestarts) {
    return Status::invalid_argument("max_restarts: expected 0.." + std::to_string(kMaxRestarts));
  }
  if (spec.run.empty()) return Status::invalid_argument("run: expected a command to run");
  if (Status s = spec.resources.validate(); !s.is_ok()) {
    return Status::invalid_argument("resources." + s.message());
  }
  if (!spec.gpu_models.empty() && spec.resources.gpu_count == 0) {
    return Status::invalid_argument("resources.accelerators: a GPU model needs a GPU count");
  }
  if (!spec.queue.empty()) LEPTON_RETURN_IF_ERROR(validate_name("queue", spec.queue));
  if (spec.priority < kMinJobPriority || spec.priority > kMaxJobPriority) {
    return Status::invalid_argument("priority: expected " + std::to_string(kMinJobPriority) + ".." +
                                    std::to_string(kMaxJobPriority));
  }
  for (const std::string& cloud : spec.clouds) {
    const bool ok =
        !cloud.empty() && cloud.size() <= 32 && std::all_of(cloud.begin(), cloud.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        });
    if (!ok) return Status::invalid_argument("clouds: expected names such as aws or gcp");
  }
  for (const std::string& region : spec.regions) {
    if (region.empty() || region.size() > 64) {
      return Status::invalid_argument("regions: expected names such as us-east-1");
    }
  }
  for (const auto& [key, value] : spec.envs) {
    if (!is_env_name(key)) {
      return Status::invalid_argument("envs." + key +
                                      ": expected a name of letters, digits and '_'");
    }
  }
  return Status::ok();
}

std::string_view job_state_name(JobState state) { return kStateNames[static_cast<size_t>(state)]; }

std::optional<JobState> parse_job_state(std::string_view name) {
  for (size_t i = 0; i < kStateNames.size(); ++i) {
    if (kStateNames[i] == name) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

bool is_terminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

}  // namespace lepton
