#include "cloud/provider_table.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

namespace lepton::cloud {
namespace {

namespace fs = std::filesystem;

std::vector<Offer> one_offer() {
  return {Offer{.cloud = "aws",
                .instance_type = "g5.xlarge",
                .gpu_model = "A10G",
                .gpu_count = 1,
                .vcpus = 4,
                .memory_gib = 16,
                .price_per_hour = 1.006,
                .spot_price_per_hour = 0.4,
                .region = "us-east-1",
                .zone = ""}};
}

class ProviderTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lepton-provider-table-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::remove_all(dir_);
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
  }

  // Builds row `name` from `config`; the error's message, or "" when it was built.
  std::string error_of(std::string_view name, const std::string& config) {
    const ProviderKind* kind = find_provider_kind(name);
    if (kind == nullptr) return "no row " + std::string(name);
    auto provider =
        kind->make({.config = config, .catalog = one_offer(), .data_dir = dir_.string()});
    return provider.is_ok() ? "" : provider.status().message();
  }

  fs::path dir_;
};

TEST_F(ProviderTableTest, RowsHaveUniqueNamesFlagsAndADescription) {
  std::set<std::string_view> names, flags;
  for (const ProviderKind& kind : provider_kinds()) {
    EXPECT_TRUE(names.insert(kind.name).second) << kind.name;
    EXPECT_TRUE(flags.insert(kind.config_flag).second) << kind.config_flag;
    EXPECT_TRUE(kind.config_flag.starts_with("--")) << kind.config_flag;
    EXPECT_FALSE(kind.description.empty()) << kind.name;
    EXPECT_FALSE(kind.config_help.empty()) << kind.name;
    EXPECT_EQ(find_provider_kind(kind.name), &kind);
  }
  EXPECT_TRUE(names.count("sim"));
  EXPECT_TRUE(names.count("aws"));
  EXPECT_EQ(find_provider_kind("slurm"), nullptr);
}

TEST_F(ProviderTableTest, SimIsBuiltFromDefaultsOrItsConfigAndErrorsNameTheField) {
  const ProviderKind* sim = find_provider_kind("sim");
  ASSERT_NE(sim, nullptr);
  auto built = sim->make({.config = "", .catalog = one_offer(), .data_dir = dir_.string()});
  ASSERT_TRUE(built.is_ok()) << built.status().message();
  EXPECT_EQ((*built)->name(), "sim");
  auto offers = (*built)->offers({});
  ASSERT_TRUE(offers.is_ok());
  EXPECT_EQ(offers->size(), 1u);
  EXPECT_EQ(sim->machines_in, "");

  EXPECT_EQ(error_of("sim", R"({"capacity": 2, "clouds": ["aws"]})"), "");
  EXPECT_EQ(error_of("sim", R"({"boot_s": -1})"), "sim clouds: boot_s: expected a number >= 0");
  EXPECT_EQ(error_of("sim", R"({"clouds": ["gcp"]})"),
            "sim clouds: clouds: the catalog has no offers of 'gcp'");
}

TEST_F(ProviderTableTest, AwsErrorsNameTheFieldOrTheMissingCredentials) {
  const ProviderKind* aws = find_provider_kind("aws");
  ASSERT_NE(aws, nullptr);
  EXPECT_EQ(aws->machines_in, "EC2");
  EXPECT_EQ(error_of("aws", R"({"region": "us-east-1"})"), "aws config: image_id: required");
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  EXPECT_NE(error_of("aws", R"({"region": "us-east-1", "image_id": "ami-1"})")
                .find("AWS_SECRET_ACCESS_KEY"),
            std::string::npos);
  ::setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
  for (const std::string endpoint : {"127.0.0.1:99999", "127.0.0.1:", ":443", "host:4x3"}) {
    EXPECT_EQ(error_of("aws", R"({"region": "us-east-1", "image_id": "ami-1", "endpoint": ")" +
                                  endpoint + "\"}"),
              "aws config: endpoint: expected HOST[:PORT], got '" + endpoint + "'");
  }
}

TEST_F(ProviderTableTest, AwsIsEc2PolledOffTheCallersThread) {
  ::setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
  // Port 1 on loopback: the first poll is refused at once, nothing leaves this machine.
  auto built = find_provider_kind("aws")->make(
      {.config = R"({"region": "us-east-1", "image_id": "ami-1", "endpoint": "127.0.0.1:1"})",
       .catalog = one_offer(),
       .data_dir = dir_.string()});
  ASSERT_TRUE(built.is_ok()) << built.status().message();
  EXPECT_EQ((*built)->name(), "aws");
  EXPECT_TRUE((*built)->calls_block());
  auto offers = (*built)->offers({});
  ASSERT_TRUE(offers.is_ok());
  EXPECT_EQ(offers->size(), 1u);
  auto listed = (*built)->list_instances();
  EXPECT_FALSE(listed.is_ok()) << "nothing answers on 127.0.0.1:1";
}

}  // namespace
}  // namespace lepton::cloud
