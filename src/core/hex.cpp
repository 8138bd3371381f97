#include "core/hex.h"

#include <random>

namespace lepton {

void append_hex(std::string& out, unsigned char byte, HexCase letters) {
  static constexpr char kLower[] = "0123456789abcdef";
  static constexpr char kUpper[] = "0123456789ABCDEF";
  const char* digits = letters == HexCase::kUpper ? kUpper : kLower;
  out += digits[byte >> 4];
  out += digits[byte & 0xF];
}

std::string hex_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_hex(out, static_cast<unsigned char>(c));
  return out;
}

int hex_digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> hex_decode(std::string_view hex) {
  for (size_t i = 0; i < hex.size(); ++i) {
    if (hex_digit_value(hex[i]) < 0) {
      return Status::invalid_argument("hex: expected a hex digit (0-9, a-f, A-F) at character " +
                                      std::to_string(i + 1) + ", got '" + std::string(1, hex[i]) +
                                      "'");
    }
  }
  if (hex.size() % 2 != 0) {
    return Status::invalid_argument("hex: expected an even number of digits, got " +
                                    std::to_string(hex.size()));
  }
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    out += static_cast<char>(hex_digit_value(hex[i]) * 16 + hex_digit_value(hex[i + 1]));
  }
  return out;
}

std::string random_hex(size_t bytes) {
  std::random_device random;
  std::string out;
  out.reserve(bytes * 2);
  for (size_t i = 0; i < bytes; ++i) append_hex(out, static_cast<unsigned char>(random()));
  return out;
}

}  // namespace lepton
