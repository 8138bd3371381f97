// The OpenAPI 3.0 description of the REST API, served at /api/v1/openapi.json. Its paths are
// generated from the route table (api_routes.h): one operation per route, with the route's
// summary, success status, parameters, body schema and permission (as `x-lepton-permission`;
// public routes need no bearer token). The schemas the bodies name are kept in openapi.cpp.
#pragma once

#include <string>

namespace lepton::server {

// The document as JSON text, generated once.
std::string openapi_document();

}  // namespace lepton::server
