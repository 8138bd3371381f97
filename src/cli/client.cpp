#include "cli/client.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <utility>

#include "cli/cli.h"
#include "core/hex.h"
#include "server/server.h"
#include "sim/csv.h"

namespace lepton::cli {
namespace {

using nlohmann::json;

std::string home_dir() {
  const char* home = std::getenv("HOME");
  return home && *home ? home : "/root";
}

}  // namespace

std::string default_data_dir() { return home_dir() + "/.lepton"; }

void add_client_flags(CLI::App* cmd, ClientFlags& f) {
  cmd->add_option("--server", f.server,
                  "API server URL (default: $LEPTON_SERVER or http://127.0.0.1:8080)");
  cmd->add_option("--token-file", f.token_file,
                  "API token file (default: $LEPTON_TOKEN, else ~/.lepton/token)");
}

Connection connect(const ClientFlags& f) {
  Connection c;
  std::string server = f.server;
  if (server.empty()) {
    const char* env = std::getenv("LEPTON_SERVER");
    server = env && *env ? env : "http://127.0.0.1:8080";
  }
  auto url = net::Url::parse(server);
  if (!url.is_ok()) fail("--server: " + url.status().message(), 2);
  c.url = *url;
  if (const char* env = std::getenv("LEPTON_TOKEN"); f.token_file.empty() && env && *env) {
    c.token = env;
    return c;
  }
  const std::string path = f.token_file.empty() ? default_data_dir() + "/token" : f.token_file;
  auto token = sim::read_file(path);
  if (!token.is_ok()) {
    fail("--token-file " + path +
             ": cannot read the API token (start the server with `lepton up`, or pass "
             "--token-file / set LEPTON_TOKEN)",
         2);
  }
  c.token = *token;
  while (!c.token.empty() && (c.token.back() == '\n' || c.token.back() == '\r')) {
    c.token.pop_back();
  }
  return c;
}

Api::Api(const ClientFlags& f) {
  Connection c = connect(f);
  url_ = c.url;
  token_ = std::move(c.token);
}

Api::Reply Api::send(const std::string& method, const std::string& target,
                     const std::string& body) {
  auto r = net::http_request(url_, method, target, body, {.bearer_token = token_});
  if (!r.is_ok()) fail(r.status().message() + " (is `lepton up` running?)");
  return Reply{.status = r->status, .text = std::move(r->body)};
}

json Api::Reply::parsed() const { return json::parse(text, nullptr, false); }

json Api::call(const std::string& method, const std::string& target, const std::string& body) {
  Reply reply = send(method, target, body);
  if (reply.status >= 400) fail_with(reply);
  json j = reply.parsed();
  if (j.is_discarded()) fail("the server sent a response that is not JSON");
  return j;
}

json Api::call_feature(const std::string& feature, const std::string& method,
                       const std::string& target, const std::string& body) {
  Reply reply = send(method, target, body);
  if (reply.status == 404 && error_message(reply).find("no such endpoint") != std::string::npos) {
    fail("the server at " + url_.to_string() + " has no " + feature + " API (it answered 404 for " +
         target + "); it is older than this lepton: upgrade the server to use " + feature + "s");
  }
  if (reply.status >= 400) fail_with(reply);
  json j = reply.parsed();
  if (!j.is_object() && !j.is_array()) fail("the server sent a response that is not JSON");
  return j;
}

json Api::submit_job(const std::string& body) {
  // A key no other submission has.
  const std::string key = "cli-" + random_hex(32);
  constexpr int kTries = 4;
  for (int attempt = 1;; ++attempt) {
    auto r = net::http_request(url_, "POST", "/api/v1/jobs", body,
                               {.bearer_token = token_, .headers = {{"Idempotency-Key", key}}});
    // Lost answers and a server that stopped or is starting again: the same key once more.
    const bool retry = !r.is_ok() || r->status == 502 || r->status == 503;
    if (retry && attempt < kTries) {
      std::this_thread::sleep_for(std::chrono::seconds(attempt));
      continue;
    }
    if (!r.is_ok()) fail(r.status().message() + " (is `lepton up` running?)");
    Reply reply{.status = r->status, .text = std::move(r->body)};
    if (reply.status >= 400) fail_with(reply);
    json j = reply.parsed();
    if (!j.is_object()) fail("the server sent a response that is not a JSON object");
    return j;
  }
}

json Api::list_jobs(const std::string& query) {
  constexpr int kPage = 1000;
  json all = json::array();
  std::string after;
  while (true) {
    std::string target = "/api/v1/jobs?limit=" + std::to_string(kPage);
    if (!query.empty()) target += "&" + query;
    if (!after.empty()) target += "&after=" + net::url_encode(after);
    json page = list(target);
    for (json& j : page) all.push_back(std::move(j));
    if (page.size() < static_cast<size_t>(kPage)) return all;
    after = all.back().value("id", "");
    if (after.empty()) return all;
  }
}

json Api::list(const std::string& target) {
  json j = call("GET", target);
  const bool ok =
      j.is_array() && std::all_of(j.begin(), j.end(), [](const json& e) { return e.is_object(); });
  if (!ok) fail("the server answered GET " + target + " with something other than a list");
  return j;
}

std::string Api::error_message(const Reply& reply) {
  const json j = reply.parsed();
  if (j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) {
      return e["message"].get<std::string>();
    }
    if (e.is_string()) return e.get<std::string>();
  }
  return reply.text;
}

void Api::fail_with(const Reply& reply) { fail(error_message(reply), reply.status < 500 ? 2 : 1); }

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s;
}

}  // namespace lepton::cli
