#include "sched/renting.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace lepton::sched {
namespace {

constexpr double kAny = std::numeric_limits<double>::infinity();

RentalOffer offer(std::string key, int gpus, double price, bool spot = false,
                  std::string model = "A100") {
  return {.key = std::move(key),
          .cloud = "aws",
          .region = "us-east-1",
          .zone = "us-east-1a",
          .gpu_model = std::move(model),
          .gpus = gpus,
          .cpu_milli = 8000 * gpus,
          .memory_mib = 32768 * gpus,
          .price_per_hour = price,
          .spot = spot};
}

RentalRequest request(int gpus = 1, int milli = 1000, int tasks = 1) {
  return {.tasks = tasks,
          .gpus = gpus,
          .gpu_milli = milli,
          .cpu_milli = 1000,
          .memory_mib = 1024,
          .models = {},
          .clouds = {},
          .regions = {},
          .spot_ok = false};
}

std::vector<std::string> keys(const std::vector<RentalOffer>& offers,
                              const std::vector<size_t>& order) {
  std::vector<std::string> out;
  for (size_t i : order) out.push_back(offers[i].key);
  return out;
}

std::vector<std::string> ranked(const std::vector<RentalOffer>& offers, const RentalRequest& r,
                                const std::vector<Demand>& others) {
  std::vector<size_t> c = fitting_offers(offers, r);
  order_offers(offers, c, r, others);
  return keys(offers, c);
}

uint64_t next(uint64_t& s) {
  s = s * 6364136223846793005ULL + 1442695040888963407ULL;
  return s >> 33;
}

TEST(Renting, AnOfferFitsByModelSizePlaceAndSpot) {
  const RentalOffer o = offer("o", 2, 2.0);
  EXPECT_TRUE(offer_fits(o, request(2)));
  EXPECT_FALSE(offer_fits(o, request(3)));
  EXPECT_TRUE(offer_fits(o, request(1, 250)));  // a share needs one GPU
  EXPECT_FALSE(offer_fits(o, request(0)));      // machines are rented for GPUs
  RentalRequest r = request();
  r.models = {"h100", "a100"};  // case does not matter
  EXPECT_TRUE(offer_fits(o, r));
  r.models = {"H100"};
  EXPECT_FALSE(offer_fits(o, r));
  r = request();
  r.regions = {"US-EAST-1A"};  // a zone names a place too
  EXPECT_TRUE(offer_fits(o, r));
  r.regions = {"eu-west-1"};
  EXPECT_FALSE(offer_fits(o, r));
  r = request();
  r.clouds = {"gcp"};
  EXPECT_FALSE(offer_fits(o, r));
  r = request();
  r.cpu_milli = 16001;
  EXPECT_FALSE(offer_fits(o, r));
  r = request();
  r.memory_mib = 65537;  // memory is a minimum too
  EXPECT_FALSE(offer_fits(o, r));
  const RentalOffer spot = offer("s", 2, 1.0, true);
  EXPECT_FALSE(offer_fits(spot, request()));
  r = request();
  r.spot_ok = true;
  EXPECT_TRUE(offer_fits(spot, r));
  EXPECT_TRUE(offer_fits(o, r));  // spot work may run on an on-demand machine
}

TEST(Renting, WithNothingElseWaitingTheOrderIsThePriceOrder) {
  const std::vector<RentalOffer> offers = {offer("four", 4, 2.0), offer("one", 1, 1.0),
                                           offer("two", 2, 1.0), offer("eight", 8, 9.0)};
  // Equal prices go to the cheaper per GPU, then by key.
  EXPECT_EQ(ranked(offers, request(), {}),
            (std::vector<std::string>{"two", "one", "four", "eight"}));
  EXPECT_EQ(ranked(offers, request(4), {}), (std::vector<std::string>{"four", "eight"}));
}

TEST(Renting, PrefersTheOfferCheaperPerUsedGpu) {
  // Four one-GPU requests: one 4-GPU machine at $2/h ($0.50 per used GPU) beats four 1-GPU
  // machines at $1/h.
  const std::vector<RentalOffer> offers = {offer("one", 1, 1.0), offer("four", 4, 2.0)};
  const std::vector<Demand> three = {{request(), 3.0}};
  EXPECT_EQ(ranked(offers, request(), three), (std::vector<std::string>{"four", "one"}));
  // With one other, the 4-GPU machine is $1 per used GPU: the price decides.
  EXPECT_EQ(ranked(offers, request(), {{request(), 1.0}}),
            (std::vector<std::string>{"one", "four"}));
  // Shares count as what they use: eight 0.25-GPU requests fill two GPUs, not eight.
  const std::vector<RentalOffer> two = {offer("one", 1, 1.0), offer("two", 2, 1.5)};
  EXPECT_EQ(ranked(two, request(1, 250), {{request(1, 250), 1.75}}),
            (std::vector<std::string>{"two", "one"}));
  EXPECT_EQ(ranked(two, request(1, 250), {{request(1, 250), 0.5}}),
            (std::vector<std::string>{"one", "two"}));
  // Others that would not fit the machine do not fill it: another model, on-demand work on a
  // spot machine, a gang.
  RentalRequest h100 = request();
  h100.models = {"H100"};
  EXPECT_EQ(ranked(offers, request(), {{h100, 3.0}}), (std::vector<std::string>{"one", "four"}));
  RentalRequest elsewhere = request();
  elsewhere.regions = {"eu-west-1"};
  EXPECT_EQ(ranked(offers, request(), {{elsewhere, 3.0}}),
            (std::vector<std::string>{"one", "four"}));
  const std::vector<RentalOffer> spot = {offer("one", 1, 0.5, true), offer("four", 4, 1.0, true)};
  RentalRequest spot_ok = request();
  spot_ok.spot_ok = true;
  EXPECT_EQ(ranked(spot, spot_ok, {{request(), 3.0}}), (std::vector<std::string>{"one", "four"}));
  EXPECT_EQ(ranked(spot, spot_ok, {{spot_ok, 3.0}}), (std::vector<std::string>{"four", "one"}));
  // Spot work may run on an on-demand machine, so it fills one too.
  EXPECT_EQ(ranked(offers, request(), {{spot_ok, 3.0}}), (std::vector<std::string>{"four", "one"}));
  EXPECT_EQ(ranked(offers, request(), {{request(1, 1000, 2), 3.0}}),
            (std::vector<std::string>{"one", "four"}));
  // A gang is not filled by others: it takes machines of its own.
  EXPECT_EQ(ranked(offers, request(1, 1000, 2), three), (std::vector<std::string>{"one", "four"}));
}

TEST(Renting, RoomIsCountedInMilliGpus) {
  std::vector<Room> rooms = {room_on("m", "", offer("one", 1, 1.0))};
  EXPECT_TRUE(take_room(rooms, request(1, 500), "", kAny));
  EXPECT_FALSE(rooms[0].idle());
  EXPECT_TRUE(take_room(rooms, request(1, 300), "", kAny));
  EXPECT_FALSE(take_room(rooms, request(1, 300), "", kAny));  // 200 left
  EXPECT_TRUE(take_room(rooms, request(1, 200), "", kAny));
  EXPECT_EQ(rooms[0].free_milli, std::vector<int>{0});
  // A whole GPU needs a GPU nobody shares.
  std::vector<Room> two = {room_on("m", "", offer("two", 2, 2.0))};
  EXPECT_TRUE(take_room(two, request(1, 100), "", kAny));
  EXPECT_FALSE(take_room(two, request(2), "", kAny));
  EXPECT_TRUE(take_room(two, request(1), "", kAny));
  EXPECT_EQ(two[0].free_milli, (std::vector<int>{900, 0}));
  // A share goes where it fits best: the GPU with the least room that holds it.
  EXPECT_TRUE(take_room(two, request(1, 900), "", kAny));
  EXPECT_EQ(two[0].free_milli, (std::vector<int>{0, 0}));
}

TEST(Renting, NeverTakesMoreRoomThanAMachineHas) {
  uint64_t s = 7;
  for (int round = 0; round < 200; ++round) {
    std::vector<Room> rooms;
    const int n = 1 + static_cast<int>(next(s) % 5);
    for (int i = 0; i < n; ++i) {
      RentalOffer o = offer("o" + std::to_string(i), 1 << (next(s) % 4), 1.0 + next(s) % 5);
      o.spot = next(s) % 3 == 0;
      rooms.push_back(room_on("m" + std::to_string(i), next(s) % 4 == 0 ? "j" : "", o));
    }
    std::vector<Room> full = rooms;
    for (int k = 0; k < 40; ++k) {
      const int gpus = next(s) % 3 == 0 ? 1 << (next(s) % 3) : 1;
      const int milli = gpus == 1 ? 100 * (1 + static_cast<int>(next(s) % 10)) : 1000;
      RentalRequest r = request(gpus, milli, 1 + static_cast<int>(next(s) % 2));
      r.cpu_milli = 1000 * (1 + static_cast<int>(next(s) % 8));
      r.spot_ok = next(s) % 2 == 0;
      const std::string owner = next(s) % 2 ? "j" : "";
      const double launch = 0.5 + static_cast<double>(next(s) % 4);
      std::vector<const Room*> ptrs;
      for (const Room& room : rooms) ptrs.push_back(&room);
      const std::vector<RoomTake> chosen = choose_rooms(ptrs, r, owner, launch);
      ASSERT_LE(static_cast<int>(chosen.size()), r.tasks);
      std::vector<size_t> used;
      for (const RoomTake& t : chosen) used.push_back(t.room);
      std::sort(used.begin(), used.end());
      EXPECT_EQ(std::adjacent_find(used.begin(), used.end()), used.end()) << "one task a machine";
      for (const RoomTake& t : chosen) {
        const Room& room = rooms[t.room];
        EXPECT_TRUE(!room.offer.spot || r.spot_ok);
        if (room.owner != owner || owner.empty()) {
          const double share = room.idle() ? 1.0 : milli / 1000.0;
          EXPECT_LE(room.offer.price_per_gpu_hour() * share, launch * (1 + 1e-9));
        }
      }
      (void)take_room(rooms, r, owner, launch);
      for (size_t i = 0; i < rooms.size(); ++i) {
        for (int f : rooms[i].free_milli) {
          ASSERT_GE(f, 0);
          ASSERT_LE(f, 1000);
        }
        ASSERT_GE(rooms[i].cpu_milli, 0);
        ASSERT_GE(rooms[i].memory_mib, 0);
        ASSERT_EQ(rooms[i].free_milli.size(), full[i].free_milli.size());
      }
    }
  }
}

TEST(Renting, RoomNotRentedForTheRequestIsTakenOnlyWhenNoDearerThanALaunch) {
  // An idle machine at $2 per GPU, while a launch would cost $1 per GPU: the launch wins.
  std::vector<Room> rooms = {room_on("m", "other", offer("dear", 1, 2.0))};
  EXPECT_FALSE(take_room(rooms, request(), "j", 1.0));
  EXPECT_TRUE(take_room(rooms, request(), "j", 2.0));  // no dearer: taken
  // On a machine in use, the request's share of a GPU is what it costs: 0.25 x $2 < $1.
  std::vector<Room> busy = {room_on("m", "", offer("dear", 1, 2.0))};
  take(busy[0], request(1, 500), std::vector<int>{0});
  EXPECT_FALSE(take_room(busy, request(1, 500), "", 0.99));  // 0.5 x $2 = $1 > $0.99
  EXPECT_TRUE(take_room(busy, request(1, 250), "", 1.0));
  // A machine rented for the request is its own, whatever a launch costs now.
  std::vector<Room> own = {room_on("m", "j", offer("dear", 1, 9.0))};
  EXPECT_TRUE(take_room(own, request(), "j", 0.1));
  // Nothing to launch (no offer fits, or all failed): any room will do.
  std::vector<Room> any = {room_on("m", "", offer("dear", 1, 9.0))};
  EXPECT_TRUE(take_room(any, request(), "", kAny));
}

TEST(Renting, OwnRoomsFirstThenBestFitThenCheaper) {
  std::vector<Room> rooms = {
      room_on("big", "", offer("big", 4, 4.0)), room_on("small", "", offer("small", 1, 1.0)),
      room_on("cheap", "", offer("cheap", 1, 0.5)), room_on("mine", "j", offer("mine", 4, 4.0))};
  std::vector<const Room*> ptrs;
  for (const Room& r : rooms) ptrs.push_back(&r);
  auto first = [&](const std::string& owner) {
    const std::vector<RoomTake> t = choose_rooms(ptrs, request(), owner, kAny);
    return t.empty() ? std::string() : rooms[t[0].room].machine;
  };
  EXPECT_EQ(first("j"), "mine");
  EXPECT_EQ(first(""), "cheap");  // 1 GPU free, as "small", but cheaper
  // A gang takes distinct machines, its own first, then the best fit.
  const std::vector<RoomTake> gang = choose_rooms(ptrs, request(1, 1000, 3), "j", kAny);
  ASSERT_EQ(gang.size(), 3u);
  EXPECT_EQ(rooms[gang[0].room].machine, "mine");
  EXPECT_EQ(rooms[gang[1].room].machine, "cheap");
  EXPECT_EQ(rooms[gang[2].room].machine, "small");
  // More tasks than machines: the ones that fit are counted, none is taken.
  EXPECT_EQ(tasks_with_room(rooms, request(1, 1000, 5), "j", kAny), 4);
  EXPECT_FALSE(take_room(rooms, request(1, 1000, 5), "j", kAny));
  for (const Room& r : rooms) EXPECT_TRUE(r.idle()) << r.machine;
}

TEST(Renting, GiveBackUndoesTake) {
  Room room = room_on("m", "", offer("two", 2, 2.0));
  const Room before = room;
  const RentalRequest r = request(1, 300);
  const std::vector<int> gpus = gpus_for(room, r);
  ASSERT_EQ(gpus.size(), 1u);
  take(room, r, gpus);
  EXPECT_FALSE(room.idle());
  give_back(room, r, gpus);
  EXPECT_TRUE(room.idle());
  EXPECT_EQ(room.free_milli, before.free_milli);
  EXPECT_EQ(room.cpu_milli, before.cpu_milli);
  EXPECT_EQ(room.memory_mib, before.memory_mib);
}

TEST(Renting, DecisionsAreDeterministicWhateverTheInputOrder) {
  uint64_t s = 11;
  for (int round = 0; round < 100; ++round) {
    std::vector<RentalOffer> offers;
    const int n = 2 + static_cast<int>(next(s) % 12);
    for (int i = 0; i < n; ++i) {
      const int gpus = 1 << (next(s) % 4);
      offers.push_back(offer("o" + std::to_string(i), gpus,
                             gpus * (0.5 + static_cast<double>(next(s) % 4) / 2),
                             next(s) % 2 == 0));
    }
    RentalRequest r = request(1, next(s) % 2 ? 1000 : 500);
    r.spot_ok = true;
    const std::vector<Demand> others = {{request(), static_cast<double>(next(s) % 6)},
                                        {r, static_cast<double>(next(s) % 3)}};
    const std::vector<std::string> a = ranked(offers, r, others);
    EXPECT_EQ(a, ranked(offers, r, others));
    std::vector<RentalOffer> reversed(offers.rbegin(), offers.rend());
    EXPECT_EQ(a, ranked(reversed, r, others)) << "round " << round;
    // With nothing else waiting, the first choice is the cheapest machine.
    std::vector<size_t> alone = fitting_offers(offers, r);
    order_offers(offers, alone, r, {});
    for (size_t i : alone) {
      EXPECT_LE(offers[alone[0]].price_per_hour, offers[i].price_per_hour);
    }
  }
}

}  // namespace
}  // namespace lepton::sched
