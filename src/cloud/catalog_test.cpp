#include "cloud/catalog.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "core/gpu_model.h"
#include "core/testing/mutate.h"

namespace lepton::cloud {
namespace {

const std::string kCatalogDir = std::string(LEPTON_SOURCE_DIR) + "/data/catalog";

// AWS's column order, with a quoted GpuInfo like the real file's.
const char* kAwsHeader =
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
    "AvailabilityZone,Arch\n";

std::string error_of(const std::string& content, std::string_view cloud = "aws") {
  auto r = parse_catalog(content, "c.csv", cloud);
  return r.is_ok() ? "" : r.status().message();
}

TEST(CatalogCsv, QuotedCommasDoubledQuotesCrlfAndEmptyFields) {
  auto r = parse_catalog(
      std::string(kAwsHeader) +
          "p5.48xlarge,H100,8.0,192.0,2048.0,\"{'Gpus': [{'Name': 'H100', 'Count': 8}]}\",98.32,"
          "12.5,us-east-1,use1-az1,x86_64\r\n"
          "\r\n"
          "g5.xlarge,A10G,1.0,4.0,16.0,\"say \"\"hi\"\", twice\",1.006,,us-west-2,,x86_64\r\n"
          "\"g4dn.xlarge\",T4,1.0,4.0,16.0,\"line\nbreak\",0.526,0.1,\"eu-west-1\",\"\",x86_64",
      "c.csv", "aws");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 3u);
  const Offer& p5 = (*r)[0];
  EXPECT_EQ(p5.cloud, "aws");
  EXPECT_EQ(p5.instance_type, "p5.48xlarge");
  EXPECT_EQ(p5.gpu_model, "H100");
  EXPECT_EQ(p5.gpu_count, 8);
  EXPECT_EQ(p5.vcpus, 192);
  EXPECT_EQ(p5.memory_gib, 2048);
  EXPECT_DOUBLE_EQ(p5.price_per_hour, 98.32);
  EXPECT_DOUBLE_EQ(*p5.spot_price_per_hour, 12.5);
  EXPECT_EQ(p5.region, "us-east-1");
  EXPECT_EQ(p5.zone, "use1-az1");
  EXPECT_FALSE((*r)[1].spot_price_per_hour.has_value());  // empty SpotPrice
  EXPECT_EQ((*r)[1].zone, "");
  EXPECT_EQ((*r)[2].instance_type, "g4dn.xlarge");
  EXPECT_EQ((*r)[2].region, "eu-west-1");
}

TEST(CatalogCsv, ColumnsAreFoundByNameAndRowsWithoutGpusSkipped) {
  // Lambda's order: Price before Region, GpuInfo after it, no AvailabilityZone.
  auto r = parse_catalog(
      "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,"
      "SpotPrice\n"
      "gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,23.92,us-east-1,\"{'a': 1, 'b': 2}\",\n"
      "cpu_4x_general,,,4.0,16.0,0.1,us-east-1,,\n",
      "l.csv", "lambda");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].zone, "");
  EXPECT_DOUBLE_EQ((*r)[0].price_per_hour, 23.92);
}

TEST(CatalogCsv, ErrorsNameFileLineColumnAndField) {
  EXPECT_EQ(error_of(std::string(kAwsHeader) +
                     "p5.48xlarge,H100,8.0,192.0,2048.0,\"{'a': 1, 'b': 2}\",9x8,,us-east-1,a,x\n"),
            "c.csv:2:54: field 'Price': expected a number >= 0, got '9x8'");
  EXPECT_EQ(
      error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,4.0,16.0,,1.0,,us-east-1,a,x\r\n"
                                         "g5.xlarge,A10G,zero,4.0,16.0,,1.0,,us-east-1,a,x\r\n"),
      "c.csv:3:16: field 'AcceleratorCount': expected a number > 0, got 'zero'");
  EXPECT_EQ(error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,4.0,16.0,,1.0,-1,us,a,x\n"),
            "c.csv:2:34: field 'SpotPrice': expected a number >= 0, got '-1'");
  EXPECT_EQ(error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,nan,16.0,,1.0,,us,a,x\n"),
            "c.csv:2:20: field 'vCPUs': expected a number >= 0, got 'nan'");
  EXPECT_EQ(error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,4.0,16.0,,1.0,,,a,x\n"),
            "c.csv:2:35: field 'Region': expected a region, got ''");
  EXPECT_EQ(error_of("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,SpotPrice,"
                     "Region\n"),
            "c.csv:1:1: header: missing column 'Price'");
  // The line of an unterminated quote is where it opened, even after a quoted line break.
  EXPECT_EQ(error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,4.0,16.0,\"a\nb,1.0,,us,a,x\n"),
            "c.csv:2:29: unterminated quoted field (no closing '\"')");
  EXPECT_EQ(error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,4.0,16.0,\"a\"b,1,,us,a,x\n"),
            "c.csv:2:32: expected ',' or the end of the line after a closing quote");
  EXPECT_EQ(error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,4.0,16.0,a\"b,1,,us,a,x\n"),
            "c.csv:2:30: a '\"' inside an unquoted field (quote the whole field)");
  EXPECT_EQ(error_of(std::string(kAwsHeader) + "g5.xlarge,A10G,1.0,4.0,16.0\n"),
            "c.csv:2:28: row: expected 11 fields, got 5");
  EXPECT_EQ(error_of(""), "c.csv:1:1: header: the file is empty");
  auto missing = load_catalog_file("/nonexistent/aws_v8.csv", "aws");
  EXPECT_EQ(missing.status().message(), "/nonexistent/aws_v8.csv: cannot open the file");
}

TEST(CatalogCsv, RowsWithoutOnDemandPriceAreSkipped) {
  auto r =
      parse_catalog(std::string(kAwsHeader) + "p5e.48xlarge,H200,8.0,192.0,2048.0,,,8.0,us,a,x\n",
                    "c.csv", "aws");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(r->empty());
}

const char* kGcpHeader =
    "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,"
    "AvailabilityZone,Price,SpotPrice\n";

TEST(CatalogGcp, HostsWithBuiltInGpusAreCombinedWithTheirAcceleratorRow) {
  auto r = parse_catalog(
      std::string(kGcpHeader) +
          "a3-highgpu-8g,208.0,1872.0,,,,us-central1,us-central1-a,10.0,2.0\n"
          "a3-highgpu-8g,208.0,1872.0,,,,us-central1,us-central1-b,10.0,2.0\n"  // no GPU row
          "a4-highgpu-8g,224.0,3968.0,,,,us-central1,us-central1-a,0.0,0.0\n"   // unpriced host
          "g2-standard-24,24.0,96.0,,,,us-central1,us-central1-a,1.0,\n"
          "n1-standard-8,8.0,30.0,,,,us-central1,us-central1-a,0.38,0.08\n"  // CPU only
          ",,,H100,8,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 81920}}]},us-central1,us-central1-a,"
          "80.0,20.0\n"
          ",,,B200,8,,us-central1,us-central1-a,64.0,30.0\n"
          ",,,L4,2,,us-central1,us-central1-a,1.2,0.3\n"
          ",,,T4,1,,us-central1,us-central1-a,0.35,0.11\n",
      "g.csv", "gcp");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 3u);
  const Offer& a3 = (*r)[0];
  EXPECT_EQ(a3.instance_type, "a3-highgpu-8g");
  EXPECT_EQ(a3.gpu_model, "H100");
  EXPECT_EQ(a3.gpu_count, 8);
  EXPECT_EQ(a3.vcpus, 208);
  EXPECT_DOUBLE_EQ(a3.price_per_hour, 90.0);
  EXPECT_DOUBLE_EQ(*a3.spot_price_per_hour, 22.0);
  EXPECT_EQ(a3.zone, "us-central1-a");
  const Offer& g2 = (*r)[1];
  EXPECT_EQ(g2.instance_type, "g2-standard-24");
  EXPECT_EQ(g2.gpu_model, "L4");
  EXPECT_EQ(g2.gpu_count, 2);
  EXPECT_DOUBLE_EQ(g2.price_per_hour, 2.2);
  EXPECT_FALSE(g2.spot_price_per_hour.has_value());  // the host has no spot price
  const Offer& t4 = (*r)[2];
  EXPECT_EQ(t4.instance_type, kGcpAttachableInstance);
  EXPECT_EQ(t4.gpu_model, "T4");
  EXPECT_EQ(t4.vcpus, 0);
  EXPECT_DOUBLE_EQ(t4.price_per_hour, 0.35);
}

TEST(CatalogBundled, EveryFileLoadsWithSaneOffers) {
  auto all = load_catalog_dir(kCatalogDir);
  ASSERT_TRUE(all.is_ok()) << all.status().message();
  std::map<std::string, int> per_cloud;
  for (const Offer& o : *all) {
    ++per_cloud[o.cloud];
    EXPECT_FALSE(o.instance_type.empty());
    EXPECT_FALSE(o.region.empty());
    EXPECT_GT(o.gpu_count, 0) << o.instance_type;
    EXPECT_TRUE(std::isfinite(o.price_per_hour)) << o.instance_type;
    EXPECT_GT(o.price_per_hour, 0) << o.cloud << " " << o.instance_type;
    if (o.spot_price_per_hour) {
      EXPECT_TRUE(std::isfinite(*o.spot_price_per_hour));
    }
    EXPECT_FALSE(std::isnan(price_per_gpu_hour(o, false)));
    EXPECT_EQ(canonical_gpu_model(o.gpu_model), o.gpu_model) << o.cloud << " " << o.instance_type;
  }
  for (const char* cloud : {"aws", "gcp", "azure", "lambda", "runpod"}) {
    EXPECT_GT(per_cloud[cloud], 0) << cloud;
  }
  // Row counts from the README minus the rows documented as skipped.
  EXPECT_EQ(per_cloud["aws"], 956 - 9);    // p5e.48xlarge has no on-demand price
  EXPECT_EQ(per_cloud["azure"], 187 - 4);  // NV*as_v4 have no price
  EXPECT_EQ(per_cloud["lambda"], 374);
  EXPECT_EQ(per_cloud["runpod"], 2000);
  std::set<std::string> gcp_types;
  for (const Offer& o : *all) {
    if (o.cloud == "gcp") gcp_types.insert(o.instance_type);
  }
  for (const char* t : {"a2-highgpu-1g", "a2-megagpu-16g", "a2-ultragpu-8g", "a3-highgpu-8g",
                        "a3-megagpu-8g", "a3-ultragpu-8g", "g2-standard-96"}) {
    EXPECT_TRUE(gcp_types.count(t)) << t;
  }
  EXPECT_TRUE(gcp_types.count(std::string(kGcpAttachableInstance)));
  EXPECT_FALSE(gcp_types.count("a4-highgpu-8g"));  // unpriced host
}

class CatalogQuery : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto all = load_catalog_dir(kCatalogDir);
    ASSERT_TRUE(all.is_ok()) << all.status().message();
    offers_ = new std::vector<Offer>(std::move(*all));
  }
  static void TearDownTestSuite() { delete offers_; }
  static std::vector<Offer>* offers_;
};
std::vector<Offer>* CatalogQuery::offers_ = nullptr;

TEST_F(CatalogQuery, H100x8CheapestFirst) {
  auto q = parse_gpu_query("H100:8");
  ASSERT_TRUE(q.is_ok());
  auto found = find_offers(*offers_, *q);
  ASSERT_FALSE(found.empty());
  // By hand from runpod_v7.csv: 8x_H100_SECURE is $19.12/h in every zone; CA (CA-MTL-1) sorts
  // first. The next cheapest H100 x8 is RunPod's 8x_H100-SXM_SECURE ($23.92, H100-SXM is H100).
  EXPECT_EQ(found[0].cloud, "runpod");
  EXPECT_EQ(found[0].instance_type, "8x_H100_SECURE");
  EXPECT_EQ(found[0].region, "CA");
  EXPECT_EQ(found[0].zone, "CA-MTL-1");
  EXPECT_DOUBLE_EQ(found[0].price_per_hour, 19.12);
  EXPECT_DOUBLE_EQ(price_per_gpu_hour(found[0], false), 2.39);
  std::set<std::string> clouds;
  for (size_t i = 0; i < found.size(); ++i) {
    EXPECT_EQ(found[i].gpu_model, "H100");
    EXPECT_EQ(found[i].gpu_count, 8);
    if (i > 0) {
      EXPECT_LE(found[i - 1].price_per_hour, found[i].price_per_hour);
    }
    clouds.insert(found[i].cloud);
  }
  EXPECT_EQ(clouds, (std::set<std::string>{"aws", "gcp", "lambda", "runpod"}));  // Azure: 12
}

TEST_F(CatalogQuery, SpotCloudAndRegionFilters) {
  OfferQuery q = *parse_gpu_query("A100");
  q.spot = true;
  auto spot = find_offers(*offers_, q);
  ASSERT_FALSE(spot.empty());
  for (size_t i = 0; i < spot.size(); ++i) {
    ASSERT_TRUE(spot[i].spot_price_per_hour.has_value());
    if (i > 0) {
      EXPECT_LE(*spot[i - 1].spot_price_per_hour, *spot[i].spot_price_per_hour);
    }
  }
  EXPECT_FALSE(std::isnan(price_per_gpu_hour(spot[0], true)));

  q = *parse_gpu_query("h100-sxm:8");  // an alias
  q.clouds = {"AWS", "gcp"};
  q.regions = {"us-east-1", "us-central1-a"};
  auto some = find_offers(*offers_, q);
  ASSERT_FALSE(some.empty());
  bool saw_aws = false, saw_gcp = false;
  for (const Offer& o : some) {
    EXPECT_TRUE(o.cloud == "aws" || o.cloud == "gcp") << o.cloud;
    if (o.cloud == "aws") {
      EXPECT_EQ(o.region, "us-east-1");
    }
    if (o.cloud == "gcp") {
      EXPECT_EQ(o.zone, "us-central1-a");
    }
    saw_aws |= o.cloud == "aws";
    saw_gcp |= o.cloud == "gcp";
  }
  EXPECT_TRUE(saw_aws);
  EXPECT_TRUE(saw_gcp);

  EXPECT_TRUE(find_offers(*offers_, *parse_gpu_query("NOPE:1")).empty());
  EXPECT_TRUE(find_offers(*offers_, *parse_gpu_query("H100:3")).empty());  // exact count
  EXPECT_EQ(find_offers(*offers_, OfferQuery{}).size(), offers_->size());
}

TEST(CatalogGpuQuery, ParsesModelAndWholeCount) {
  auto q = parse_gpu_query("a100-80g:4");
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->gpu_model, "A100-80GB");
  EXPECT_EQ(q->gpu_count, 4);
  q = parse_gpu_query("A100");
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(q->gpu_count, 0);
  EXPECT_EQ(parse_gpu_query("T4:0.5").status().message(),
            "'T4:0.5': expected a whole GPU count from 1 to 1024 after ':', got '0.5' (clouds "
            "sell whole GPUs)");
  for (const char* bad :
       {"", ":8", "H100:", "H100:0", "H100:-1", "H100:x", "H100:8:1", "H100:99999", "H100:inf"}) {
    EXPECT_FALSE(parse_gpu_query(bad).is_ok()) << bad;
  }
}

TEST(CatalogMutation, NeverCrashesAndErrorsNameTheFile) {
  const std::string valid =
      std::string(kAwsHeader) +
      "p5.48xlarge,H100,8.0,192.0,2048.0,\"{'Gpus': [{'Name': 'H100', 'Count': 8}]}\",98.32,"
      "12.5,us-east-1,use1-az1,x86_64\r\n"
      "g5.xlarge,A10G,1.0,4.0,16.0,\"a \"\"b\"\"\",1.006,,us-west-2,,x86_64\n";
  const std::string gcp = std::string(kGcpHeader) +
                          "a3-highgpu-8g,208.0,1872.0,,,,us-central1,us-central1-a,10.0,2.0\n"
                          ",,,H100,8,,us-central1,us-central1-a,80.0,20.0\n"
                          ",,,T4,1,,us-central1,us-central1-a,0.35,0.11\n";
  std::mt19937 rng(42);
  const std::string alphabet = ",\"\r\n.0123456789-aAgeH\x01 ";
  int ok = 0;
  for (int i = 0; i < 3000; ++i) {
    const bool is_gcp = i % 2 == 1;
    std::string text = test_util::mutate(is_gcp ? gcp : valid, alphabet, rng);
    auto r = parse_catalog(text, "m.csv", is_gcp ? "gcp" : "aws");
    if (r.is_ok()) {
      ++ok;
      for (const Offer& o : *r) {
        EXPECT_TRUE(std::isfinite(o.price_per_hour));
        EXPECT_GT(o.gpu_count, 0);
      }
    } else {
      EXPECT_EQ(r.status().message().rfind("m.csv:", 0), 0u) << r.status().message();
    }
  }
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace lepton::cloud
