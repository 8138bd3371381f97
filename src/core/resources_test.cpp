#include "core/resources.h"

#include <gtest/gtest.h>

namespace lepton {
namespace {

TEST(Resources, ValidateNamesTheField) {
  EXPECT_TRUE((Resources{1000, 1024, 1, 250}).validate().is_ok());
  EXPECT_TRUE((Resources{1000, 1024, 8, 1000}).validate().is_ok());
  Status s = Resources{1000, 1024, 2, 500}.validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("gpu_milli"), std::string::npos);
  EXPECT_NE((Resources{-1, 0, 0, 0}).validate().message().find("cpu_milli"), std::string::npos);
  EXPECT_FALSE((Resources{0, 0, 0, 10}).validate().is_ok());
  EXPECT_FALSE((Resources{0, 0, 1, 1001}).validate().is_ok());
}

TEST(Resources, ParseGpuAmount) {
  auto quarter = parse_gpu_amount("0.25");
  ASSERT_TRUE(quarter.is_ok());
  EXPECT_EQ(quarter->gpu_count, 1);
  EXPECT_EQ(quarter->gpu_milli, 250);
  auto eight = parse_gpu_amount("8");
  ASSERT_TRUE(eight.is_ok());
  EXPECT_EQ(eight->gpu_count, 8);
  EXPECT_EQ(eight->gpu_milli, 1000);
  EXPECT_EQ(eight->total_gpu_milli(), 8000);
  for (const char* bad : {"", "abc", "0", "-1", "1.5", "0.0001", "nan", "inf", "2x"}) {
    EXPECT_FALSE(parse_gpu_amount(bad).is_ok()) << bad;
  }
}

}  // namespace
}  // namespace lepton
