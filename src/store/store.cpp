#include "store/store.h"

#include <algorithm>
#include <iterator>
#include <unordered_set>

namespace lepton::store {
namespace {

template <typename T>
void move_all(std::vector<T>& to, std::vector<T>& from) {
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

// Deletions here of keys that `later` upserts: within one batch a deletion wins, across two the
// later write does.
template <typename Record>
void undelete(std::vector<std::string>& deleted, const std::vector<Record>& upserts) {
  if (deleted.empty() || upserts.empty()) return;
  std::unordered_set<std::string> names;
  for (const Record& r : upserts) names.insert(r.name);
  std::erase_if(deleted, [&](const std::string& name) { return names.count(name) != 0; });
}

}  // namespace

void WriteBatch::append(WriteBatch&& later) {
  undelete(deleted_nodes, later.nodes);
  undelete(deleted_queues, later.queues);
  undelete(deleted_deployments, later.deployments);
  move_all(jobs, later.jobs);
  move_all(tasks, later.tasks);
  move_all(nodes, later.nodes);
  move_all(deleted_nodes, later.deleted_nodes);
  move_all(queues, later.queues);
  move_all(deleted_queues, later.deleted_queues);
  move_all(deployments, later.deployments);
  move_all(deleted_deployments, later.deleted_deployments);
  move_all(instances, later.instances);
  move_all(failed_pools, later.failed_pools);
  move_all(counters, later.counters);
  move_all(events, later.events);
  later = WriteBatch{};
}

}  // namespace lepton::store
