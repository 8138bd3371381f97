// The JSON form of a queue (core/queue.h), as the REST API reads and writes it:
//
//   {"name": "team-a", "parent": "", "guaranteed": {"gpus": 4, "cpus": 16, "memory_mib": 65536},
//    "weight": 1, "limit": {"gpus": 8}}
//
// - A quota is an object of "gpus" and "cpus" (numbers >= 0, fractional in steps of 0.001: 0.5
//   GPUs is 500 milli-GPUs; at most 1000000) and "memory_mib" (an integer >= 0, at most 2^40).
// - In "guaranteed" an absent dimension is 0. In "limit" an absent dimension has no cap
//   (kUnlimited); a "limit" that is absent or null, or caps nothing, means no limit.
// - "parent": "" (or absent) for a top-level queue. "weight": a number > 0, default 1.
// - null for any field, or any quota dimension, means its default (as if absent).
//
// Reading is strict: unknown or repeated keys, wrong types, negative or over-large amounts and
// malformed JSON are invalid_argument errors that name the field, such as
// `guaranteed.gpus: expected a number >= 0, got "x"`; then validate_queue_spec.
//
// Writing gives one canonical form: every field, the weight and whole amounts as integers, no
// key for an uncapped dimension of the limit, "limit": null for no limit. For every spec that
// passes validate_queue_spec and whose limit (if any) caps something,
// queue_spec_from_json(queue_spec_to_json(s).dump()) == s.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "core/queue.h"
#include "core/status.h"

namespace lepton::spec {

// {"gpus": 2.5, "cpus": 8, "memory_mib": 32768}; a dimension >= kUnlimited has no key.
nlohmann::json quota_to_json(const Quota& quota);

// The canonical form above.
nlohmann::json queue_spec_to_json(const QueueSpec& spec);

// A new queue (POST /api/v1/queues): "name" is required.
Result<QueueSpec> queue_spec_from_json(std::string_view body);

// `current` changed by a partial body (PATCH /api/v1/queues/NAME), in the manner of a JSON merge
// patch (RFC 7396): the fields present replace the current ones; within "guaranteed" and "limit"
// only the dimensions present change; null resets a field or dimension to its default ("limit":
// null removes the limit; "limit": {"gpus": null} uncaps GPUs only). "name", if present, must
// equal current.name. The result is checked as queue_spec_from_json checks a new queue.
Result<QueueSpec> update_queue_spec(QueueSpec current, std::string_view body);

}  // namespace lepton::spec
