#include "server/openapi.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "server/api_routes.h"

namespace lepton::server {

namespace {

json parameter(const RouteParam& p) {
  json schema = {{"type", p.type}};
  if (!p.one_of.empty()) schema["enum"] = p.one_of;
  json j = {{"name", p.name},
            {"in", param_location(p.in)},
            {"required", p.in == RouteParam::In::kPath},
            {"schema", std::move(schema)}};
  if (!p.description.empty()) j["description"] = p.description;
  return j;
}

json operation(const Route& route) {
  json responses = {{std::to_string(route.success), {{"description", "success"}}}};
  json op = {{"summary", route.summary},
             {"x-lepton-permission", permission_name(route.permission)}};
  if (route.permission == Permission::kPublic) {
    op["security"] = json::array();
  } else {
    responses["400"] = {
        {"description", "invalid input"},
        {"content",
         {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}};
    responses["401"] = {{"description", "missing or wrong bearer token"}};
    responses["404"] = {{"description", "no such object"}};
  }
  op["responses"] = std::move(responses);
  if (!route.params.empty()) {
    json params = json::array();
    for (const RouteParam& p : route.params) params.push_back(parameter(p));
    op["parameters"] = std::move(params);
  }
  if (!route.body_schema.empty()) {
    op["requestBody"] = {
        {"required", true},
        {"content",
         {{"application/json",
           {{"schema", {{"$ref", "#/components/schemas/" + std::string(route.body_schema)}}}}}}}};
  }
  return op;
}

// The schemas the routes' bodies name.
json document_without_paths() {
  json doc = {
      {"openapi", "3.0.3"},
      {"info", {{"title", "lepton API"}, {"version", "v1"}}},
      {"components",
       {{"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}},
        {"schemas",
         {{"Error",
           {{"type", "object"},
            {"properties",
             {{"error",
               {{"type", "object"},
                {"properties",
                 {{"code", {{"type", "string"}}},
                  {"message", {{"type", "string"}}},
                  {"field", {{"type", "string"}}}}}}}}}}},
          {"JobSpec",
           {{"type", "object"},
            {"required", {"name", "run"}},
            {"properties",
             {{"name", {{"type", "string"}}},
              {"resources",
               {{"type", "object"},
                {"properties",
                 {{"accelerators",
                   {{"description", "\"MODEL:COUNT\", e.g. \"A100:8\" or \"T4:0.5\""}}},
                  {"cpus", {{"type", "number"}}},
                  {"memory", {{"type", "number"}, {"description", "GiB"}}}}}}},
              {"num_nodes", {{"type", "integer"}}},
              {"envs", {{"type", "object"}}},
              {"setup", {{"type", "string"}}},
              {"run", {{"type", "string"}}},
              {"max_restarts", {{"type", "integer"}}},
              {"queue", {{"type", "string"}, {"description", "leaf queue; default: default"}}},
              {"priority", {{"type", "integer"}, {"description", "-1000..1000, higher first"}}},
              {"preemptible", {{"type", "boolean"}}}}}}},
          {"Quota",
           {{"type", "object"},
            {"properties",
             {{"gpus", {{"type", "number"}}},
              {"cpus", {{"type", "number"}}},
              {"memory_mib", {{"type", "integer"}}}}}}},
          {"Queue",
           {{"type", "object"},
            {"required", {"name"}},
            {"properties",
             {{"name", {{"type", "string"}}},
              {"parent", {{"type", "string"}}},
              {"guaranteed", {{"$ref", "#/components/schemas/Quota"}}},
              {"weight", {{"type", "number"}}},
              {"limit", {{"$ref", "#/components/schemas/Quota"}}}}}}}}}}},
      {"security", {{{"bearer", json::array()}}}}};
  doc["components"]["schemas"]["DeploymentSpec"] = {
      {"type", "object"},
      {"required", {"name", "run"}},
      {"description",
       "the job fields name, resources, envs, setup, run, queue, priority and preemptible, and "
       "the deployment's own"},
      {"properties",
       {{"kind", {{"type", "string"}, {"enum", {"deployment"}}}},
        {"port", {{"type", "integer"}, {"description", "default: one is assigned, in $PORT"}}},
        {"replicas",
         {{"type", "object"},
          {"properties", {{"min", {{"type", "integer"}}}, {"max", {{"type", "integer"}}}}}}},
        {"autoscale",
         {{"type", "object"},
          {"properties",
           {{"target_in_flight", {{"type", "integer"}}},
            {"window", {{"type", "integer"}, {"description", "seconds"}}},
            {"panic_window", {{"type", "integer"}, {"description", "seconds"}}},
            {"scale_to_zero_after", {{"type", "integer"}, {"description", "seconds"}}}}}}},
        {"readiness", {{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}}},
        {"auth", {{"type", "string"}, {"enum", {"public", "token"}}}}}}};
  doc["components"]["schemas"]["ReplicaBounds"] = {
      {"type", "object"},
      {"properties", {{"min", {{"type", "integer"}}}, {"max", {{"type", "integer"}}}}}};
  return doc;
}

std::string generate() {
  json doc = document_without_paths();
  json& paths = doc["paths"];
  paths = json::object();
  for (const Route& route : api_routes()) {
    std::string method(route.method);
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    paths[std::string(route.path)][method] = operation(route);
  }
  return doc.dump();
}

}  // namespace

std::string openapi_document() {
  static const std::string document = generate();
  return document;
}

}  // namespace lepton::server
