// Internal to spec/: the job schema, decoded once for both codecs. The YAML and JSON readers turn
// their documents into a small tree of `Node`s (with positions when the format has them) and
// `decode_job_spec` checks it field by field, so both formats accept the same fields and report
// errors the same way: "[FILE:LINE:COLUMN: ]FIELD: expected ..., got '...'".
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/deployment.h"
#include "core/job.h"
#include "core/status.h"

namespace lepton::spec::internal {

// "a, b, c": field names for error messages.
std::string join(std::span<const std::string_view> names);

// Documents larger than this are refused before parsing.
inline constexpr size_t kMaxDocumentBytes = size_t{1} << 20;
// The schema nests three levels below the root (resources.accelerators[i]); readers convert the
// document only this deep and mark deeper containers as `truncated`. This bounds the work an
// adversarial document (YAML aliases) can cause.
inline constexpr int kMaxTreeDepth = 4;

inline constexpr int64_t kMaxCpuCores = 1'000'000;
inline constexpr int64_t kMaxMemoryGib = int64_t{1} << 20;  // 1 PiB

struct MapEntry;

struct Node {
  enum class Kind { kNull, kScalar, kList, kMap };
  // What a scalar is: YAML scalars are untyped text (kAny); JSON ones carry their JSON type.
  enum class Type { kAny, kString, kNumber, kBool };

  Kind kind = Kind::kNull;
  Type type = Type::kAny;
  std::string text;               // kScalar: the text as written
  std::vector<Node> items;        // kList
  std::vector<MapEntry> entries;  // kMap: key, value in document order
  bool truncated = false;         // a container deeper than kMaxTreeDepth
  int line = 0;                   // 1-based; 0 when unknown
  int column = 0;
};

struct MapEntry {
  Node key;
  Node value;
};

struct DecodeOptions {
  // Names the document in errors ("FILE:LINE:COLUMN: " or "FILE: "); empty for none.
  std::string_view file;
  // Also accept resources as {cpu_milli, memory_mib, gpu_count, gpu_milli, gpu_models}.
  bool structured_resources = false;
};

// Decodes and validates (validate_job_spec) a job spec.
Result<JobSpec> decode_job_spec(const Node& root, const DecodeOptions& options);

// Decodes and validates (validate_deployment_spec) a deployment spec: the replica's job fields
// (name, resources, envs, setup, run, queue, priority, preemptible) and the deployment's own.
Result<DeploymentSpec> decode_deployment_spec(const Node& root, const DecodeOptions& options);

// The document readers: a YAML document (positions kept; `file` names it in errors) or a JSON
// object (`what` names it: "a job spec"), converted to a tree at most kMaxTreeDepth deep.
Result<Node> read_yaml(std::string_view text, std::string_view file);
Result<Node> read_json(std::string_view text, std::string_view what);

// `text` quoted for an error message: control characters escaped, long text shortened.
std::string quote(std::string_view text);

// True when `text` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points past
// U+10FFFF).
bool is_utf8(std::string_view text);

}  // namespace lepton::spec::internal
