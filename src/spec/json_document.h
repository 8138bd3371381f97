// Internal to spec/: reading one JSON document for a codec. Bounded in size, strict about
// repeated keys (which nlohmann::json would silently collapse to the last), and never throwing.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "core/status.h"

namespace lepton::spec::internal {

// Parses `text` as a JSON object of at most kMaxDocumentBytes. `what` names the object in errors
// ("a job spec"): "expected a job spec (a JSON object), got array". A key repeated within one
// object is an error naming its dotted path: "envs.A: expected each field once, got it twice".
// Syntax errors read "expected JSON, got parse error at ...".
Result<nlohmann::json> parse_json_object(std::string_view text, std::string_view what);

}  // namespace lepton::spec::internal
