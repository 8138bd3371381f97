// The cost ledger: what rented machines cost and which work used them. A machine's bill is its
// hourly price for as long as it is rented; work is charged its share of the machine's GPUs for
// the time it held them (a 0.5-GPU task on a 2-GPU machine at $4/h costs $1/h), and the rest of
// the bill is idle time. The spend of a queue (its jobs' and those of the queues below it) is
// what budgets are checked against, and `lepton cost --by job|queue|cloud|instance` reports it.
//
// Pure bookkeeping: no clock (times come in as arguments), no store, no providers. ControlPlane
// keeps one (cloud_instances.cpp): it adds each machine it rents and ends it when it ends, opens
// and closes a task's use as the task starts and stops on a rented machine, and stores each
// machine's uses with the machine's record (uses_json, uses_from_json).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/queue.h"

namespace lepton::server {

// One task's hold on a rented machine's GPUs.
struct MachineUse {
  std::string job;
  std::string queue;                 // the job's queue ("default" when it named none)
  double gpus = 0;                   // GPUs it held (a share counts as its fraction)
  int64_t start_ms = 0, end_ms = 0;  // end_ms 0: still there
};

// A rented machine as it is billed.
struct MachineBill {
  std::string cloud;
  double gpus = 0;            // the machine's GPUs
  double price_per_hour = 0;  // as launched (spot or on demand)
  int64_t launched_ms = 0;
  int64_t ended_ms = 0;  // 0: still rented
  std::vector<MachineUse> uses;
};

// What a cost report groups by.
enum class CostBy { kJob, kQueue, kCloud, kInstance };
// "job", "queue", "cloud" or "instance"; none for any other name.
std::optional<CostBy> cost_by_named(std::string_view name);
std::string_view cost_by_name(CostBy by);

struct CostRow {
  std::string key;  // the job, queue, cloud or machine
  double cost_usd = 0;
  double gpu_hours = 0;  // held by work (by job or queue), or rented (by cloud or machine)
};

struct CostReport {
  CostBy by = CostBy::kJob;
  double total_usd = 0;       // every machine's bill
  double idle_usd = 0;        // the part of it no work was charged
  std::vector<CostRow> rows;  // by key
};

// A queue that has spent its budget.
struct SpentBudget {
  std::string queue;
  double spent_usd = 0;
  double budget_usd = 0;
  // "queue team-a has spent $500.12 of its $500.00 budget: no machine is rented for it"
  std::string why() const;
};

// "$12.34"
std::string usd(double amount);

class CostLedger {
 public:
  using TaskKey = std::pair<std::string, int>;      // (job id, rank)
  using Queues = std::map<std::string, QueueSpec>;  // by name: parents and budgets

  // A machine rented now, or one read back from the store with its uses (their open ones are
  // tied to tasks again by reopen_use). Replaces a machine of the same id.
  void add_machine(const std::string& id, MachineBill bill);
  // The machine's bill stops at `ended_ms`, and so do the uses still open on it.
  void end_machine(const std::string& id, int64_t ended_ms);
  // The machine's bill; null for an id never added.
  const MachineBill* machine(const std::string& id) const;
  // What the machine has cost up to `now_ms` (up to its end once ended); 0 for an unknown id.
  double machine_cost(const std::string& id, int64_t now_ms) const;

  // Task `task` started holding `use.gpus` GPUs on `machine`. Returns whether a use was opened:
  // not on a machine never added (one lepton did not rent) or already ended.
  bool record_use_start(const TaskKey& task, const std::string& machine, MachineUse use);
  // The task's open use ends at `end_ms` (not before it started). Returns the machine whose
  // uses changed; empty when the task had no use open.
  std::string record_use_end(const TaskKey& task, int64_t end_ms);
  // After a restart: `task`, which the store places on `machine`, holds that machine's open use
  // of its job, so record_use_end closes it.
  void reopen_use(const TaskKey& task, const std::string& machine);

  // What the jobs of `queue`, and of the queues below it in `queues`, have been charged.
  double spend(const std::string& queue, const Queues& queues, int64_t now_ms) const;
  // The first queue on the way from `queue` (empty: the default queue) to the top whose budget
  // is spent; none when no queue there is out of budget.
  std::optional<SpentBudget> spent_budget(const std::string& queue, const Queues& queues,
                                          int64_t now_ms) const;
  // The spend up to `now_ms`, grouped `by`.
  CostReport report(CostBy by, int64_t now_ms) const;

 private:
  std::map<std::string, MachineBill> machines_;  // by machine id
  std::map<TaskKey, std::string> open_;          // task -> the machine with its open use
};

// {"by": BY, "total_usd", "idle_usd", "rows": [{"key", "cost_usd", "gpu_hours"}]}
nlohmann::json cost_report_json(const CostReport& report);
// A machine's uses as its stored record keeps them: [{"job", "queue", "gpus", "start_ms",
// "end_ms"}], and back (fields missing read as empty or 0).
nlohmann::json uses_json(const std::vector<MachineUse>& uses);
std::vector<MachineUse> uses_from_json(const nlohmann::json& uses);

}  // namespace lepton::server
