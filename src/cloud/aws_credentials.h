// AWS credentials as the AWS CLI finds them, for the parts lepton reads: the environment, then the
// shared credentials file. Instance roles (IMDS), SSO, credential_process and assumed roles are
// not read; a server running on EC2 with an instance role needs the keys in one of these two.
#pragma once

#include <string>
#include <string_view>

#include "cloud/aws_sigv4.h"
#include "core/status.h"

namespace lepton::cloud::aws {

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and (for temporary credentials) AWS_SESSION_TOKEN; an
// error names what is missing.
Result<Credentials> credentials_from_env();

// The `profile` section of a shared credentials file's text, read as the AWS CLI (Python's
// configparser) reads it: `[name]` sections, `key = value` or `key: value` lines with keys in any
// case, `#` and `;` comment lines, indented lines continuing the setting above. The settings are
// aws_access_key_id, aws_secret_access_key and, optionally, aws_session_token (or its older name
// aws_security_token). Errors name `source` (the file), the line or the profile, and the key.
Result<Credentials> parse_shared_credentials(std::string_view text, const std::string& profile,
                                             const std::string& source);

// The environment when AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is set (then both must be);
// otherwise the profile AWS_PROFILE (default "default") of the file AWS_SHARED_CREDENTIALS_FILE
// (default ~/.aws/credentials). The error says where it looked.
Result<Credentials> default_credentials();

}  // namespace lepton::cloud::aws
