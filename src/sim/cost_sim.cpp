#include "sim/cost_sim.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <string_view>

#include "core/gpu_model.h"
#include "sched/renting.h"
#include "sim/cost_bound.h"
#include "sim/random.h"

namespace lepton::sim {
namespace {

// Uniform in [0, 1).
double unit(uint64_t& state) { return static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53; }

uint64_t hash_text(std::string_view text, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return splitmix64(h);
}

// A pool's name: capacities are drawn from it, and the renting policy breaks ties by it.
std::string pool_key(const CostPool& p) {
  return p.cloud + "/" + p.region + "/" + p.instance_type + (p.spot ? "/spot" : "/on-demand");
}

enum class Policy { kSingleCloud, kCheapestFirst, kLepton };

enum EventKind { kArrive, kJobEnd, kInterrupt, kIdle, kRetry };

struct Event {
  double t = 0;
  uint64_t seq = 0;
  EventKind kind = kArrive;
  int id = 0;
  uint64_t epoch = 0;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct Instance {
  int pool = 0;
  double launch = 0;
  double ready = 0;
  double end = -1;
  sched::Room room;  // its free GPU milli (a baseline's job takes whole GPUs)
  std::vector<int> jobs;
  uint64_t idle_epoch = 0;
  bool alive = true;
};

struct JobRun {
  double remaining = 0;
  int inst = -1;
  std::vector<int> gpus;
  double seg_start = 0;
  uint64_t epoch = 0;
  double first_start = -1;
  double done = -1;
};

// The pools a job may use under a policy, in the order a baseline walks them (lepton orders them
// per launch, sched/renting.h), and each pool's rank.
struct Candidates {
  std::vector<size_t> order;
  std::vector<int> rank;      // per pool; -1 when not a candidate
  bool any_capacity = false;  // some candidate pool holds at least one instance
};

class CostSim {
 public:
  CostSim(Policy policy, const std::vector<CostJob>& jobs, const std::vector<CostPool>& pools,
          const CostOptions& options)
      : policy_(policy),
        jobs_(jobs),
        pools_(pools),
        opt_(options),
        runs_(jobs.size()),
        cheapest_(jobs.size(), 0.0),
        in_use_(pools.size(), 0),
        failed_until_(pools.size(), -std::numeric_limits<double>::infinity()) {
    // The renting policy's view of the pools and jobs (sched/renting.h).
    offers_.reserve(pools.size());
    for (const CostPool& p : pools) {
      offers_.push_back({.key = pool_key(p),
                         .cloud = p.cloud,
                         .region = p.region,
                         .zone = "",
                         .gpu_model = p.gpu_model,
                         .gpus = p.gpu_count,
                         .cpu_milli = 0,
                         .memory_mib = 0,
                         .price_per_hour = p.price_per_hour,
                         .spot = p.spot});
    }
    std::map<std::string, int> kinds;  // by fit_key
    for (const CostJob& job : jobs) {
      requests_.push_back({.tasks = 1,
                           .gpus = job.num_gpu,
                           .gpu_milli = job.gpu_milli,
                           .cpu_milli = 0,
                           .memory_mib = 0,
                           .models = job.models,
                           .clouds = {},
                           .regions = {},
                           .spot_ok = job.spot_ok});
      auto [kind, fresh] = kinds.try_emplace(fit_key(job), static_cast<int>(kinds.size()));
      if (fresh) kind_request_.push_back(requests_.back());
      kind_.push_back(kind->second);
    }
  }

  CostPolicyResult run() {
    std::map<std::string, double> cheapest_of_kind;  // by fit_key
    for (size_t j = 0; j < jobs_.size(); ++j) {
      auto [kind, fresh] = cheapest_of_kind.try_emplace(fit_key(jobs_[j]), 0.0);
      if (fresh) kind->second = cheapest_per_gpu_hour(jobs_[j], pools_);
      if (std::isfinite(kind->second)) {
        cheapest_[j] = kind->second;
        floor_ = std::min(floor_, kind->second);
      }
      runs_[j].remaining = jobs_[j].duration_s;
      push(jobs_[j].arrival_s, kArrive, static_cast<int>(j), 0);
    }
    // Jobs that checkpoint too rarely for their interruptions never finish: the run stops at
    // ten times the longest job past the last arrival, and what is left counts as incomplete.
    double horizon = 0;
    for (const CostJob& job : jobs_) {
      horizon = std::max(horizon, job.arrival_s + 10 * job.duration_s + 86400);
    }
    while (!events_.empty()) {
      Event e = events_.top();
      if (e.t > horizon) {
        stop_at(horizon);
        break;
      }
      events_.pop();
      account(e.t);
      now_ = e.t;
      switch (e.kind) {
        case kArrive:
          if (!candidates(e.id).any_capacity) {
            ++result_.jobs_unplaceable;
          } else {
            pending_.push_back(e.id);
            dirty_ = true;
          }
          break;
        case kJobEnd:
          finish_job(e.id, e.epoch);
          break;
        case kInterrupt:
          interrupt(e.id);
          break;
        case kIdle: {
          Instance& in = instances_[e.id];
          if (in.alive && in.jobs.empty() && in.idle_epoch == e.epoch) {
            terminate(e.id);
            dirty_ = true;
          }
          break;
        }
        case kRetry:
          retry_scheduled_ = false;
          dirty_ = true;
          break;
      }
      // Waiting jobs are placed once every event of this instant is in, so jobs that arrive
      // together are placed together.
      if (dirty_ && (events_.empty() || events_.top().t > now_)) {
        dirty_ = false;
        place_pending();
      }
    }
    return summarize();
  }

 private:
  // Ends the run at `t`: every machine still alive is billed to then.
  void stop_at(double t) {
    account(t);
    now_ = t;
    result_.stopped_at_horizon = true;
    while (!alive_.empty()) terminate(alive_.back());
  }

  void push(double t, EventKind kind, int id, uint64_t epoch) {
    events_.push(Event{t, seq_++, kind, id, epoch});
  }

  bool shares_gpus() const { return policy_ == Policy::kLepton; }

  // Splits what the machines alive since the last event cost, up to `t`, into the terms of
  // CostPolicyResult::boot_usd..premium_usd, and the jobs' work at their cheapest price.
  void account(double t) {
    for (int i : alive_) {
      const Instance& in = instances_[i];
      const double from = std::max(accounted_to_, in.launch);
      if (t <= from) continue;
      const CostPool& pool = pools_[in.pool];
      const double per_gpu = pool.price_per_gpu_hour() / 3600.0;  // per GPU-second
      const double booting = std::max(0.0, std::min(t, in.ready) - from);
      const double running = t - from - booting;
      result_.boot_usd += booting * pool.gpu_count * per_gpu;
      if (running <= 0) continue;
      if (in.jobs.empty()) {
        result_.idle_usd += running * pool.gpu_count * per_gpu;
        continue;
      }
      double used = 0;
      for (int j : in.jobs) {
        const double share = jobs_[j].gpu_share();
        used += share;
        result_.premium_usd += running * share * (per_gpu - cheapest_[j] / 3600.0);
        work_usd_ += running * share * cheapest_[j] / 3600.0;
      }
      result_.unused_share_usd += running * (pool.gpu_count - used) * per_gpu;
    }
    accounted_to_ = t;
  }

  const Candidates& candidates(int j) {
    const CostJob& job = jobs_[j];
    const std::string key = fit_key(job);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    Candidates c;
    c.rank.assign(pools_.size(), -1);
    for (size_t p = 0; p < pools_.size(); ++p) {
      const CostPool& pool = pools_[p];
      if (!pool_fits(pool, job)) continue;
      if (policy_ == Policy::kSingleCloud && (pool.spot || pool.cloud != opt_.single_cloud)) {
        continue;
      }
      c.order.push_back(p);
      if (pool.capacity > 0) c.any_capacity = true;
    }
    // Baselines walk by instance price.
    std::stable_sort(c.order.begin(), c.order.end(), [&](size_t a, size_t b) {
      return pools_[a].price_per_hour < pools_[b].price_per_hour;
    });
    for (size_t r = 0; r < c.order.size(); ++r) c.rank[c.order[r]] = static_cast<int>(r);
    return cache_.emplace(key, std::move(c)).first->second;
  }

  // GPUs of `in` that can take job `j` (best fit for a share), or empty when it does not fit.
  std::vector<int> fit(const Instance& in, int j) const {
    if (!shares_gpus()) {
      if (!in.jobs.empty()) return {};
      std::vector<int> all(in.room.free_milli.size());
      for (size_t g = 0; g < all.size(); ++g) all[g] = static_cast<int>(g);
      return all;
    }
    return sched::gpus_for(in.room, requests_[j]);
  }

  int launch(size_t p, double t) {
    const CostPool& pool = pools_[p];
    Instance in;
    in.pool = static_cast<int>(p);
    in.launch = t;
    in.ready = t + opt_.boot_s;
    in.room = sched::room_on("", "", offers_[p]);
    int id = static_cast<int>(instances_.size());
    instances_.push_back(std::move(in));
    alive_.push_back(id);
    ++in_use_[p];
    ++result_.instances_launched;
    if (pool.spot && opt_.mtbi_hours > 0) {
      uint64_t state = opt_.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(id) + 1;
      double u = unit(state);
      double after = -std::log(1.0 - u) * opt_.mtbi_hours * 3600.0;
      push(t + after, kInterrupt, id, 0);
    }
    return id;
  }

  void assign(int j, int i, const std::vector<int>& gpus, double t) {
    Instance& in = instances_[i];
    JobRun& r = runs_[j];
    if (shares_gpus()) {
      sched::take(in.room, requests_[j], gpus);
    } else {
      for (int g : gpus) in.room.free_milli[g] -= 1000;
    }
    in.jobs.push_back(j);
    ++in.idle_epoch;
    r.inst = i;
    r.gpus = gpus;
    r.seg_start = std::max(t, in.ready);
    if (r.first_start < 0) r.first_start = r.seg_start;
    ++r.epoch;
    push(r.seg_start + r.remaining, kJobEnd, j, r.epoch);
  }

  void terminate(int i) {
    Instance& in = instances_[i];
    in.alive = false;
    in.end = std::max(now_, in.launch);
    --in_use_[in.pool];
    alive_.erase(std::find(alive_.begin(), alive_.end(), i));
    const CostPool& pool = pools_[in.pool];
    double hours = (in.end - in.launch) / 3600.0;
    result_.cost_usd += pool.price_per_hour * hours;
    (pool.spot ? result_.spot_instance_hours : result_.on_demand_instance_hours) += hours;
    result_.gpu_hours_billed += hours * pool.gpu_count;
  }

  void release(int j) {
    JobRun& r = runs_[j];
    Instance& in = instances_[r.inst];
    if (shares_gpus()) {
      sched::give_back(in.room, requests_[j], r.gpus);
    } else {
      for (int g : r.gpus) in.room.free_milli[g] += 1000;
    }
    in.jobs.erase(std::find(in.jobs.begin(), in.jobs.end(), j));
    if (in.jobs.empty() && in.alive) {
      ++in.idle_epoch;
      push(now_ + opt_.idle_timeout_s, kIdle, r.inst, in.idle_epoch);
    }
    r.inst = -1;
    r.gpus.clear();
  }

  void finish_job(int j, uint64_t epoch) {
    JobRun& r = runs_[j];
    if (r.epoch != epoch || r.inst < 0) return;
    r.done = now_;
    r.remaining = 0;
    release(j);
    dirty_ = true;
  }

  void interrupt(int i) {
    Instance& in = instances_[i];
    if (!in.alive) return;
    ++result_.interruptions;
    std::vector<int> victims = in.jobs;
    for (int j : victims) {
      JobRun& r = runs_[j];
      double ran = std::max(0.0, now_ - r.seg_start);
      double saved =
          opt_.checkpoint_s > 0 ? std::floor(ran / opt_.checkpoint_s) * opt_.checkpoint_s : 0.0;
      // lepton turns the interruption notice into a checkpoint signal.
      if (policy_ == Policy::kLepton) saved = std::max(saved, ran - opt_.notice_s);
      saved = std::clamp(saved, 0.0, r.remaining);
      result_.gpu_hours_lost += (ran - saved) * jobs_[j].gpu_share() / 3600.0;
      r.remaining -= saved;
      ++r.epoch;
      in.jobs.erase(std::find(in.jobs.begin(), in.jobs.end(), j));
      r.inst = -1;
      r.gpus.clear();
      pending_.push_back(j);
    }
    terminate(i);
    dirty_ = true;
  }

  bool try_place_baseline(int j) {
    const Candidates& c = candidates(j);
    int best = -1;
    for (int i : alive_) {
      const Instance& in = instances_[i];
      if (!in.jobs.empty() || c.rank[in.pool] < 0) continue;
      if (best < 0 || c.rank[in.pool] < c.rank[instances_[best].pool]) best = i;
    }
    if (best >= 0) {
      assign(j, best, fit(instances_[best], j), now_);
      return true;
    }
    double delay = 0;
    for (size_t p : c.order) {
      if (in_use_[p] >= pools_[p].capacity) {
        ++result_.capacity_errors;
        delay += opt_.fail_delay_s;
        continue;
      }
      int i = launch(p, now_ + delay);
      assign(j, i, fit(instances_[i], j), now_ + delay);
      return true;
    }
    return false;
  }

  // lepton's policy is the server's renting policy (sched/renting.h): room on a running or
  // booting instance when it is no dearer than a launch, else the pool with the lowest price per
  // GPU it is expected to fill with the jobs waiting now, skipping pools that recently failed.
  // `others` is that waiting work by kind, this job's own share left out.
  bool try_place_lepton(int j, const std::vector<sched::Demand>& others) {
    const Candidates& c = candidates(j);
    const sched::RentalRequest& request = requests_[j];
    // The pools it may launch now: not failed lately. Those with room set the price a room on a
    // running instance must not exceed.
    std::vector<size_t> open;
    std::vector<size_t> with_room;
    for (size_t p : c.order) {
      if (failed_until_[p] > now_) continue;
      open.push_back(p);
      if (in_use_[p] < pools_[p].capacity) with_room.push_back(p);
    }
    const double launch_per_gpu = sched::cheapest_per_gpu_hour(offers_, with_room);
    std::vector<const sched::Room*> rooms;
    rooms.reserve(alive_.size());
    for (int i : alive_) rooms.push_back(&instances_[i].room);
    const std::vector<sched::RoomTake> taken =
        sched::choose_rooms(rooms, request, "", launch_per_gpu);
    if (!taken.empty()) {
      assign(j, alive_[taken[0].room], taken[0].gpus, now_);
      return true;
    }
    sched::order_offers(offers_, open, request, others);
    double delay = 0;
    for (size_t p : open) {
      if (in_use_[p] >= pools_[p].capacity) {
        ++result_.capacity_errors;
        failed_until_[p] = now_ + opt_.failover_ttl_s;
        delay += opt_.fail_delay_s;
        continue;
      }
      int i = launch(p, now_ + delay);
      assign(j, i, fit(instances_[i], j), now_ + delay);
      return true;
    }
    return false;
  }

  void place_pending() {
    if (pending_.empty()) return;
    // The waiting work by kind (jobs that fit the same pools), for lepton's expected fill.
    std::vector<sched::Demand> others;
    std::vector<int> slot(kind_request_.size(), -1);
    if (policy_ == Policy::kLepton) {
      for (int j : pending_) {
        int& s = slot[kind_[j]];
        if (s < 0) {
          s = static_cast<int>(others.size());
          others.push_back({kind_request_[kind_[j]], 0.0});
        }
        others[s].gpus += jobs_[j].gpu_share();
      }
    }
    std::vector<int> waiting;
    for (int j : pending_) {
      bool placed = false;
      if (policy_ == Policy::kLepton) {
        sched::Demand& mine = others[slot[kind_[j]]];
        mine.gpus -= jobs_[j].gpu_share();  // the others, without this job
        placed = try_place_lepton(j, others);
        if (!placed) mine.gpus += jobs_[j].gpu_share();
      } else {
        placed = try_place_baseline(j);
      }
      if (!placed) waiting.push_back(j);
    }
    pending_ = std::move(waiting);
    if (!pending_.empty() && !retry_scheduled_) {
      retry_scheduled_ = true;
      push(now_ + opt_.retry_s, kRetry, 0, 0);
    }
  }

  CostPolicyResult summarize() {
    CostPolicyResult& r = result_;
    r.jobs = static_cast<int64_t>(jobs_.size());
    std::vector<double> jct;
    std::vector<CostJob> completed;
    std::vector<double> done;  // their completion times
    double wait = 0;
    double end = 0;
    for (size_t j = 0; j < jobs_.size(); ++j) {
      const JobRun& run = runs_[j];
      if (run.done < 0) continue;
      ++r.jobs_completed;
      jct.push_back(run.done - jobs_[j].arrival_s);
      wait += run.first_start - jobs_[j].arrival_s;
      r.gpu_hours_completed += jobs_[j].gpu_share() * jobs_[j].duration_s / 3600.0;
      completed.push_back(jobs_[j]);
      done.push_back(run.done);
    }
    if (!completed.empty()) {
      // The packing term's floor is floor_: every pool a policy launches fits some job of the run.
      CostBound bound = cost_lower_bound(completed, pools_, floor_, &done);
      r.lower_bound_usd = bound.usd;
      r.packing_bound_usd = bound.packing_usd;
      r.capacity_bound_usd = bound.capacity_usd;
      r.lower_bound_any_time_usd = bound.any_time_usd;
    }
    if (!jct.empty()) {
      double sum = 0;
      for (double v : jct) sum += v;
      r.avg_jct_s = sum / static_cast<double>(jct.size());
      r.avg_wait_s = wait / static_cast<double>(jct.size());
      std::sort(jct.begin(), jct.end());
      size_t k = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(jct.size()))) - 1;
      r.p99_jct_s = jct[std::min(k, jct.size() - 1)];
    }
    if (r.gpu_hours_completed > 0) r.cost_per_gpu_hour = r.cost_usd / r.gpu_hours_completed;
    r.redone_usd = work_usd_ - (r.lower_bound_usd - r.packing_bound_usd - r.capacity_bound_usd);
    for (const Instance& in : instances_) end = std::max(end, in.end);
    const int kPoints = 200;
    r.curve.clear();
    for (int k = 0; k <= kPoints; ++k) {
      double t = end * k / kPoints;
      double cost = 0;
      for (const Instance& in : instances_) {
        double upto = std::min(in.end, t);
        if (upto > in.launch) cost += pools_[in.pool].price_per_hour * (upto - in.launch) / 3600.0;
      }
      r.curve.push_back({t, cost});
    }
    return r;
  }

  Policy policy_;
  const std::vector<CostJob>& jobs_;
  const std::vector<CostPool>& pools_;
  const CostOptions& opt_;
  std::vector<JobRun> runs_;
  std::vector<double> cheapest_;  // per job: the lowest price per GPU-hour of a pool that fits
  // The lowest of cheapest_ over the jobs some pool fits.
  double floor_ = std::numeric_limits<double>::infinity();
  double accounted_to_ = 0;  // account() has split the cost up to this time
  double work_usd_ = 0;      // jobs' run time x share at their cheapest price
  std::vector<Instance> instances_;
  std::vector<int> alive_;
  std::vector<int> in_use_;
  std::vector<double> failed_until_;
  std::vector<sched::RentalOffer> offers_;          // per pool
  std::vector<sched::RentalRequest> requests_;      // per job
  std::vector<int> kind_;                           // per job: its fit_key, numbered
  std::vector<sched::RentalRequest> kind_request_;  // per kind
  std::vector<int> pending_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::map<std::string, Candidates> cache_;
  uint64_t seq_ = 0;
  double now_ = 0;
  bool retry_scheduled_ = false;
  bool dirty_ = false;  // something changed since the waiting jobs were last placed
  CostPolicyResult result_;
};

}  // namespace

std::string fit_key(const CostJob& job) {
  std::string key = std::to_string(job.num_gpu) + (job.spot_ok ? "s" : "o");
  for (const auto& m : job.models) key += "|" + m;
  return key;
}

bool pool_fits(const CostPool& pool, const CostJob& job) {
  if (pool.spot && !job.spot_ok) return false;
  if (pool.gpu_count < job.num_gpu) return false;
  return std::find(job.models.begin(), job.models.end(), pool.gpu_model) != job.models.end();
}

void assign_capacity(std::vector<CostPool>& pools, const CostOptions& options) {
  for (CostPool& p : pools) {
    uint64_t state = hash_text(pool_key(p), options.seed);
    double u = unit(state);
    p.capacity =
        static_cast<int>(std::floor(u * 2.0 * options.base_capacity * options.capacity_scale));
  }
}

TraceJobs jobs_from_trace(const std::vector<TracePod>& pods, const std::vector<CostPool>& pools,
                          const std::vector<std::string>& any_models, bool spot_ok,
                          int64_t max_pods) {
  std::set<std::string> sold;
  for (const CostPool& p : pools) sold.insert(p.gpu_model);
  TraceJobs out;
  for (const TracePod& pod : pods) {
    if (pod.res.gpu_count <= 0) {
      ++out.cpu_only;
      continue;
    }
    int64_t start = pod.scheduled_time.value_or(pod.creation_time);
    if (!pod.deletion_time || *pod.deletion_time - start <= 0) {
      ++out.bad_duration;
      continue;
    }
    CostJob job;
    job.name = pod.name;
    job.arrival_s = static_cast<double>(pod.creation_time);
    job.duration_s = static_cast<double>(*pod.deletion_time - start);
    job.num_gpu = pod.res.gpu_count;
    job.gpu_milli = pod.res.gpu_milli > 0 ? pod.res.gpu_milli : 1000;
    job.spot_ok = spot_ok;
    for (const std::string& m : pod.gpu_spec) {
      std::string c = canonical_gpu_model(m);
      if (sold.count(c) && std::find(job.models.begin(), job.models.end(), c) == job.models.end()) {
        job.models.push_back(c);
      }
    }
    if (job.models.empty()) {
      if (!pod.gpu_spec.empty()) ++out.unknown_model_pods;
      job.models = any_models;
    }
    out.jobs.push_back(std::move(job));
  }
  std::stable_sort(out.jobs.begin(), out.jobs.end(),
                   [](const CostJob& a, const CostJob& b) { return a.arrival_s < b.arrival_s; });
  if (max_pods > 0 && static_cast<int64_t>(out.jobs.size()) > max_pods) {
    out.jobs.resize(static_cast<size_t>(max_pods));
  }
  return out;
}

Result<CostPolicyResult> run_cost_policy(const std::string& policy,
                                         const std::vector<CostJob>& jobs,
                                         const std::vector<CostPool>& pools,
                                         const CostOptions& options) {
  Policy p;
  if (policy == "single-cloud") {
    p = Policy::kSingleCloud;
  } else if (policy == "cheapest-first") {
    p = Policy::kCheapestFirst;
  } else if (policy == "lepton") {
    p = Policy::kLepton;
  } else {
    return Status::invalid_argument("unknown cost policy '" + policy +
                                    "' (known: single-cloud, cheapest-first, lepton)");
  }
  auto start = std::chrono::steady_clock::now();
  CostSim sim(p, jobs, pools, options);
  CostPolicyResult r = sim.run();
  r.policy = policy;
  r.gap_pct = r.lower_bound_usd > 0 ? (r.cost_usd / r.lower_bound_usd - 1.0) * 100.0 : 0.0;
  r.gap_any_time_pct = r.lower_bound_any_time_usd > 0
                           ? (r.cost_usd / r.lower_bound_any_time_usd - 1.0) * 100.0
                           : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace lepton::sim
