#include "server/openapi.h"

#include <nlohmann/json.hpp>

namespace lepton::server {

std::string openapi_document() {
  using nlohmann::json;
  const json error = {{"$ref", "#/components/schemas/Error"}};
  auto op = [&](const char* summary, const char* ok, json extra = json::object()) {
    json o = {{"summary", summary},
              {"responses",
               {{ok, {{"description", "success"}}},
                {"400",
                 {{"description", "invalid input"},
                  {"content", {{"application/json", {{"schema", error}}}}}}},
                {"401", {{"description", "missing or wrong bearer token"}}},
                {"404", {{"description", "no such object"}}}}}};
    for (auto& [k, v] : extra.items()) o[k] = v;
    return o;
  };
  const json id_param = {
      {"name", "id"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}};
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
              {"max_restarts", {{"type", "integer"}}}}}}}}}}},
      {"security", {{{"bearer", json::array()}}}},
      {"paths",
       {{"/healthz", {{"get", op("liveness", "200", {{"security", json::array()}})}}},
        {"/metrics", {{"get", op("Prometheus metrics", "200", {{"security", json::array()}})}}},
        {"/api/v1/jobs",
         {{"get", op("list jobs", "200")},
          {"post", op("submit a job", "201",
                      {{"requestBody",
                        {{"required", true},
                         {"content",
                          {{"application/json",
                            {{"schema", {{"$ref", "#/components/schemas/JobSpec"}}}}}}}}}})}}},
        {"/api/v1/jobs/{id}",
         {{"get",
           op("get a job, its tasks and why it waits", "200", {{"parameters", {id_param}}})}}},
        {"/api/v1/jobs/{id}/cancel",
         {{"post", op("cancel a job", "200", {{"parameters", {id_param}}})}}},
        {"/api/v1/jobs/{id}/logs",
         {{"get",
           op("logs of one task's latest attempt", "200",
              {{"parameters",
                {id_param,
                 {{"name", "rank"}, {"in", "query"}, {"schema", {{"type", "integer"}}}},
                 {{"name", "offset"}, {"in", "query"}, {"schema", {{"type", "integer"}}}},
                 {{"name", "max_bytes"}, {"in", "query"}, {"schema", {{"type", "integer"}}}}}}})}}},
        {"/api/v1/nodes", {{"get", op("list nodes", "200")}}},
        {"/api/v1/agents/register", {{"post", op("an agent joins (used by lepton agent)", "200")}}},
        {"/api/v1/agents/{name}/heartbeat",
         {{"post",
           op("an agent reports its tasks and gets work (used by lepton agent)", "200")}}}}}};
  return doc.dump();
}

}  // namespace lepton::server
