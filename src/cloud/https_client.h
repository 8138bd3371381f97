// An HTTPS client for the AWS adapters: sends one signed HttpRequest (aws_sigv4.h) over TLS and
// returns the answer's status and body. It is the Ec2Transport that lets Ec2Provider talk to a real
// endpoint.
//
// - One request per connection, blocking; Boost.Beast over OpenSSL (libssl). No proxy support, no
//   redirects, no retries (the caller decides what to do with a failure).
// - TLS 1.2 or later. The peer is always verified: its chain against `ca_file` (or the system's
//   default trust store) and its name against the host name of the request's Host header
//   (DNS or IP subjectAltName), which is also sent as SNI. There is no switch to turn this off.
// - The request line is `METHOD path?query`, the query encoded exactly as SigV4 canonicalises it
//   (canonical_query()), so what is sent is what was signed. Headers are sent as given, in order
//   and with their names as given; Content-Length is added when missing (POST, PUT, PATCH or a
//   body). Nothing else is added.
// - Any HTTP status is a response; errors are transport failures only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "cloud/aws_ec2_provider.h"
#include "cloud/aws_sigv4.h"
#include "core/status.h"

namespace lepton::cloud::aws {

struct HttpsOptions {
  std::string connect_host{};  // where to connect; empty: the request's Host header (without port)
  uint16_t connect_port = 443;
  std::string ca_file{};  // PEM bundle to trust; empty: the system's default verify paths
  std::chrono::milliseconds timeout{30000};  // the whole exchange, from connecting to the last byte
};

// Sends `request` and reads the whole answer. Blocking; safe to call from several threads at once
// (each call has its own connection and TLS context).
//
// Errors name the endpoint and the step, e.g. "https ec2.us-east-1.amazonaws.com:443: TLS
// handshake: certificate verify failed: unable to get local issuer certificate":
// - kInvalidArgument: the request cannot be sent as given (no Host header, a header name or value
//   that cannot be sent, a path that is not an absolute path, a Content-Length that is not the
//   body's size, a Transfer-Encoding header) or the options are unusable (timeout not positive,
//   port 0, unreadable ca_file);
// - kUnavailable: every transport failure: the name does not resolve, the connection is refused,
//   the certificate is not trusted or not for the host, the connection breaks, the answer is not
//   HTTP or its body is over 64 MiB, or the exchange takes longer than `timeout` (the message says
//   "timed out"; lepton has no separate deadline code, and to the caller a timeout is one more way
//   of the endpoint being unavailable). Name resolution is the system resolver's and is not
//   interrupted by the timeout; the exchange fails as timed out if resolving used it up.
Result<Ec2HttpResponse> https_send(const HttpRequest& request, const HttpsOptions& options);

// An Ec2Transport that calls https_send with `options`.
Ec2Transport https_transport(HttpsOptions options);

}  // namespace lepton::cloud::aws
