#include "server/api_routes.h"

#include <algorithm>
#include <chrono>

#include "server/openapi.h"
#include "spec/agent_protocol.h"
#include "spec/json_text.h"

namespace lepton::server {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view permission_name(Permission permission) {
  switch (permission) {
    case Permission::kPublic:
      return "public";
    case Permission::kApi:
      return "api";
    case Permission::kAgent:
      return "agent";
    case Permission::kMetrics:
      return "metrics";
  }
  return "?";
}

std::string_view param_location(RouteParam::In in) {
  switch (in) {
    case RouteParam::In::kPath:
      return "path";
    case RouteParam::In::kQuery:
      return "query";
    case RouteParam::In::kHeader:
      return "header";
  }
  return "?";
}

namespace {

net::HttpResponse json_response(const json& j, int status = 200) {
  net::HttpResponse r;
  r.status = status;
  r.body = spec::to_json_text(j);
  return r;
}

net::HttpResponse to_response(const Result<json>& r, int status = 200) {
  if (!r.is_ok()) return net::error_response(r.status());
  return json_response(r.value(), status);
}

Result<int64_t> query_int(const net::HttpRequest& req, const std::string& name, int64_t fallback) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return fallback;
  try {
    size_t used = 0;
    int64_t v = std::stoll(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  return Status::invalid_argument(name + ": expected an integer, got '" + it->second + "'");
}

// ---- Handlers, in the table's order.

void healthz(ApiCall& c) {
  c.respond({.status = 200, .content_type = "text/plain", .body = "ok\n"});
}

void metrics(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [](ControlPlane& cp) {
    return net::HttpResponse{
        .status = 200, .content_type = "text/plain; version=0.0.4", .body = cp.metrics()};
  });
}

void openapi(ApiCall& c) { c.respond({.status = 200, .body = openapi_document()}); }

void list_jobs(ApiCall& c) {
  const net::HttpRequest& req = c.req;
  ControlPlane::JobPage page;
  auto limit = query_int(req, "limit", 1000);
  if (!limit.is_ok()) return c.respond(net::error_response(limit.status()));
  if (*limit < 1 || *limit > 10000) {
    return c.respond(net::error_response(
        Status::invalid_argument("limit: expected 1 to 10000, got " + std::to_string(*limit))));
  }
  page.limit = static_cast<size_t>(*limit);
  auto param = [&](const char* name) {
    auto it = req.query.find(name);
    return it == req.query.end() ? std::string() : it->second;
  };
  page.after = param("after");
  page.state = param("state");
  page.queue = param("queue");
  const std::string order = param("order");
  if (!order.empty() && order != "oldest" && order != "newest") {
    return c.respond(net::error_response(
        Status::invalid_argument("order: expected oldest or newest, got '" + order + "'")));
  }
  page.newest_first = order == "newest";
  c.host.on_loop(std::move(c.respond), [page](ControlPlane& cp) {
    std::string next;
    auto jobs = cp.list_jobs(page, &next);
    net::HttpResponse r = to_response(jobs);
    // The next page starts after this job (the query's `after`); absent on the last page.
    if (!next.empty()) r.headers["X-Next-After"] = next;
    return r;
  });
}

void submit_job(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [body = std::move(c.req.body),
                                        key = c.req.header("idempotency-key")](ControlPlane& cp) {
    bool replayed = false;
    auto job = cp.submit_job(body, now_ms(), key, &replayed);
    net::HttpResponse r = to_response(job, replayed ? 200 : 201);
    if (replayed) r.headers["Idempotent-Replayed"] = "true";
    return r;
  });
}

void get_job(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [id = c.params.at("id")](ControlPlane& cp) {
    return to_response(cp.get_job(id));
  });
}

void cancel_job(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [id = c.params.at("id")](ControlPlane& cp) {
    return to_response(cp.cancel_job(id, now_ms()));
  });
}

void job_logs(ApiCall& c) {
  auto rank = query_int(c.req, "rank", 0);
  auto offset = query_int(c.req, "offset", 0);
  auto max = query_int(c.req, "max_bytes", 1 << 20);
  for (const Status* s : {&rank.status(), &offset.status(), &max.status()}) {
    if (!s->is_ok()) return c.respond(net::error_response(*s));
  }
  const size_t max_bytes = static_cast<size_t>(std::clamp<int64_t>(*max, 1, 8 << 20));
  // Where the output is, on the loop; the read itself on a reader thread (disk I/O).
  c.host.on_loop_async(
      std::move(c.respond), [&host = c.host, id = c.params.at("id"), r = *rank, o = *offset,
                             max_bytes](ControlPlane& cp, net::Responder respond) {
        auto source = cp.log_source(id, static_cast<int>(r));
        if (!source.is_ok()) return respond(net::error_response(source.status()));
        host.off_loop([respond = std::move(respond), source = std::move(*source), o, max_bytes] {
          respond(to_response(ControlPlane::read_logs(source, o, max_bytes)));
        });
      });
}

void list_nodes(ApiCall& c) {
  c.host.on_loop(std::move(c.respond),
                 [](ControlPlane& cp) { return json_response(cp.list_nodes(now_ms())); });
}

void list_queues(ApiCall& c) {
  c.host.on_loop(std::move(c.respond),
                 [](ControlPlane& cp) { return json_response(cp.list_queues()); });
}

void create_queue(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [body = std::move(c.req.body)](ControlPlane& cp) {
    return to_response(cp.create_queue(body, now_ms()), 201);
  });
}

void get_queue(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [name = c.params.at("name")](ControlPlane& cp) {
    return to_response(cp.get_queue(name));
  });
}

void update_queue(ApiCall& c) {
  c.host.on_loop(std::move(c.respond),
                 [name = c.params.at("name"), body = std::move(c.req.body)](ControlPlane& cp) {
                   return to_response(cp.update_queue(name, body, now_ms()));
                 });
}

void delete_queue(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [name = c.params.at("name")](ControlPlane& cp) {
    return to_response(cp.delete_queue(name, now_ms()));
  });
}

void list_deployments(ApiCall& c) {
  c.host.on_loop(std::move(c.respond),
                 [](ControlPlane& cp) { return json_response(cp.list_deployments(now_ms())); });
}

void create_deployment(ApiCall& c) {
  c.host.on_loop_routed(std::move(c.respond), [body = std::move(c.req.body)](ControlPlane& cp) {
    return to_response(cp.create_deployment(body, now_ms()), 201);
  });
}

void get_deployment(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [name = c.params.at("name")](ControlPlane& cp) {
    return to_response(cp.get_deployment(name, now_ms()));
  });
}

void update_deployment(ApiCall& c) {
  c.host.on_loop_routed(std::move(c.respond), [name = c.params.at("name"),
                                               body = std::move(c.req.body)](ControlPlane& cp) {
    return to_response(cp.update_deployment(name, body, now_ms()));
  });
}

void delete_deployment(ApiCall& c) {
  c.host.on_loop_routed(std::move(c.respond), [name = c.params.at("name")](ControlPlane& cp) {
    return to_response(cp.delete_deployment(name, now_ms()));
  });
}

void scale_deployment(ApiCall& c) {
  c.host.on_loop_routed(std::move(c.respond), [name = c.params.at("name"),
                                               body = std::move(c.req.body)](ControlPlane& cp) {
    return to_response(cp.scale_deployment(name, body, now_ms()));
  });
}

void plan_job(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [body = std::move(c.req.body)](ControlPlane& cp) {
    return to_response(cp.plan_job(body, now_ms()));
  });
}

void list_instances(ApiCall& c) {
  c.host.on_loop(std::move(c.respond),
                 [](ControlPlane& cp) { return json_response(cp.list_instances(now_ms())); });
}

void interrupt_instance(ApiCall& c) {
  c.host.on_loop(std::move(c.respond), [id = c.params.at("id")](ControlPlane& cp) {
    return to_response(cp.interrupt_instance(id, now_ms()));
  });
}

void cost(ApiCall& c) {
  auto by = c.req.query.find("by");
  c.host.on_loop(std::move(c.respond),
                 [by = by == c.req.query.end() ? "job" : by->second](ControlPlane& cp) {
                   return to_response(cp.cost(by, now_ms()));
                 });
}

// The agent protocol: messages are decoded here, off the control loop (spec/agent_protocol.h).
template <typename T>
net::HttpResponse encoded(const Result<T>& r) {
  if (!r.is_ok()) return net::error_response(r.status());
  net::HttpResponse response;
  response.status = 200;
  response.body = spec::encode(r.value());
  return response;
}

void register_agent(ApiCall& c) {
  auto message = spec::decode_agent_registration(c.req.body);
  if (!message.is_ok()) return c.respond(net::error_response(message.status()));
  c.host.on_loop(std::move(c.respond),
                 [m = std::move(*message), peer = c.req.remote_address](ControlPlane& cp) {
                   return encoded(cp.register_agent(m, peer, now_ms()));
                 });
}

void heartbeat(ApiCall& c) {
  auto message = spec::decode_heartbeat(c.req.body);
  if (!message.is_ok()) return c.respond(net::error_response(message.status()));
  c.host.on_loop(std::move(c.respond),
                 [name = c.params.at("name"), m = std::move(*message)](ControlPlane& cp) {
                   return encoded(cp.heartbeat(name, m, now_ms()));
                 });
}

// ---- Parameters used by several routes.

RouteParam path_param(std::string_view name, std::string_view description) {
  return {.name = name, .in = RouteParam::In::kPath, .description = description};
}
RouteParam query_param(std::string_view name, std::string_view type, std::string_view description,
                       std::vector<std::string_view> one_of = {}) {
  return {.name = name,
          .in = RouteParam::In::kQuery,
          .type = type,
          .description = description,
          .one_of = std::move(one_of)};
}

std::vector<Route> make_routes() {
  using P = Permission;
  const RouteParam job_id = path_param("id", "the job's id, e.g. j-1");
  const RouteParam queue_name = path_param("name", "the queue's name");
  const RouteParam deployment_name = path_param("name", "the deployment's name");
  const RouteParam instance_id = path_param("id", "the rented machine's id");
  const RouteParam node_name = path_param("name", "the node's name, as the agent registered it");
  return {
      {.method = "GET",
       .path = "/healthz",
       .permission = P::kPublic,
       .summary = "liveness",
       .handle = healthz},
      // Metrics name nodes, queues and jobs: the token is needed, as a Prometheus scrape config
      // gives with `authorization: {credentials_file: DATA_DIR/token}`.
      {.method = "GET",
       .path = "/metrics",
       .permission = P::kMetrics,
       .summary = "Prometheus metrics (the API token is needed)",
       .handle = metrics},
      {.method = "GET",
       .path = "/api/v1/openapi.json",
       .permission = P::kPublic,
       .summary = "this document, generated from the server's route table",
       .handle = openapi},
      // Jobs.
      {.method = "GET",
       .path = "/api/v1/jobs",
       .permission = P::kApi,
       .summary = "a page of jobs; X-Next-After names the last job of a full page",
       .params = {query_param("limit", "integer", "jobs in the page, 1 to 10000 (1000)"),
                  query_param("after", "string", "the page starts after this job"),
                  query_param("order", "string", "oldest (the default) or newest first",
                              {"oldest", "newest"}),
                  query_param("state", "string", "only jobs in this state"),
                  query_param("queue", "string", "only jobs of this queue")},
       .handle = list_jobs},
      {.method = "POST",
       .path = "/api/v1/jobs",
       .permission = P::kApi,
       .summary = "submit a job; a repeat with the same Idempotency-Key gets the first job (200)",
       .success = 201,
       .params = {{.name = "Idempotency-Key",
                   .in = RouteParam::In::kHeader,
                   .description = "a key no other submission has: a retry with it is answered "
                                  "with the job it made (Idempotent-Replayed: true)"}},
       .body_schema = "JobSpec",
       .handle = submit_job},
      {.method = "GET",
       .path = "/api/v1/jobs/{id}",
       .permission = P::kApi,
       .summary = "get a job, its tasks and why it waits",
       .params = {job_id},
       .handle = get_job},
      {.method = "POST",
       .path = "/api/v1/jobs/{id}/cancel",
       .permission = P::kApi,
       .summary = "cancel a job",
       .params = {job_id},
       .handle = cancel_job},
      {.method = "GET",
       .path = "/api/v1/jobs/{id}/logs",
       .permission = P::kApi,
       .summary = "logs of one task's latest attempt",
       .params = {job_id, query_param("rank", "integer", "the task's rank in the job (0)"),
                  query_param("offset", "integer", "the byte of the output to read from (0)"),
                  query_param("max_bytes", "integer",
                              "at most this many bytes, 1 to 8 MiB (1 MiB)")},
       .handle = job_logs},
      {.method = "GET",
       .path = "/api/v1/nodes",
       .permission = P::kApi,
       .summary = "list nodes",
       .handle = list_nodes},
      // Queues (docs/queues.md).
      {.method = "GET",
       .path = "/api/v1/queues",
       .permission = P::kApi,
       .summary = "list queues with fair share, in use and pending",
       .handle = list_queues},
      {.method = "POST",
       .path = "/api/v1/queues",
       .permission = P::kApi,
       .summary = "create a queue",
       .success = 201,
       .body_schema = "Queue",
       .handle = create_queue},
      {.method = "GET",
       .path = "/api/v1/queues/{name}",
       .permission = P::kApi,
       .summary = "get a queue",
       .params = {queue_name},
       .handle = get_queue},
      {.method = "PATCH",
       .path = "/api/v1/queues/{name}",
       .permission = P::kApi,
       .summary = "change a queue (JSON merge patch)",
       .params = {queue_name},
       .handle = update_queue},
      {.method = "DELETE",
       .path = "/api/v1/queues/{name}",
       .permission = P::kApi,
       .summary = "remove a queue without unfinished jobs or children",
       .params = {queue_name},
       .handle = delete_queue},
      // Deployments (docs/serving.md).
      {.method = "GET",
       .path = "/api/v1/deployments",
       .permission = P::kApi,
       .summary = "list deployments with ready and desired replicas",
       .handle = list_deployments},
      {.method = "POST",
       .path = "/api/v1/deployments",
       .permission = P::kApi,
       .summary = "create a deployment",
       .success = 201,
       .body_schema = "DeploymentSpec",
       .handle = create_deployment},
      {.method = "GET",
       .path = "/api/v1/deployments/{name}",
       .permission = P::kApi,
       .summary = "get a deployment: replicas, load, latency",
       .params = {deployment_name},
       .handle = get_deployment},
      {.method = "PUT",
       .path = "/api/v1/deployments/{name}",
       .permission = P::kApi,
       .summary = "replace a deployment's spec (replicas roll over)",
       .params = {deployment_name},
       .body_schema = "DeploymentSpec",
       .handle = update_deployment},
      {.method = "DELETE",
       .path = "/api/v1/deployments/{name}",
       .permission = P::kApi,
       .summary = "delete a deployment and stop its replicas",
       .params = {deployment_name},
       .handle = delete_deployment},
      {.method = "POST",
       .path = "/api/v1/deployments/{name}/scale",
       .permission = P::kApi,
       .summary = "set replica bounds: {\"min\": N, \"max\": M}",
       .params = {deployment_name},
       .body_schema = "ReplicaBounds",
       .handle = scale_deployment},
      // Clouds (docs/clouds.md).
      {.method = "POST",
       .path = "/api/v1/plan",
       .permission = P::kApi,
       .summary = "where a job (the body of POST /api/v1/jobs) would run and what would be "
                  "rented, without submitting it",
       .body_schema = "JobSpec",
       .handle = plan_job},
      {.method = "GET",
       .path = "/api/v1/instances",
       .permission = P::kApi,
       .summary = "machines rented from clouds: price, state, node, cost so far",
       .handle = list_instances},
      {.method = "POST",
       .path = "/api/v1/instances/{id}/interrupt",
       .permission = P::kApi,
       .summary = "post a spot interruption notice (emulated clouds only)",
       .params = {instance_id},
       .handle = interrupt_instance},
      {.method = "GET",
       .path = "/api/v1/cost",
       .permission = P::kApi,
       .summary = "spend on rented machines, grouped",
       .params = {query_param("by", "string", "how spend is grouped (job)",
                              {"job", "queue", "cloud", "instance"})},
       .handle = cost},
      // The agent protocol (src/agent, src/server/agent_daemon.h).
      {.method = "POST",
       .path = "/api/v1/agents/register",
       .permission = P::kAgent,
       .summary = "an agent joins (used by lepton agent)",
       .handle = register_agent},
      {.method = "POST",
       .path = "/api/v1/agents/{name}/heartbeat",
       .permission = P::kAgent,
       .summary = "an agent reports its tasks and gets work (used by lepton agent)",
       .params = {node_name},
       .handle = heartbeat},
  };
}

}  // namespace

const std::vector<Route>& api_routes() {
  static const std::vector<Route> routes = make_routes();
  return routes;
}

std::vector<std::string_view> template_segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

namespace {

bool is_template_param(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

bool template_matches(std::string_view path, const std::vector<std::string>& segments,
                      std::map<std::string, std::string>* params) {
  // Walks the template's segments as template_segments() splits them, without allocating: this
  // runs for every route on every request.
  size_t i = 0;
  for (size_t start = 0; start < path.size();) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    if (i == segments.size()) return false;
    if (!is_template_param(part) && part != segments[i]) return false;
    ++i;
  }
  if (i != segments.size()) return false;
  if (params) {
    const std::vector<std::string_view> parts = template_segments(path);
    for (size_t k = 0; k < parts.size(); ++k) {
      if (is_template_param(parts[k])) {
        (*params)[std::string(parts[k].substr(1, parts[k].size() - 2))] = segments[k];
      }
    }
  }
  return true;
}

Permission permission_for(const std::vector<std::string>& segments) {
  for (const Route& route : api_routes()) {
    if (template_matches(route.path, segments)) return route.permission;
  }
  return !segments.empty() && segments[0] == "api" ? Permission::kApi : Permission::kPublic;
}

RouteMatch match_route(std::string_view method, const std::vector<std::string>& segments) {
  RouteMatch match;
  match.permission = permission_for(segments);
  for (const Route& route : api_routes()) {
    if (!template_matches(route.path, segments)) continue;
    if (route.method == method) {
      match.route = &route;
      match.allowed.clear();
      template_matches(route.path, segments, &match.params);
      return match;
    }
    match.allowed.push_back(route.method);
  }
  return match;
}

}  // namespace lepton::server
