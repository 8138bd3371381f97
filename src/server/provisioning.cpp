#include "server/provisioning.h"

#include <cmath>

namespace lepton::server {

double offer_price(const cloud::Offer& offer, bool spot) {
  return spot ? offer.spot_price_per_hour.value_or(NAN) : offer.price_per_hour;
}

std::map<std::string, int64_t> FailureMemory::active(int64_t now_ms) const {
  std::map<std::string, int64_t> out;
  for (const auto& [pool, until] : until_) {
    if (now_ms < until) out[pool] = until;
  }
  return out;
}

}  // namespace lepton::server
