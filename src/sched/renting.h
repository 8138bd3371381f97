// The renting policy: what a request that no node has room for takes on machines already rented
// (or being rented), and which offer to rent for it when none will do. Pure and deterministic (no
// clocks, I/O, randomness or threads): the server's cloud autoscaler (server/cloud_autoscaler.cpp)
// and the cost replay's lepton policy (sim/cost_sim.cpp) both call these functions, so the replay's
// figures measure the server's own decisions. The callers keep what is not pure: provider calls
// and their failover, remembered failures, back-off, pool limits and capacity, budgets, and the
// spreading of a deployment's replicas over regions.
//
// The server and the replay used to decide on their own, and differed. One behaviour was chosen
// where they did:
// - Room is counted per GPU in milli-GPUs, as the scheduler binds work (fractional requests share a
//   GPU). The server counted a share as a whole GPU, so two 0.5-GPU jobs waiting together rented
//   two GPUs where the scheduler then put both on one; now the second takes the rest of the
//   first's.
// - A room on a machine not rented for the request is taken only when it is no dearer than a
//   launch (the replay's rule; the server had none): an idle machine when its price per GPU is at
//   most the cheapest launch's, a machine in use when the request's share of a GPU there costs at
//   most a whole GPU launched now. Work may run for months, so a dear machine that happens to be
//   up is no bargain. Without the rule the replay's bill rises (docs/clouds.md has the figures).
//   Machines rented for the request itself are always its own, whatever they cost now.
// - Rooms go to the request they were rented for first (the server's rule), then best fit (the
//   least free GPU milli, the replay's), then the cheaper per GPU.
// - A bigger machine's expected fill counts the GPU shares of the other waiting requests that
//   would fit on it (the server's test of what fits; the replay summed the demand per GPU model,
//   whatever the count, spot or place), and only machines whose price per GPU could beat the
//   cheapest candidate are weighed (the server's; the replay weighed all, which only reordered
//   the fallbacks behind the first choice and cost time).
// - Ties in the launch order: the price, then the price per GPU, then the offer's key (the
//   server's; the replay's was its pool order).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lepton::sched {

// What a cloud sells, as it would be launched (a spot or an on-demand machine of one kind).
struct RentalOffer {
  std::string key;  // names the pool; unique among the offers (ties are broken by it)
  std::string cloud;
  std::string region;
  std::string zone;       // may be empty
  std::string gpu_model;  // canonical (core/gpu_model.h)
  int gpus = 0;           // whole GPUs on one machine
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  double price_per_hour = 0;  // as launched: the spot price for a spot offer
  bool spot = false;

  double price_per_gpu_hour() const { return price_per_hour / gpus; }
};

// What waits: `tasks` machines (a gang, one task on each), each task needing `gpus` distinct GPUs
// with `gpu_milli` of each free, and its CPU and memory.
struct RentalRequest {
  int tasks = 1;
  int gpus = 1;
  int gpu_milli = 1000;  // 1..1000
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  std::vector<std::string> models;   // accepted GPU models, canonical; empty: any
  std::vector<std::string> clouds;   // empty: any
  std::vector<std::string> regions;  // each matches a region or a zone; empty: any
  bool spot_ok = false;              // may run on spot machines

  // The GPUs one task uses (a 0.25-GPU task uses 0.25).
  double share() const { return gpus * gpu_milli / 1000.0; }
};

// Whether one task of `request` fits a whole machine of `offer`: GPU model, at least its GPUs,
// CPU and memory, an allowed cloud and region (or zone), spot only when the request allows it.
// Names are compared without regard to case.
bool offer_fits(const RentalOffer& offer, const RentalRequest& request);

// The offers that fit `request`, by index, in the order of `offers`.
std::vector<size_t> fitting_offers(std::span<const RentalOffer> offers,
                                   const RentalRequest& request);

// The lowest price per GPU-hour among `candidates` (indices into `offers`); infinity when none.
double cheapest_per_gpu_hour(std::span<const RentalOffer> offers,
                             std::span<const size_t> candidates);

// Other waiting requests of one shape (one task each), and their GPU shares together.
struct Demand {
  RentalRequest request;
  double gpus = 0;
};

// Orders `candidates` (indices into `offers`, each fitting `request`) by the price per GPU each is
// expected to use, first choice first. A machine bigger than one task fills with the other
// waiting requests that fit it, up to its size, when the request is a single task: four waiting
// one-GPU requests make one 4-GPU machine at $2/h cost $0.50 per used GPU, less than a 1-GPU one
// at $1/h. Only machines whose price per GPU could beat the best candidate are weighed that way,
// so with nothing else waiting the order is the price order. Ties: the price, then the price per
// GPU, then the offer's key.
void order_offers(std::span<const RentalOffer> offers, std::vector<size_t>& candidates,
                  const RentalRequest& request, std::span<const Demand> others);

// Free room on a machine: launching, or up and not full.
struct Room {
  std::string machine;  // the caller's name for it
  std::string owner;    // the request it was rented for; empty for none
  RentalOffer offer;
  std::vector<int> free_milli;  // per GPU, 0..1000
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;

  // Nothing has taken room on it yet.
  bool idle() const;
};

// All of a machine of `offer` as room.
Room room_on(std::string machine, std::string owner, const RentalOffer& offer);

// The GPUs of `room` that one task of `request` would take (best fit: the least free first), or
// none when the task does not fit there (its offer, CPU, memory, or GPUs with enough free).
std::vector<int> gpus_for(const Room& room, const RentalRequest& request);

// One task's room: which room (an index into the rooms given) and which of its GPUs.
struct RoomTake {
  size_t room = 0;
  std::vector<int> gpus;
};

// Rooms for the request's tasks, one machine per task, at most `request.tasks` of them (fewer when
// fewer fit; a gang that lost a machine keeps the others and rents only the missing ones). Rooms
// rented for `owner` come first and are taken whatever they cost; any other is taken only when it
// is no dearer than a launch at `launch_per_gpu_hour` (above). Among those, the best fit first
// (the least free GPU milli), then the cheaper per GPU, then the order given.
std::vector<RoomTake> choose_rooms(std::span<const Room* const> rooms, const RentalRequest& request,
                                   std::string_view owner, double launch_per_gpu_hour);

// Takes one task's room, or gives it back.
void take(Room& room, const RentalRequest& request, std::span<const int> gpus);
void give_back(Room& room, const RentalRequest& request, std::span<const int> gpus);

// choose_rooms over `rooms`: takes room for every task, all or nothing, and returns whether the
// request fits.
bool take_room(std::vector<Room>& rooms, const RentalRequest& request, std::string_view owner,
               double launch_per_gpu_hour);
// How many of the request's tasks `rooms` could hold now, as take_room counts them.
int tasks_with_room(const std::vector<Room>& rooms, const RentalRequest& request,
                    std::string_view owner, double launch_per_gpu_hour);

}  // namespace lepton::sched
