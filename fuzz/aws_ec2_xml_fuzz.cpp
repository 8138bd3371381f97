// libFuzzer target: any bytes, read as each EC2 response kind, give a parsed result or an error
// that starts with "ec2 response: " (or, for an EC2 error document in place of a response,
// "aws ec2 "), never a crash. Seeds: src/cloud/testdata/ec2/*.xml.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cloud/aws_ec2.h"
#include "cloud/xml.h"

namespace {

template <typename R>
void check(const R& result) {
  if (result.is_ok()) return;
  const std::string& m = result.status().message();
  if (m.rfind("ec2 response: ", 0) != 0 && m.rfind("aws ec2 ", 0) != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto document = lepton::cloud::xml::parse(text);
  if (!document.is_ok() && document.status().message().rfind("xml:", 0) != 0) std::abort();
  check(lepton::cloud::aws::parse_run_instances_response(text));
  check(lepton::cloud::aws::parse_describe_instances_response(text));
  check(lepton::cloud::aws::parse_terminate_instances_response(text));
  check(lepton::cloud::aws::parse_error_response(text));
  return 0;
}
