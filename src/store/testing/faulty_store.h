// A Store for fault tests: wraps a real one and makes chosen commits fail as a full disk or a
// failed fsync would (kUnavailable, nothing of the batch applied), so tests can check what the
// control plane does when the store refuses a write, then reopen the real store and compare.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "store/store.h"

namespace lepton::store::testing {

class FaultyStore final : public Store {
 public:
  explicit FaultyStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}

  // Commits numbered from 1 from now on; commit `n` and every later one fail until heal().
  void fail_from_commit(int n) {
    fail_from_ = n;
    commits_ = 0;
  }
  void heal() { fail_from_ = 0; }
  int failed() const { return failed_; }

  Result<int64_t> commit(const WriteBatch& batch) override {
    if (batch.empty()) return inner_->commit(batch);
    ++commits_;
    if (fail_from_ > 0 && commits_ >= fail_from_) {
      ++failed_;
      return Status(StatusCode::kUnavailable,
                    "store commit: database or disk is full (injected by the test)");
    }
    return inner_->commit(batch);
  }
  int64_t revision() const override { return inner_->revision(); }
  const std::string& store_id() const override { return inner_->store_id(); }
  Result<int64_t> next_id(std::string_view counter) override { return inner_->next_id(counter); }
  Result<int64_t> counter(std::string_view name) override { return inner_->counter(name); }
  Result<std::vector<JobRecord>> list_jobs() override { return inner_->list_jobs(); }
  Result<std::optional<JobRecord>> get_job(const std::string& id) override {
    return inner_->get_job(id);
  }
  Result<std::vector<TaskRecord>> list_tasks(const std::string& job_id) override {
    return inner_->list_tasks(job_id);
  }
  Result<std::vector<NodeRecord>> list_nodes() override { return inner_->list_nodes(); }
  Result<std::vector<QueueRecord>> list_queues() override { return inner_->list_queues(); }
  Result<std::vector<DeploymentRecord>> list_deployments() override {
    return inner_->list_deployments();
  }
  Result<std::vector<InstanceRecord>> list_instances() override { return inner_->list_instances(); }
  Result<std::vector<FailedPoolRecord>> list_failed_pools() override {
    return inner_->list_failed_pools();
  }
  Result<std::vector<EventRecord>> events_since(int64_t after, size_t limit) override {
    return inner_->events_since(after, limit);
  }

 private:
  std::unique_ptr<Store> inner_;
  int fail_from_ = 0;
  int commits_ = 0;
  int failed_ = 0;
};

}  // namespace lepton::store::testing
