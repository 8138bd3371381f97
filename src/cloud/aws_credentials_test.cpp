#include "cloud/aws_credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace lepton::cloud::aws {
namespace {

// Unsets the AWS variables for a test and puts them back after.
class AwsEnvironment {
 public:
  AwsEnvironment() {
    for (const char* name : kNames) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      ::unsetenv(name);
    }
  }
  ~AwsEnvironment() {
    for (const char* name : kNames) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }
  AwsEnvironment(const AwsEnvironment&) = delete;
  AwsEnvironment& operator=(const AwsEnvironment&) = delete;

 private:
  static constexpr const char* kNames[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_SESSION_TOKEN", "AWS_PROFILE",
                                           "AWS_SHARED_CREDENTIALS_FILE"};
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(AwsCredentials, FromTheEnvironment) {
  AwsEnvironment environment;
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_SESSION_TOKEN");
  auto missing = credentials_from_env();
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  EXPECT_FALSE(credentials_from_env().is_ok()) << "the secret is missing";
  ::setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  ::setenv("AWS_SESSION_TOKEN", "session", 1);
  auto c = credentials_from_env();
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(c->secret_access_key, "secret");
  EXPECT_EQ(c->session_token, "session");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_SESSION_TOKEN");
}

// The example file of the AWS CLI's user guide ("Configuration and credential file settings").
constexpr const char* kGuideExample = R"([default]
aws_access_key_id=AKIAIOSFODNN7EXAMPLE
aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY

[user1]
aws_access_key_id=AKIAI44QH8DHBEXAMPLE
aws_secret_access_key=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY
)";

TEST(AwsCredentials, SharedFileProfiles) {
  auto d = parse_shared_credentials(kGuideExample, "default", "f");
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d->access_key_id, "AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(d->secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  EXPECT_EQ(d->session_token, "");
  auto u = parse_shared_credentials(kGuideExample, "user1", "f");
  ASSERT_TRUE(u.is_ok()) << u.status().message();
  EXPECT_EQ(u->access_key_id, "AKIAI44QH8DHBEXAMPLE");
  // Spaces around '=', comments, CRLF line ends and a session token.
  auto t = parse_shared_credentials(
      "# keys\r\n[ temp ]\r\n; rotated daily\r\naws_access_key_id = A\r\n"
      "aws_secret_access_key =  S \r\naws_session_token=T\r\nregion = us-east-1\r\n",
      "temp", "f");
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->access_key_id, "A");
  EXPECT_EQ(t->secret_access_key, "S");
  EXPECT_EQ(t->session_token, "T");
  // What Python's configparser also takes: keys in capitals, ':' for '=', a comment after the
  // header, a nested block of indented lines, and the token's older name.
  auto c = parse_shared_credentials(
      "[ci]  # the build account\nAWS_ACCESS_KEY_ID: A2\ns3 =\n  max_concurrent_requests = 20\n"
      "  multipart_threshold = 64MB\naws_secret_access_key=S2\naws_security_token = OLD\n",
      "ci", "f");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->access_key_id, "A2");
  EXPECT_EQ(c->secret_access_key, "S2");
  EXPECT_EQ(c->session_token, "OLD");
}

TEST(AwsCredentials, SharedFileErrorsNameTheProblem) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[default]\naws_access_key_id=A\n", "[default]: aws_secret_access_key: missing"},
      {"[default]\naws_secret_access_key=S\n", "[default]: aws_access_key_id: missing"},
      {"aws_access_key_id=A\n[default]\n", "line 1: a setting before any [profile]"},
      {"[default\n", "line 1: expected '[profile]'"},
      {"[]\n", "line 1: empty profile name"},
      {"[default]\njust words\n", "line 2: expected 'key = value' or '[profile]'"},
      {"[default]\n= value\n", "line 2: expected a key before '='"},
      {"[a]\n[b]\n", "no [default] profile (it has: a, b)"},
      {"", "no [default] profile"},
      {std::string((1 << 20) + 1, '#'), "larger than"},
  };
  for (const auto& [text, message] : bad) {
    auto r = parse_shared_credentials(text, "default", "/home/u/.aws/credentials");
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("aws credentials /home/u/.aws/credentials"),
              std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find(message), std::string::npos)
        << text.substr(0, 40) << ": " << r.status().message();
  }
}

TEST(AwsCredentials, DefaultChainTakesTheEnvironmentThenTheFile) {
  AwsEnvironment environment;
  const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                     ("lepton-aws-credentials-" + std::to_string(getpid()));
  std::ofstream(file) << kGuideExample;
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", file.c_str(), 1);
  auto d = default_credentials();
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d->access_key_id, "AKIAIOSFODNN7EXAMPLE");
  ::setenv("AWS_PROFILE", "user1", 1);
  auto u = default_credentials();
  ASSERT_TRUE(u.is_ok()) << u.status().message();
  EXPECT_EQ(u->access_key_id, "AKIAI44QH8DHBEXAMPLE");
  ::setenv("AWS_PROFILE", "nobody", 1);
  auto none = default_credentials();
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("no [nobody] profile (it has: default, user1)"),
            std::string::npos)
      << none.status().message();
  // The environment comes first, and half of it is an error, not a fall back to the file.
  ::setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  EXPECT_FALSE(default_credentials().is_ok());
  ::setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  auto e = default_credentials();
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->access_key_id, "ENVKEY");
  // Neither: the error says where it looked.
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_PROFILE");
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
  auto missing = default_credentials();
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("[default] profile of /nonexistent/credentials"),
            std::string::npos)
      << missing.status().message();
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace lepton::cloud::aws
