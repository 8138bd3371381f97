#include "server/api_routes.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "server/console_assets.h"
#include "server/openapi.h"

namespace lepton::server {
namespace {

std::vector<std::string> segments(std::string_view path) { return net::path_segments(path); }

// A path the template matches: each "{name}" filled in with "x1".
std::vector<std::string> example(std::string_view path) {
  std::vector<std::string> out;
  for (std::string_view s : template_segments(path)) {
    out.emplace_back(s.starts_with('{') ? std::string_view("x1") : s);
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

TEST(ApiRoutes, EveryRouteIsInTheDocumentAndNothingElse) {
  const auto doc = nlohmann::json::parse(openapi_document());
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, operations] : doc["paths"].items()) {
    for (const auto& [method, op] : operations.items()) documented.emplace(path, method);
  }
  std::set<std::pair<std::string, std::string>> routed;
  for (const Route& route : api_routes()) {
    routed.emplace(std::string(route.path), lower(route.method));
    const auto& op = doc["paths"][std::string(route.path)][lower(route.method)];
    SCOPED_TRACE(std::string(route.method) + " " + std::string(route.path));
    EXPECT_EQ(op["summary"], route.summary);
    EXPECT_EQ(op["x-lepton-permission"], permission_name(route.permission));
    EXPECT_TRUE(op["responses"].contains(std::to_string(route.success)));
    // Public routes need no token; the others the document-wide bearer token.
    EXPECT_EQ(op.contains("security"), route.permission == Permission::kPublic);
    EXPECT_EQ(op["responses"].contains("401"), route.permission != Permission::kPublic);
    ASSERT_EQ(op.value("parameters", nlohmann::json::array()).size(), route.params.size());
    for (size_t i = 0; i < route.params.size(); ++i) {
      const auto& p = op["parameters"][i];
      EXPECT_EQ(p["name"], route.params[i].name);
      EXPECT_EQ(p["in"], param_location(route.params[i].in));
      EXPECT_EQ(p["schema"]["type"], route.params[i].type);
      EXPECT_EQ(p["required"], route.params[i].in == RouteParam::In::kPath);
    }
    if (route.body_schema.empty()) {
      EXPECT_FALSE(op.contains("requestBody"));
    } else {
      // The schema it names is in the document.
      EXPECT_TRUE(doc["components"]["schemas"].contains(std::string(route.body_schema)));
      EXPECT_EQ(op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/" + std::string(route.body_schema));
    }
  }
  EXPECT_EQ(documented, routed);
  EXPECT_EQ(doc["openapi"], "3.0.3");
}

TEST(ApiRoutes, EachRouteIsComplete) {
  const std::set<std::string_view> methods = {"GET", "POST", "PUT", "PATCH", "DELETE"};
  for (const Route& route : api_routes()) {
    SCOPED_TRACE(std::string(route.method) + " " + std::string(route.path));
    EXPECT_TRUE(methods.contains(route.method));
    EXPECT_TRUE(route.path.starts_with('/'));
    EXPECT_FALSE(route.summary.empty());
    EXPECT_NE(route.handle, nullptr);
    // One path parameter for each "{name}" of the template, and no other.
    std::set<std::string> in_template;
    for (std::string_view s : template_segments(route.path)) {
      if (s.starts_with('{')) {
        ASSERT_TRUE(s.ends_with('}'));
        EXPECT_TRUE(in_template.emplace(s.substr(1, s.size() - 2)).second) << "repeated " << s;
      }
    }
    std::set<std::string> documented;
    for (const RouteParam& p : route.params) {
      if (p.in == RouteParam::In::kPath) documented.emplace(p.name);
      EXPECT_FALSE(p.description.empty()) << p.name;
      EXPECT_TRUE(p.type == "string" || p.type == "integer") << p.name;
    }
    EXPECT_EQ(in_template, documented);
  }
}

// Two routes whose templates could match one path must be one template with two methods: which
// route a request is for never depends on the table's order.
TEST(ApiRoutes, NoTwoRoutesCollide) {
  const std::vector<Route>& routes = api_routes();
  auto overlap = [](std::string_view a, std::string_view b) {
    auto x = template_segments(a);
    auto y = template_segments(b);
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!x[i].starts_with('{') && !y[i].starts_with('{') && x[i] != y[i]) return false;
    }
    return true;
  };
  for (size_t i = 0; i < routes.size(); ++i) {
    for (size_t j = i + 1; j < routes.size(); ++j) {
      const Route& a = routes[i];
      const Route& b = routes[j];
      if (!overlap(a.path, b.path)) continue;
      SCOPED_TRACE(std::string(a.method) + " " + std::string(a.path) + " and " +
                   std::string(b.method) + " " + std::string(b.path));
      EXPECT_EQ(a.path, b.path);
      EXPECT_NE(a.method, b.method);
      // A path's permission does not depend on the method (the token is checked on the head).
      EXPECT_EQ(a.permission, b.permission);
    }
  }
  // Each route is found for its own method and an example of its path.
  for (const Route& route : routes) {
    EXPECT_EQ(match_route(route.method, example(route.path)).route, &route) << route.path;
  }
}

TEST(ApiRoutes, TemplatesMatchDecodedSegments) {
  EXPECT_EQ(template_segments("/api/v1/jobs/{id}"),
            (std::vector<std::string_view>{"api", "v1", "jobs", "{id}"}));
  EXPECT_TRUE(template_segments("/").empty());
  std::map<std::string, std::string> params;
  EXPECT_TRUE(
      template_matches("/api/v1/jobs/{id}/cancel", segments("/api/v1/jobs/j-1/cancel"), &params));
  EXPECT_EQ(params, (std::map<std::string, std::string>{{"id", "j-1"}}));
  // A parameter is one decoded segment, whatever it holds.
  params.clear();
  EXPECT_TRUE(template_matches("/api/v1/jobs/{id}", segments("/api/v1/jobs/a%2Fb"), &params));
  EXPECT_EQ(params["id"], "a/b");
  EXPECT_TRUE(template_matches("/healthz", {"healthz"}));
  EXPECT_TRUE(template_matches("/healthz", segments("/healthz/")));
  // An encoded '/' is no separator: "jobs%2Fj-1%2Fcancel" is one segment.
  EXPECT_FALSE(
      template_matches("/api/v1/jobs/{id}/cancel", segments("/api/v1/jobs%2Fj-1%2Fcancel")));
  EXPECT_FALSE(template_matches("/api/v1/jobs/{id}", segments("/api/v1/jobs")));
  EXPECT_FALSE(template_matches("/api/v1/jobs/{id}", segments("/api/v1/jobs/j-1/cancel")));
  EXPECT_FALSE(template_matches("/api/v1/jobs/{id}/cancel", segments("/api/v1/jobs/j-1/logs")));
  EXPECT_FALSE(template_matches("/api/v1/jobs", segments("/api/v2/jobs")));
  EXPECT_FALSE(template_matches("/api/v1/jobs", segments("/API/v1/jobs")));
  EXPECT_FALSE(template_matches("/healthz", {}));
}

TEST(ApiRoutes, UnknownPathsAre404AndOtherMethods405) {
  RouteMatch m = match_route("POST", segments("/api/v1/jobs/j-1/cancel"));
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->path, "/api/v1/jobs/{id}/cancel");
  EXPECT_EQ(m.params.at("id"), "j-1");
  EXPECT_TRUE(m.allowed.empty());
  // A known path, another method: 405, allowing the path's methods in the table's order.
  m = match_route("DELETE", segments("/api/v1/jobs"));
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, (std::vector<std::string_view>{"GET", "POST"}));
  m = match_route("POST", segments("/api/v1/queues/q"));
  EXPECT_EQ(m.allowed, (std::vector<std::string_view>{"GET", "PATCH", "DELETE"}));
  EXPECT_EQ(match_route("GET", segments("/api/v1/jobs/j-1/cancel")).allowed,
            (std::vector<std::string_view>{"POST"}));
  EXPECT_EQ(match_route("POST", segments("/healthz")).allowed,
            (std::vector<std::string_view>{"GET"}));
  // No such path: 404.
  for (const char* path : {"/api/v1/nothing", "/api/v1/jobs%2Fj-1%2Fcancel", "/api/v1/jobs/j-1/x",
                           "/api/v1/jobs/j-1/cancel/x", "/api/v1", "/api", "/", "/nothing.js",
                           "/api/v1/agents/n1", "/api/v1/deployments/d/logs"}) {
    m = match_route("GET", segments(path));
    EXPECT_EQ(m.route, nullptr) << path;
    EXPECT_TRUE(m.allowed.empty()) << path;
  }
}

TEST(ApiRoutes, PermissionsComeFromTheTable) {
  EXPECT_EQ(permission_for(segments("/healthz")), Permission::kPublic);
  EXPECT_EQ(permission_for(segments("/api/v1/openapi.json")), Permission::kPublic);
  EXPECT_EQ(permission_for(segments("/metrics")), Permission::kMetrics);
  EXPECT_EQ(permission_for(segments("/api/v1/jobs")), Permission::kApi);
  EXPECT_EQ(permission_for(segments("/api/v1/agents/register")), Permission::kAgent);
  EXPECT_EQ(permission_for(segments("/api/v1/agents/n1/heartbeat")), Permission::kAgent);
  // A path no route has needs the token under /api/ (it is refused before it is known to be
  // unknown), and nothing elsewhere (the console's files, 404s).
  EXPECT_EQ(permission_for(segments("/api/v1/nothing")), Permission::kApi);
  EXPECT_EQ(permission_for(segments("/api/v2/openapi.json")), Permission::kApi);
  EXPECT_EQ(permission_for(segments("/api")), Permission::kApi);
  EXPECT_EQ(permission_for(segments("/")), Permission::kPublic);
  EXPECT_EQ(permission_for(segments("/nothing.js")), Permission::kPublic);
  EXPECT_EQ(permission_for(segments("/api%2Fv1/jobs")), Permission::kPublic);
  // Every route's path has the route's permission, for any method.
  for (const Route& route : api_routes()) {
    EXPECT_EQ(permission_for(example(route.path)), route.permission) << route.path;
    EXPECT_EQ(match_route("OPTIONS", example(route.path)).permission, route.permission);
  }
  // Only the health check, the document and the console are open; the rest of /api needs the
  // token (what check_head refused before the table: /api/* but openapi.json, and /metrics).
  for (const Route& route : api_routes()) {
    const bool open = route.path == "/healthz" || route.path == "/api/v1/openapi.json";
    EXPECT_EQ(route.permission == Permission::kPublic, open) << route.path;
  }
}

// The console's files are served for paths no route has: a route there would shadow them.
TEST(ApiRoutes, ConsoleFilesAreNoRoutes) {
  ASSERT_FALSE(console_assets().empty());
  for (const ConsoleAsset& asset : console_assets()) {
    for (std::string_view path : {asset.path, std::string_view("/")}) {
      const RouteMatch m = match_route("GET", segments(path));
      EXPECT_EQ(m.route, nullptr) << path;
      EXPECT_TRUE(m.allowed.empty()) << path;
      EXPECT_EQ(m.permission, Permission::kPublic) << path;
    }
  }
}

}  // namespace
}  // namespace lepton::server
