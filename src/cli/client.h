// The REST API client the CLI commands share: where the server is, the API token, and calls that
// end the command with the server's error message.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "net/http.h"

namespace lepton::cli {

// ~/.lepton: the default state directory of `lepton up`, where its API token is.
std::string default_data_dir();

struct ClientFlags {
  std::string server;
  std::string token_file;
  bool json = false;
};

// Adds --server and --token-file to a client command.
void add_client_flags(CLI::App* cmd, ClientFlags& f);

// The server URL and API token a client command uses: flags first, then $LEPTON_SERVER and
// $LEPTON_TOKEN, then the local `lepton up` (http://127.0.0.1:8080, ~/.lepton/token). Ends the
// command (exit 2) when the URL is bad or the token cannot be read.
struct Connection {
  net::Url url;
  std::string token;
};
Connection connect(const ClientFlags& f);

class Api {
 public:
  explicit Api(const ClientFlags& f);

  // The server's answer, whatever its HTTP status. Ends the command when the server cannot be
  // reached.
  struct Reply {
    int status = 0;
    std::string text;  // the body
    // The body as JSON; discarded (is_discarded()) when it is not JSON.
    nlohmann::json parsed() const;
  };
  Reply send(const std::string& method, const std::string& target, const std::string& body = "");

  // POST `body` (a job spec) to /api/v1/jobs with an Idempotency-Key, tried again with the same
  // key when the answer is lost (the server unreachable, or restarting): the job is submitted
  // once whatever happened to the earlier tries. Returns the job; ends the command on an error.
  nlohmann::json submit_job(const std::string& body);

  // Every job the listing `query` ("state=RUNNING&...", or "") selects, page by page.
  nlohmann::json list_jobs(const std::string& query);

  // send(), then the JSON body of a success; ends the command with the server's message for an
  // error (exit 2 for 4xx, 1 otherwise) or a body that is not JSON.
  nlohmann::json call(const std::string& method, const std::string& target,
                      const std::string& body = "");

  // call() for an API an older server lacks (`feature`: "queue", "deployment"): such a server
  // answers 404 "no such endpoint", which gets its own message. Ends the command unless the body
  // is a JSON object or array.
  nlohmann::json call_feature(const std::string& feature, const std::string& method,
                              const std::string& target, const std::string& body = "");

  // call("GET", target) for a listing: ends the command with a clear message unless the body is
  // an array of objects.
  nlohmann::json list(const std::string& target);

  // The message of an error reply: its error.message, else its text.
  static std::string error_message(const Reply& reply);
  // Ends the command with the message of an error reply.
  [[noreturn]] static void fail_with(const Reply& reply);

  const net::Url& url() const { return url_; }

 private:
  net::Url url_;
  std::string token_;
};

// A job task's output (latest attempt), for `job logs` and `deploy logs`. `id` is URL-encoded.
void print_job_logs(Api& api, const std::string& id, int rank);
// Streams it until the job ends; returns the job's final state.
std::string follow_job_logs(Api& api, const std::string& id, int rank);

// `s` padded with spaces to `width` (for tables).
std::string pad(std::string s, size_t width);

}  // namespace lepton::cli
