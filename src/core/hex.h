// Hexadecimal: bytes as hex digits and back, and random hex strings for tokens and ids.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace lepton {

enum class HexCase { kLower, kUpper };

// Appends the two hex digits of `byte`, high digit first: 0xAB is "ab" (or "AB").
void append_hex(std::string& out, unsigned char byte, HexCase letters = HexCase::kLower);

// Every byte as two lower-case hex digits: "\x01\xab" is "01ab".
std::string hex_encode(std::string_view bytes);

// The value of one hex digit (0-9, a-f, A-F), or -1 for any other character.
int hex_digit_value(char c);

// The bytes an even number of hex digits (either case) stand for; the error names the first
// character that is not a hex digit, or the odd length.
Result<std::string> hex_decode(std::string_view hex);

// `bytes` bytes from the system's random source (std::random_device, /dev/urandom on Linux) as
// 2 * `bytes` lower-case hex digits.
std::string random_hex(size_t bytes);

}  // namespace lepton
