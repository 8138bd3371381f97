#include "core/hex.h"

#include <gtest/gtest.h>

#include <set>

namespace lepton {
namespace {

TEST(Hex, EncodesEveryByteAsTwoLowerCaseDigits) {
  EXPECT_EQ(hex_encode(""), "");
  EXPECT_EQ(hex_encode(std::string_view("\x00\x01\x7f\x80\xab\xff", 6)), "00017f80abff");
  EXPECT_EQ(hex_encode("abc"), "616263");
}

TEST(Hex, AppendsOneByteInEitherCase) {
  std::string out = "%";
  append_hex(out, 0xE1, HexCase::kUpper);
  append_hex(out, 0x0B);
  EXPECT_EQ(out, "%E10b");
}

TEST(Hex, DigitValues) {
  EXPECT_EQ(hex_digit_value('0'), 0);
  EXPECT_EQ(hex_digit_value('9'), 9);
  EXPECT_EQ(hex_digit_value('a'), 10);
  EXPECT_EQ(hex_digit_value('F'), 15);
  EXPECT_EQ(hex_digit_value('g'), -1);
  EXPECT_EQ(hex_digit_value('/'), -1);
}

TEST(Hex, DecodesWhatItEncodes) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  auto decoded = hex_decode(hex_encode(all));
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, all);
  auto upper = hex_decode("ABcd");
  ASSERT_TRUE(upper.is_ok()) << upper.status().message();
  EXPECT_EQ(*upper, "\xab\xcd");
}

TEST(Hex, DecodeErrorsNameTheCharacterOrTheLength) {
  EXPECT_EQ(hex_decode("0g").status().message(),
            "hex: expected a hex digit (0-9, a-f, A-F) at character 2, got 'g'");
  EXPECT_EQ(hex_decode("abc").status().message(), "hex: expected an even number of digits, got 3");
}

TEST(Hex, RandomHexHasTwoDigitsABytesAndDiffers) {
  const std::string a = random_hex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  std::set<std::string> seen;
  for (int i = 0; i < 8; ++i) seen.insert(random_hex(16));
  EXPECT_EQ(seen.size(), 8u);
}

}  // namespace
}  // namespace lepton
