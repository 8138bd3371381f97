#include "sim/published_results.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lepton::sim {
namespace {

TEST(PublishedResults, ParsesBothHeaderFormsAndAverages) {
  auto alloc = parse_published_curves(
      "workload,sc_policy,tune,seed,total_gpus,0,1,2\n"
      "openb_pod_list_default,06-FGD,1.3,42,6212,0.25,0.99,2.0\n"
      "openb_pod_list_default,06-FGD,1.3,43,6212,0.27,1.01,\n"
      "openb_pod_list_default,05-BestFit,1.3,42,6212,0.2,0.9,1.9\n",
      "a.csv");
  ASSERT_TRUE(alloc.is_ok()) << alloc.status().message();
  ASSERT_EQ(alloc->size(), 3u);
  EXPECT_TRUE(std::isnan((*alloc)[1].values[2]));
  EXPECT_DOUBLE_EQ(*published_mean(*alloc, "openb_pod_list_default", "fgd", 1), 1.0);
  EXPECT_DOUBLE_EQ(*published_mean(*alloc, "openb_pod_list_default", "fgd", 2), 2.0);
  EXPECT_FALSE(published_mean(*alloc, "openb_pod_list_default", "lepton", 1).has_value());
  EXPECT_FALSE(published_mean(*alloc, "openb_pod_list_cpu050", "fgd", 1).has_value());

  auto frag = parse_published_curves(
      "workload,sc_policy,tune,seed,0,1\nopenb_pod_list_default,06-FGD,1.3,42,5.5,5.7\n", "f.csv");
  ASSERT_TRUE(frag.is_ok()) << frag.status().message();
  EXPECT_DOUBLE_EQ(*published_mean(*frag, "openb_pod_list_default", "fgd", 1), 5.7);
}

TEST(PublishedResults, ErrorsNameTheLineAndColumn) {
  auto bad = parse_published_curves("workload,sc_policy,tune,seed,0\nw,p,1.3,42,x\n", "f.csv");
  EXPECT_EQ(bad.status().message(), "f.csv:2:12: field '0': expected a number, got 'x'");
  auto header = parse_published_curves("a,b,c\n", "h.csv");
  EXPECT_NE(header.status().message().find("h.csv:1:1: header"), std::string::npos);
  auto width = parse_published_curves("workload,sc_policy,tune,seed,0\nw,p,1.3\n", "w.csv");
  EXPECT_NE(width.status().message().find("expected 5 fields, got 3"), std::string::npos);
}

}  // namespace
}  // namespace lepton::sim
