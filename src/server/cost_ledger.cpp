#include "server/cost_ledger.h"

#include <algorithm>
#include <cstdio>

namespace lepton::server {

namespace {

double hours(int64_t ms) { return static_cast<double>(ms) / 3'600'000.0; }

// The price of one of the machine's GPUs for an hour.
double per_gpu_hour(const MachineBill& m) { return m.gpus > 0 ? m.price_per_hour / m.gpus : 0; }

// When the bill stops (or stands now).
int64_t bill_end(const MachineBill& m, int64_t now_ms) { return m.ended_ms ? m.ended_ms : now_ms; }

// The GPU-hours a use held, an open one up to `end_ms`.
double use_gpu_hours(const MachineUse& u, int64_t end_ms) {
  return u.gpus * hours(std::max<int64_t>(0, (u.end_ms ? u.end_ms : end_ms) - u.start_ms));
}

}  // namespace

std::optional<CostBy> cost_by_named(std::string_view name) {
  for (CostBy by : {CostBy::kJob, CostBy::kQueue, CostBy::kCloud, CostBy::kInstance}) {
    if (name == cost_by_name(by)) return by;
  }
  return std::nullopt;
}

std::string_view cost_by_name(CostBy by) {
  switch (by) {
    case CostBy::kJob:
      return "job";
    case CostBy::kQueue:
      return "queue";
    case CostBy::kCloud:
      return "cloud";
    case CostBy::kInstance:
      return "instance";
  }
  return "job";
}

std::string usd(double amount) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.2f", amount);
  return buf;
}

std::string SpentBudget::why() const {
  return "queue " + queue + " has spent " + usd(spent_usd) + " of its " + usd(budget_usd) +
         " budget: no machine is rented for it";
}

void CostLedger::add_machine(const std::string& id, MachineBill bill) {
  machines_[id] = std::move(bill);
}

void CostLedger::end_machine(const std::string& id, int64_t ended_ms) {
  auto it = machines_.find(id);
  if (it == machines_.end()) return;
  MachineBill& m = it->second;
  m.ended_ms = ended_ms;
  for (MachineUse& use : m.uses) {
    if (!use.end_ms) use.end_ms = ended_ms;
  }
  std::erase_if(open_, [&](const auto& entry) { return entry.second == id; });
}

const MachineBill* CostLedger::machine(const std::string& id) const {
  auto it = machines_.find(id);
  return it == machines_.end() ? nullptr : &it->second;
}

double CostLedger::machine_cost(const std::string& id, int64_t now_ms) const {
  const MachineBill* m = machine(id);
  if (!m) return 0;
  return m->price_per_hour * hours(std::max<int64_t>(0, bill_end(*m, now_ms) - m->launched_ms));
}

bool CostLedger::record_use_start(const TaskKey& task, const std::string& machine, MachineUse use) {
  auto it = machines_.find(machine);
  if (it == machines_.end() || it->second.ended_ms) return false;
  it->second.uses.push_back(std::move(use));
  open_[task] = machine;
  return true;
}

std::string CostLedger::record_use_end(const TaskKey& task, int64_t end_ms) {
  auto open = open_.find(task);
  if (open == open_.end()) return "";
  std::string id = std::move(open->second);
  open_.erase(open);
  auto it = machines_.find(id);
  if (it == machines_.end()) return "";
  for (MachineUse& use : it->second.uses) {
    if (use.job == task.first && !use.end_ms) {
      use.end_ms = std::max(use.start_ms, end_ms);
      break;
    }
  }
  return id;
}

void CostLedger::reopen_use(const TaskKey& task, const std::string& machine) {
  auto it = machines_.find(machine);
  if (it == machines_.end()) return;
  const std::vector<MachineUse>& uses = it->second.uses;
  if (std::any_of(uses.begin(), uses.end(),
                  [&](const MachineUse& u) { return !u.end_ms && u.job == task.first; })) {
    open_[task] = machine;
  }
}

double CostLedger::spend(const std::string& queue, const Queues& queues, int64_t now_ms) const {
  auto under = [&](std::string q) {  // whether q is `queue` or below it
    for (int depth = 0; depth < 64 && !q.empty(); ++depth) {
      if (q == queue) return true;
      auto it = queues.find(q);
      if (it == queues.end()) return false;
      q = it->second.parent;
    }
    return false;
  };
  double spent = 0;
  for (const auto& [id, m] : machines_) {
    const int64_t end = bill_end(m, now_ms);
    for (const MachineUse& u : m.uses) {
      if (under(u.queue)) spent += per_gpu_hour(m) * use_gpu_hours(u, end);
    }
  }
  return spent;
}

std::optional<SpentBudget> CostLedger::spent_budget(const std::string& queue, const Queues& queues,
                                                    int64_t now_ms) const {
  std::string q = queue.empty() ? kDefaultQueue : queue;
  for (int depth = 0; depth < 64 && !q.empty(); ++depth) {
    auto it = queues.find(q);
    if (it == queues.end()) return std::nullopt;
    if (const std::optional<double>& budget = it->second.budget_usd) {
      const double spent = spend(q, queues, now_ms);
      if (spent >= *budget)
        return SpentBudget{.queue = q, .spent_usd = spent, .budget_usd = *budget};
    }
    q = it->second.parent;
  }
  return std::nullopt;
}

CostReport CostLedger::report(CostBy by, int64_t now_ms) const {
  CostReport out{.by = by, .total_usd = 0, .idle_usd = 0, .rows = {}};
  std::map<std::string, CostRow> rows;
  auto row = [&](const std::string& key) -> CostRow& {
    CostRow& r = rows[key];
    r.key = key;
    return r;
  };
  const bool by_work = by == CostBy::kJob || by == CostBy::kQueue;
  for (const auto& [id, m] : machines_) {
    const double billed = machine_cost(id, now_ms);
    out.total_usd += billed;
    const int64_t end = bill_end(m, now_ms);
    double used = 0;
    for (const MachineUse& u : m.uses) {
      const double gpu_hours = use_gpu_hours(u, end);
      used += gpu_hours * per_gpu_hour(m);
      if (by_work) {
        CostRow& r = row(by == CostBy::kJob ? u.job : u.queue);
        r.cost_usd += gpu_hours * per_gpu_hour(m);
        r.gpu_hours += gpu_hours;
      }
    }
    out.idle_usd += std::max(0.0, billed - used);
    if (!by_work) {
      CostRow& r = row(by == CostBy::kCloud ? m.cloud : id);
      r.cost_usd += billed;
      r.gpu_hours += m.gpus * hours(std::max<int64_t>(0, end - m.launched_ms));
    }
  }
  out.rows.reserve(rows.size());
  for (auto& [key, r] : rows) out.rows.push_back(std::move(r));
  return out;
}

nlohmann::json cost_report_json(const CostReport& report) {
  nlohmann::json rows = nlohmann::json::array();
  for (const CostRow& r : report.rows) {
    rows.push_back({{"key", r.key}, {"cost_usd", r.cost_usd}, {"gpu_hours", r.gpu_hours}});
  }
  return {{"by", cost_by_name(report.by)},
          {"total_usd", report.total_usd},
          {"idle_usd", report.idle_usd},
          {"rows", std::move(rows)}};
}

nlohmann::json uses_json(const std::vector<MachineUse>& uses) {
  nlohmann::json out = nlohmann::json::array();
  for (const MachineUse& u : uses) {
    out.push_back({{"job", u.job},
                   {"queue", u.queue},
                   {"gpus", u.gpus},
                   {"start_ms", u.start_ms},
                   {"end_ms", u.end_ms}});
  }
  return out;
}

std::vector<MachineUse> uses_from_json(const nlohmann::json& uses) {
  std::vector<MachineUse> out;
  if (!uses.is_array()) return out;
  for (const nlohmann::json& u : uses) {
    if (!u.is_object()) continue;
    out.push_back({.job = u.value("job", ""),
                   .queue = u.value("queue", ""),
                   .gpus = u.value("gpus", 0.0),
                   .start_ms = u.value("start_ms", int64_t{0}),
                   .end_ms = u.value("end_ms", int64_t{0})});
  }
  return out;
}

}  // namespace lepton::server
