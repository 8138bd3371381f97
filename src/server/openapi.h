// The OpenAPI 3.0 description of the REST API, served at /api/v1/openapi.json.
#pragma once

#include <string>

namespace lepton::server {

std::string openapi_document();

}  // namespace lepton::server
