#include "cloud/provider_table.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <utility>

#include "cloud/aws_credentials.h"
#include "cloud/aws_ec2_provider.h"
#include "cloud/https_client.h"
#include "cloud/polled_provider.h"
#include "cloud/sim_provider.h"

namespace lepton::cloud {
namespace {

// "HOST[:PORT]" of the aws config's endpoint, into where https_client connects.
Status parse_endpoint(const std::string& endpoint, aws::HttpsOptions& https) {
  const size_t colon = endpoint.rfind(':');
  https.connect_host = endpoint.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = endpoint.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535 ||
        https.connect_host.empty()) {
      return Status::invalid_argument("aws config: endpoint: expected HOST[:PORT], got '" +
                                      endpoint + "'");
    }
    https.connect_port = static_cast<uint16_t>(std::stoi(port));
  }
  return Status::ok();
}

// EC2 (aws_ec2_provider.h) with the credentials of the environment, over HTTPS, its listing
// polled every 15 s off the control loop; launches and terminations go through at once.
Result<std::shared_ptr<Provider>> make_aws(const ProviderContext& context) {
  auto config = aws::Ec2ProviderConfig::from_json(context.config);
  if (!config.is_ok()) return config.status();
  auto credentials = aws::default_credentials();
  if (!credentials.is_ok()) return credentials.status();
  config->credentials = std::move(*credentials);
  aws::HttpsOptions https;
  https.ca_file = config->ca_file;
  if (!config->endpoint.empty()) LEPTON_RETURN_IF_ERROR(parse_endpoint(config->endpoint, https));
  auto ec2 = std::make_shared<aws::Ec2Provider>(
      std::move(*config), context.catalog, aws::https_transport(https),
      [] { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); });
  return std::shared_ptr<Provider>(
      std::make_shared<PolledProvider>(std::move(ec2), std::chrono::seconds(15)));
}

// The emulated clouds (sim_provider.h); their machines live under DATA_DIR/demo-clouds.
Result<std::shared_ptr<Provider>> make_sim(const ProviderContext& context) {
  SimCloudOptions options;
  if (!context.config.empty()) {
    auto parsed = SimCloudOptions::from_json(context.config);
    if (!parsed.is_ok()) return parsed.status();
    options = std::move(*parsed);
  }
  options.state_dir = context.data_dir + "/demo-clouds";
  auto provider = SimProvider::create(context.catalog, std::move(options));
  if (!provider.is_ok()) return provider.status();
  return std::shared_ptr<Provider>(std::move(*provider));
}

constexpr std::array kProviderKinds{
    ProviderKind{
        .name = "sim",
        .description = "emulated clouds priced from the offer catalog; each machine is a local "
                       "agent (demos and tests)",
        .config_flag = "--demo-clouds-config",
        .config_help = "JSON file of the emulation: boot_s, notice_s, mtbi_s, capacity, "
                       "pool_capacity, quota_gpus, clouds, seed (implies --demo-clouds)",
        .machines_in = "",
        .make = make_sim,
    },
    ProviderKind{
        .name = "aws",
        .description = "Amazon EC2 in one region, through its Query API over HTTPS",
        .config_flag = "--aws-config",
        .config_help =
            "JSON file of an AWS EC2 account to rent from: region, image_id (an AMI with GPU "
            "drivers and lepton on its PATH), subnet_id, security_group_ids, key_name, pool_tag; "
            "credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS_PROFILE "
            "profile of ~/.aws/credentials (docs/clouds.md)",
        .machines_in = "EC2",
        .make = make_aws,
    },
};

}  // namespace

std::span<const ProviderKind> provider_kinds() { return kProviderKinds; }

const ProviderKind* find_provider_kind(std::string_view name) {
  auto it = std::find_if(kProviderKinds.begin(), kProviderKinds.end(),
                         [&](const ProviderKind& k) { return k.name == name; });
  return it == kProviderKinds.end() ? nullptr : &*it;
}

}  // namespace lepton::cloud
