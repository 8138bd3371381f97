#include "sched/renting.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <numeric>

namespace lepton::sched {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool any_named(const std::vector<std::string>& names, std::string_view a, std::string_view b) {
  return names.empty() || std::any_of(names.begin(), names.end(), [&](const std::string& n) {
           return iequal(n, a) || (!b.empty() && iequal(n, b));
         });
}

// Everything but the machine's size: the model, the place, spot.
bool kind_fits(const RentalOffer& offer, const RentalRequest& request) {
  if (offer.spot && !request.spot_ok) return false;
  return any_named(request.models, offer.gpu_model, "") &&
         any_named(request.clouds, offer.cloud, "") &&
         any_named(request.regions, offer.region, offer.zone);
}

int free_total(const Room& room) {
  return std::accumulate(room.free_milli.begin(), room.free_milli.end(), 0);
}

}  // namespace

bool offer_fits(const RentalOffer& offer, const RentalRequest& request) {
  if (request.gpus < 1 || request.gpu_milli < 1) return false;  // machines are rented for GPUs
  return offer.gpus >= request.gpus && offer.cpu_milli >= request.cpu_milli &&
         offer.memory_mib >= request.memory_mib && kind_fits(offer, request);
}

std::vector<size_t> fitting_offers(std::span<const RentalOffer> offers,
                                   const RentalRequest& request) {
  std::vector<size_t> out;
  for (size_t i = 0; i < offers.size(); ++i) {
    if (offer_fits(offers[i], request)) out.push_back(i);
  }
  return out;
}

double cheapest_per_gpu_hour(std::span<const RentalOffer> offers,
                             std::span<const size_t> candidates) {
  double best = std::numeric_limits<double>::infinity();
  for (size_t i : candidates) best = std::min(best, offers[i].price_per_gpu_hour());
  return best;
}

void order_offers(std::span<const RentalOffer> offers, std::vector<size_t>& candidates,
                  const RentalRequest& request, std::span<const Demand> others) {
  const double own = request.share();
  struct Keyed {
    double per_used_gpu;
    size_t offer;
  };
  std::vector<Keyed> keyed;
  keyed.reserve(candidates.size());
  double best = std::numeric_limits<double>::infinity();
  for (size_t i : candidates) {
    const RentalOffer& o = offers[i];
    keyed.push_back({o.price_per_hour / std::min<double>(o.gpus, own), i});
    best = std::min(best, keyed.back().per_used_gpu);
  }
  if (request.tasks == 1 && !others.empty()) {
    for (Keyed& k : keyed) {
      const RentalOffer& o = offers[k.offer];
      if (o.gpus <= own || o.price_per_gpu_hour() >= best) continue;  // cannot beat the best
      double fill = own;
      for (const Demand& d : others) {
        if (fill >= o.gpus) break;
        if (d.gpus > 0 && d.request.tasks == 1 && offer_fits(o, d.request)) fill += d.gpus;
      }
      k.per_used_gpu = o.price_per_hour / std::min<double>(fill, o.gpus);
    }
  }
  std::sort(keyed.begin(), keyed.end(), [&](const Keyed& a, const Keyed& b) {
    if (a.per_used_gpu != b.per_used_gpu) return a.per_used_gpu < b.per_used_gpu;
    const RentalOffer& x = offers[a.offer];
    const RentalOffer& y = offers[b.offer];
    if (x.price_per_hour != y.price_per_hour) return x.price_per_hour < y.price_per_hour;
    if (x.price_per_gpu_hour() != y.price_per_gpu_hour()) {
      return x.price_per_gpu_hour() < y.price_per_gpu_hour();
    }
    if (x.key != y.key) return x.key < y.key;
    return a.offer < b.offer;
  });
  for (size_t k = 0; k < keyed.size(); ++k) candidates[k] = keyed[k].offer;
}

bool Room::idle() const {
  return std::all_of(free_milli.begin(), free_milli.end(), [](int f) { return f == 1000; });
}

Room room_on(std::string machine, std::string owner, const RentalOffer& offer) {
  Room room;
  room.machine = std::move(machine);
  room.owner = std::move(owner);
  room.offer = offer;
  room.free_milli.assign(static_cast<size_t>(std::max(offer.gpus, 0)), 1000);
  room.cpu_milli = offer.cpu_milli;
  room.memory_mib = offer.memory_mib;
  return room;
}

std::vector<int> gpus_for(const Room& room, const RentalRequest& request) {
  if (request.gpus < 1 || request.gpu_milli < 1) return {};
  if (room.cpu_milli < request.cpu_milli || room.memory_mib < request.memory_mib) return {};
  if (!kind_fits(room.offer, request)) return {};
  std::vector<int> gpus;
  for (size_t g = 0; g < room.free_milli.size(); ++g) {
    if (room.free_milli[g] >= request.gpu_milli) gpus.push_back(static_cast<int>(g));
  }
  if (static_cast<int>(gpus.size()) < request.gpus) return {};
  std::stable_sort(gpus.begin(), gpus.end(),
                   [&](int a, int b) { return room.free_milli[a] < room.free_milli[b]; });
  gpus.resize(static_cast<size_t>(request.gpus));
  return gpus;
}

std::vector<RoomTake> choose_rooms(std::span<const Room* const> rooms, const RentalRequest& request,
                                   std::string_view owner, double launch_per_gpu_hour) {
  struct Option {
    bool own;
    int free;
    double per_gpu;
    size_t room;
    std::vector<int> gpus;
  };
  std::vector<Option> options;
  for (size_t r = 0; r < rooms.size(); ++r) {
    const Room& room = *rooms[r];
    const bool own = !owner.empty() && room.owner == owner;
    const double per_gpu = room.offer.price_per_gpu_hour();
    if (!own) {
      // No dearer than a launch: a whole GPU of an idle machine, or the request's share of one
      // on a machine in use.
      const double share = room.idle() ? 1.0 : request.gpu_milli / 1000.0;
      if (per_gpu * share > launch_per_gpu_hour * (1 + 1e-9)) continue;
    }
    std::vector<int> gpus = gpus_for(room, request);
    if (gpus.empty()) continue;
    options.push_back({own, free_total(room), per_gpu, r, std::move(gpus)});
  }
  std::stable_sort(options.begin(), options.end(), [](const Option& a, const Option& b) {
    if (a.own != b.own) return a.own;
    if (a.free != b.free) return a.free < b.free;
    return a.per_gpu < b.per_gpu;
  });
  std::vector<RoomTake> out;
  for (Option& o : options) {
    if (static_cast<int>(out.size()) == request.tasks) break;
    out.push_back({o.room, std::move(o.gpus)});
  }
  return out;
}

void take(Room& room, const RentalRequest& request, std::span<const int> gpus) {
  for (int g : gpus) room.free_milli[static_cast<size_t>(g)] -= request.gpu_milli;
  room.cpu_milli -= request.cpu_milli;
  room.memory_mib -= request.memory_mib;
}

void give_back(Room& room, const RentalRequest& request, std::span<const int> gpus) {
  for (int g : gpus) room.free_milli[static_cast<size_t>(g)] += request.gpu_milli;
  room.cpu_milli += request.cpu_milli;
  room.memory_mib += request.memory_mib;
}

namespace {
std::vector<const Room*> pointers(const std::vector<Room>& rooms) {
  std::vector<const Room*> out;
  out.reserve(rooms.size());
  for (const Room& r : rooms) out.push_back(&r);
  return out;
}
}  // namespace

bool take_room(std::vector<Room>& rooms, const RentalRequest& request, std::string_view owner,
               double launch_per_gpu_hour) {
  const std::vector<RoomTake> chosen =
      choose_rooms(pointers(rooms), request, owner, launch_per_gpu_hour);
  if (static_cast<int>(chosen.size()) < request.tasks) return false;
  for (const RoomTake& t : chosen) take(rooms[t.room], request, t.gpus);
  return true;
}

int tasks_with_room(const std::vector<Room>& rooms, const RentalRequest& request,
                    std::string_view owner, double launch_per_gpu_hour) {
  return static_cast<int>(
      choose_rooms(pointers(rooms), request, owner, launch_per_gpu_hour).size());
}

}  // namespace lepton::sched
