// Provider for Amazon EC2 on top of aws_ec2.h. It builds the signed Query API requests and reads
// the answers; the HTTP round trip is a Ec2Transport injected by the caller (tests feed it AWS's
// documented example responses). https_transport() (https_client.h) is the one for the real
// endpoint; it is tested against a local TLS server only, so this provider has never talked to the
// live EC2 service.
//
// - offers(): the bundled catalog's "aws" offers in the configured region, one per instance type
//   with no zone (the subnet decides it), at the dearest of the catalog's zones' prices.
// - provision(): one RunInstances call. The image, subnet, security groups and key pair come from
//   the config; the zone is the subnet's. Every instance is tagged with the pool tag plus the
//   request's labels, on the instance and its volumes. Spot requests use one-time Spot instances
//   that terminate on interruption, with the default maximum price (the on-demand price).
// - terminate(): one TerminateInstances call.
// - list_instances(): DescribeInstances filtered by the pool tag, following every page.
// - interruption_notices(): Spot instances of the pool whose state reason is
//   Server.SpotInstanceTermination. EC2 reports that only once it is stopping or terminating the
//   instance; the two-minute warning is visible only on the instance itself (instance metadata) or
//   through EventBridge, neither of which is read here.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cloud/aws_ec2.h"
#include "cloud/catalog.h"
#include "cloud/provider.h"

namespace lepton::cloud::aws {

struct Ec2HttpResponse {
  int status = 0;
  std::string body;
};
// Sends a signed request to https://HOST/ (HOST is the request's Host header) and returns the
// answer. A connection failure is an error Status; an HTTP error status is a response.
using Ec2Transport = std::function<Result<Ec2HttpResponse>(const HttpRequest&)>;
using Ec2Clock = std::function<std::chrono::sys_seconds()>;

struct Ec2ProviderConfig {
  std::string region;  // "us-east-1"
  Credentials credentials;
  std::string image_id;  // the AMI to launch (with GPU drivers and lepton on its PATH)
  std::string subnet_id;
  std::vector<std::string> security_group_ids;
  std::string key_name;
  std::string pool_tag_key = "lepton-pool";
  std::string pool_tag_value = "default";
  // Where the HTTPS requests go, "HOST[:PORT]"; empty: ec2.REGION.amazonaws.com:443. The Host
  // header (and so the signature) always names the regional endpoint.
  std::string endpoint;
  std::string ca_file;  // PEM certificates to trust instead of the system's

  // From a JSON object: {"region", "image_id", "subnet_id", "security_group_ids", "key_name",
  // "pool_tag", "endpoint", "ca_file"}; region and image_id are required, unknown fields are
  // errors. Credentials are not read from it (see aws_credentials.h).
  static Result<Ec2ProviderConfig> from_json(std::string_view text);
};

class Ec2Provider final : public Provider {
 public:
  Ec2Provider(Ec2ProviderConfig config, std::vector<Offer> catalog, Ec2Transport transport,
              Ec2Clock clock);

  std::string_view name() const override { return "aws"; }
  Result<std::vector<Offer>> offers(const OfferQuery& query) const override;
  Result<std::vector<Instance>> provision(const ProvisionRequest& request) override;
  Status terminate(const std::vector<std::string>& instance_ids) override;
  Result<std::vector<Instance>> list_instances() override;
  Result<std::vector<InterruptionNotice>> interruption_notices() override;
  bool calls_block() const override { return true; }  // HTTPS to the EC2 API

 private:
  // Signs and sends one call; the body of a 200 answer, else the EC2 error as a Status.
  Result<std::string> call(const NameValues& params, std::string_view action);
  Result<std::vector<Ec2Instance>> describe_pool();
  Instance to_instance(const Ec2Instance& e) const;

  Ec2ProviderConfig config_;
  std::vector<Offer> catalog_;
  Ec2Transport transport_;
  Ec2Clock clock_;
};

// The user data of a launch: a shell script for cloud-init that sets LEPTON_INSTANCE_ID from the
// instance metadata service (IMDSv2), then runs the autoscaler's bootstrap script.
std::string ec2_user_data(const std::string& bootstrap_script);

// EC2 state codes (the low byte; the high byte is for AWS's internal use) as InstanceState.
cloud::InstanceState ec2_instance_state(int code);

}  // namespace lepton::cloud::aws
