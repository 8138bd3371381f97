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
  auto query = [](const char* name, const char* type, const char* what) {
    return json{{"name", name},
                {"in", "query"},
                {"required", false},
                {"description", what},
                {"schema", {{"type", type}}}};
  };
  const json id_param = {
      {"name", "id"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}};
  const json name_param = {
      {"name", "name"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}};
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
      {"security", {{{"bearer", json::array()}}}},
      {"paths",
       {{"/healthz", {{"get", op("liveness", "200", {{"security", json::array()}})}}},
        {"/metrics", {{"get", op("Prometheus metrics (the API token is needed)", "200")}}},
        {"/api/v1/jobs",
         {{"get", op("a page of jobs; X-Next-After names the last job of a full page", "200",
                     {{"parameters",
                       {query("limit", "integer", "jobs in the page, 1 to 10000 (1000)"),
                        query("after", "string", "the page starts after this job"),
                        query("order", "string", "oldest (the default) or newest first"),
                        query("state", "string", "only jobs in this state"),
                        query("queue", "string", "only jobs of this queue")}}})},
          {"post", op("submit a job; a repeat with the same Idempotency-Key gets the first job "
                      "(200)",
                      "201",
                      {{"parameters",
                        {{{"name", "Idempotency-Key"},
                          {"in", "header"},
                          {"required", false},
                          {"schema", {{"type", "string"}}}}}},
                       {"requestBody",
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
        {"/api/v1/queues",
         {{"get", op("list queues with fair share, in use and pending", "200")},
          {"post", op("create a queue", "201",
                      {{"requestBody",
                        {{"required", true},
                         {"content",
                          {{"application/json",
                            {{"schema", {{"$ref", "#/components/schemas/Queue"}}}}}}}}}})}}},
        {"/api/v1/queues/{name}",
         {{"get", op("get a queue", "200", {{"parameters", {name_param}}})},
          {"patch", op("change a queue (JSON merge patch)", "200", {{"parameters", {name_param}}})},
          {"delete", op("remove a queue without unfinished jobs or children", "200",
                        {{"parameters", {name_param}}})}}},
        {"/api/v1/agents/register", {{"post", op("an agent joins (used by lepton agent)", "200")}}},
        {"/api/v1/agents/{name}/heartbeat",
         {{"post",
           op("an agent reports its tasks and gets work (used by lepton agent)", "200")}}}}}};
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
  const json deployment_body = {
      {"required", true},
      {"content",
       {{"application/json", {{"schema", {{"$ref", "#/components/schemas/DeploymentSpec"}}}}}}}};
  json& paths = doc["paths"];
  paths["/api/v1/deployments"] = {
      {"get", op("list deployments with ready and desired replicas", "200")},
      {"post", op("create a deployment", "201", {{"requestBody", deployment_body}})}};
  paths["/api/v1/deployments/{name}"] = {
      {"get",
       op("get a deployment: replicas, load, latency", "200", {{"parameters", {name_param}}})},
      {"put", op("replace a deployment's spec (replicas roll over)", "200",
                 {{"parameters", {name_param}}, {"requestBody", deployment_body}})},
      {"delete",
       op("delete a deployment and stop its replicas", "200", {{"parameters", {name_param}}})}};
  paths["/api/v1/deployments/{name}/scale"] = {
      {"post",
       op("set replica bounds: {\"min\": N, \"max\": M}", "200", {{"parameters", {name_param}}})}};
  // Clouds (docs/clouds.md).
  paths["/api/v1/plan"] = {
      {"post", op("where a job (the body of POST /api/v1/jobs) would run and what would be "
                  "rented, without submitting it",
                  "200")}};
  paths["/api/v1/instances"] = {
      {"get", op("machines rented from clouds: price, state, node, cost so far", "200")}};
  paths["/api/v1/instances/{id}/interrupt"] = {
      {"post", op("post a spot interruption notice (emulated clouds only)", "200",
                  {{"parameters", {id_param}}})}};
  const json by_param = {
      {"name", "by"},
      {"in", "query"},
      {"schema", {{"type", "string"}, {"enum", {"job", "queue", "cloud", "instance"}}}}};
  paths["/api/v1/cost"] = {
      {"get", op("spend on rented machines, grouped", "200", {{"parameters", {by_param}}})}};
  return doc.dump();
}

}  // namespace lepton::server
