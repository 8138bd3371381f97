#include "cloud/aws_ec2_provider.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

namespace lepton::cloud::aws {
namespace {

constexpr int kMaxDescribePages = 1000;  // a transport that always returns a nextToken must end

}  // namespace

Result<Ec2ProviderConfig> Ec2ProviderConfig::from_json(std::string_view text) {
  using nlohmann::json;
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::invalid_argument("aws config: expected a JSON object");
  }
  Ec2ProviderConfig c;
  // The text fields, by name; security_group_ids is the one list.
  const std::pair<const char*, std::string Ec2ProviderConfig::*> texts[] = {
      {"region", &Ec2ProviderConfig::region},           {"image_id", &Ec2ProviderConfig::image_id},
      {"subnet_id", &Ec2ProviderConfig::subnet_id},     {"key_name", &Ec2ProviderConfig::key_name},
      {"pool_tag", &Ec2ProviderConfig::pool_tag_value}, {"endpoint", &Ec2ProviderConfig::endpoint},
      {"ca_file", &Ec2ProviderConfig::ca_file}};
  for (const auto& [key, value] : j.items()) {
    if (key == "security_group_ids") {
      if (!value.is_array()) {
        return Status::invalid_argument(
            "aws config: security_group_ids: expected an array of strings");
      }
      for (const json& id : value) {
        if (!id.is_string() || id.get<std::string>().empty()) {
          return Status::invalid_argument(
              "aws config: security_group_ids: expected an array of strings");
        }
        c.security_group_ids.push_back(id.get<std::string>());
      }
      continue;
    }
    auto field = std::find_if(std::begin(texts), std::end(texts),
                              [&k = key](const auto& t) { return k == t.first; });
    if (field == std::end(texts)) {
      std::string known;
      for (const auto& t : texts) known += std::string(t.first) + ", ";
      return Status::invalid_argument("aws config: " + key + ": unknown field (expected " + known +
                                      "or security_group_ids)");
    }
    if (!value.is_string() || value.get<std::string>().empty() ||
        value.get<std::string>().size() > 1024) {
      return Status::invalid_argument("aws config: " + key + ": expected a non-empty string");
    }
    c.*(field->second) = value.get<std::string>();
  }
  if (c.region.empty()) return Status::invalid_argument("aws config: region: required");
  if (c.image_id.empty()) return Status::invalid_argument("aws config: image_id: required");
  return c;
}

std::string ec2_user_data(const std::string& bootstrap_script) {
  // cloud-init runs user data that starts with "#!" as root at first boot. The agent must join
  // under the instance id (the node name the autoscaler matches), which the instance metadata
  // service gives, with an IMDSv2 session token.
  return "#!/bin/sh\n"
         "imds=http://169.254.169.254/latest\n"
         "imds_token=$(curl -fsS -X PUT \"$imds/api/token\" "
         "-H 'X-aws-ec2-metadata-token-ttl-seconds: 300')\n"
         "LEPTON_INSTANCE_ID=$(curl -fsS -H \"X-aws-ec2-metadata-token: $imds_token\" "
         "\"$imds/meta-data/instance-id\")\n"
         "export LEPTON_INSTANCE_ID\n" +
         bootstrap_script;
}

cloud::InstanceState ec2_instance_state(int code) {
  switch (code & 0xFF) {
    case 0:
      return cloud::InstanceState::kPending;
    case 16:
      return cloud::InstanceState::kRunning;
    case 32:
      return cloud::InstanceState::kTerminating;
    case 64:
      return cloud::InstanceState::kStopping;
    case 80:
      return cloud::InstanceState::kStopped;
    default:
      break;
  }
  return cloud::InstanceState::kTerminated;  // 48
}

Ec2Provider::Ec2Provider(Ec2ProviderConfig config, std::vector<Offer> catalog,
                         Ec2Transport transport, Ec2Clock clock)
    : config_(std::move(config)),
      catalog_(std::move(catalog)),
      transport_(std::move(transport)),
      clock_(std::move(clock)) {
  LEPTON_CHECK(transport_ != nullptr);
  LEPTON_CHECK(clock_ != nullptr);
}

Result<std::vector<Offer>> Ec2Provider::offers(const OfferQuery& query) const {
  // This provider launches in its configured region only (the subnet's): a query for other
  // regions finds nothing here.
  if (!query.regions.empty() && std::find(query.regions.begin(), query.regions.end(),
                                          config_.region) == query.regions.end()) {
    return std::vector<Offer>{};
  }
  // Instances launch into the configured subnet, so its zone, not the catalog row's: one offer
  // per instance type, with no zone, at the dearest of its zones' prices (an estimate never below
  // the bill).
  std::map<std::string, Offer> by_type;
  for (const Offer& o : catalog_) {
    if (o.cloud != "aws" || o.region != config_.region) continue;
    auto [it, first] = by_type.try_emplace(o.instance_type, o);
    Offer& merged = it->second;
    merged.zone.clear();
    if (first) continue;
    merged.price_per_hour = std::max(merged.price_per_hour, o.price_per_hour);
    if (o.spot_price_per_hour) {
      merged.spot_price_per_hour =
          std::max(merged.spot_price_per_hour.value_or(0), *o.spot_price_per_hour);
    }
  }
  std::vector<Offer> in_region;
  for (auto& [type, o] : by_type) in_region.push_back(std::move(o));
  OfferQuery q = query;
  q.clouds = {"aws"};
  q.regions = {config_.region};
  return find_offers(in_region, q);
}

Result<std::string> Ec2Provider::call(const NameValues& params, std::string_view action) {
  auto request =
      build_ec2_request(params, config_.region, config_.credentials, format_amz_date(clock_()));
  if (!request.is_ok()) return request.status();
  auto response = transport_(request.value());
  if (!response.is_ok()) {
    // EC2 was not reached. Not kUnavailable: the autoscaler reads that as "this offer has no
    // capacity, try the next", and every offer goes through the same endpoint.
    return Status(StatusCode::kInternal,
                  "aws ec2 " + std::string(action) + ": " + response.status().message());
  }
  if (response->status == 200) return std::move(response->body);
  auto error = parse_error_response(response->body);
  if (!error.is_ok()) {
    return Status::internal("aws ec2 " + std::string(action) + ": HTTP " +
                            std::to_string(response->status) +
                            " without an EC2 error document: " + error.status().message());
  }
  return ec2_error_status(action, error.value());
}

Instance Ec2Provider::to_instance(const Ec2Instance& e) const {
  Instance out;
  out.id = e.instance_id;
  out.cloud = "aws";
  out.instance_type = e.instance_type;
  out.region = config_.region;
  out.zone = e.availability_zone;
  out.state = ec2_instance_state(e.state.code);
  out.spot = e.lifecycle == "spot";
  out.private_ip = e.private_ip;
  out.public_ip = e.public_ip;
  out.launch_time = e.launch_time;
  for (const Tag& t : e.tags) out.labels.emplace_back(t.key, t.value);
  return out;
}

Result<std::vector<Instance>> Ec2Provider::provision(const ProvisionRequest& request) {
  const Offer& offer = request.offer;
  if (offer.cloud != "aws") {
    return Status::invalid_argument("aws ec2: offer is for cloud '" + offer.cloud + "'");
  }
  if (offer.region != config_.region) {
    return Status::invalid_argument("aws ec2: offer is in region '" + offer.region +
                                    "', this provider launches in '" + config_.region + "'");
  }
  if (request.spot && !offer.spot_price_per_hour) {
    return Status::invalid_argument("aws ec2: " + offer.instance_type +
                                    " has no spot price in the catalog");
  }
  RunInstancesParams p;
  p.image_id = config_.image_id;
  p.instance_type = offer.instance_type;
  p.min_count = request.count;
  p.max_count = request.count;
  p.user_data = ec2_user_data(request.bootstrap_script);
  p.spot = request.spot;
  p.tags.push_back({config_.pool_tag_key, config_.pool_tag_value});
  for (const auto& [key, value] : request.labels) p.tags.push_back({key, value});
  p.subnet_id = config_.subnet_id;
  p.security_group_ids = config_.security_group_ids;
  p.key_name = config_.key_name;
  p.client_token = request.idempotency_key;
  auto params = run_instances_params(p);
  if (!params.is_ok()) return params.status();
  auto body = call(params.value(), "RunInstances");
  if (!body.is_ok()) return body.status();
  auto result = parse_run_instances_response(body.value());
  if (!result.is_ok()) return result.status();
  std::vector<Instance> out;
  for (const Ec2Instance& e : result->instances) out.push_back(to_instance(e));
  return out;
}

Status Ec2Provider::terminate(const std::vector<std::string>& instance_ids) {
  auto params = terminate_instances_params(instance_ids);
  if (!params.is_ok()) return params.status();
  auto body = call(params.value(), "TerminateInstances");
  if (!body.is_ok()) return body.status();
  auto result = parse_terminate_instances_response(body.value());
  return result.is_ok() ? Status::ok() : result.status();
}

Result<std::vector<Ec2Instance>> Ec2Provider::describe_pool() {
  DescribeInstancesFilter filter;
  filter.tags = {{config_.pool_tag_key, config_.pool_tag_value}};
  std::vector<Ec2Instance> out;
  for (int page = 0; page < kMaxDescribePages; ++page) {
    auto body = call(describe_instances_params(filter), "DescribeInstances");
    if (!body.is_ok()) return body.status();
    auto result = parse_describe_instances_response(body.value());
    if (!result.is_ok()) return result.status();
    for (auto& e : result->instances) out.push_back(std::move(e));
    if (result->next_token.empty()) return out;
    filter.next_token = result->next_token;
  }
  return Status::internal("aws ec2 DescribeInstances: still paging after " +
                          std::to_string(kMaxDescribePages) + " pages");
}

Result<std::vector<Instance>> Ec2Provider::list_instances() {
  auto instances = describe_pool();
  if (!instances.is_ok()) return instances.status();
  std::vector<Instance> out;
  for (const Ec2Instance& e : instances.value()) out.push_back(to_instance(e));
  return out;
}

Result<std::vector<InterruptionNotice>> Ec2Provider::interruption_notices() {
  auto instances = describe_pool();
  if (!instances.is_ok()) return instances.status();
  std::vector<InterruptionNotice> out;
  for (const Ec2Instance& e : instances.value()) {
    if (e.lifecycle == "spot" && e.state_reason_code == "Server.SpotInstanceTermination") {
      out.push_back({e.instance_id, e.state_reason_code, ""});
    }
  }
  return out;
}

}  // namespace lepton::cloud::aws
