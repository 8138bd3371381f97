// SHA-256 (FIPS 180-4), self-contained so every module can hash without a crypto library.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lepton {

// Hashes data given in pieces: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();

  void update(std::string_view data);
  // The 32-byte digest of everything given to update(); the hasher is spent afterwards.
  std::string digest();

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> block_{};
  size_t block_size_ = 0;     // bytes waiting in block_
  uint64_t total_bytes_ = 0;  // all bytes given to update()
};

// The SHA-256 of `data` as 64 lower-case hex digits.
std::string sha256_hex(std::string_view data);

}  // namespace lepton
