// For parser tests: small random edits of a valid input (replace, delete or insert characters
// drawn from `alphabet`), the cheap cousin of the libFuzzer targets that runs in every test run.
#pragma once

#include <random>
#include <string>
#include <string_view>

namespace lepton::test_util {

// Applies 1..max_edits random edits to `text`.
inline std::string mutate(std::string text, std::string_view alphabet, std::mt19937& rng,
                          int max_edits = 4) {
  for (int k = 0, n = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_edits)); k < n; ++k) {
    if (text.empty()) text.push_back(alphabet[0]);
    const size_t pos = rng() % text.size();
    const char c = alphabet[rng() % alphabet.size()];
    switch (rng() % 3) {
      case 0:
        text[pos] = c;
        break;
      case 1:
        text.erase(pos, 1 + rng() % 3);
        break;
      default:
        text.insert(pos, 1, c);
    }
  }
  return text;
}

}  // namespace lepton::test_util
