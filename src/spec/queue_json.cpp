#include "spec/queue_json.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "spec/decode.h"
#include "spec/json_document.h"

namespace lepton::spec {

namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 6> kQueueFields = {"name",   "parent", "guaranteed",
                                                          "weight", "limit",  "budget_usd"};
constexpr std::array<std::string_view, 3> kQuotaFields = {"gpus", "cpus", "memory_mib"};

// The most a quota may name of each dimension: far above any cluster, far below kUnlimited (so
// that sums stay exact), and small enough that a double holds every milli-unit exactly.
constexpr int64_t kMaxQuotaUnits = 1'000'000;  // GPUs or CPU cores
constexpr int64_t kMaxQuotaMemoryMib = int64_t{1} << 40;

// A value for an error message: its JSON text (strings in double quotes), shortened.
std::string got(const json& v) {
  switch (v.type()) {
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return internal::quote(v.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

Status fail(std::string_view field, std::string_view expected, const json& v) {
  return Status::invalid_argument(std::string(field) + ": expected " + std::string(expected) +
                                  ", got " + got(v));
}

std::string child(std::string_view path, std::string_view key) {
  std::string k = internal::quote(key);
  return path.empty() ? k : std::string(path) + "." + k;
}

// Every key of `object` is one of `allowed`.
Status check_fields(const json& object, std::string_view path,
                    std::span<const std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Status::invalid_argument(child(path, key) + ": unknown field, expected one of " +
                                      internal::join(allowed));
    }
  }
  return Status::ok();
}

// GPUs or CPU cores as milli-units.
Status milli_units(const json& v, std::string_view field, int64_t& out) {
  constexpr std::string_view kExpected = "a number >= 0";
  if (v.is_number_unsigned()) {
    auto n = v.get<uint64_t>();
    if (n > static_cast<uint64_t>(kMaxQuotaUnits)) {
      return fail(field, "at most " + std::to_string(kMaxQuotaUnits), v);
    }
    out = static_cast<int64_t>(n) * 1000;
    return Status::ok();
  }
  if (v.is_number_integer()) {  // a negative integer: the parser stores the others as unsigned
    auto n = v.get<int64_t>();
    if (n < 0) return fail(field, kExpected, v);
    if (n > kMaxQuotaUnits) return fail(field, "at most " + std::to_string(kMaxQuotaUnits), v);
    out = n * 1000;
    return Status::ok();
  }
  if (!v.is_number_float()) return fail(field, kExpected, v);
  double d = v.get<double>();
  if (!std::isfinite(d) || d < 0) return fail(field, kExpected, v);
  if (d > static_cast<double>(kMaxQuotaUnits)) {
    return fail(field, "at most " + std::to_string(kMaxQuotaUnits), v);
  }
  double m = d * 1000;
  double r = std::round(m);
  if (std::fabs(m - r) > 1e-6) return fail(field, "a multiple of 0.001", v);
  out = static_cast<int64_t>(r);
  return Status::ok();
}

Status mebibytes(const json& v, std::string_view field, int64_t& out) {
  constexpr std::string_view kExpected = "an integer >= 0";
  if (v.is_number_unsigned()) {
    auto n = v.get<uint64_t>();
    if (n > static_cast<uint64_t>(kMaxQuotaMemoryMib)) {
      return fail(field, "at most " + std::to_string(kMaxQuotaMemoryMib), v);
    }
    out = static_cast<int64_t>(n);
    return Status::ok();
  }
  return fail(field, kExpected, v);  // negative integers, fractions and other types
}

// Changes the dimensions `v` names; a null dimension becomes `absent`. A null `v` resets all.
Status merge_quota(const json& v, std::string_view field, int64_t absent, Quota& quota) {
  if (v.is_null()) {
    quota = Quota{absent, absent, absent};
    return Status::ok();
  }
  if (!v.is_object()) return fail(field, "an object of " + internal::join(kQuotaFields), v);
  LEPTON_RETURN_IF_ERROR(check_fields(v, field, kQuotaFields));
  if (auto it = v.find("gpus"); it != v.end()) {
    if (it->is_null()) {
      quota.gpu_milli = absent;
    } else {
      LEPTON_RETURN_IF_ERROR(milli_units(*it, child(field, "gpus"), quota.gpu_milli));
    }
  }
  if (auto it = v.find("cpus"); it != v.end()) {
    if (it->is_null()) {
      quota.cpu_milli = absent;
    } else {
      LEPTON_RETURN_IF_ERROR(milli_units(*it, child(field, "cpus"), quota.cpu_milli));
    }
  }
  if (auto it = v.find("memory_mib"); it != v.end()) {
    if (it->is_null()) {
      quota.memory_mib = absent;
    } else {
      LEPTON_RETURN_IF_ERROR(mebibytes(*it, child(field, "memory_mib"), quota.memory_mib));
    }
  }
  return Status::ok();
}

bool caps_nothing(const Quota& q) {
  return q.gpu_milli >= kUnlimited && q.cpu_milli >= kUnlimited && q.memory_mib >= kUnlimited;
}

// Applies `body` to `spec`; `create` when `spec` is a new queue (its name comes from the body).
Result<QueueSpec> apply(QueueSpec spec, std::string_view body, bool create) {
  auto parsed = internal::parse_json_object(body, "a queue");
  if (!parsed.is_ok()) return parsed.status();
  const json& j = *parsed;
  LEPTON_RETURN_IF_ERROR(check_fields(j, "", kQueueFields));

  if (auto it = j.find("name"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return fail("name", "a string", *it);
    const auto& name = it->get_ref<const std::string&>();
    if (create) {
      spec.name = name;
    } else if (name != spec.name) {
      return fail("name", got(json(spec.name)) + " (a queue cannot be renamed)", *it);
    }
  } else if (create) {
    return Status::invalid_argument(
        "name: expected a queue name (the field is required), got nothing");
  }
  if (auto it = j.find("parent"); it != j.end()) {
    if (it->is_null()) {
      spec.parent.clear();
    } else if (it->is_string()) {
      spec.parent = it->get<std::string>();
    } else {
      return fail("parent", "a queue name, or \"\" for none", *it);
    }
  }
  if (auto it = j.find("guaranteed"); it != j.end()) {
    LEPTON_RETURN_IF_ERROR(merge_quota(*it, "guaranteed", 0, spec.guaranteed));
  }
  if (auto it = j.find("weight"); it != j.end()) {
    if (it->is_null()) {
      spec.weight = QueueSpec{}.weight;
    } else {
      double w = it->is_number() ? it->get<double>() : 0;
      if (!it->is_number() || !(w > 0 && w <= kMaxQueueWeight)) {
        return fail("weight", "a number > 0 and <= 1000000", *it);
      }
      spec.weight = w;
    }
  }
  if (auto it = j.find("limit"); it != j.end()) {
    Quota limit = spec.limit.value_or(Quota{kUnlimited, kUnlimited, kUnlimited});
    LEPTON_RETURN_IF_ERROR(merge_quota(*it, "limit", kUnlimited, limit));
    spec.limit = caps_nothing(limit) ? std::nullopt : std::optional<Quota>(limit);
  }
  if (auto it = j.find("budget_usd"); it != j.end()) {
    if (it->is_null()) {
      spec.budget_usd.reset();
    } else if (it->is_number() && it->get<double>() >= 0 &&
               it->get<double>() <= kMaxQueueBudgetUsd) {
      spec.budget_usd = it->get<double>();
    } else {
      return fail("budget_usd", "dollars from 0 to 1e12, or null for no budget", *it);
    }
  }
  LEPTON_RETURN_IF_ERROR(validate_queue_spec(spec));
  return spec;
}

// Milli-units as a number: an integer when whole.
json units(int64_t milli) {
  if (milli % 1000 == 0) return milli / 1000;
  return static_cast<double>(milli) / 1000;
}

}  // namespace

json quota_to_json(const Quota& quota) {
  json j = json::object();
  if (quota.gpu_milli < kUnlimited) j["gpus"] = units(quota.gpu_milli);
  if (quota.cpu_milli < kUnlimited) j["cpus"] = units(quota.cpu_milli);
  if (quota.memory_mib < kUnlimited) j["memory_mib"] = quota.memory_mib;
  return j;
}

json queue_spec_to_json(const QueueSpec& spec) {
  json j = json::object();
  j["name"] = spec.name;
  j["parent"] = spec.parent;
  j["guaranteed"] = quota_to_json(spec.guaranteed);
  double whole = 0;
  if (std::modf(spec.weight, &whole) == 0 && std::fabs(whole) <= 1e15) {
    j["weight"] = static_cast<int64_t>(whole);
  } else {
    j["weight"] = spec.weight;
  }
  j["limit"] = spec.limit && !caps_nothing(*spec.limit) ? quota_to_json(*spec.limit) : json();
  j["budget_usd"] = spec.budget_usd ? json(*spec.budget_usd) : json();
  return j;
}

Result<QueueSpec> queue_spec_from_json(std::string_view body) {
  return apply(QueueSpec{}, body, true);
}

Result<QueueSpec> update_queue_spec(QueueSpec current, std::string_view body) {
  return apply(std::move(current), body, false);
}

}  // namespace lepton::spec
