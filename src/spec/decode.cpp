#include "spec/decode.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>

#include "core/gpu_model.h"
#include "core/hex.h"
#include "core/resources.h"

namespace lepton::spec::internal {
namespace {

using Kind = Node::Kind;
using Type = Node::Type;

constexpr size_t kMaxQuoted = 60;

constexpr std::array<std::string_view, 14> kJobFields = {
    "name",  "resources", "num_nodes",   "envs", "setup",    "run",    "max_restarts",
    "queue", "priority",  "preemptible", "kind", "use_spot", "clouds", "regions"};
// A deployment's replica fields (decoded as a job) and its own.
constexpr std::array<std::string_view, 11> kReplicaFields = {
    "name",     "resources",   "envs",     "setup",  "run",    "queue",
    "priority", "preemptible", "use_spot", "clouds", "regions"};
constexpr std::array<std::string_view, 6> kDeploymentOwnFields = {
    "kind", "port", "replicas", "autoscale", "readiness", "auth"};
constexpr std::array<std::string_view, 3> kReplicaCountFields = {"min", "max", "min_on_demand"};
constexpr std::array<std::string_view, 4> kAutoscaleFields = {
    "target_in_flight", "window", "panic_window", "scale_to_zero_after"};
constexpr std::array<std::string_view, 1> kReadinessFields = {"path"};
constexpr std::array<std::string_view, 3> kResourceFields = {"accelerators", "cpus", "memory"};
constexpr std::array<std::string_view, 5> kStructuredResourceFields = {
    "cpu_milli", "memory_mib", "gpu_count", "gpu_milli", "gpu_models"};

constexpr std::string_view kAcceleratorForm =
    "a GPU model with an optional count, such as A100, A100:8 or T4:0.5";
constexpr std::string_view kGpuCount =
    "a GPU count of 1 to 1024 whole GPUs, or a fraction of one GPU with at most 3 decimals such "
    "as 0.5";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_env_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// GPU model names: a letter, then letters, digits, '-', '_' or '.'. This keeps "MODEL:COUNT"
// unambiguous and tells model names from bare counts.
bool is_model_name(std::string_view s) {
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::optional<double> parse_number(std::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::string describe(const Node& n) {
  switch (n.kind) {
    case Kind::kNull:
      return "null";
    case Kind::kList:
      return "a list";
    case Kind::kMap:
      return "a map";
    case Kind::kScalar:
      break;
  }
  return "'" + quote(n.text) + "'";
}

// A GPU request: its model (empty for any model) and amount.
struct Accelerator {
  std::string model;
  Resources amount;
};

class Decoder {
 public:
  explicit Decoder(const DecodeOptions& options) : options_(options) {}

  Result<JobSpec> decode(const Node& root);
  Result<DeploymentSpec> decode_deployment(const Node& root);

 private:
  // "FILE:LINE:COLUMN: " for `at` (or less, as far as known).
  std::string where(const Node& at) const {
    if (options_.file.empty()) return "";
    std::string s(options_.file);
    if (at.line > 0) s += ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
    return s + ": ";
  }
  Status fail(const Node& at, std::string_view field, std::string_view expected) const {
    return fail_got(at, field, expected, describe(at));
  }
  Status fail_got(const Node& at, std::string_view field, std::string_view expected,
                  std::string_view got) const {
    std::string m = where(at);
    if (!field.empty()) m += std::string(field) + ": ";
    return Status::invalid_argument(m + "expected " + std::string(expected) + ", got " +
                                    std::string(got));
  }

  static std::string child(std::string_view path, std::string_view key) {
    std::string k = quote(key);
    return path.empty() ? k : std::string(path) + "." + k;
  }

  // Checks that `map` is a map whose keys are distinct scalars from `allowed` (any scalar when
  // `allowed` is empty), and records where each field is.
  Status check_fields(const Node& map, std::string_view path,
                      std::span<const std::string_view> allowed,
                      std::span<const std::string_view> also_allowed = {}) {
    std::set<std::string_view> seen;
    for (const auto& [key, value] : map.entries) {
      if (key.kind != Kind::kScalar) return fail(key, path, "a field name");
      std::string field = child(path, key.text);
      bool known =
          allowed.empty() || std::find(allowed.begin(), allowed.end(), key.text) != allowed.end() ||
          std::find(also_allowed.begin(), also_allowed.end(), key.text) != also_allowed.end();
      if (!known) {
        std::string expected = "one of " + join(allowed);
        if (!also_allowed.empty()) expected += ", " + join(also_allowed);
        return Status::invalid_argument(where(key) + field + ": unknown field, expected " +
                                        expected);
      }
      if (!seen.insert(key.text).second) {
        return fail_got(key, field, "each field once", "it twice");
      }
      positions_[field] = &value;
    }
    return Status::ok();
  }

  static const Node* find(const Node& map, std::string_view key) {
    for (const auto& [k, v] : map.entries) {
      if (k.kind == Kind::kScalar && k.text == key) return &v;
    }
    return nullptr;
  }

  Result<std::string> text(const Node& n, std::string_view path) const {
    if (n.kind != Kind::kScalar || (n.type != Type::kAny && n.type != Type::kString)) {
      return fail(n, path, "a string");
    }
    if (!is_utf8(n.text)) return fail_got(n, path, "UTF-8 text", "invalid UTF-8");
    return n.text;
  }

  Status integer(const Node& n, std::string_view path, int64_t lo, int64_t hi, int& out) const {
    int64_t v = 0;
    bool ok = n.kind == Kind::kScalar && (n.type == Type::kAny || n.type == Type::kNumber);
    if (ok) {
      auto [end, ec] = std::from_chars(n.text.data(), n.text.data() + n.text.size(), v);
      ok = !n.text.empty() && ec == std::errc() && end == n.text.data() + n.text.size() &&
           v >= lo && v <= hi;
    }
    if (!ok) {
      return fail(n, path, "an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    out = static_cast<int>(v);
    return Status::ok();
  }

  // true or false: a JSON bool, or in YAML true/True/TRUE/false/False/FALSE (YAML 1.2's core
  // schema; not yes/no/on/off).
  // A list of names, or one name alone ("clouds: aws" is "clouds: [aws]"); lower-cased.
  Status names(const Node& n, std::string_view path, std::vector<std::string>& out) const {
    std::vector<const Node*> items;
    if (n.kind == Kind::kList) {
      for (const Node& item : n.items) items.push_back(&item);
    } else {
      items.push_back(&n);
    }
    for (const Node* item : items) {
      auto name = text(*item, path);
      if (!name.is_ok() || name->empty()) return fail(*item, path, "a list of names");
      std::string lower = *name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (std::find(out.begin(), out.end(), lower) == out.end()) out.push_back(std::move(lower));
    }
    return Status::ok();
  }

  Status boolean(const Node& n, std::string_view path, bool& out) const {
    static constexpr std::array<std::string_view, 3> kTrue = {"true", "True", "TRUE"};
    static constexpr std::array<std::string_view, 3> kFalse = {"false", "False", "FALSE"};
    if (n.kind == Kind::kScalar && (n.type == Type::kAny || n.type == Type::kBool)) {
      if (std::find(kTrue.begin(), kTrue.end(), n.text) != kTrue.end()) {
        out = true;
        return Status::ok();
      }
      if (std::find(kFalse.begin(), kFalse.end(), n.text) != kFalse.end()) {
        out = false;
        return Status::ok();
      }
    }
    return fail(n, path, "true or false");
  }

  // A number that may end in '+' ("4+": at least 4). Both forms are minimums.
  std::optional<double> minimum(const Node& n) const {
    if (n.kind != Kind::kScalar || n.type == Type::kBool) return std::nullopt;
    std::string_view t = n.text;
    if (n.type != Type::kNumber && !t.empty() && t.back() == '+') t.remove_suffix(1);
    return parse_number(t);
  }

  Status cpus(const Node& n, std::string_view path, int64_t& milli) const {
    auto v = minimum(n);
    if (!v || *v < 0 || *v > kMaxCpuCores) {
      return fail(n, path,
                  "a number of CPU cores from 0 to " + std::to_string(kMaxCpuCores) +
                      ", optionally ending in '+', such as 4, 0.5 or 4+");
    }
    double m = *v * 1000;
    double r = std::round(m);
    if (std::fabs(m - r) > 1e-6) return fail(n, path, "a whole number of milli-cores (0.001)");
    milli = static_cast<int64_t>(r);
    return Status::ok();
  }

  // Memory in GiB; rounded up to whole MiB (it is a minimum).
  Status memory(const Node& n, std::string_view path, int64_t& mib) const {
    auto v = minimum(n);
    if (!v || *v < 0 || *v > kMaxMemoryGib) {
      return fail(n, path,
                  "a size in GiB from 0 to " + std::to_string(kMaxMemoryGib) +
                      ", optionally ending in '+', such as 16, 0.5 or 16+");
    }
    double m = *v * 1024;
    double r = std::round(m);
    mib = static_cast<int64_t>(std::fabs(m - r) <= 1e-6 ? r : std::ceil(m));
    return Status::ok();
  }

  // One "MODEL" or "MODEL:COUNT" (model_only: just "MODEL").
  Result<Accelerator> accelerator(const Node& n, std::string_view path, std::string_view item,
                                  bool model_only) const {
    std::string_view model = item, count = "1";
    if (size_t colon = item.rfind(':'); colon != std::string_view::npos && !model_only) {
      model = item.substr(0, colon);
      count = item.substr(colon + 1);
    }
    model = trim(model);
    count = trim(count);
    if (!is_model_name(model)) return fail(n, path, model_only ? "a GPU model" : kAcceleratorForm);
    auto amount = parse_gpu_amount(count);
    if (!amount.is_ok()) return fail(n, path, kGpuCount);
    return Accelerator{canonical_gpu_model(model), *amount};
  }

  Status accelerators(const Node& n, std::string_view path, JobSpec& spec) {
    std::vector<Accelerator> all;
    switch (n.kind) {
      case Kind::kNull:
        return Status::ok();
      case Kind::kScalar: {
        if (n.type == Type::kBool) return fail(n, path, kAcceleratorForm);
        if (n.type == Type::kNumber || parse_number(n.text)) {  // a count of GPUs of any model
          auto amount = parse_gpu_amount(n.text);
          if (!amount.is_ok()) return fail(n, path, kGpuCount);
          spec.resources.gpu_count = amount->gpu_count;
          spec.resources.gpu_milli = amount->gpu_milli;
          return Status::ok();
        }
        auto a = accelerator(n, path, n.text, false);
        if (!a.is_ok()) return a.status();
        all.push_back(std::move(*a));
        break;
      }
      case Kind::kList:
        if (n.items.empty()) return fail(n, path, "at least one GPU model");
        for (const Node& item : n.items) {
          if (item.kind != Kind::kScalar || item.type == Type::kNumber ||
              item.type == Type::kBool) {
            return fail(item, path, kAcceleratorForm);
          }
          auto a = accelerator(item, path, item.text, false);
          if (!a.is_ok()) return a.status();
          if (!all.empty() && !(a->amount == all.front().amount)) {
            return fail(item, path, "the same count for every GPU model");
          }
          all.push_back(std::move(*a));
        }
        break;
      case Kind::kMap: {
        if (n.entries.empty()) return fail(n, path, "at least one GPU model");
        LEPTON_RETURN_IF_ERROR(check_fields(n, path, {}));
        for (const auto& [key, value] : n.entries) {
          Result<Accelerator> a = Status::internal("unset");
          if (value.kind == Kind::kNull) {  // {A100:8, H100:8}: a set of "MODEL:COUNT"
            a = accelerator(key, path, key.text, false);
          } else if (value.kind != Kind::kScalar || value.type == Type::kBool) {
            return fail(value, path, kGpuCount);
          } else {
            a = accelerator(key, path, key.text, true);
            if (!a.is_ok()) return a.status();
            auto amount = parse_gpu_amount(value.text);
            if (!amount.is_ok()) return fail(value, path, kGpuCount);
            a->amount = *amount;
          }
          if (!a.is_ok()) return a.status();
          if (!all.empty() && !(a->amount == all.front().amount)) {
            return fail(value.kind == Kind::kNull ? key : value, path,
                        "the same count for every GPU model");
          }
          all.push_back(std::move(*a));
        }
        break;
      }
    }
    spec.resources.gpu_count = all.front().amount.gpu_count;
    spec.resources.gpu_milli = all.front().amount.gpu_milli;
    for (Accelerator& a : all) {
      if (std::find(spec.gpu_models.begin(), spec.gpu_models.end(), a.model) ==
          spec.gpu_models.end()) {
        spec.gpu_models.push_back(std::move(a.model));
      }
    }
    return Status::ok();
  }

  Status structured_resources(const Node& n, JobSpec& spec) const {
    int cpu_milli = 0, memory_mib = 0;
    if (const Node* v = find(n, "cpu_milli")) {
      LEPTON_RETURN_IF_ERROR(integer(*v, "resources.cpu_milli", 0, kMaxCpuCores * 1000, cpu_milli));
      spec.resources.cpu_milli = cpu_milli;
    }
    if (const Node* v = find(n, "memory_mib")) {
      LEPTON_RETURN_IF_ERROR(
          integer(*v, "resources.memory_mib", 0, std::numeric_limits<int>::max(), memory_mib));
      spec.resources.memory_mib = memory_mib;
    }
    int count = 0, milli = 0;
    if (const Node* v = find(n, "gpu_count")) {
      LEPTON_RETURN_IF_ERROR(integer(*v, "resources.gpu_count", 0, 1024, count));
    }
    milli = count > 0 ? kMilliPerGpu : 0;
    if (const Node* v = find(n, "gpu_milli")) {
      LEPTON_RETURN_IF_ERROR(integer(*v, "resources.gpu_milli", 0, kMilliPerGpu, milli));
    }
    spec.resources.gpu_count = count;
    spec.resources.gpu_milli = milli;
    if (const Node* v = find(n, "gpu_models"); v && v->kind != Kind::kNull) {
      if (v->kind != Kind::kList) return fail(*v, "resources.gpu_models", "a list of GPU models");
      for (const Node& item : v->items) {
        if (item.kind != Kind::kScalar || item.type != Type::kString) {
          return fail(item, "resources.gpu_models", "a GPU model");
        }
        auto a = accelerator(item, "resources.gpu_models", item.text, true);
        if (!a.is_ok()) return a.status();
        if (std::find(spec.gpu_models.begin(), spec.gpu_models.end(), a->model) ==
            spec.gpu_models.end()) {
          spec.gpu_models.push_back(std::move(a->model));
        }
      }
    }
    return Status::ok();
  }

  Status resources(const Node& n, JobSpec& spec) {
    if (n.kind == Kind::kNull) return Status::ok();
    if (n.kind != Kind::kMap) return fail(n, "resources", "a map of accelerators, cpus, memory");
    if (options_.structured_resources) {
      LEPTON_RETURN_IF_ERROR(
          check_fields(n, "resources", kResourceFields, kStructuredResourceFields));
      const Node* yaml_like = nullptr;
      const Node* structured = nullptr;
      for (const auto& [key, value] : n.entries) {
        bool s = std::find(kStructuredResourceFields.begin(), kStructuredResourceFields.end(),
                           key.text) != kStructuredResourceFields.end();
        (s ? structured : yaml_like) = &key;
      }
      if (structured && yaml_like) {
        return fail_got(*structured, "resources",
                        "either accelerators/cpus/memory or " + join(kStructuredResourceFields),
                        "both '" + yaml_like->text + "' and '" + structured->text + "'");
      }
      if (structured) return structured_resources(n, spec);
    } else {
      LEPTON_RETURN_IF_ERROR(check_fields(n, "resources", kResourceFields));
    }
    if (const Node* v = find(n, "accelerators")) {
      LEPTON_RETURN_IF_ERROR(accelerators(*v, "resources.accelerators", spec));
    }
    if (const Node* v = find(n, "cpus"); v && v->kind != Kind::kNull) {
      LEPTON_RETURN_IF_ERROR(cpus(*v, "resources.cpus", spec.resources.cpu_milli));
    }
    if (const Node* v = find(n, "memory"); v && v->kind != Kind::kNull) {
      LEPTON_RETURN_IF_ERROR(memory(*v, "resources.memory", spec.resources.memory_mib));
    }
    return Status::ok();
  }

  Status envs(const Node& n, JobSpec& spec) {
    if (n.kind == Kind::kNull) return Status::ok();
    if (n.kind != Kind::kMap) return fail(n, "envs", "a map of names to values");
    LEPTON_RETURN_IF_ERROR(check_fields(n, "envs", {}));
    for (const auto& [key, value] : n.entries) {
      std::string field = child("envs", key.text);
      if (!is_env_name(key.text)) {
        return fail(key, field, "a name of letters, digits and '_', not starting with a digit");
      }
      if (value.kind != Kind::kScalar) return fail(value, field, "a string, number or bool");
      if (!is_utf8(value.text)) return fail_got(value, field, "UTF-8 text", "invalid UTF-8");
      spec.envs[key.text] = value.text;
    }
    return Status::ok();
  }

  // Turns a validate_job_spec error ("FIELD: message") into one placed at the field.
  Status place(const Status& s) const {
    const std::string& m = s.message();
    std::string field = m.substr(0, m.find(':'));
    for (std::string path = field; !path.empty();) {
      auto it = positions_.find(path);
      if (it != positions_.end()) {
        const Node& at = *it->second;
        std::string got;
        if (path == field && at.kind == Kind::kScalar) got = ", got '" + quote(at.text) + "'";
        return Status::invalid_argument(where(at) + m + got);
      }
      size_t dot = path.rfind('.');
      path = dot == std::string::npos ? "" : path.substr(0, dot);
    }
    return Status::invalid_argument(options_.file.empty() ? m
                                                          : std::string(options_.file) + ": " + m);
  }

  const DecodeOptions& options_;
  std::map<std::string, const Node*> positions_;  // field path -> its value
};

Result<JobSpec> Decoder::decode(const Node& root) {
  if (root.kind == Kind::kNull) {
    return fail_got(root, "", "a job spec (a map with name, run and more)", "an empty document");
  }
  if (root.kind != Kind::kMap) return fail(root, "", "a job spec (a map with name, run and more)");
  LEPTON_RETURN_IF_ERROR(check_fields(root, "", kJobFields));
  if (const Node* v = find(root, "kind"); v && v->kind != Kind::kNull) {
    if (v->kind == Kind::kScalar && v->text == "deployment") {
      return fail_got(*v, "kind", "job (a deployment is created with lepton deploy create -f)",
                      "'deployment'");
    }
    if (v->kind != Kind::kScalar || v->text != "job") return fail(*v, "kind", "job");
  }

  JobSpec spec;
  spec.resources.cpu_milli = 1000;
  spec.resources.memory_mib = 1024;
  const Node* name = find(root, "name");
  if (!name) return fail_got(root, "name", "a job name (the field is required)", "nothing");
  auto name_text = text(*name, "name");
  if (!name_text.is_ok()) return name_text.status();
  spec.name = std::move(*name_text);

  if (const Node* v = find(root, "resources")) LEPTON_RETURN_IF_ERROR(resources(*v, spec));
  if (const Node* v = find(root, "num_nodes"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(integer(*v, "num_nodes", 1, kMaxNodesPerJob, spec.num_nodes));
  }
  if (const Node* v = find(root, "envs")) LEPTON_RETURN_IF_ERROR(envs(*v, spec));
  if (const Node* v = find(root, "setup"); v && v->kind != Kind::kNull) {
    auto setup = text(*v, "setup");
    if (!setup.is_ok()) return setup.status();
    spec.setup = std::move(*setup);
  }
  const Node* run = find(root, "run");
  if (!run) return fail_got(root, "run", "a command to run (the field is required)", "nothing");
  auto run_text = text(*run, "run");
  if (!run_text.is_ok()) return run_text.status();
  spec.run = std::move(*run_text);
  if (const Node* v = find(root, "max_restarts"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(integer(*v, "max_restarts", 0, kMaxRestarts, spec.max_restarts));
  }
  if (const Node* v = find(root, "queue"); v && v->kind != Kind::kNull) {
    auto queue = text(*v, "queue");
    if (!queue.is_ok()) return queue.status();
    spec.queue = std::move(*queue);
  }
  if (const Node* v = find(root, "priority"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(
        integer(*v, "priority", kMinJobPriority, kMaxJobPriority, spec.priority));
  }
  if (const Node* v = find(root, "preemptible"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(boolean(*v, "preemptible", spec.preemptible));
  }
  if (const Node* v = find(root, "use_spot"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(boolean(*v, "use_spot", spec.use_spot));
  }
  if (const Node* v = find(root, "clouds"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(names(*v, "clouds", spec.clouds));
  }
  if (const Node* v = find(root, "regions"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(names(*v, "regions", spec.regions));
  }

  if (Status s = validate_job_spec(spec); !s.is_ok()) return place(s);
  return spec;
}

}  // namespace

Result<DeploymentSpec> Decoder::decode_deployment(const Node& root) {
  constexpr std::string_view kWhat = "a deployment spec (a map with name, run and more)";
  if (root.kind == Kind::kNull) return fail_got(root, "", kWhat, "an empty document");
  if (root.kind != Kind::kMap) return fail(root, "", kWhat);
  LEPTON_RETURN_IF_ERROR(check_fields(root, "", kReplicaFields, kDeploymentOwnFields));
  if (const Node* v = find(root, "kind"); v && v->kind != Kind::kNull) {
    if (v->kind != Kind::kScalar || v->text != "deployment") return fail(*v, "kind", "deployment");
  }
  // The replica's fields are a job's; the rest are the deployment's own.
  Node replica;
  replica.kind = Kind::kMap;
  replica.line = root.line;
  replica.column = root.column;
  for (const MapEntry& e : root.entries) {
    if (std::find(kReplicaFields.begin(), kReplicaFields.end(), e.key.text) !=
        kReplicaFields.end()) {
      replica.entries.push_back(e);
    }
  }
  DeploymentSpec spec;
  auto job = decode(replica);
  if (!job.is_ok()) return job.status();
  spec.replica = std::move(*job);

  if (const Node* v = find(root, "port"); v && v->kind != Kind::kNull) {
    LEPTON_RETURN_IF_ERROR(integer(*v, "port", 1, 65535, spec.port));
  }
  if (const Node* v = find(root, "replicas"); v && v->kind != Kind::kNull) {
    if (v->kind == Kind::kScalar) {
      LEPTON_RETURN_IF_ERROR(integer(*v, "replicas", 1, kMaxReplicas, spec.min_replicas));
      spec.max_replicas = spec.min_replicas;
    } else if (v->kind == Kind::kMap) {
      LEPTON_RETURN_IF_ERROR(check_fields(*v, "replicas", kReplicaCountFields));
      if (const Node* m = find(*v, "min")) {
        LEPTON_RETURN_IF_ERROR(integer(*m, "replicas.min", 0, kMaxReplicas, spec.min_replicas));
      }
      spec.max_replicas = std::max(spec.min_replicas, 1);
      if (const Node* m = find(*v, "max")) {
        LEPTON_RETURN_IF_ERROR(integer(*m, "replicas.max", 1, kMaxReplicas, spec.max_replicas));
      }
      if (const Node* m = find(*v, "min_on_demand")) {
        LEPTON_RETURN_IF_ERROR(
            integer(*m, "replicas.min_on_demand", 0, kMaxReplicas, spec.min_on_demand));
      }
    } else {
      return fail(*v, "replicas", "a number of replicas, or {min: N, max: M, min_on_demand: K}");
    }
  }
  if (const Node* v = find(root, "autoscale"); v && v->kind != Kind::kNull) {
    if (v->kind != Kind::kMap) return fail(*v, "autoscale", "a map of " + join(kAutoscaleFields));
    LEPTON_RETURN_IF_ERROR(check_fields(*v, "autoscale", kAutoscaleFields));
    if (const Node* m = find(*v, "target_in_flight")) {
      LEPTON_RETURN_IF_ERROR(
          integer(*m, "autoscale.target_in_flight", 1, kMaxTargetInFlight, spec.target_in_flight));
    }
    if (const Node* m = find(*v, "window")) {
      LEPTON_RETURN_IF_ERROR(integer(*m, "autoscale.window", 1, kMaxWindowSeconds, spec.window_s));
    }
    if (const Node* m = find(*v, "panic_window")) {
      LEPTON_RETURN_IF_ERROR(
          integer(*m, "autoscale.panic_window", 1, kMaxWindowSeconds, spec.panic_window_s));
    }
    if (const Node* m = find(*v, "scale_to_zero_after")) {
      LEPTON_RETURN_IF_ERROR(integer(*m, "autoscale.scale_to_zero_after", 1, kMaxScaleToZeroSeconds,
                                     spec.scale_to_zero_after_s));
    }
  }
  if (const Node* v = find(root, "readiness"); v && v->kind != Kind::kNull) {
    if (v->kind != Kind::kMap) return fail(*v, "readiness", "a map with path");
    LEPTON_RETURN_IF_ERROR(check_fields(*v, "readiness", kReadinessFields));
    if (const Node* m = find(*v, "path")) {
      auto path = text(*m, "readiness.path");
      if (!path.is_ok()) return path.status();
      spec.readiness_path = std::move(*path);
    }
  }
  if (const Node* v = find(root, "auth"); v && v->kind != Kind::kNull) {
    if (v->kind != Kind::kScalar || (v->text != "public" && v->text != "token")) {
      return fail(*v, "auth", "public or token");
    }
    spec.token_auth = v->text == "token";
  }
  if (Status s = validate_deployment_spec(spec); !s.is_ok()) return place(s);
  return spec;
}

Result<JobSpec> decode_job_spec(const Node& root, const DecodeOptions& options) {
  return Decoder(options).decode(root);
}

Result<DeploymentSpec> decode_deployment_spec(const Node& root, const DecodeOptions& options) {
  return Decoder(options).decode_deployment(root);
}

std::string quote(std::string_view text) {
  std::string s;
  for (size_t i = 0; i < text.size(); ++i) {
    if (s.size() >= kMaxQuoted) {
      // Do not cut a UTF-8 sequence in half.
      while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
      if (!s.empty() && (static_cast<unsigned char>(s.back()) & 0x80)) s.pop_back();
      return s + "...";
    }
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      s += "\\n";
    } else if (c == '\t') {
      s += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      s += "\\x";
      append_hex(s, c);
    } else {
      s += static_cast<char>(c);
    }
  }
  return s;
}

bool is_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= text.size()) return false;
    for (int k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(text[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::string join(std::span<const std::string_view> names) {
  std::string s;
  for (std::string_view n : names) {
    if (!s.empty()) s += ", ";
    s += n;
  }
  return s;
}

}  // namespace lepton::spec::internal
