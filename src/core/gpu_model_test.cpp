#include "core/gpu_model.h"

#include <gtest/gtest.h>

namespace lepton {
namespace {

TEST(GpuModel, FindsByNameAndAliasCaseInsensitively) {
  ASSERT_TRUE(find_gpu_model("h100").has_value());
  EXPECT_EQ(find_gpu_model("h100")->memory_gib, 80);
  EXPECT_EQ(canonical_gpu_model("V100M32"), "V100-32GB");
  EXPECT_EQ(canonical_gpu_model("a100-80g"), "A100-80GB");
  EXPECT_FALSE(find_gpu_model("G1").has_value());
  EXPECT_EQ(canonical_gpu_model("G1"), "G1");
}

}  // namespace
}  // namespace lepton
