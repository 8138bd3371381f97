#include "cloud/aws_sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "core/hex.h"
#include "core/sha256.h"

namespace lepton::cloud::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// RFC 7230 token characters: what a header name may contain.
bool is_token_char(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= 'a' && c <= 'z') return true;
  if (c >= '0' && c <= '9') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Trims spaces and tabs at both ends and collapses inner runs of them to one space.
std::string canonical_header_value(std::string_view value) {
  std::string out;
  bool pending_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

bool is_amz_date(std::string_view d) {
  if (d.size() != 16 || d[8] != 'T' || d[15] != 'Z') return false;
  for (size_t i = 0; i < 15; ++i) {
    if (i == 8) continue;
    if (d[i] < '0' || d[i] > '9') return false;
  }
  return true;
}

bool has_header(const NameValues& headers, std::string_view lower_name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return lowercase(h.first) == lower_name; });
}

const std::string* find_header(const NameValues& headers, std::string_view lower_name) {
  for (const auto& h : headers) {
    if (lowercase(h.first) == lower_name) return &h.second;
  }
  return nullptr;
}

bool is_scope_part(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

}  // namespace

std::string uri_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out += ch;
    } else {
      out += '%';
      append_hex(out, c, HexCase::kUpper);
    }
  }
  return out;
}

std::string canonical_uri(std::string_view path) {
  // RFC 3986 dot-segment removal, with empty segments ("//") dropped as the test suite requires.
  std::vector<std::string_view> segments;
  bool trailing_slash = false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    const bool last = end == path.size();
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
      trailing_slash = last;
    } else if (segment == "." || segment.empty()) {
      trailing_slash = last;
    } else {
      segments.push_back(segment);
      trailing_slash = false;
    }
    start = end + 1;
  }
  std::string out;
  for (std::string_view segment : segments) {
    out += '/';
    out += uri_encode(segment);
  }
  if (out.empty() || trailing_slash) out += '/';
  return out;
}

std::string canonical_query(const NameValues& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) encoded.emplace_back(uri_encode(name), uri_encode(value));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string form_encode(const NameValues& params) { return canonical_query(params); }

Result<CanonicalHeaders> canonical_headers(const NameValues& headers) {
  std::map<std::string, std::string> joined;  // sorted by lower-case name
  for (const auto& [name, value] : headers) {
    if (name.empty()) return Status::invalid_argument("header name is empty");
    for (char c : name) {
      if (!is_token_char(static_cast<unsigned char>(c))) {
        return Status::invalid_argument("header name '" + name +
                                        "': expected only token characters (RFC 7230)");
      }
    }
    for (char c : value) {
      if (c == '\r' || c == '\n' || c == '\0') {
        return Status::invalid_argument("header '" + name +
                                        "': value must not contain CR, LF or NUL");
      }
    }
    std::string key = lowercase(name);
    auto [it, inserted] = joined.try_emplace(key, canonical_header_value(value));
    if (!inserted) {
      it->second += ',';
      it->second += canonical_header_value(value);
    }
  }
  CanonicalHeaders out;
  for (const auto& [name, value] : joined) {
    out.text += name;
    out.text += ':';
    out.text += value;
    out.text += '\n';
    if (!out.signed_headers.empty()) out.signed_headers += ';';
    out.signed_headers += name;
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  LEPTON_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                    reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest,
                    &length) != nullptr);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string signing_key(std::string_view secret_access_key, std::string_view date,
                        std::string_view region, std::string_view service) {
  const std::string k_date = hmac_sha256("AWS4" + std::string(secret_access_key), date);
  const std::string k_region = hmac_sha256(k_date, region);
  const std::string k_service = hmac_sha256(k_region, service);
  return hmac_sha256(k_service, "aws4_request");
}

std::string format_amz_date(std::chrono::sys_seconds time) {
  const auto days = std::chrono::floor<std::chrono::days>(time);
  const std::chrono::year_month_day ymd(days);
  const std::chrono::hh_mm_ss hms(time - days);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buffer;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(bytes.data()),
                                      static_cast<int>(bytes.size()));
  LEPTON_CHECK(written >= 0 && static_cast<size_t>(written) == out.size());
  return out;
}

Result<Signature> sign(HttpRequest& request, const Credentials& credentials,
                       const SigningParams& params) {
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return Status::invalid_argument("credentials: expected an access key id and a secret key");
  }
  if (credentials.access_key_id.find_first_of("/, =\r\n") != std::string::npos) {
    return Status::invalid_argument("credentials: access key id contains '/', ',', '=' or space");
  }
  if (!is_scope_part(params.region)) {
    return Status::invalid_argument("region '" + params.region +
                                    "': expected lower-case letters, digits and '-'");
  }
  if (!is_scope_part(params.service)) {
    return Status::invalid_argument("service '" + params.service +
                                    "': expected lower-case letters, digits and '-'");
  }
  if (!is_amz_date(params.amz_date)) {
    return Status::invalid_argument("amz_date '" + params.amz_date +
                                    "': expected YYYYMMDDTHHMMSSZ, e.g. 20150830T123600Z");
  }
  if (request.method.empty() || !std::all_of(request.method.begin(), request.method.end(),
                                             [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return Status::invalid_argument("method '" + request.method + "': expected e.g. GET or POST");
  }
  if (request.path.empty() || request.path[0] != '/') {
    return Status::invalid_argument("path '" + request.path + "': expected it to start with '/'");
  }
  if (!has_header(request.headers, "host")) {
    return Status::invalid_argument("request has no Host header");
  }
  if (has_header(request.headers, "authorization")) {
    return Status::invalid_argument("request is already signed (has an Authorization header)");
  }
  // Header names and values are checked before anything is added, so a failed sign() leaves the
  // request as it was.
  if (auto checked = canonical_headers(request.headers); !checked.is_ok()) return checked.status();
  if (const std::string* date = find_header(request.headers, "x-amz-date")) {
    if (*date != params.amz_date) {
      return Status::invalid_argument("X-Amz-Date header '" + *date + "' differs from amz_date '" +
                                      params.amz_date + "'");
    }
  } else {
    request.headers.emplace_back("X-Amz-Date", params.amz_date);
  }
  if (!credentials.session_token.empty() && !has_header(request.headers, "x-amz-security-token")) {
    request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }

  auto headers = canonical_headers(request.headers);
  if (!headers.is_ok()) return headers.status();

  Signature out;
  out.signed_headers = headers->signed_headers;
  out.canonical_request = request.method + '\n' + canonical_uri(request.path) + '\n' +
                          canonical_query(request.query) + '\n' + headers->text + '\n' +
                          headers->signed_headers + '\n' + sha256_hex(request.body);
  const std::string date = params.amz_date.substr(0, 8);
  const std::string scope = date + '/' + params.region + '/' + params.service + "/aws4_request";
  out.string_to_sign = std::string(kAlgorithm) + '\n' + params.amz_date + '\n' + scope + '\n' +
                       sha256_hex(out.canonical_request);
  out.signature = hex_encode(
      hmac_sha256(signing_key(credentials.secret_access_key, date, params.region, params.service),
                  out.string_to_sign));
  out.authorization = std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + '/' +
                      scope + ", SignedHeaders=" + out.signed_headers +
                      ", Signature=" + out.signature;
  request.headers.emplace_back("Authorization", out.authorization);
  return out;
}

}  // namespace lepton::cloud::aws
