// The cloud autoscaler: ControlPlane's members that rent and return machines (control_plane.h,
// "Clouds"; the machines' records, the nodes they become and their bills are in
// cloud_instances.cpp). Once a second, on the control loop:
//   1. sync: what each provider says of our instances (booted, joined as a node, ended);
//   2. notices: a spot machine about to be taken away has its work preempted with a notice (the
//      tasks get LEPTON_PREEMPTION_NOTICE=1 and the time left, then SIGTERM) and requeued; the
//      node takes no new work;
//   3. idle machines (no task for cloud_idle_ms) are returned; a machine with work never is;
//   4. pending work that no node has room for (and that its queue admits) gets machines: room on
//      machines already launching is used first, then the fitting offer expected to cost least per
//      used GPU (these decisions are sched/renting.h's, the policy the cost replay runs too;
//      rental_offers.h shows it the offers and jobs); a capacity or quota error fails over to the
//      next offer (at once for a provider called on the loop, on the next round for one called
//      off it) and the pool is skipped for failover_ttl_ms. Nothing is rented for a job whose
//      queue, or one above it, has spent its budget (the cost ledger, cost_ledger.h).
// Launches and terminations go through ProviderCalls: a provider whose calls block (EC2, over
// HTTPS) is called on a thread of its own, one call at a time, and the result is taken up on a
// later round; the emulated clouds answer at once, on the loop. Listings and notices come from
// PolledProvider's last poll.
#include <algorithm>
#include <ctime>
#include <limits>
#include <optional>
#include <set>

#include "sched/renting.h"
#include "server/control_plane.h"
#include "server/cost_ledger.h"
#include "server/rental_offers.h"
#include "spec/job_json.h"

namespace lepton::server {

namespace {

constexpr int64_t kCloudRoundMs = 1000;
// A machine that joined this recently and has no work yet still counts as room for pending work
// (the scheduler may not have placed it there yet).
constexpr int64_t kFreshMs = 15'000;

}  // namespace

void ControlPlane::take_up_calls(store::WriteBatch& batch, int64_t now_ms) {
  for (ProviderCalls::Ended& ended : calls_->take_ended()) {
    if (auto l = launches_.find(ended.id); l != launches_.end()) {
      (void)launch_ended(l->second, ended.outcome, nullptr, batch, now_ms);
      launches_.erase(l);
    } else if (auto r = returns_.find(ended.id); r != returns_.end()) {
      const std::string id = r->second;
      returns_.erase(r);  // first: going_away() no longer counts it as being returned
      return_ended(id, ended.outcome.status(), /*off_loop=*/true, batch, now_ms);
    }  // else: a machine that did not join in time, terminated with no one waiting
  }
}

Status ControlPlane::stop_clouds(int64_t now_ms) {
  if (!calls_) return Status::ok();
  calls_->drain();
  store::WriteBatch batch;
  take_up_calls(batch, now_ms);
  // Calls dropped before they were made launched nothing.
  launches_.clear();
  returns_.clear();
  return commit(batch);
}

void ControlPlane::set_clouds(std::vector<std::shared_ptr<cloud::Provider>> providers,
                              std::function<std::string()> bootstrap_script) {
  providers_ = std::move(providers);
  bootstrap_script_ = std::move(bootstrap_script);
  provider_backoff_.assign(providers_.size(), ProviderBackoff());
  // Before the first round, or after stop_clouds(): no call's answer is left to take up.
  LEPTON_CHECK(launches_.empty() && returns_.empty());
  calls_ = std::make_unique<ProviderCalls>(providers_);
  // Stored machines find their provider again by name.
  for (auto& [id, inst] : instances_) {
    for (size_t p = 0; p < providers_.size(); ++p) {
      if (providers_[p]->name() == inst.provider_name) inst.provider = p;
    }
  }
}

void ControlPlane::cloud_round(store::WriteBatch& batch, int64_t now_ms) {
  if (now_ms - last_cloud_round_ms_ < kCloudRoundMs) return;
  last_cloud_round_ms_ = now_ms;
  // Machines whose provider this server does not have (it was started without it) cannot be
  // watched or returned; their bill stops here, and the event says so.
  for (auto& [id, inst] : instances_) {
    if (inst.ended_ms) continue;
    const bool attached = inst.provider < providers_.size() &&
                          providers_[inst.provider]->name() == inst.provider_name;
    if (!attached) {
      end_instance(inst,
                   "its provider (" + inst.provider_name +
                       ") is not attached to this server; check it by hand",
                   batch, now_ms);
    }
  }
  if (providers_.empty()) return;
  take_up_calls(batch, now_ms);
  sync_instances(batch, now_ms);
  handle_notices(batch, now_ms);
  return_idle_instances(batch, now_ms);
  rent_for_pending(batch, now_ms);
  keep_pool_minimums(batch, now_ms);
}

namespace {
bool pool_matches(const std::string& key, const std::string& pool) {
  return pool == key || (pool.size() > key.size() && pool.compare(0, key.size(), key) == 0 &&
                         pool[key.size()] == '/');
}
}  // namespace

std::vector<std::pair<size_t, cloud::Offer>> ControlPlane::provider_offers() const {
  std::vector<std::pair<size_t, cloud::Offer>> out;
  for (size_t p = 0; p < providers_.size(); ++p) {
    auto list = providers_[p]->offers(cloud::OfferQuery{});
    if (!list.is_ok()) continue;  // this round goes without its offers
    for (cloud::Offer& o : *list) out.emplace_back(p, std::move(o));
  }
  return out;
}

int ControlPlane::live_in_pool(const std::string& key) const {
  int n = 0;
  for (const auto& [id, inst] : instances_) {
    if (!inst.ended_ms && pool_matches(key, cloud::offer_pool(inst.offer, inst.info.spot))) ++n;
  }
  for (const auto& [call, launch] : launches_) {
    if (pool_matches(key, cloud::offer_pool(launch.offer, launch.spot))) n += launch.count;
  }
  return n;
}

std::vector<cloud::Instance> ControlPlane::launch_ended(const Launch& launch,
                                                        const ProviderCalls::Outcome& outcome,
                                                        std::string* unreachable,
                                                        store::WriteBatch& batch, int64_t now_ms) {
  ProviderBackoff& backoff = provider_backoff_[launch.provider];
  backoff.record(outcome.status(), now_ms);
  const std::string pool = cloud::offer_pool(launch.offer, launch.spot);
  const std::string object =
      launch.for_job.empty() ? "pool/" + launch.min_pool : "job/" + launch.for_job;
  if (!outcome.is_ok()) {
    const std::string& message = outcome.status().message();
    if (launch.for_job.empty()) {
      // A capacity answer skips the pool for a while; a failure to ask rests the provider.
      if (is_capacity_answer(outcome.status())) pool_failed(launch.min_pool, batch, now_ms);
      event(batch, now_ms, object, "cannot keep its minimum: " + message);
      return {};
    }
    if (is_capacity_answer(outcome.status())) {
      pool_failed(pool, batch, now_ms);
      event(batch, now_ms, object,
            "cannot rent " + pool + ": " + message +
                "; trying the next offer (this one is skipped for " +
                std::to_string(options_.failover_ttl_ms / 1000) + " s)");
      return {};
    }
    // Not an answer about this offer (the provider was not reached, or refused the call): the
    // offer is not skipped, the provider rests (other providers' offers are still tried), and
    // the job says why it waits.
    const std::string why = "cannot rent " + pool + ": " + message + "; " +
                            std::string(providers_[launch.provider]->name()) +
                            " is tried again in " + backoff.rest_left(now_ms);
    event(batch, now_ms, object, why);
    if (unreachable) *unreachable = why;
    return {};
  }
  for (const cloud::Instance& i : outcome.value()) {
    record_rented(launch.provider, i, launch.offer, launch.spot, launch.for_job, batch, now_ms);
  }
  if (launch.for_job.empty()) {
    event(batch, now_ms, object,
          "renting " + std::to_string(outcome->size()) + " to keep its minimum of " +
              std::to_string(launch.keep_min));
  } else {
    event(batch, now_ms, object,
          "renting " + std::to_string(outcome->size()) + " x " + pool + " at " +
              usd(offer_price(launch.offer, launch.spot)) + "/h each");
  }
  return outcome.value();
}

std::string ControlPlane::pool_limit_reached(const std::string& pool, int count) const {
  for (const auto& [key, limit] : options_.pool_limits) {
    if (pool_matches(key, pool) && live_in_pool(key) + count > limit.max) {
      return key + " is at its max of " + std::to_string(limit.max);
    }
  }
  return "";
}

void ControlPlane::keep_pool_minimums(store::WriteBatch& batch, int64_t now_ms) {
  for (const auto& [key, limit] : options_.pool_limits) {
    const int missing = limit.min - live_in_pool(key);
    if (missing <= 0) continue;
    for (const auto& [p, o] : provider_offers()) {
      const bool spot = cloud::offer_pool(o, true) == key;
      if (!spot && cloud::offer_pool(o, false) != key) continue;
      if (failures_.skip(key, now_ms) || provider_backoff_[p].resting(now_ms)) break;
      if (calls_->off_loop(p) && calls_->busy(p)) break;  // one call at a time; next round
      const Launch launch{.provider = p,
                          .offer = o,
                          .spot = spot,
                          .count = missing,
                          .for_job = "",
                          .min_pool = key,
                          .keep_min = limit.min,
                          .started_ms = now_ms};
      const uint64_t call = calls_->provision(
          p, {.offer = o,
              .spot = spot,
              .count = missing,
              .bootstrap_script = bootstrap_script_ ? bootstrap_script_() : std::string(),
              .labels = {{"lepton-pool", key}},
              .idempotency_key = key + "-" + std::to_string(now_ms)});
      if (auto outcome = calls_->take(call)) {
        (void)launch_ended(launch, *outcome, nullptr, batch, now_ms);
      } else {
        launches_[call] = launch;  // its result is taken up on a later round
      }
      break;
    }
  }
}

void ControlPlane::sync_instances(store::WriteBatch& batch, int64_t now_ms) {
  std::vector<std::map<std::string, cloud::Instance>> listed(providers_.size());
  std::vector<bool> answered(providers_.size(), false);
  for (size_t p = 0; p < providers_.size(); ++p) {
    auto list = providers_[p]->list_instances();
    if (!list.is_ok()) continue;  // try again next round; nothing is assumed from a failed call
    answered[p] = true;
    for (cloud::Instance& i : *list) listed[p][i.id] = std::move(i);
  }
  for (auto& [id, inst] : instances_) {
    if (inst.ended_ms || !answered[inst.provider]) continue;
    auto it = listed[inst.provider].find(id);
    if (it == listed[inst.provider].end()) {
      end_instance(inst, "no longer listed by its provider", batch, now_ms);
      continue;
    }
    const cloud::InstanceState state = it->second.state;
    if (state == cloud::InstanceState::kTerminated || state == cloud::InstanceState::kStopped) {
      end_instance(inst, inst.notice_ms ? "interrupted by its provider" : "ended by its provider",
                   batch, now_ms);
      continue;
    }
    bool changed = inst.info.state != state;
    inst.info.state = state;
    auto node = nodes_.find(id);
    if (!inst.joined_ms && node != nodes_.end() && node->second.record.ready) {
      inst.joined_ms = now_ms;
      changed = true;
      event(batch, now_ms, "instance/" + id,
            "joined as a node " + std::to_string(now_ms - inst.launched_ms) + " ms after launch");
    }
    if (!inst.joined_ms && now_ms - inst.launched_ms > options_.boot_timeout_ms) {
      pool_failed(cloud::offer_pool(inst.offer, inst.info.spot), batch, now_ms);
      (void)calls_->terminate(inst.provider, {id});  // nobody waits for the answer
      end_instance(inst, "did not join within the boot timeout", batch, now_ms);
      continue;
    }
    if (changed) save_instance(inst, batch);
  }
}

void ControlPlane::handle_notices(store::WriteBatch& batch, int64_t now_ms) {
  for (size_t p = 0; p < providers_.size(); ++p) {
    auto notices = providers_[p]->interruption_notices();
    if (!notices.is_ok()) continue;
    for (const cloud::InterruptionNotice& n : *notices) {
      auto it = instances_.find(n.instance_id);
      if (it == instances_.end() || it->second.ended_ms || it->second.notice_ms) continue;
      CloudInstance& inst = it->second;
      inst.notice_ms = now_ms;
      save_instance(inst, batch);
      event(batch, now_ms, "instance/" + n.instance_id,
            "interruption notice (" + n.reason + "), ends at " +
                (n.time.empty() ? std::string("an unknown time") : n.time));
      auto node = nodes_.find(n.instance_id);
      if (node == nodes_.end()) continue;
      cluster_.set_cordoned(node->second.id, true);
      sched_dirty_ = true;
      // The tasks get the notice, less a margin for the agent to act, up to the usual grace.
      int64_t grace_ms = options_.preempt_grace_ms;
      std::tm tm{};
      if (!n.time.empty() && strptime(n.time.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        const int64_t ends_ms = static_cast<int64_t>(timegm(&tm)) * 1000;
        grace_ms =
            std::min(options_.preempt_grace_ms, std::max<int64_t>(ends_ms - now_ms - 2000, 0));
      }
      std::set<std::string> jobs;
      if (auto on = node_tasks_.find(n.instance_id); on != node_tasks_.end()) {
        for (const TaskKey& key : on->second) jobs.insert(key.first);
      }
      for (const std::string& job : jobs) {
        Job& j = jobs_.at(job);
        preempt(j, "its spot machine " + n.instance_id + " is being interrupted", grace_ms,
                /*notice=*/true, batch, now_ms);
        // A replacement is rented now, so it boots while the notice runs out.
        j.no_capacity = true;
      }
    }
  }
}

void ControlPlane::return_idle_instances(store::WriteBatch& batch, int64_t now_ms) {
  const std::set<std::string> busy = nodes_with_tasks(/*with_stopping=*/true);
  for (auto& [id, inst] : instances_) {
    if (inst.ended_ms || !inst.joined_ms || being_returned(id)) continue;
    // Rented for a job that still waits (say, for its old machine's notice to run out): kept.
    auto owner = jobs_.find(inst.for_job);
    const bool owner_waits =
        owner != jobs_.end() && owner->second.record.state == JobState::kPending;
    if (busy.count(id) || (owner_waits && !inst.notice_ms)) {
      inst.idle_since_ms = 0;
      continue;
    }
    if (!inst.idle_since_ms) inst.idle_since_ms = now_ms;
    if (now_ms - inst.idle_since_ms < options_.cloud_idle_ms) continue;
    const std::string pool = cloud::offer_pool(inst.offer, inst.info.spot);
    bool needed = false;  // by a pool minimum
    for (const auto& [key, limit] : options_.pool_limits) {
      needed |= limit.min > 0 && pool_matches(key, pool) && live_in_pool(key) <= limit.min;
    }
    if (needed) continue;
    if (provider_backoff_[inst.provider].resting(now_ms)) continue;
    if (calls_->off_loop(inst.provider) && calls_->busy(inst.provider)) continue;  // next round
    const uint64_t call = calls_->terminate(inst.provider, {id});
    if (auto outcome = calls_->take(call)) {
      return_ended(id, outcome->status(), /*off_loop=*/false, batch, now_ms);
      continue;
    }
    // Made off the loop: the machine takes no work while it is being returned.
    returns_[call] = id;
    if (auto node = nodes_.find(id); node != nodes_.end()) {
      cluster_.set_cordoned(node->second.id, true);
      sched_dirty_ = true;
    }
  }
}

void ControlPlane::return_ended(const std::string& id, const Status& outcome, bool off_loop,
                                store::WriteBatch& batch, int64_t now_ms) {
  auto it = instances_.find(id);
  if (it == instances_.end()) return;
  CloudInstance& inst = it->second;
  ProviderBackoff& backoff = provider_backoff_[inst.provider];
  backoff.record(outcome, now_ms);
  if (inst.ended_ms) return;
  if (!outcome.is_ok()) {
    event(
        batch, now_ms, "instance/" + id,
        "cannot terminate: " + outcome.message() + "; tried again in " + backoff.rest_left(now_ms));
    // The cordon the return set (off the loop) goes; one for other reasons stays.
    if (auto node = nodes_.find(id); off_loop && node != nodes_.end()) {
      cluster_.set_cordoned(node->second.id, !node->second.record.ready || going_away(id));
      sched_dirty_ = true;
    }
    return;
  }
  end_instance(inst,
               "idle for " + std::to_string((now_ms - inst.idle_since_ms) / 1000) + " s, returned",
               batch, now_ms);
}

void ControlPlane::rent_for_pending(store::WriteBatch& batch, int64_t now_ms) {
  std::vector<const Job*> waiting;
  for (const auto& [seq, id] : pending_jobs_) {
    const Job& job = jobs_.at(id);
    if (job.record.state == JobState::kPending && job.no_capacity) waiting.push_back(&job);
  }
  if (waiting.empty()) return;
  // What to rent is decided by the renting policy (sched/renting.h), which the cost replay runs
  // too; what follows applies it: provider calls, failover, back-off, pool limits, budgets, and
  // replicas spread over regions.
  std::vector<sched::RentalRequest> requests;
  for (const Job* job : waiting) requests.push_back(rental_request(job->spec));
  // Room on machines that are launching, or joined and not used yet.
  const std::set<std::string> used = nodes_with_tasks(/*with_stopping=*/false);
  std::vector<sched::Room> rooms;
  int live = 0;
  for (const auto& [id, inst] : instances_) {
    if (inst.ended_ms) continue;
    ++live;
    if (going_away(id) || used.count(id)) continue;
    auto owner = jobs_.find(inst.for_job);
    const bool owner_waits =
        owner != jobs_.end() && owner->second.record.state == JobState::kPending;
    if (inst.joined_ms && now_ms - inst.joined_ms > kFreshMs && !owner_waits) continue;
    if (auto machine = rental_offer(inst.offer, inst.info.spot, inst.price_per_hour)) {
      rooms.push_back(sched::room_on(id, inst.for_job, *machine));
    }
  }
  // Launches in flight count as machines: room for their job first, and for others too (a
  // bigger machine rented to be filled); their jobs wait for them.
  std::map<std::string, const Launch*> launching;
  auto launch_rooms = [&](uint64_t call, const Launch& launch) {
    const auto machine =
        rental_offer(launch.offer, launch.spot, offer_price(launch.offer, launch.spot));
    for (int i = 0; machine && i < launch.count; ++i) {
      rooms.push_back(sched::room_on("launch-" + std::to_string(call) + "-" + std::to_string(i),
                                     launch.for_job, *machine));
    }
  };
  for (const auto& [call, launch] : launches_) {
    live += launch.count;
    launch_rooms(call, launch);
    if (!launch.for_job.empty()) launching[launch.for_job] = &launch;
  }
  // Every provider's offers, once per round.
  const std::vector<std::pair<size_t, cloud::Offer>> offers = provider_offers();
  const RentalOffers rentals = rental_offers(offers);
  constexpr double kAnyPrice = std::numeric_limits<double>::infinity();
  std::vector<bool> served(waiting.size(), false);
  for (size_t w = 0; w < waiting.size(); ++w) {
    const Job* job = waiting[w];
    const std::string& job_id = job->record.id;
    const sched::RentalRequest& request = requests[w];
    // Why no machine is rented for it, shown after its reason; kept in memory (it changes with
    // every round, and the store has the events).
    std::string& note = jobs_.at(job_id).cloud_note;
    note.clear();
    if (auto l = launching.find(job_id); l != launching.end()) {
      note = waiting_for(*l->second, now_ms);
      (void)sched::take_room(rooms, request, job_id, kAnyPrice);  // its own share of them
      served[w] = true;
      continue;
    }
    const bool replica = deployment_of_job_.count(job_id) > 0;
    // The offers it may launch: spot ones when it asks for spot, and a spot replica of a
    // deployment falls back to on-demand machines when no spot one can be rented (SkyServe's
    // policy): serving beats saving. Batch jobs wait for spot.
    std::vector<size_t> spot_offers, on_demand;
    if (job->spec.use_spot) spot_offers = launchable(rentals, request, true, failures_, now_ms);
    if (!job->spec.use_spot || replica) {
      on_demand = launchable(rentals, request, false, failures_, now_ms);
    }
    // Room on a machine not rented for it is taken only when no dearer than a launch.
    const double launch_per_gpu =
        std::min(sched::cheapest_per_gpu_hour(rentals.offers, spot_offers),
                 sched::cheapest_per_gpu_hour(rentals.offers, on_demand));
    if (sched::take_room(rooms, request, job_id, launch_per_gpu)) {
      served[w] = true;
      continue;
    }
    if (const std::optional<SpentBudget> spent =
            ledger_.spent_budget(job->spec.queue, queues_, now_ms)) {
      note = spent->why();
      continue;
    }
    // A gang that lost a machine still has the others: only the missing ones are rented.
    const int missing =
        job->spec.num_nodes - sched::tasks_with_room(rooms, request, job_id, launch_per_gpu);
    if (live + missing > options_.max_instances) {
      continue;  // at the limit; idle machines returning make room
    }
    // A machine bigger than the job, filled by the other jobs waiting now, can cost less per GPU
    // than machines of the job's size. Not for a deployment's replicas, which spread instead.
    std::vector<sched::Demand> others;
    for (size_t o = 0; o < waiting.size() && !replica; ++o) {
      if (o == w || served[o] || deployment_of_job_.count(waiting[o]->record.id)) continue;
      others.push_back({requests[o], requests[o].share()});
    }
    sched::order_offers(rentals.offers, spot_offers, request, others);
    sched::order_offers(rentals.offers, on_demand, request, others);
    // A deployment's replicas spread over cloud regions, then over zones: within spot and within
    // on-demand offers, those where fewer of its replicas are come first, then the cheaper (so
    // one region's or zone's outage or wave of spot interruptions takes fewer of them).
    if (auto dep = deployment_of_job_.find(job_id); dep != deployment_of_job_.end()) {
      if (auto d = deployments_.find(dep->second); d != deployments_.end()) {
        const std::map<std::string, int> at = replica_locations(d->second, job_id);
        auto by_crowding = [&](size_t a, size_t b) {
          return crowding(at, location_of(rentals.offer(offers, a))) <
                 crowding(at, location_of(rentals.offer(offers, b)));
        };
        std::stable_sort(spot_offers.begin(), spot_offers.end(), by_crowding);
        std::stable_sort(on_demand.begin(), on_demand.end(), by_crowding);
      }
    }
    std::vector<size_t> candidates = std::move(spot_offers);
    candidates.insert(candidates.end(), on_demand.begin(), on_demand.end());
    bool launched = false;
    std::string limited;      // the pool limit that kept an offer out
    std::string unreachable;  // a provider that did not answer, or rests
    std::string waiting_on;   // a provider busy with an earlier call
    for (size_t c : candidates) {
      const auto& [p, offer] = offers[rentals.source[c]];
      const bool spot = rentals.offers[c].spot;
      const std::string& pool = rentals.offers[c].key;
      if (std::string why = pool_limit_reached(pool, missing); !why.empty()) {
        if (limited.empty()) limited = "pool " + why;
        continue;
      }
      const cloud::ProvisionRequest provision{
          .offer = offer,
          .spot = spot,
          .count = missing,
          .bootstrap_script = bootstrap_script_ ? bootstrap_script_() : std::string(),
          .labels = {{"lepton-job", job_id}},
          .idempotency_key = job_id + "-" + std::to_string(now_ms)};
      ProviderBackoff& backoff = provider_backoff_[p];
      if (backoff.resting(now_ms)) {
        if (unreachable.empty()) {
          unreachable = "cannot rent from " + std::string(providers_[p]->name()) +
                        " until it answers again (tried again in " + backoff.rest_left(now_ms) +
                        "): " + backoff.last_error();
        }
        continue;
      }
      if (calls_->off_loop(p) && calls_->busy(p)) {
        // One call at a time to a provider that blocks: the job waits a round for it rather
        // than going to a dearer offer elsewhere.
        waiting_on =
            "waiting for " + std::string(providers_[p]->name()) + " to answer an earlier call";
        break;
      }
      const Launch launch{.provider = p,
                          .offer = offer,
                          .spot = spot,
                          .count = missing,
                          .for_job = job_id,
                          .min_pool = "",
                          .keep_min = 0,
                          .started_ms = now_ms};
      const uint64_t call = calls_->provision(p, provision);
      const std::optional<ProviderCalls::Outcome> outcome = calls_->take(call);
      if (!outcome) {  // made off the loop: the machines count from now, the result comes later
        launches_[call] = launch;
        launch_rooms(call, launch);
        (void)sched::take_room(rooms, request, job_id, launch_per_gpu);
        live += missing;
        served[w] = true;
        note = waiting_for(launch, now_ms);
        launched = true;
        break;
      }
      const std::vector<cloud::Instance> rented =
          launch_ended(launch, *outcome, &unreachable, batch, now_ms);
      if (!outcome->is_ok()) continue;  // the next offer (a resting provider's are skipped)
      for (const cloud::Instance& i : rented) {
        rooms.push_back(sched::room_on(i.id, job_id, rentals.offers[c]));
        ++live;
      }
      (void)sched::take_room(rooms, request, job_id, launch_per_gpu);
      served[w] = true;
      launched = true;
      break;
    }
    if (!launched && !waiting_on.empty()) {
      note = waiting_on;
    } else if (!launched && !unreachable.empty()) {
      note = unreachable;
    } else if (!launched && !limited.empty()) {
      note = limited;
    }
    if (!launched && candidates.empty()) note = "no cloud offer fits it now";
  }
}

void ControlPlane::pool_failed(const std::string& pool, store::WriteBatch& batch, int64_t now_ms) {
  batch.failed_pools.push_back({pool, failures_.failed(pool, now_ms)});
}

bool ControlPlane::going_away(const std::string& node) const {
  auto it = instances_.find(node);
  if (it == instances_.end() || it->second.ended_ms) return false;
  return it->second.notice_ms || being_returned(node);
}

bool ControlPlane::being_returned(const std::string& id) const {
  return std::any_of(returns_.begin(), returns_.end(),
                     [&](const auto& call) { return call.second == id; });
}

std::string ControlPlane::waiting_for(const Launch& launch, int64_t now_ms) const {
  return "waiting for " + std::string(providers_[launch.provider]->name()) +
         " to answer the launch of " + std::to_string(launch.count) + " x " +
         cloud::offer_pool(launch.offer, launch.spot) + " (" +
         std::to_string((now_ms - launch.started_ms) / 1000) + " s)";
}

Result<json> ControlPlane::interrupt_instance(const std::string& id, int64_t now_ms) {
  auto it = instances_.find(id);
  if (it == instances_.end()) return Status::not_found("instance " + id + ": not found");
  if (it->second.ended_ms) {
    return Status(StatusCode::kConflict, "instance " + id + ": has already ended");
  }
  if (it->second.provider >= providers_.size()) {
    return Status::invalid_argument("instance " + id + ": its provider is not attached");
  }
  // Only emulated clouds can; the others answer kInvalidArgument naming themselves.
  if (Status s = providers_[it->second.provider]->interrupt(id); !s.is_ok()) {
    return Status(s.code(), "instance " + id + ": " + s.message());
  }
  // Acted on at once, not at the next round.
  store::WriteBatch batch;
  handle_notices(batch, now_ms);
  LEPTON_RETURN_IF_ERROR(commit(batch));
  return json{{"id", id}, {"interrupted", true}};
}

Result<json> ControlPlane::plan_job(const std::string& body, int64_t now_ms) const {
  auto spec = spec::job_spec_from_json(body);
  if (!spec.is_ok()) return spec.status();
  // Placement only: the queue's admission (quota, fair share) is not judged here.
  const Job job{{}, *spec, 0, 0, {}, false, {}};
  const sched::Request request = request_of(job);
  int fitting = 0;
  for (const auto& [name, node] : nodes_) {
    if (node.record.ready && !cluster_.cordoned(node.id) &&
        sched::ClusterState::fits(cluster_.state(node.id), request)) {
      ++fitting;
    }
  }
  json offers = json::array();
  if (!providers_.empty()) {
    // The offers rent_for_pending would try for it alone, in its order (the renting policy's).
    const std::vector<std::pair<size_t, cloud::Offer>> all = provider_offers();
    const RentalOffers rentals = rental_offers(all);
    const sched::RentalRequest wanted = rental_request(*spec);
    std::vector<size_t> candidates = launchable(rentals, wanted, spec->use_spot, failures_, now_ms);
    sched::order_offers(rentals.offers, candidates, wanted, {});
    for (size_t c : candidates) {
      if (offers.size() == 5) break;
      const cloud::Offer& o = rentals.offer(all, c);
      const double price = rentals.offers[c].price_per_hour;
      offers.push_back({{"cloud", o.cloud},
                        {"region", o.region},
                        {"zone", o.zone},
                        {"instance_type", o.instance_type},
                        {"gpu_model", o.gpu_model},
                        {"gpus", o.gpu_count},
                        {"spot", spec->use_spot},
                        {"price_per_hour", price},
                        {"machines", spec->num_nodes},
                        {"total_per_hour", price * spec->num_nodes}});
    }
  }
  return json{{"fits_now", fitting >= spec->num_nodes},
              {"fitting_nodes", fitting},
              {"clouds", !providers_.empty()},
              {"offers", offers}};
}

}  // namespace lepton::server
