// Amazon EC2 through its Query API (version 2016-11-15): building signed requests and reading the
// XML responses. No HTTP is sent from here: a request is built as an aws::HttpRequest (POST,
// form-encoded body, signed with SigV4 for service "ec2") and answers are read from the response
// body, so a transport can be injected (see Ec2Provider in aws_ec2_provider.h).
//
// Requests: RunInstances (image, instance type, counts, UserData = a bootstrap script, spot via
// InstanceMarketOptions, tags via TagSpecification, optional subnet, security groups, key pair and
// client token), TerminateInstances, DescribeInstances (by id or by tag, with paging).
// Responses: RunInstancesResponse, DescribeInstancesResponse, TerminateInstancesResponse and the
// error document <Response><Errors><Error><Code>... (EC2 API Reference, "Error codes"), whose codes
// are classified as capacity (try another zone, type or cloud), quota (the account's limit; also
// try elsewhere) or other.
//
// Reading is strict about XML syntax (cloud/xml.h) and about the few fields lepton needs (an
// instance without an instanceId, or a state code that is not a number, is an error naming where),
// and tolerant of elements it does not know, since AWS adds fields over time.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/aws_sigv4.h"
#include "core/status.h"

namespace lepton::cloud::aws {

inline constexpr std::string_view kEc2ApiVersion = "2016-11-15";

// "ec2.us-east-1.amazonaws.com"
std::string ec2_host(std::string_view region);

struct Tag {
  std::string key;
  std::string value;
  bool operator==(const Tag&) const = default;
};

struct RunInstancesParams {
  std::string image_id;       // required, "ami-..."
  std::string instance_type;  // required, "p5.48xlarge"
  int min_count = 1;
  int max_count = 1;
  std::string user_data;  // the bootstrap script as plain text; sent base64-encoded (16 KiB max)
  bool spot = false;
  std::string spot_max_price;  // USD per hour as text, e.g. "12.5"; empty: the on-demand price
  std::vector<Tag> tags;       // on the instances and their volumes
  std::string subnet_id;
  std::vector<std::string> security_group_ids;
  std::string key_name;
  std::string client_token;  // idempotency token; empty: none
};

// The form parameters of each action, in the order they are built (signing sorts them).
Result<NameValues> run_instances_params(const RunInstancesParams& params);
Result<NameValues> terminate_instances_params(const std::vector<std::string>& instance_ids);
struct DescribeInstancesFilter {
  std::vector<std::string> instance_ids;  // empty: all
  std::vector<Tag> tags;                  // each becomes Filter.N.Name=tag:KEY, Value.1=VALUE
  std::string next_token;                 // from the previous page
};
NameValues describe_instances_params(const DescribeInstancesFilter& filter);

// A signed POST https://ec2.REGION.amazonaws.com/ carrying `params` (Action, ...) plus Version.
Result<HttpRequest> build_ec2_request(const NameValues& params, std::string_view region,
                                      const Credentials& credentials, std::string_view amz_date);

struct Ec2State {
  int code = 0;  // 0 pending, 16 running, 32 shutting-down, 48 terminated, 64 stopping, 80 stopped
  std::string name;  // "pending", "running", ...
};

struct Ec2Instance {
  std::string instance_id;
  std::string image_id;
  std::string instance_type;
  Ec2State state;
  std::string availability_zone;
  std::string private_ip;
  std::string public_ip;
  std::string launch_time;  // ISO 8601 as sent, e.g. "2018-05-08T16:46:19.000Z"
  std::string lifecycle;    // "spot", "scheduled", "capacity-block"; empty: on-demand
  std::string spot_instance_request_id;
  std::string state_reason_code;  // e.g. "Server.SpotInstanceTermination"; empty if none
  std::vector<Tag> tags;
};

struct RunInstancesResult {
  std::string request_id;
  std::string reservation_id;
  std::string owner_id;
  std::vector<Ec2Instance> instances;
};

struct DescribeInstancesResult {
  std::string request_id;
  std::vector<Ec2Instance> instances;  // of every reservation, in document order
  std::string next_token;              // empty on the last page
};

struct InstanceStateChange {
  std::string instance_id;
  Ec2State current;
  Ec2State previous;
};

struct TerminateInstancesResult {
  std::string request_id;
  std::vector<InstanceStateChange> instances;
};

enum class Ec2ErrorClass {
  kCapacity,  // AWS has no room for this request here now: fail over to another offer
  kQuota,     // the account's limit is reached: fail over, and tell the operator
  kOther,     // a bad request, credentials, throttling, an AWS fault, ...
};
std::string_view ec2_error_class_name(Ec2ErrorClass c);  // "capacity", "quota", "other"
// Classifies an EC2 error code; a "Client." or "Server." prefix (as in CloudTrail) is ignored.
Ec2ErrorClass classify_ec2_error(std::string_view code);

struct Ec2Error {
  std::string code;
  std::string message;
  Ec2ErrorClass error_class = Ec2ErrorClass::kOther;
};

struct Ec2ErrorResponse {
  std::string request_id;
  std::vector<Ec2Error> errors;  // at least one
};

Result<RunInstancesResult> parse_run_instances_response(std::string_view body);
Result<DescribeInstancesResult> parse_describe_instances_response(std::string_view body);
Result<TerminateInstancesResult> parse_terminate_instances_response(std::string_view body);
Result<Ec2ErrorResponse> parse_error_response(std::string_view body);

// The Status for an EC2 error answer, from its first error: capacity -> kUnavailable, quota ->
// kResourceExhausted, AuthFailure/UnauthorizedOperation/Blocked/OptInRequired ->
// kPermissionDenied, anything else -> kInternal. The message is
// "aws ec2 ACTION: CODE (CLASS): MESSAGE [request REQUEST_ID]".
Status ec2_error_status(std::string_view action, const Ec2ErrorResponse& response);

}  // namespace lepton::cloud::aws
