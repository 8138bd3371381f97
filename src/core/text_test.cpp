#include "core/text.h"

#include <gtest/gtest.h>

namespace lepton {
namespace {

TEST(Text, TrimSpaceTakesWhiteSpaceOffBothEnds) {
  EXPECT_EQ(trim_space(" \t a b \r\n"), "a b");
  EXPECT_EQ(trim_space("ab"), "ab");
  EXPECT_EQ(trim_space(" \r\n\t"), "");
  EXPECT_EQ(trim_space(""), "");
}

}  // namespace
}  // namespace lepton
