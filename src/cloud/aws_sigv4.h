// AWS Signature Version 4 request signing (the "AWS4-HMAC-SHA256" Authorization header), as
// specified in the AWS General Reference ("Signature Version 4 signing process") and checked
// against AWS's published SigV4 test suite (see aws_sigv4_test.cpp).
//
// What is covered:
// - canonical request: method, canonical URI, canonical query string, canonical headers, signed
//   headers, hex SHA-256 of the payload;
// - canonical URI: the path as it is sent is normalised (empty and "." segments dropped, ".."
//   removes the segment before it, a trailing slash kept) and then URI-encoded, segment by segment.
//   This is the rule for every service except S3 (S3 keys are not normalised; not supported here);
// - URI encoding: every byte except the unreserved A-Z a-z 0-9 - _ . ~ becomes %XX (upper-case
//   hex), so a space is %20, never '+';
// - canonical query: names and values encoded as above, sorted by name, then by value;
// - canonical headers: names lower-cased, values trimmed with inner runs of spaces and tabs
//   collapsed to one space, repeated headers joined with ',' in the order given, sorted by name;
//   every header of the request is signed;
// - string to sign, signing key (HMAC-SHA256 of date, region, service and "aws4_request", keyed
//   first with "AWS4" + secret), signature, Authorization header;
// - X-Amz-Date and, with temporary credentials, X-Amz-Security-Token are added and signed.
//
// Not covered: presigned URLs (signature in the query string), chunked/streaming payloads,
// x-amz-content-sha256 (an S3 header), SigV4a. SHA-256 comes from core/sha256.h, HMAC from
// OpenSSL's libcrypto.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace lepton::cloud::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary (STS) credentials only; empty otherwise
};

using NameValues = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string path = "/";  // as sent on the request line, without the query string
  NameValues query;        // decoded names and values, any order; encoded when signing
  NameValues headers;      // names as sent; a name may repeat; must include Host
  std::string body;
};

struct SigningParams {
  std::string region;    // "us-east-1"
  std::string service;   // "ec2", "iam", ...
  std::string amz_date;  // "20150830T123600Z" (UTC); see format_amz_date()
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "content-type;host;x-amz-date"
  std::string signature;       // 64 lower-case hex digits
  std::string authorization;   // the value of the Authorization header
};

// Signs `request`: adds X-Amz-Date (and X-Amz-Security-Token when the credentials have a session
// token) unless already present, computes the signature and adds the Authorization header.
// An X-Amz-Date already present must equal params.amz_date. Errors (invalid_argument) name what is
// wrong: missing Host, empty credentials, a malformed date, a header name or value that cannot be
// sent, an existing Authorization header.
Result<Signature> sign(HttpRequest& request, const Credentials& credentials,
                       const SigningParams& params);

// The pieces, exposed for tests and for callers that build requests themselves.
std::string uri_encode(std::string_view bytes);  // encodes '/' too
std::string canonical_uri(std::string_view path);
std::string canonical_query(const NameValues& query);
// "a=1&b=x%20y": the same encoding and order as canonical_query, for form-encoded bodies.
std::string form_encode(const NameValues& params);
struct CanonicalHeaders {
  std::string text;            // "host:example.amazonaws.com\nx-amz-date:...\n"
  std::string signed_headers;  // "host;x-amz-date"
};
Result<CanonicalHeaders> canonical_headers(const NameValues& headers);

std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
// The derived signing key (raw 32 bytes): HMAC chain over date (YYYYMMDD), region, service.
std::string signing_key(std::string_view secret_access_key, std::string_view date,
                        std::string_view region, std::string_view service);
// "20150830T123600Z" for 2015-08-30 12:36:00 UTC.
std::string format_amz_date(std::chrono::sys_seconds time);
// RFC 4648 base64 with padding (EC2 UserData).
std::string base64_encode(std::string_view bytes);

}  // namespace lepton::cloud::aws
