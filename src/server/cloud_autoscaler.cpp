// The cloud autoscaler: ControlPlane's members for rented machines (control_plane.h, "Clouds").
// Once a second, on the control loop:
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
//      off it) and the pool is skipped for failover_ttl_ms.
// Launches and terminations go through ProviderCalls: a provider whose calls block (EC2, over
// HTTPS) is called on a thread of its own, one call at a time, and the result is taken up on a
// later round; the emulated clouds answer at once, on the loop. Listings and notices come from
// PolledProvider's last poll.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>
#include <optional>
#include <set>

#include "cloud/sim_provider.h"
#include "sched/renting.h"
#include "server/control_plane.h"
#include "server/rental_offers.h"
#include "spec/job_json.h"

namespace lepton::server {

namespace {

constexpr int64_t kCloudRoundMs = 1000;
// A machine that joined this recently and has no work yet still counts as room for pending work
// (the scheduler may not have placed it there yet).
constexpr int64_t kFreshMs = 15'000;

double hours(int64_t ms) { return static_cast<double>(ms) / 3'600'000.0; }

std::string money(double usd) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.2f", usd);
  return buf;
}

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

void ControlPlane::record_rented(size_t provider, const cloud::Instance& instance,
                                 const cloud::Offer& offer, bool spot, const std::string& for_job,
                                 store::WriteBatch& batch, int64_t now_ms) {
  CloudInstance inst;
  inst.provider = provider;
  inst.provider_name = std::string(providers_[provider]->name());
  inst.info = instance;
  inst.offer = offer;
  inst.price_per_hour = offer_price(offer, spot);
  inst.for_job = for_job;
  inst.launched_ms = now_ms;
  save_instance(inst, batch);
  instances_[instance.id] = std::move(inst);
}

std::set<std::string> ControlPlane::nodes_with_tasks(bool with_stopping) const {
  std::set<std::string> nodes;
  for (const TaskKey& key : active_tasks_) nodes.insert(tasks_.at(key).node);
  if (with_stopping) {
    for (const auto& [key, st] : stopping_) nodes.insert(st.node);
  }
  return nodes;
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
              money(offer_price(launch.offer, launch.spot)) + "/h each");
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
      for (const TaskKey& key : active_tasks_) {
        if (tasks_.at(key).node == n.instance_id) jobs.insert(key.first);
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
    if (std::string spent = budget_spent(job->spec, now_ms); !spent.empty()) {
      note = std::move(spent);
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

void ControlPlane::bind_rented(store::WriteBatch& batch, int64_t now_ms) {
  if (instances_.empty()) return;
  const std::set<std::string> busy = nodes_with_tasks(/*with_stopping=*/true);
  std::set<std::string> stopping_jobs;
  for (const auto& [key, st] : stopping_) stopping_jobs.insert(key.first);
  std::map<std::string, std::vector<std::string>> joined_for;  // job -> its idle machines
  for (const auto& [id, inst] : instances_) {
    if (inst.ended_ms || inst.notice_ms || inst.for_job.empty() || busy.count(id)) continue;
    auto node = nodes_.find(id);
    if (node == nodes_.end() || !node->second.record.ready || cluster_.cordoned(node->second.id)) {
      continue;
    }
    joined_for[inst.for_job].push_back(id);
  }
  for (const auto& [job_id, machines] : joined_for) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.record.state != JobState::kPending ||
        stopping_jobs.count(job_id)) {
      continue;
    }
    Job& job = it->second;
    if (static_cast<int>(machines.size()) < job.spec.num_nodes) continue;  // the rest still boot
    const sched::Request request = request_of(job);
    std::vector<sched::Placement> placements;
    for (int rank = 0; rank < job.spec.num_nodes; ++rank) {
      const sched::NodeId node = nodes_.at(machines[static_cast<size_t>(rank)]).id;
      const sched::NodeState& state = cluster_.state(node);
      if (!sched::ClusterState::fits(state, request)) break;
      placements.push_back({node, cluster_.pick_gpus(node, request, state.gpu_free_sorted[0])});
    }
    if (static_cast<int>(placements.size()) != job.spec.num_nodes) continue;
    for (const sched::Placement& p : placements) cluster_.bind(request, p);
    sched_dirty_ = true;
    assign(job, placements, batch, now_ms);
  }
}

std::vector<sched::NodeId> ControlPlane::hold_rented_machines() {
  std::vector<sched::NodeId> held;
  if (instances_.empty()) return held;
  const std::set<std::string> busy = nodes_with_tasks(/*with_stopping=*/false);
  for (const auto& [id, inst] : instances_) {
    if (inst.ended_ms || inst.notice_ms || busy.count(id)) continue;
    auto owner = jobs_.find(inst.for_job);
    if (owner == jobs_.end() || owner->second.record.state != JobState::kPending) continue;
    auto node = nodes_.find(id);
    if (node == nodes_.end() || cluster_.cordoned(node->second.id)) continue;
    cluster_.set_cordoned(node->second.id, true);
    held.push_back(node->second.id);
  }
  return held;
}

void ControlPlane::end_instance(CloudInstance& inst, const std::string& why,
                                store::WriteBatch& batch, int64_t now_ms) {
  inst.ended_ms = now_ms;
  inst.end_reason = why;
  inst.info.state = cloud::InstanceState::kTerminated;
  event(batch, now_ms, "instance/" + inst.info.id,
        "ended: " + why + " (billed " + money(instance_cost(inst, now_ms)) + ")");
  if (nodes_.count(inst.info.id)) forget_node(inst.info.id, "its machine ended", batch, now_ms);
  for (CloudInstance::Use& use : inst.usage) {
    if (!use.end_ms) use.end_ms = now_ms;
  }
  std::erase_if(open_use_, [&](const auto& entry) { return entry.second == inst.info.id; });
  save_instance(inst, batch);
}

void ControlPlane::forget_node(const std::string& name, const std::string& why,
                               store::WriteBatch& batch, int64_t now_ms) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  const std::vector<TaskKey> active(active_tasks_.begin(), active_tasks_.end());
  for (const TaskKey& key : active) {
    store::TaskRecord& task = tasks_.at(key);
    if (task.node != name) continue;
    task_failed(jobs_.at(key.first), task, "its node " + name + " is gone: " + why,
                /*counts_as_restart=*/false, batch, now_ms);
  }
  // Tasks still stopping there are gone with it; their resources go with the node.
  std::erase_if(stopping_, [&](const auto& entry) { return entry.second.node == name; });
  cluster_.set_cordoned(it->second.id, true);  // the scheduler's slot stays, never used again
  sched_dirty_ = true;
  nodes_.erase(it);
  batch.deleted_nodes.push_back(name);
  event(batch, now_ms, "node/" + name, "removed: " + why);
}

void ControlPlane::track_use(const store::TaskRecord& task, bool was_active, bool active,
                             store::WriteBatch& batch) {
  const TaskKey key{task.job_id, task.rank};
  if (was_active && !active) {
    auto open = open_use_.find(key);
    if (open == open_use_.end()) return;
    auto inst = instances_.find(open->second);
    open_use_.erase(open);
    if (inst == instances_.end()) return;
    for (CloudInstance::Use& use : inst->second.usage) {
      if (use.job == task.job_id && !use.end_ms) {
        use.end_ms = std::max(use.start_ms, task.updated_ms);
        break;
      }
    }
    save_instance(inst->second, batch);
  } else if (!was_active && active) {
    auto inst = instances_.find(task.node);
    auto job = jobs_.find(task.job_id);
    if (inst == instances_.end() || job == jobs_.end() || inst->second.ended_ms) return;
    const Resources& r = job->second.spec.resources;
    const double gpus = r.fractional() ? r.gpu_milli / 1000.0 : static_cast<double>(r.gpu_count);
    inst->second.usage.push_back(
        {task.job_id, job->second.spec.queue.empty() ? "default" : job->second.spec.queue, gpus,
         task.updated_ms, 0});
    open_use_[key] = task.node;
    save_instance(inst->second, batch);
  }
}

double ControlPlane::queue_spend(const std::string& queue, int64_t now_ms) const {
  auto under = [&](std::string q) {  // whether q is `queue` or below it
    for (int depth = 0; depth < 64 && !q.empty(); ++depth) {
      if (q == queue) return true;
      auto it = queues_.find(q);
      if (it == queues_.end()) return false;
      q = it->second.parent;
    }
    return false;
  };
  double spent = 0;
  for (const auto& [id, inst] : instances_) {
    const double per_gpu_hour =
        inst.offer.gpu_count > 0 ? inst.price_per_hour / inst.offer.gpu_count : 0;
    const int64_t end = inst.ended_ms ? inst.ended_ms : now_ms;
    for (const CloudInstance::Use& u : inst.usage) {
      if (!under(u.queue)) continue;
      spent += per_gpu_hour * u.gpus *
               hours(std::max<int64_t>(0, (u.end_ms ? u.end_ms : end) - u.start_ms));
    }
  }
  return spent;
}

std::string ControlPlane::budget_spent(const JobSpec& spec, int64_t now_ms) const {
  std::string q = spec.queue.empty() ? kDefaultQueue : spec.queue;
  for (int depth = 0; depth < 64 && !q.empty(); ++depth) {
    auto it = queues_.find(q);
    if (it == queues_.end()) return "";
    if (it->second.budget_usd) {
      const double spent = queue_spend(q, now_ms);
      if (spent >= *it->second.budget_usd) {
        return "queue " + q + " has spent " + money(spent) + " of its " +
               money(*it->second.budget_usd) + " budget: no machine is rented for it";
      }
    }
    q = it->second.parent;
  }
  return "";
}

double ControlPlane::instance_cost(const CloudInstance& inst, int64_t now_ms) const {
  const int64_t end = inst.ended_ms ? inst.ended_ms : now_ms;
  return inst.price_per_hour * hours(std::max<int64_t>(0, end - inst.launched_ms));
}

void ControlPlane::save_instance(const CloudInstance& inst, store::WriteBatch& batch) const {
  batch.instances.push_back({inst.info.id, instance_json(inst).dump()});
}

json ControlPlane::instance_json(const CloudInstance& inst) const {
  json usage = json::array();
  for (const CloudInstance::Use& u : inst.usage) {
    usage.push_back({{"job", u.job},
                     {"queue", u.queue},
                     {"gpus", u.gpus},
                     {"start_ms", u.start_ms},
                     {"end_ms", u.end_ms}});
  }
  const cloud::Offer& o = inst.offer;
  json j = {{"provider", inst.provider_name},
            {"cloud", o.cloud},
            {"region", o.region},
            {"zone", o.zone},
            {"instance_type", o.instance_type},
            {"gpu_model", o.gpu_model},
            {"gpus", o.gpu_count},
            {"vcpus", o.vcpus},
            {"memory_gib", o.memory_gib},
            {"spot", inst.info.spot},
            {"price_per_hour", inst.price_per_hour},
            {"state", cloud::instance_state_name(inst.info.state)},
            {"for_job", inst.for_job},
            {"launched_ms", inst.launched_ms},
            {"joined_ms", inst.joined_ms},
            {"notice_ms", inst.notice_ms},
            {"ended_ms", inst.ended_ms},
            {"end_reason", inst.end_reason},
            {"usage", usage}};
  return j;
}

void ControlPlane::pool_failed(const std::string& pool, store::WriteBatch& batch, int64_t now_ms) {
  batch.failed_pools.push_back({pool, failures_.failed(pool, now_ms)});
}

Status ControlPlane::load_instances() {
  auto failed = store_->list_failed_pools();
  if (!failed.is_ok()) return failed.status();
  for (const store::FailedPoolRecord& f : *failed) failures_.remember(f.pool, f.until_ms);

  auto records = store_->list_instances();
  if (!records.is_ok()) return records.status();
  for (const store::InstanceRecord& r : *records) {
    json j = json::parse(r.record_json, nullptr, false);
    if (!j.is_object()) return Status::internal("instance " + r.id + ": stored record unreadable");
    CloudInstance inst;
    inst.info.id = r.id;
    inst.provider_name = j.value("provider", "");
    inst.provider = SIZE_MAX;  // until set_clouds() finds it
    inst.offer.cloud = j.value("cloud", "");
    inst.offer.region = j.value("region", "");
    inst.offer.zone = j.value("zone", "");
    inst.offer.instance_type = j.value("instance_type", "");
    inst.offer.gpu_model = j.value("gpu_model", "");
    inst.offer.gpu_count = j.value("gpus", 0.0);
    inst.offer.vcpus = j.value("vcpus", 0.0);
    inst.offer.memory_gib = j.value("memory_gib", 0.0);
    inst.info.cloud = inst.offer.cloud;
    inst.info.region = inst.offer.region;
    inst.info.zone = inst.offer.zone;
    inst.info.instance_type = inst.offer.instance_type;
    inst.info.spot = j.value("spot", false);
    inst.price_per_hour = j.value("price_per_hour", 0.0);
    inst.info.state = j.value("state", "") == "terminated" ? cloud::InstanceState::kTerminated
                                                           : cloud::InstanceState::kRunning;
    inst.for_job = j.value("for_job", "");
    inst.launched_ms = j.value("launched_ms", int64_t{0});
    inst.joined_ms = j.value("joined_ms", int64_t{0});
    inst.notice_ms = j.value("notice_ms", int64_t{0});
    inst.ended_ms = j.value("ended_ms", int64_t{0});
    inst.end_reason = j.value("end_reason", "");
    const json usage = j.value("usage", json::array());
    for (const json& u : usage) {
      inst.usage.push_back({u.value("job", ""), u.value("queue", ""), u.value("gpus", 0.0),
                            u.value("start_ms", int64_t{0}), u.value("end_ms", int64_t{0})});
    }
    instances_[r.id] = std::move(inst);
  }
  return Status::ok();
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

int ControlPlane::node_group(const std::string& node) {
  auto it = instances_.find(node);
  if (it == instances_.end()) return 0;
  const CloudInstance& inst = it->second;
  const NodeGroup group{inst.offer.cloud, inst.offer.region, inst.offer.zone, inst.info.spot};
  auto known = std::find(node_groups_.begin(), node_groups_.end(), group);
  if (known != node_groups_.end()) return static_cast<int>(known - node_groups_.begin()) + 1;
  if (node_groups_.size() + 1 >= static_cast<size_t>(sched::kMaxNodeGroups)) {
    // Out of group ids (63 kinds of rented machine): this one takes any work, as owned nodes do.
    return 0;
  }
  node_groups_.push_back(group);
  return static_cast<int>(node_groups_.size());
}

sched::GroupMask ControlPlane::allowed_groups(const JobSpec& spec) const {
  sched::GroupMask mask = 1;  // machines of our own
  auto in = [](const std::vector<std::string>& names, const std::string& a, const std::string& b) {
    return names.empty() || std::find(names.begin(), names.end(), a) != names.end() ||
           (!b.empty() && std::find(names.begin(), names.end(), b) != names.end());
  };
  for (size_t g = 0; g < node_groups_.size(); ++g) {
    const NodeGroup& group = node_groups_[g];
    if (group.spot && !spec.use_spot) continue;  // on-demand work stays off spot machines
    if (!in(spec.clouds, group.cloud, "") || !in(spec.regions, group.region, group.zone)) continue;
    mask |= sched::GroupMask{1} << (g + 1);
  }
  return mask;
}

json ControlPlane::list_instances(int64_t now_ms) const {
  json out = json::array();
  for (const auto& [id, inst] : instances_) {
    json j = instance_json(inst);
    j.erase("usage");
    j["id"] = id;
    j["cost_usd"] = instance_cost(inst, now_ms);
    j["node"] = nodes_.count(id) ? id : "";
    out.push_back(std::move(j));
  }
  return out;
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
  auto* sim = dynamic_cast<cloud::SimProvider*>(providers_[it->second.provider].get());
  if (!sim) {
    return Status::invalid_argument(
        "instance " + id + ": only emulated (sim) instances can be interrupted on request");
  }
  LEPTON_RETURN_IF_ERROR(sim->interrupt(id));
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

Result<json> ControlPlane::cost(const std::string& by, int64_t now_ms) const {
  if (by != "job" && by != "queue" && by != "cloud" && by != "instance") {
    return Status::invalid_argument("by: expected job, queue, cloud or instance, got '" + by + "'");
  }
  std::map<std::string, std::pair<double, double>> rows;  // key -> (usd, gpu-hours)
  double total = 0, idle = 0;
  for (const auto& [id, inst] : instances_) {
    const double billed = instance_cost(inst, now_ms);
    total += billed;
    const double per_gpu_hour =
        inst.offer.gpu_count > 0 ? inst.price_per_hour / inst.offer.gpu_count : 0;
    const int64_t end = inst.ended_ms ? inst.ended_ms : now_ms;
    double used = 0;
    for (const CloudInstance::Use& u : inst.usage) {
      const double gpu_hours =
          u.gpus * hours(std::max<int64_t>(0, (u.end_ms ? u.end_ms : end) - u.start_ms));
      used += gpu_hours * per_gpu_hour;
      if (by == "job" || by == "queue") {
        auto& row = rows[by == "job" ? u.job : u.queue];
        row.first += gpu_hours * per_gpu_hour;
        row.second += gpu_hours;
      }
    }
    idle += std::max(0.0, billed - used);
    if (by == "cloud" || by == "instance") {
      auto& row = rows[by == "cloud" ? inst.offer.cloud : id];
      row.first += billed;
      row.second += inst.offer.gpu_count * hours(std::max<int64_t>(0, end - inst.launched_ms));
    }
  }
  json out = {{"by", by}, {"total_usd", total}, {"idle_usd", idle}, {"rows", json::array()}};
  for (const auto& [key, row] : rows) {
    out["rows"].push_back({{"key", key}, {"cost_usd", row.first}, {"gpu_hours", row.second}});
  }
  return out;
}

}  // namespace lepton::server
