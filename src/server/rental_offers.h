// The cloud autoscaler's side of the renting policy (sched/renting.h): providers' offers and
// job specs as the policy sees them, so cloud_autoscaler.cpp can call it.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cloud/catalog.h"
#include "core/gpu_model.h"
#include "core/job.h"
#include "sched/renting.h"
#include "server/provisioning.h"

namespace lepton::server {

// An offer as the renting policy (sched/renting.h) sees it: launched spot or on demand at
// `price`; none when it cannot be launched so (no spot price, GCP's GPU-only rows whose host is
// unpriced, less than one GPU).
inline std::optional<sched::RentalOffer> rental_offer(const cloud::Offer& o, bool spot,
                                                      double price) {
  if (o.instance_type == cloud::kGcpAttachableInstance || o.gpu_count < 1 || std::isnan(price)) {
    return std::nullopt;
  }
  return sched::RentalOffer{.key = cloud::offer_pool(o, spot),
                            .cloud = o.cloud,
                            .region = o.region,
                            .zone = o.zone,
                            .gpu_model = o.gpu_model,
                            .gpus = static_cast<int>(o.gpu_count),
                            .cpu_milli = static_cast<int64_t>(o.vcpus * 1000),
                            .memory_mib = static_cast<int64_t>(o.memory_gib * 1024),
                            .price_per_hour = price,
                            .spot = spot};
}

inline sched::RentalRequest rental_request(const JobSpec& spec) {
  const Resources& r = spec.resources;
  sched::RentalRequest q{.tasks = spec.num_nodes,
                         .gpus = r.gpu_count,
                         .gpu_milli = r.gpu_milli,
                         .cpu_milli = r.cpu_milli,
                         .memory_mib = r.memory_mib,
                         .models = {},
                         .clouds = spec.clouds,
                         .regions = spec.regions,
                         .spot_ok = spec.use_spot};
  for (const std::string& m : spec.gpu_models) q.models.push_back(canonical_gpu_model(m));
  return q;
}

// The providers' offers, each on demand and (with a spot price) spot.
struct RentalOffers {
  std::vector<sched::RentalOffer> offers;
  std::vector<size_t> source;  // per offer: its index in the providers' offers
  const cloud::Offer& offer(const std::vector<std::pair<size_t, cloud::Offer>>& from,
                            size_t i) const {
    return from[source[i]].second;
  }
};

inline RentalOffers rental_offers(const std::vector<std::pair<size_t, cloud::Offer>>& from) {
  RentalOffers out;
  for (size_t i = 0; i < from.size(); ++i) {
    for (bool spot : {false, true}) {
      const cloud::Offer& o = from[i].second;
      if (auto r = rental_offer(o, spot, offer_price(o, spot))) {
        out.offers.push_back(std::move(*r));
        out.source.push_back(i);
      }
    }
  }
  return out;
}

// The offers `request` may launch, spot or on demand, without the pools skipped after a failure.
inline std::vector<size_t> launchable(const RentalOffers& rentals,
                                      const sched::RentalRequest& request, bool spot,
                                      const FailureMemory& failures, int64_t now_ms) {
  std::vector<size_t> out;
  for (size_t i : sched::fitting_offers(rentals.offers, request)) {
    const sched::RentalOffer& o = rentals.offers[i];
    if (o.spot == spot && !failures.skip(o.key, now_ms)) out.push_back(i);
  }
  return out;
}

}  // namespace lepton::server
