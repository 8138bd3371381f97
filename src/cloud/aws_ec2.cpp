#include "cloud/aws_ec2.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "cloud/xml.h"

namespace lepton::cloud::aws {
namespace {

constexpr size_t kMaxUserDataBytes = 16 * 1024;  // EC2's limit, before base64 encoding

std::string n(size_t i) { return std::to_string(i + 1); }

// `path` names an element for errors, e.g. "RunInstancesResponse/instancesSet/item[2]".
Status expected(const std::string& path, const std::string& what) {
  return Status::invalid_argument("ec2 response: " + path + ": expected " + what);
}

Result<const xml::Element*> required_child(const xml::Element& e, const std::string& path,
                                           std::string_view name) {
  const xml::Element* c = e.child(name);
  if (!c) return expected(path, "element <" + std::string(name) + ">");
  return c;
}

Result<int> parse_int(const xml::Element& e, const std::string& path) {
  int value = 0;
  const std::string& t = e.text;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size()) {
    return expected(path + "/" + e.name, "an integer, got '" + t + "'");
  }
  return value;
}

Result<Ec2State> parse_state(const xml::Element& parent, const std::string& path,
                             std::string_view name) {
  auto e = required_child(parent, path, name);
  if (!e.is_ok()) return e.status();
  const std::string here = path + "/" + std::string(name);
  auto code_element = required_child(*e.value(), here, "code");
  if (!code_element.is_ok()) return code_element.status();
  auto code = parse_int(*code_element.value(), here);
  if (!code.is_ok()) return code.status();
  Ec2State state;
  state.code = code.value();
  state.name = e.value()->child_text("name");
  if (state.name.empty()) return expected(here, "element <name> with the state's name");
  return state;
}

// The <item> children of `parent`'s child `set_name` (absent or empty sets give none).
std::vector<const xml::Element*> items(const xml::Element& parent, std::string_view set_name) {
  std::vector<const xml::Element*> out;
  if (const xml::Element* set = parent.child(set_name)) {
    for (const xml::Element& c : set->children) {
      if (c.name == "item") out.push_back(&c);
    }
  }
  return out;
}

Result<Ec2Instance> parse_instance(const xml::Element& item, const std::string& path) {
  Ec2Instance out;
  out.instance_id = item.child_text("instanceId");
  if (out.instance_id.empty()) return expected(path, "element <instanceId> with an id");
  out.image_id = item.child_text("imageId");
  out.instance_type = item.child_text("instanceType");
  auto state = parse_state(item, path, "instanceState");
  if (!state.is_ok()) return state.status();
  out.state = state.value();
  if (const xml::Element* placement = item.child("placement")) {
    out.availability_zone = placement->child_text("availabilityZone");
  }
  out.private_ip = item.child_text("privateIpAddress");
  out.public_ip = item.child_text("ipAddress");
  out.launch_time = item.child_text("launchTime");
  out.lifecycle = item.child_text("instanceLifecycle");
  out.spot_instance_request_id = item.child_text("spotInstanceRequestId");
  if (const xml::Element* reason = item.child("stateReason")) {
    out.state_reason_code = reason->child_text("code");
  }
  for (const xml::Element* tag : items(item, "tagSet")) {
    out.tags.push_back({tag->child_text("key"), tag->child_text("value")});
  }
  return out;
}

Result<std::vector<Ec2Instance>> parse_instances(const xml::Element& parent,
                                                 const std::string& path) {
  std::vector<Ec2Instance> out;
  const auto list = items(parent, "instancesSet");
  for (size_t i = 0; i < list.size(); ++i) {
    auto instance = parse_instance(*list[i], path + "/instancesSet/item[" + n(i) + "]");
    if (!instance.is_ok()) return instance.status();
    out.push_back(std::move(instance.value()));
  }
  return out;
}

// Parses `body` and checks that its root is `root_name`. An EC2 error document (<Response>) in its
// place is reported with its first code and message, so a caller that skipped the HTTP status
// still learns what went wrong.
Result<xml::Element> parse_root(std::string_view body, std::string_view root_name) {
  auto doc = xml::parse(body);
  if (!doc.is_ok()) return Status::invalid_argument("ec2 response: " + doc.status().message());
  if (doc->name == root_name) return std::move(doc).value();
  if (doc->name == "Response") {
    auto error = parse_error_response(body);
    std::string_view action = root_name;
    action.remove_suffix(std::string_view("Response").size());
    if (error.is_ok()) return ec2_error_status(action, error.value());
  }
  return expected("document",
                  "root element <" + std::string(root_name) + ">, got <" + doc->name + ">");
}

bool is_one_of(std::string_view code, std::initializer_list<std::string_view> codes) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

}  // namespace

std::string ec2_host(std::string_view region) {
  return "ec2." + std::string(region) + ".amazonaws.com";
}

Result<NameValues> run_instances_params(const RunInstancesParams& p) {
  if (p.image_id.empty()) return Status::invalid_argument("RunInstances: image_id is required");
  if (p.instance_type.empty()) {
    return Status::invalid_argument("RunInstances: instance_type is required");
  }
  if (p.min_count < 1 || p.max_count < p.min_count) {
    return Status::invalid_argument("RunInstances: expected 1 <= min_count <= max_count, got " +
                                    std::to_string(p.min_count) + " and " +
                                    std::to_string(p.max_count));
  }
  if (p.user_data.size() > kMaxUserDataBytes) {
    return Status::invalid_argument("RunInstances: user_data is " +
                                    std::to_string(p.user_data.size()) +
                                    " bytes; EC2 accepts at most 16384");
  }
  if (!p.spot_max_price.empty() && !p.spot) {
    return Status::invalid_argument("RunInstances: spot_max_price is set but spot is not");
  }
  NameValues out = {{"Action", "RunInstances"},
                    {"ImageId", p.image_id},
                    {"InstanceType", p.instance_type},
                    {"MinCount", std::to_string(p.min_count)},
                    {"MaxCount", std::to_string(p.max_count)}};
  if (!p.user_data.empty()) out.emplace_back("UserData", base64_encode(p.user_data));
  if (p.spot) {
    out.emplace_back("InstanceMarketOptions.MarketType", "spot");
    out.emplace_back("InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time");
    out.emplace_back("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "terminate");
    if (!p.spot_max_price.empty()) {
      out.emplace_back("InstanceMarketOptions.SpotOptions.MaxPrice", p.spot_max_price);
    }
  }
  if (!p.tags.empty()) {
    static constexpr std::array<std::string_view, 2> kTagged = {"instance", "volume"};
    for (size_t s = 0; s < kTagged.size(); ++s) {
      const std::string spec = "TagSpecification." + n(s);
      out.emplace_back(spec + ".ResourceType", std::string(kTagged[s]));
      for (size_t t = 0; t < p.tags.size(); ++t) {
        if (p.tags[t].key.empty()) return Status::invalid_argument("RunInstances: empty tag key");
        out.emplace_back(spec + ".Tag." + n(t) + ".Key", p.tags[t].key);
        out.emplace_back(spec + ".Tag." + n(t) + ".Value", p.tags[t].value);
      }
    }
  }
  if (!p.subnet_id.empty()) out.emplace_back("SubnetId", p.subnet_id);
  for (size_t i = 0; i < p.security_group_ids.size(); ++i) {
    out.emplace_back("SecurityGroupId." + n(i), p.security_group_ids[i]);
  }
  if (!p.key_name.empty()) out.emplace_back("KeyName", p.key_name);
  if (!p.client_token.empty()) out.emplace_back("ClientToken", p.client_token);
  return out;
}

Result<NameValues> terminate_instances_params(const std::vector<std::string>& instance_ids) {
  if (instance_ids.empty()) {
    return Status::invalid_argument("TerminateInstances: expected at least one instance id");
  }
  NameValues out = {{"Action", "TerminateInstances"}};
  for (size_t i = 0; i < instance_ids.size(); ++i) {
    if (instance_ids[i].empty()) {
      return Status::invalid_argument("TerminateInstances: instance id " + n(i) + " is empty");
    }
    out.emplace_back("InstanceId." + n(i), instance_ids[i]);
  }
  return out;
}

NameValues describe_instances_params(const DescribeInstancesFilter& filter) {
  NameValues out = {{"Action", "DescribeInstances"}};
  for (size_t i = 0; i < filter.instance_ids.size(); ++i) {
    out.emplace_back("InstanceId." + n(i), filter.instance_ids[i]);
  }
  for (size_t i = 0; i < filter.tags.size(); ++i) {
    out.emplace_back("Filter." + n(i) + ".Name", "tag:" + filter.tags[i].key);
    out.emplace_back("Filter." + n(i) + ".Value.1", filter.tags[i].value);
  }
  if (!filter.next_token.empty()) out.emplace_back("NextToken", filter.next_token);
  return out;
}

Result<HttpRequest> build_ec2_request(const NameValues& params, std::string_view region,
                                      const Credentials& credentials, std::string_view amz_date) {
  NameValues body = params;
  body.emplace_back("Version", std::string(kEc2ApiVersion));
  HttpRequest request;
  request.method = "POST";
  request.path = "/";
  request.headers = {{"Host", ec2_host(region)},
                     {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  request.body = form_encode(body);
  auto signature = sign(request, credentials, {std::string(region), "ec2", std::string(amz_date)});
  if (!signature.is_ok()) return signature.status();
  return request;
}

std::string_view ec2_error_class_name(Ec2ErrorClass c) {
  switch (c) {
    case Ec2ErrorClass::kCapacity:
      return "capacity";
    case Ec2ErrorClass::kQuota:
      return "quota";
    case Ec2ErrorClass::kOther:
      break;
  }
  return "other";
}

Ec2ErrorClass classify_ec2_error(std::string_view code) {
  for (std::string_view prefix : {"Client.", "Server."}) {
    if (code.substr(0, prefix.size()) == prefix) code.remove_prefix(prefix.size());
  }
  // EC2 API Reference, "Error codes for the Amazon EC2 API".
  if (is_one_of(code,
                {"InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity",
                 "InsufficientReservedInstanceCapacity", "InsufficientCapacityOnOutpost",
                 "UnfulfillableCapacity", "Unsupported", "SpotMaxPriceTooLow"})) {
    return Ec2ErrorClass::kCapacity;
  }
  if (is_one_of(code, {"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded",
                       "ResourceLimitExceeded"})) {
    return Ec2ErrorClass::kQuota;
  }
  return Ec2ErrorClass::kOther;
}

Result<RunInstancesResult> parse_run_instances_response(std::string_view body) {
  auto root = parse_root(body, "RunInstancesResponse");
  if (!root.is_ok()) return root.status();
  RunInstancesResult out;
  out.request_id = root->child_text("requestId");
  out.reservation_id = root->child_text("reservationId");
  out.owner_id = root->child_text("ownerId");
  auto instances = parse_instances(root.value(), "RunInstancesResponse");
  if (!instances.is_ok()) return instances.status();
  out.instances = std::move(instances.value());
  if (out.instances.empty()) return expected("RunInstancesResponse", "at least one instance");
  return out;
}

Result<DescribeInstancesResult> parse_describe_instances_response(std::string_view body) {
  auto root = parse_root(body, "DescribeInstancesResponse");
  if (!root.is_ok()) return root.status();
  DescribeInstancesResult out;
  out.request_id = root->child_text("requestId");
  out.next_token = root->child_text("nextToken");
  const auto reservations = items(root.value(), "reservationSet");
  for (size_t r = 0; r < reservations.size(); ++r) {
    auto instances = parse_instances(*reservations[r],
                                     "DescribeInstancesResponse/reservationSet/item[" + n(r) + "]");
    if (!instances.is_ok()) return instances.status();
    for (auto& instance : instances.value()) out.instances.push_back(std::move(instance));
  }
  return out;
}

Result<TerminateInstancesResult> parse_terminate_instances_response(std::string_view body) {
  auto root = parse_root(body, "TerminateInstancesResponse");
  if (!root.is_ok()) return root.status();
  TerminateInstancesResult out;
  out.request_id = root->child_text("requestId");
  const auto list = items(root.value(), "instancesSet");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = "TerminateInstancesResponse/instancesSet/item[" + n(i) + "]";
    InstanceStateChange change;
    change.instance_id = list[i]->child_text("instanceId");
    if (change.instance_id.empty()) return expected(path, "element <instanceId> with an id");
    auto current = parse_state(*list[i], path, "currentState");
    if (!current.is_ok()) return current.status();
    auto previous = parse_state(*list[i], path, "previousState");
    if (!previous.is_ok()) return previous.status();
    change.current = current.value();
    change.previous = previous.value();
    out.instances.push_back(std::move(change));
  }
  return out;
}

Result<Ec2ErrorResponse> parse_error_response(std::string_view body) {
  auto root = xml::parse(body);
  if (!root.is_ok()) return Status::invalid_argument("ec2 response: " + root.status().message());
  if (root->name != "Response") {
    return expected("document", "root element <Response>, got <" + root->name + ">");
  }
  auto errors = required_child(root.value(), "Response", "Errors");
  if (!errors.is_ok()) return errors.status();
  Ec2ErrorResponse out;
  out.request_id = root->child_text("RequestID");
  for (const xml::Element& e : errors.value()->children) {
    if (e.name != "Error") continue;
    const std::string path = "Response/Errors/Error[" + n(out.errors.size()) + "]";
    Ec2Error error;
    error.code = e.child_text("Code");
    if (error.code.empty()) return expected(path, "element <Code> with an error code");
    error.message = e.child_text("Message");
    error.error_class = classify_ec2_error(error.code);
    out.errors.push_back(std::move(error));
  }
  if (out.errors.empty()) return expected("Response/Errors", "at least one <Error>");
  return out;
}

Status ec2_error_status(std::string_view action, const Ec2ErrorResponse& response) {
  LEPTON_CHECK(!response.errors.empty());
  const Ec2Error& first = response.errors.front();
  std::string message = "aws ec2 " + std::string(action) + ": " + first.code + " (" +
                        std::string(ec2_error_class_name(first.error_class)) +
                        "): " + first.message;
  if (!response.request_id.empty()) message += " [request " + response.request_id + "]";
  switch (first.error_class) {
    case Ec2ErrorClass::kCapacity:
      return {StatusCode::kUnavailable, message};
    case Ec2ErrorClass::kQuota:
      return {StatusCode::kResourceExhausted, message};
    case Ec2ErrorClass::kOther:
      break;
  }
  if (is_one_of(first.code, {"AuthFailure", "UnauthorizedOperation", "Blocked", "OptInRequired"})) {
    return {StatusCode::kPermissionDenied, message};
  }
  return {StatusCode::kInternal, message};
}

}  // namespace lepton::cloud::aws
