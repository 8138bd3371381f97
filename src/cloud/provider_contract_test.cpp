// The contract every provider of the table (provider_table.h) keeps, as a typed test suite over
// fixtures, one per way a provider is built: the emulated clouds (sim) directly and polled (as
// the server could wrap any provider), and EC2 (the aws row) directly and polled, as the aws row
// builds it, against a stand-in for the EC2 endpoint that keeps its instances and answers with
// the published example responses (testing/fake_ec2.h). A fixture has a name, the table row it
// stands for, whether its provider can interrupt on request, and `provider()`; one fixture object
// lives for one test. A row of the table without a fixture fails ProviderTable below.
//
// The contract: offers() is cheapest first and not empty for a catalog with the provider's cloud;
// provision(count = n) returns n instances with distinct ids and the request's labels;
// list_instances() lists them; terminate() ends them (they leave the list or show terminating or
// terminated); a second provision with the same idempotency key launches nothing; a request for
// an unknown instance type, an empty request, a count of 0 and an unknown instance to terminate
// are errors; interrupt() posts a notice on emulated clouds and is a clear error elsewhere.
//
// Not here: the ssh provider (ssh_provider.h), which is not in the table (no server rents from it;
// `lepton node add --ssh` drives it). It could run without sshd (ssh_provider_test.cpp's
// FakeSshProvider plays ssh with a local shell and a stand-in lepton), but its offers are the
// configured hosts, one machine each: provisioning an offer launches that one host, so the
// provision(count = n) clause needs a fixture of its own; ssh_provider_test.cpp covers it for now.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cloud/aws_ec2_provider.h"
#include "cloud/polled_provider.h"
#include "cloud/provider_table.h"
#include "cloud/sim_provider.h"
#include "cloud/testing/fake_ec2.h"

namespace lepton::cloud {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Three aws offers in one region, none cheapest by accident of order, and one of gcp.
std::vector<Offer> contract_catalog() {
  auto offer = [](std::string cloud, std::string type, std::string model, double gpus, double price,
                  std::optional<double> spot, std::string region) {
    return Offer{.cloud = std::move(cloud),
                 .instance_type = std::move(type),
                 .gpu_model = std::move(model),
                 .gpu_count = gpus,
                 .vcpus = 8,
                 .memory_gib = 32,
                 .price_per_hour = price,
                 .spot_price_per_hour = spot,
                 .region = std::move(region),
                 .zone = ""};
  };
  return {offer("aws", "p5.48xlarge", "H100", 8, 98.32, 40.0, "us-east-1"),
          offer("aws", "g5.xlarge", "A10G", 1, 1.006, 0.4, "us-east-1"),
          offer("aws", "g6.xlarge", "L4", 1, 0.805, std::nullopt, "us-east-1"),
          offer("gcp", "g2-standard-4", "L4", 1, 0.7, std::nullopt, "us-central1")};
}

// A directory of its own for one test, removed after it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lepton-provider-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Emulated clouds whose machines never boot within a test (nothing runs on this machine).
std::shared_ptr<SimProvider> make_sim(const fs::path& dir) {
  auto sim = SimProvider::create(contract_catalog(),
                                 {.state_dir = dir.string(), .boot_s = 3600, .notice_s = 120});
  if (!sim.is_ok()) std::abort();
  return std::move(*sim);
}

class Sim {
 public:
  static constexpr const char* kName = "Sim";
  static constexpr std::string_view kTableRow = "sim";
  static constexpr bool kInterrupts = true;
  Provider& provider() { return *provider_; }

 private:
  TempDir dir_;
  std::shared_ptr<Provider> provider_ = make_sim(dir_.path());
};

class PolledSim {
 public:
  static constexpr const char* kName = "PolledSim";
  static constexpr std::string_view kTableRow = "sim";
  static constexpr bool kInterrupts = true;
  Provider& provider() { return *provider_; }

 private:
  TempDir dir_;
  std::shared_ptr<Provider> provider_ =
      std::make_shared<PolledProvider>(make_sim(dir_.path()), 20ms);
};

aws::Ec2ProviderConfig ec2_config() {
  aws::Ec2ProviderConfig c;
  c.region = "us-east-1";
  c.credentials = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  c.image_id = "ami-60a54009";
  c.subnet_id = "subnet-56f5f633";
  return c;
}

aws::Ec2Clock fixed_clock() {
  return [] {
    using namespace std::chrono;
    return sys_seconds(sys_days(year(2015) / 8 / 30) + hours(12) + minutes(36));
  };
}

const std::set<std::string> kEc2Types = {"p5.48xlarge", "g5.xlarge", "g6.xlarge"};

class Ec2 {
 public:
  static constexpr const char* kName = "Ec2";
  static constexpr std::string_view kTableRow = "aws";
  static constexpr bool kInterrupts = false;
  Provider& provider() { return *provider_; }

 private:
  aws_testing::FakeEc2 ec2_{LEPTON_SOURCE_DIR "/src/cloud/testdata/ec2", kEc2Types};
  std::shared_ptr<Provider> provider_ = std::make_shared<aws::Ec2Provider>(
      ec2_config(), contract_catalog(), ec2_.transport(), fixed_clock());
};

// As the aws row builds it (provider_table.cpp), polled more often.
class PolledEc2 {
 public:
  static constexpr const char* kName = "PolledEc2";
  static constexpr std::string_view kTableRow = "aws";
  static constexpr bool kInterrupts = false;
  Provider& provider() { return *provider_; }

 private:
  aws_testing::FakeEc2 ec2_{LEPTON_SOURCE_DIR "/src/cloud/testdata/ec2", kEc2Types};
  std::shared_ptr<Provider> provider_ = std::make_shared<PolledProvider>(
      std::make_shared<aws::Ec2Provider>(ec2_config(), contract_catalog(), ec2_.transport(),
                                         fixed_clock()),
      20ms);
};

using Fixtures = ::testing::Types<Sim, PolledSim, Ec2, PolledEc2>;

struct FixtureName {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

// Waits up to 5 s for `pred` (polled providers answer from their last poll).
bool eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 250; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

template <typename Fixture>
class ProviderContract : public ::testing::Test {
 protected:
  Provider& provider() { return fixture_.provider(); }

  // The cheapest offer the provider has (spot: with a spot price).
  Offer cheapest(bool spot) {
    OfferQuery query;
    query.spot = spot;
    auto offers = provider().offers(query);
    EXPECT_TRUE(offers.is_ok()) << offers.status().message();
    EXPECT_FALSE(offers.is_ok() && offers->empty());
    return offers.is_ok() && !offers->empty() ? offers->front() : Offer{};
  }

  ProvisionRequest request(int count, bool spot = false) {
    return {.offer = cheapest(spot),
            .spot = spot,
            .count = count,
            .bootstrap_script = "exec lepton agent\n",
            .labels = {{"lepton-job", "j-42"}, {"lepton-queue", "default"}},
            .idempotency_key = ""};
  }

  // The instances listed, by id.
  std::map<std::string, Instance> listed() {
    auto list = provider().list_instances();
    EXPECT_TRUE(list.is_ok()) << list.status().message();
    std::map<std::string, Instance> out;
    if (list.is_ok()) {
      for (const Instance& i : *list) out[i.id] = i;
    }
    return out;
  }

  Fixture fixture_;
};

TYPED_TEST_SUITE(ProviderContract, Fixtures, FixtureName);

TYPED_TEST(ProviderContract, IsNamedAsItsTableRow) {
  EXPECT_EQ(this->provider().name(), TypeParam::kTableRow);
  EXPECT_NE(find_provider_kind(this->provider().name()), nullptr);
}

TYPED_TEST(ProviderContract, OffersAreCheapestFirstAndNotEmpty) {
  for (const bool spot : {false, true}) {
    OfferQuery query;
    query.spot = spot;
    auto offers = this->provider().offers(query);
    ASSERT_TRUE(offers.is_ok()) << offers.status().message();
    ASSERT_GE(offers->size(), 2u) << "spot " << spot;
    auto price = [&](const Offer& o) {
      return spot ? o.spot_price_per_hour.value_or(-1) : o.price_per_hour;
    };
    for (size_t i = 1; i < offers->size(); ++i) {
      EXPECT_LE(price((*offers)[i - 1]), price((*offers)[i]))
          << (*offers)[i - 1].instance_type << " before " << (*offers)[i].instance_type;
    }
    if (spot) {
      for (const Offer& o : *offers) EXPECT_TRUE(o.spot_price_per_hour) << o.instance_type;
    }
  }
  OfferQuery aws;
  aws.clouds = {"aws"};
  aws.gpu_model = "H100";
  auto h100 = this->provider().offers(aws);
  ASSERT_TRUE(h100.is_ok()) << h100.status().message();
  ASSERT_EQ(h100->size(), 1u);
  EXPECT_EQ((*h100)[0].instance_type, "p5.48xlarge");
}

TYPED_TEST(ProviderContract, ProvisionLaunchesCountInstancesWithDistinctIdsAndTheLabels) {
  const ProvisionRequest request = this->request(3);
  auto launched = this->provider().provision(request);
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  ASSERT_EQ(launched->size(), 3u);
  std::set<std::string> ids;
  for (const Instance& i : *launched) {
    EXPECT_FALSE(i.id.empty());
    ids.insert(i.id);
    EXPECT_EQ(i.cloud, request.offer.cloud);
    EXPECT_EQ(i.instance_type, request.offer.instance_type);
    EXPECT_FALSE(i.spot);
    for (const auto& label : request.labels) {
      EXPECT_NE(std::find(i.labels.begin(), i.labels.end(), label), i.labels.end())
          << i.id << " lacks " << label.first;
    }
  }
  EXPECT_EQ(ids.size(), 3u) << "instance ids are distinct";
}

TYPED_TEST(ProviderContract, ListInstancesListsWhatWasProvisioned) {
  auto launched = this->provider().provision(this->request(2, /*spot=*/true));
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  const std::map<std::string, Instance> listed = this->listed();
  for (const Instance& i : *launched) {
    auto it = listed.find(i.id);
    ASSERT_NE(it, listed.end()) << i.id << " is not listed";
    EXPECT_TRUE(it->second.spot) << i.id;
    EXPECT_NE(it->second.state, InstanceState::kTerminated) << i.id;
  }
}

TYPED_TEST(ProviderContract, TerminateEndsThem) {
  auto launched = this->provider().provision(this->request(2));
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  const std::string ended = (*launched)[0].id, kept = (*launched)[1].id;
  ASSERT_TRUE(this->provider().terminate({ended}).is_ok());
  EXPECT_TRUE(eventually([&] {
    const std::map<std::string, Instance> listed = this->listed();
    auto it = listed.find(ended);
    return it == listed.end() || it->second.state == InstanceState::kTerminating ||
           it->second.state == InstanceState::kTerminated;
  })) << ended
      << " is still listed as live";
  const std::map<std::string, Instance> listed = this->listed();
  ASSERT_TRUE(listed.count(kept)) << "terminating one instance ended another";
  EXPECT_NE(listed.at(kept).state, InstanceState::kTerminating);
  EXPECT_NE(listed.at(kept).state, InstanceState::kTerminated);
}

TYPED_TEST(ProviderContract, TheSameIdempotencyKeyLaunchesOnce) {
  ProvisionRequest request = this->request(2);
  request.idempotency_key = "j-42-1700000000000";
  auto first = this->provider().provision(request);
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  auto again = this->provider().provision(request);
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  std::set<std::string> first_ids, again_ids;
  for (const Instance& i : *first) first_ids.insert(i.id);
  for (const Instance& i : *again) again_ids.insert(i.id);
  EXPECT_EQ(again_ids, first_ids);
  // Nothing else was launched: the provider lists these two only.
  EXPECT_TRUE(eventually([&] { return this->listed().size() == 2; }));
  std::map<std::string, Instance> listed = this->listed();
  EXPECT_EQ(listed.size(), 2u);
  // Another key launches again.
  request.idempotency_key = "j-42-1700000000001";
  auto other = this->provider().provision(request);
  ASSERT_TRUE(other.is_ok()) << other.status().message();
  EXPECT_FALSE(first_ids.count(other->front().id));
}

TYPED_TEST(ProviderContract, BadRequestsAreErrors) {
  ProvisionRequest unknown_type = this->request(1);
  unknown_type.offer.instance_type = "x9.nonexistent";
  auto a = this->provider().provision(unknown_type);
  ASSERT_FALSE(a.is_ok()) << "an unknown instance type was launched";
  EXPECT_FALSE(a.status().message().empty());

  auto b = this->provider().provision(ProvisionRequest{});
  ASSERT_FALSE(b.is_ok()) << "an empty request was launched";
  EXPECT_FALSE(b.status().message().empty());

  ProvisionRequest none = this->request(1);
  none.count = 0;
  auto c = this->provider().provision(none);
  ASSERT_FALSE(c.is_ok()) << "a count of 0 was accepted";
  EXPECT_NE(c.status().message().find("count"), std::string::npos) << c.status().message();

  const Status d = this->provider().terminate({"i-0000000000000dead"});
  ASSERT_FALSE(d.is_ok()) << "an unknown instance was terminated";
  EXPECT_NE(d.message().find("i-0000000000000dead"), std::string::npos) << d.message();
  EXPECT_TRUE(this->listed().empty()) << "a failed request launched something";
}

TYPED_TEST(ProviderContract, InterruptWorksOnEmulatedCloudsAndIsAClearErrorElsewhere) {
  auto launched = this->provider().provision(this->request(1, /*spot=*/true));
  ASSERT_TRUE(launched.is_ok()) << launched.status().message();
  const std::string id = launched->front().id;
  const Status s = this->provider().interrupt(id);
  if constexpr (TypeParam::kInterrupts) {
    ASSERT_TRUE(s.is_ok()) << s.message();
    EXPECT_TRUE(eventually([&] {
      auto notices = this->provider().interruption_notices();
      return notices.is_ok() && std::any_of(notices->begin(), notices->end(),
                                            [&](const auto& n) { return n.instance_id == id; });
    })) << "no notice for "
        << id;
  } else {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "provider " + std::string(TypeParam::kTableRow) +
                               ": interrupting an instance on request is only possible on "
                               "emulated clouds (--demo-clouds)");
    auto notices = this->provider().interruption_notices();
    ASSERT_TRUE(notices.is_ok()) << notices.status().message();
    EXPECT_TRUE(notices->empty());
  }
}

// Every row of the table has a fixture above (a new row fails here until it has one).
TEST(ProviderTable, EveryRowHasAContractFixture) {
  const std::set<std::string_view> covered = {Sim::kTableRow, PolledSim::kTableRow, Ec2::kTableRow,
                                              PolledEc2::kTableRow};
  ASSERT_FALSE(provider_kinds().empty());
  for (const ProviderKind& kind : provider_kinds()) {
    EXPECT_TRUE(covered.count(kind.name)) << kind.name << " has no contract fixture";
  }
}

}  // namespace
}  // namespace lepton::cloud
