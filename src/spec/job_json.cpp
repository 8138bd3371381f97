#include "spec/job_json.h"

#include "spec/decode.h"
#include "spec/json_document.h"

namespace lepton::spec {
namespace {

using internal::Node;
using nlohmann::json;
using nlohmann::ordered_json;

// "0.5" for 500 milli-GPUs; "8" for whole GPUs.
std::string gpu_amount(const Resources& r) {
  if (r.gpu_count != 1 || r.gpu_milli >= kMilliPerGpu) return std::to_string(r.gpu_count);
  std::string s = std::to_string(1000 + r.gpu_milli).substr(1);  // three digits
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  return "0." + s;
}

// A whole number as an integer, otherwise as a double; `unit` divides `value` exactly into the
// number written (powers of two for memory, so the double is exact).
ordered_json quantity(int64_t value, int64_t unit) {
  if (value % unit == 0) return value / unit;
  return static_cast<double>(value) / static_cast<double>(unit);
}

void convert(const json& in, int depth, Node& out);

}  // namespace

namespace internal {

Result<Node> read_json(std::string_view text, std::string_view what) {
  auto j = parse_json_object(text, what);
  if (!j.is_ok()) return j.status();
  Node root;
  convert(*j, 0, root);
  return root;
}

}  // namespace internal

namespace {

void convert(const json& in, int depth, Node& out) {
  switch (in.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      out.kind = Node::Kind::kNull;
      return;
    case json::value_t::string:
      out.kind = Node::Kind::kScalar;
      out.type = Node::Type::kString;
      out.text = in.get_ref<const std::string&>();
      return;
    case json::value_t::boolean:
      out.kind = Node::Kind::kScalar;
      out.type = Node::Type::kBool;
      out.text = in.get<bool>() ? "true" : "false";
      return;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      out.kind = Node::Kind::kScalar;
      out.type = Node::Type::kNumber;
      out.text = in.dump();
      return;
    case json::value_t::binary:  // not produced by the parser
      out.kind = Node::Kind::kScalar;
      return;
    case json::value_t::array:
      out.kind = Node::Kind::kList;
      if (depth >= internal::kMaxTreeDepth) {
        out.truncated = true;
        return;
      }
      for (const json& item : in) {
        out.items.emplace_back();
        convert(item, depth + 1, out.items.back());
      }
      return;
    case json::value_t::object:
      out.kind = Node::Kind::kMap;
      if (depth >= internal::kMaxTreeDepth) {
        out.truncated = true;
        return;
      }
      for (const auto& [key, value] : in.items()) {
        auto& [k, v] = out.entries.emplace_back();
        k.kind = Node::Kind::kScalar;
        k.type = Node::Type::kString;
        k.text = key;
        convert(value, depth + 1, v);
      }
      return;
  }
}

}  // namespace

ordered_json job_spec_to_json_value(const JobSpec& spec) {
  ordered_json resources = ordered_json::object();
  const Resources& r = spec.resources;
  if (r.gpu_count > 0) {
    std::string amount = gpu_amount(r);
    if (spec.gpu_models.empty()) {
      resources["accelerators"] =
          r.fractional() ? ordered_json(r.gpu_milli / 1000.0) : ordered_json(r.gpu_count);
    } else if (spec.gpu_models.size() == 1) {
      resources["accelerators"] = spec.gpu_models[0] + ":" + amount;
    } else {
      ordered_json list = ordered_json::array();
      for (const std::string& m : spec.gpu_models) list.push_back(m + ":" + amount);
      resources["accelerators"] = std::move(list);
    }
  }
  resources["cpus"] = quantity(r.cpu_milli, 1000);
  resources["memory"] = quantity(r.memory_mib, 1024);

  ordered_json j = ordered_json::object();
  j["name"] = spec.name;
  j["resources"] = std::move(resources);
  j["num_nodes"] = spec.num_nodes;
  j["envs"] = ordered_json::object();
  for (const auto& [key, value] : spec.envs) j["envs"][key] = value;
  j["setup"] = spec.setup;
  j["run"] = spec.run;
  j["max_restarts"] = spec.max_restarts;
  j["queue"] = spec.queue;
  j["priority"] = spec.priority;
  j["preemptible"] = spec.preemptible;
  j["use_spot"] = spec.use_spot;
  j["clouds"] = spec.clouds;
  j["regions"] = spec.regions;
  return j;
}

std::string job_spec_to_json(const JobSpec& spec) {
  return job_spec_to_json_value(spec).dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<JobSpec> job_spec_from_json(std::string_view text) {
  auto root = internal::read_json(text, "a job spec");
  if (!root.is_ok()) return root.status();
  return internal::decode_job_spec(*root, {.file = {}, .structured_resources = true});
}

}  // namespace lepton::spec
