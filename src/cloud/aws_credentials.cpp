#include "cloud/aws_credentials.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "core/text.h"

namespace lepton::cloud::aws {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

Result<Credentials> credentials_from_env() {
  Credentials c{.access_key_id = env("AWS_ACCESS_KEY_ID"),
                .secret_access_key = env("AWS_SECRET_ACCESS_KEY"),
                .session_token = env("AWS_SESSION_TOKEN")};
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return Status::invalid_argument(
        "aws: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
        "temporary credentials) in the environment");
  }
  return c;
}

Result<Credentials> parse_shared_credentials(std::string_view text, const std::string& profile,
                                             const std::string& source) {
  const std::string where = "aws credentials " + source;
  if (text.size() > kMaxFileBytes) {
    return Status::invalid_argument(where + ": larger than " + std::to_string(kMaxFileBytes) +
                                    " bytes");
  }
  std::map<std::string, std::map<std::string, std::string>> profiles;
  std::vector<std::string> order;  // profile names as they appear
  std::string section;
  bool in_section = false;
  bool after_setting = false;  // the last line was a setting, which an indented line continues
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view raw = text.substr(0, end);
    std::string_view line = trim_space(raw);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_no;
    const std::string at = where + ": line " + std::to_string(line_no) + ": ";
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    // An indented line continues the setting above (the AWS CLI's nested "s3 =" blocks).
    if (after_setting && (raw.front() == ' ' || raw.front() == '\t')) continue;
    after_setting = false;
    if (line.front() == '[') {
      // As Python's configparser reads it: the name runs to the last ']', the rest is ignored.
      const size_t close = line.rfind(']');
      if (close == std::string_view::npos) {
        return Status::invalid_argument(at + "expected '[profile]'");
      }
      section = std::string(trim_space(line.substr(1, close - 1)));
      if (section.empty()) return Status::invalid_argument(at + "empty profile name");
      if (!profiles.count(section)) order.push_back(section);
      profiles[section];
      in_section = true;
      continue;
    }
    const size_t eq = line.find_first_of("=:");
    if (eq == std::string_view::npos) {
      return Status::invalid_argument(at + "expected 'key = value' or '[profile]'");
    }
    if (!in_section) return Status::invalid_argument(at + "a setting before any [profile]");
    std::string key(trim_space(line.substr(0, eq)));
    if (key.empty()) return Status::invalid_argument(at + "expected a key before '='");
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    profiles[section][key] = std::string(trim_space(line.substr(eq + 1)));
    after_setting = true;
  }
  auto it = profiles.find(profile);
  if (it == profiles.end()) {
    std::string known;
    for (const std::string& name : order) known += (known.empty() ? "" : ", ") + name;
    return Status::invalid_argument(where + ": no [" + profile + "] profile" +
                                    (known.empty() ? "" : " (it has: " + known + ")"));
  }
  const auto& settings = it->second;
  auto get = [&](const char* key) {
    auto found = settings.find(key);
    return found == settings.end() ? std::string() : found->second;
  };
  Credentials c{.access_key_id = get("aws_access_key_id"),
                .secret_access_key = get("aws_secret_access_key"),
                .session_token = get("aws_session_token")};
  // The older name some tools still write.
  if (c.session_token.empty()) c.session_token = get("aws_security_token");
  for (const auto& [key, value] : {std::pair{"aws_access_key_id", &c.access_key_id},
                                   std::pair{"aws_secret_access_key", &c.secret_access_key}}) {
    if (value->empty()) {
      return Status::invalid_argument(where + " [" + profile + "]: " + key + ": missing");
    }
  }
  return c;
}

Result<Credentials> default_credentials() {
  if (!env("AWS_ACCESS_KEY_ID").empty() || !env("AWS_SECRET_ACCESS_KEY").empty()) {
    return credentials_from_env();
  }
  std::string path = env("AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) {
    const std::string home = env("HOME");
    path = home.empty() ? std::string() : home + "/.aws/credentials";
  }
  const std::string profile = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  std::ifstream in(path, std::ios::binary);
  if (path.empty() || !in) {
    return Status::invalid_argument(
        "aws: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
        "AWS_SESSION_TOKEN for temporary credentials), or put them in the [" +
        profile + "] profile of " + (path.empty() ? "~/.aws/credentials" : path) +
        " (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_shared_credentials(text.str(), profile, path);
}

}  // namespace lepton::cloud::aws
