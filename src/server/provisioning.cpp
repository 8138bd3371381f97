#include "server/provisioning.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "core/gpu_model.h"

namespace lepton::server {

namespace {

bool iequal(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// GPUs of one task as a machine must have them: whole GPUs, or one GPU for a share.
double task_gpus(const JobSpec& spec) {
  const Resources& r = spec.resources;
  if (r.gpu_count == 0) return 0;
  return r.fractional() ? 1.0 : static_cast<double>(r.gpu_count);
}

}  // namespace

double offer_price(const cloud::Offer& offer, bool spot) {
  return spot ? offer.spot_price_per_hour.value_or(NAN) : offer.price_per_hour;
}

bool offer_fits(const cloud::Offer& offer, const JobSpec& spec) {
  // A GPU-only GCP row has no priced host: it cannot be launched as it stands.
  if (offer.instance_type == cloud::kGcpAttachableInstance) return false;
  if (spec.use_spot && !offer.spot_price_per_hour) return false;
  const double gpus = task_gpus(spec);
  if (gpus == 0 || offer.gpu_count < gpus) return false;  // the catalog sells GPU machines only
  if (!spec.gpu_models.empty() &&
      std::none_of(spec.gpu_models.begin(), spec.gpu_models.end(), [&](const std::string& m) {
        return iequal(canonical_gpu_model(m), offer.gpu_model);
      })) {
    return false;
  }
  if (offer.vcpus * 1000 < static_cast<double>(spec.resources.cpu_milli)) return false;
  if (offer.memory_gib * 1024 < static_cast<double>(spec.resources.memory_mib)) return false;
  if (!spec.clouds.empty() &&
      std::none_of(spec.clouds.begin(), spec.clouds.end(),
                   [&](const std::string& c) { return iequal(c, offer.cloud); })) {
    return false;
  }
  if (!spec.regions.empty() &&
      std::none_of(spec.regions.begin(), spec.regions.end(), [&](const std::string& r) {
        return iequal(r, offer.region) || (!offer.zone.empty() && iequal(r, offer.zone));
      })) {
    return false;
  }
  return true;
}

std::map<std::string, int64_t> FailureMemory::active(int64_t now_ms) const {
  std::map<std::string, int64_t> out;
  for (const auto& [pool, until] : until_) {
    if (now_ms < until) out[pool] = until;
  }
  return out;
}

std::vector<cloud::Offer> candidate_offers(const std::vector<cloud::Offer>& offers,
                                           const JobSpec& spec, const FailureMemory& memory,
                                           int64_t now_ms) {
  std::vector<cloud::Offer> out;
  for (const cloud::Offer& o : offers) {
    if (offer_fits(o, spec) && !memory.skip(cloud::offer_pool(o, spec.use_spot), now_ms)) {
      out.push_back(o);
    }
  }
  const bool spot = spec.use_spot;
  std::stable_sort(out.begin(), out.end(), [&](const cloud::Offer& a, const cloud::Offer& b) {
    const double pa = offer_price(a, spot), pb = offer_price(b, spot);
    if (pa != pb) return pa < pb;
    const double ga = pa / a.gpu_count, gb = pb / b.gpu_count;
    if (ga != gb) return ga < gb;
    return std::tie(a.cloud, a.region, a.zone, a.instance_type) <
           std::tie(b.cloud, b.region, b.zone, b.instance_type);
  });
  return out;
}

void order_by_fill(std::vector<cloud::Offer>& candidates, size_t begin, size_t end, bool spot,
                   const JobSpec& spec, const std::vector<const JobSpec*>& others) {
  if (begin >= end || others.empty()) return;
  const double own = task_gpus(spec);
  std::vector<std::pair<double, size_t>> keyed;  // price per GPU expected to be used, position
  double best = std::numeric_limits<double>::infinity();
  for (size_t i = begin; i < end; ++i) {
    const cloud::Offer& o = candidates[i];
    keyed.emplace_back(offer_price(o, spot) / std::min(o.gpu_count, own), i);
    best = std::min(best, keyed.back().first);
  }
  for (auto& [key, i] : keyed) {
    const cloud::Offer& o = candidates[i];
    const double price = offer_price(o, spot);
    if (o.gpu_count <= own || price / o.gpu_count >= best) continue;
    double fill = own;
    for (const JobSpec* other : others) {
      if (fill >= o.gpu_count) break;
      if (other->num_nodes != 1 || (spot && !other->use_spot)) continue;
      JobSpec as_launched = *other;
      as_launched.use_spot = spot;  // a spot job may use an on-demand machine's room
      if (offer_fits(o, as_launched)) fill += task_gpus(*other);
    }
    key = price / std::min(fill, o.gpu_count);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<cloud::Offer> ordered;
  ordered.reserve(keyed.size());
  for (const auto& [key, i] : keyed) ordered.push_back(candidates[i]);
  std::move(ordered.begin(), ordered.end(),
            candidates.begin() + static_cast<std::ptrdiff_t>(begin));
}

namespace {

// The rooms take_room would use for the job's tasks, at most num_nodes of them.
std::vector<Room*> rooms_for(std::vector<Room>& rooms, const JobSpec& spec,
                             const std::string& job) {
  std::vector<Room*> order;
  for (Room& room : rooms) {
    if (room.for_job == job) order.push_back(&room);
  }
  for (Room& room : rooms) {
    if (room.for_job != job) order.push_back(&room);
  }
  std::vector<Room*> chosen;
  for (Room* candidate : order) {
    Room& room = *candidate;
    if (static_cast<int>(chosen.size()) == spec.num_nodes) break;
    if (room.spot && !spec.use_spot) continue;  // on-demand work does not go to spot machines
    cloud::Offer shape = room.offer;
    shape.gpu_count = room.gpus;
    shape.vcpus = static_cast<double>(room.cpu_milli) / 1000;
    shape.memory_gib = static_cast<double>(room.memory_mib) / 1024;
    JobSpec any_spot = spec;
    any_spot.use_spot = false;  // a spot job may use an on-demand machine's room
    if (offer_fits(shape, any_spot)) chosen.push_back(&room);
  }
  return chosen;
}

}  // namespace

int tasks_with_room(std::vector<Room>& rooms, const JobSpec& spec, const std::string& job) {
  return static_cast<int>(rooms_for(rooms, spec, job).size());
}

bool take_room(std::vector<Room>& rooms, const JobSpec& spec, const std::string& job) {
  const double gpus = task_gpus(spec);
  const std::vector<Room*> chosen = rooms_for(rooms, spec, job);
  if (static_cast<int>(chosen.size()) < spec.num_nodes) return false;
  for (Room* room : chosen) {
    room->gpus -= gpus;
    room->cpu_milli -= spec.resources.cpu_milli;
    room->memory_mib -= spec.resources.memory_mib;
  }
  return true;
}

}  // namespace lepton::server
