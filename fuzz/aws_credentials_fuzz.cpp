// libFuzzer target: any bytes, read as an AWS shared credentials file, give credentials or an
// error that starts with "aws credentials fuzz", never a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cloud/aws_credentials.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto credentials = lepton::cloud::aws::parse_shared_credentials(text, "default", "fuzz");
  if (!credentials.is_ok() &&
      credentials.status().message().rfind("aws credentials fuzz", 0) != 0) {
    std::abort();
  }
  if (credentials.is_ok() &&
      (credentials->access_key_id.empty() || credentials->secret_access_key.empty())) {
    std::abort();
  }
  return 0;
}
