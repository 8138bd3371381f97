// The REST API's one route table: for each route its method, path template, permission, handler
// and what the OpenAPI document says of it. The server dispatches on it (server.cpp), refuses a
// request without the token on its head from it, and the document at /api/v1/openapi.json is
// generated from it (openapi.cpp): what is served and what is described cannot drift apart.
//
// Paths are matched on the request's percent-decoded segments (net::HttpRequest::segments), never
// on its raw path: "/api/v1/jobs%2Fj-1%2Fcancel" is one segment and names no route. A template's
// "{name}" segment matches any one segment, which the handler gets as a path parameter.
//
// The web console's files are not routes: a GET for a path no route has that names one of them is
// answered with it (server.cpp), and any other request for such a path is 404, as for a path that
// nothing serves.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.h"
#include "server/control_plane.h"

namespace lepton::server {

// Who may call a route. Every permission but kPublic needs the API token today; they are kept
// apart so that agents' and scrapers' credentials can part from users' without touching routes.
enum class Permission {
  kPublic,   // anyone: the health check, the API's description (and the console's files)
  kApi,      // a user of the API: the API token
  kAgent,    // a node's agent: the API token (agents will get credentials of their own)
  kMetrics,  // a metrics scraper: the API token
};
std::string_view permission_name(Permission permission);  // "public", "api", "agent", "metrics"

// A documented parameter of a route.
struct RouteParam {
  enum class In { kPath, kQuery, kHeader };
  std::string_view name;
  In in = In::kQuery;
  std::string_view type = "string";  // its JSON schema type: "string" or "integer"
  std::string_view description{};
  std::vector<std::string_view> one_of{};  // the values it may take (an enum); empty: any
};
std::string_view param_location(RouteParam::In in);  // "path", "query", "header"

// What the server gives a route's handler: the control loop, the one thread where the
// ControlPlane may be used (see server.h).
class ApiHost {
 public:
  using LoopCall = std::function<net::HttpResponse(ControlPlane&)>;
  virtual ~ApiHost() = default;
  // Runs `fn` on the control loop and answers with what it returns (an exception: 500).
  virtual void on_loop(net::Responder respond, LoopCall fn) = 0;
  // on_loop() for a call that changes deployments: the gateway gets the new routes before the
  // answer goes out, so a deployment just created is routable at once.
  virtual void on_loop_routed(net::Responder respond, LoopCall fn) = 0;
  // Runs `fn` on the control loop; it answers through the responder it is given, then or later
  // from another thread (an exception it throws: 500). Only for calls that change nothing in the
  // store: their answers are not held back by the fail-stop check on_loop() makes.
  virtual void on_loop_async(net::Responder respond,
                             std::function<void(ControlPlane&, net::Responder)> fn) = 0;
  // Runs `fn` on a reader thread, off the control loop (reads of task output from disk).
  virtual void off_loop(std::function<void()> fn) = 0;
};

// One request for a route, as its handler gets it (on an I/O thread: it must not block).
struct ApiCall {
  net::HttpRequest req;
  std::map<std::string, std::string> params;  // the path's "{name}" segments, decoded
  net::Responder respond;
  ApiHost& host;
};

struct Route {
  std::string_view method;  // "GET", "POST", ...
  std::string_view path;    // a template: "/api/v1/jobs/{id}/cancel"
  Permission permission;
  std::string_view summary;  // for the OpenAPI document
  int success = 200;         // the status of a successful answer
  // Path parameters (one for each "{name}" of the template), query parameters and headers.
  std::vector<RouteParam> params{};
  // The request body's schema under #/components/schemas of the document; empty: none described.
  std::string_view body_schema{};
  void (*handle)(ApiCall& call) = nullptr;
};

// The table, in the order the routes are documented.
const std::vector<Route>& api_routes();

// A template's segments: "/api/v1/jobs/{id}" -> {"api", "v1", "jobs", "{id}"}; "/" -> {}.
std::vector<std::string_view> template_segments(std::string_view path);
// Whether `segments` (decoded) fit the template, and with what path parameters.
bool template_matches(std::string_view path, const std::vector<std::string>& segments,
                      std::map<std::string, std::string>* params = nullptr);

// What the table says of a request's method and decoded path segments.
struct RouteMatch {
  // The route for the method and path; nullptr when there is none: 405 when `allowed` is not
  // empty (the path has routes for other methods, named in the Allow header), else 404.
  const Route* route = nullptr;
  std::map<std::string, std::string> params{};  // of `route`
  std::vector<std::string_view> allowed{};      // the methods the path has, when route is null
  Permission permission = Permission::kPublic;  // as permission_for(segments)
};
RouteMatch match_route(std::string_view method, const std::vector<std::string>& segments);

// The permission a request needs, from its path alone (the method plays no part, so a request for
// the wrong method is refused as the right one would be): that of the routes at the path; for a
// path no route has, the API token under /api/ and nothing elsewhere.
Permission permission_for(const std::vector<std::string>& segments);

// The wall clock the API's calls are stamped with: milliseconds since the epoch.
int64_t now_ms();

}  // namespace lepton::server
