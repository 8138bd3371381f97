#include "sched/cluster_state.h"

#include <algorithm>
#include <bit>
#include <functional>

namespace lepton::sched {

int64_t NodeState::gpu_free_total() const {
  int64_t total = 0;
  for (int i = 0; i < gpu_count; ++i) total += gpu_free_sorted[i];
  return total;
}

int NodeState::full_free_gpus() const {
  int n = 0;
  // Sorted descending: full GPUs come first.
  while (n < gpu_count && gpu_free_sorted[n] == kMilliPerGpu) ++n;
  return n;
}

NodeState state_after(const NodeState& state, const Request& request, int16_t gpu_free_value) {
  NodeState after = state;
  const Resources& r = request.res;
  after.cpu_free -= r.cpu_milli;
  after.mem_free -= r.memory_mib;
  auto* begin = after.gpu_free_sorted.begin();
  auto* end = begin + after.gpu_count;
  if (r.fractional()) {
    auto* it = std::find(begin, end, gpu_free_value);
    LEPTON_CHECK(it != end && *it >= r.gpu_milli);
    *it = static_cast<int16_t>(*it - r.gpu_milli);
    std::sort(begin, end, std::greater<>());
  } else if (r.gpu_count > 0) {
    LEPTON_CHECK(state.full_free_gpus() >= r.gpu_count);
    // Fully free GPUs lead the descending order; taking them leaves zeros that belong at the end.
    std::rotate(begin, begin + r.gpu_count, end);
    std::fill(end - r.gpu_count, end, int16_t{0});
  }
  return after;
}

size_t NodeStateHash::operator()(const NodeState& s) const {
  // FNV-1a over the fields; cheap and good enough for a few thousand distinct states.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    h ^= v;
    h *= 1099511628211ull;
  };
  mix(static_cast<uint64_t>(s.cpu_total));
  mix(static_cast<uint64_t>(s.mem_total));
  mix(static_cast<uint64_t>(s.cpu_free));
  mix(static_cast<uint64_t>(s.mem_free));
  mix(static_cast<uint64_t>(s.model + 1) << 16 | static_cast<uint64_t>(s.group) << 8 |
      static_cast<uint64_t>(s.gpu_count));
  for (int i = 0; i < s.gpu_count; ++i) mix(static_cast<uint64_t>(s.gpu_free_sorted[i]));
  return static_cast<size_t>(h);
}

Result<NodeId> ClusterState::add_node(const NodeSpec& spec) {
  if (spec.cpu_milli <= 0) return Status::invalid_argument("cpu_milli: expected a value > 0");
  if (spec.memory_mib <= 0) return Status::invalid_argument("memory_mib: expected a value > 0");
  if (spec.gpu_count < 0 || spec.gpu_count > kMaxGpusPerNode) {
    return Status::invalid_argument("gpu: expected 0.." + std::to_string(kMaxGpusPerNode) +
                                    " GPUs per node");
  }
  if (spec.gpu_count > 0 && spec.gpu_model.empty()) {
    return Status::invalid_argument("model: expected a GPU model for a node with GPUs");
  }
  if (spec.group < 0 || spec.group >= kMaxNodeGroups) {
    return Status::invalid_argument("group: expected 0.." + std::to_string(kMaxNodeGroups - 1));
  }
  Node node;
  node.spec = spec;
  node.state.cpu_total = node.state.cpu_free = spec.cpu_milli;
  node.state.mem_total = node.state.mem_free = spec.memory_mib;
  node.state.gpu_count = static_cast<int8_t>(spec.gpu_count);
  node.state.group = static_cast<uint8_t>(spec.group);
  if (spec.gpu_count > 0) {
    auto model = add_model(spec.gpu_model);
    if (!model.is_ok()) return model.status();
    node.state.model = *model;
  }
  for (int i = 0; i < spec.gpu_count; ++i) node.gpu_free[i] = kMilliPerGpu;
  refresh_sorted(node);
  gpu_capacity_milli_ += int64_t{spec.gpu_count} * kMilliPerGpu;
  NodeId id = static_cast<NodeId>(nodes_.size());
  nodes_.push_back(std::move(node));
  enter_class(id);
  return id;
}

ModelId ClusterState::find_model(std::string_view name) const {
  for (size_t i = 0; i < models_.size(); ++i) {
    if (models_[i] == name) return static_cast<ModelId>(i);
  }
  return kNoModel;
}

Result<ModelId> ClusterState::add_model(std::string_view name) {
  ModelId model = find_model(name);
  if (model != kNoModel) return model;
  if (models_.size() >= kMaxGpuModels) {
    return Status::invalid_argument("model: more than " + std::to_string(kMaxGpuModels) +
                                    " distinct GPU models in one cluster");
  }
  models_.emplace_back(name);
  return static_cast<ModelId>(models_.size() - 1);
}

ModelMask ClusterState::model_mask(const std::vector<std::string>& names) const {
  ModelMask mask = 0;
  for (const std::string& name : names) {
    ModelId m = find_model(name);
    if (m != kNoModel) mask |= ModelMask{1} << m;
  }
  return mask;
}

bool ClusterState::fits(const NodeState& state, const Request& request) {
  const Resources& r = request.res;
  if (!(request.allowed_groups >> state.group & 1)) return false;
  if (r.cpu_milli > state.cpu_free || r.memory_mib > state.mem_free) return false;
  if (r.gpu_count == 0) return true;
  if (r.gpu_count > state.gpu_count) return false;
  if (!(request.allowed_models >> state.model & 1)) return false;
  if (r.gpu_milli >= kMilliPerGpu) return state.full_free_gpus() >= r.gpu_count;
  // One fractional GPU: the largest free capacity is first.
  return state.gpu_free_sorted[0] >= r.gpu_milli;
}

uint32_t ClusterState::pick_gpus(NodeId id, const Request& request, int gpu_free_value) const {
  const Node& node = nodes_[id];
  const Resources& r = request.res;
  uint32_t mask = 0;
  if (r.gpu_count == 0) return 0;
  if (r.fractional()) {
    for (int i = 0; i < node.state.gpu_count; ++i) {
      if (node.gpu_free[i] == gpu_free_value) return uint32_t{1} << i;
    }
    LEPTON_CHECK(false && "class-level GPU choice not present on node");
  }
  int taken = 0;
  for (int i = 0; i < node.state.gpu_count && taken < r.gpu_count; ++i) {
    if (node.gpu_free[i] >= r.gpu_milli) {
      mask |= uint32_t{1} << i;
      ++taken;
    }
  }
  LEPTON_CHECK(taken == r.gpu_count);
  return mask;
}

void ClusterState::bind(const Request& request, const Placement& p) {
  LEPTON_CHECK(p.node >= 0 && static_cast<size_t>(p.node) < nodes_.size());
  Node& node = nodes_[p.node];
  const Resources& r = request.res;
  LEPTON_CHECK(r.cpu_milli <= node.state.cpu_free && r.memory_mib <= node.state.mem_free);
  LEPTON_CHECK(std::popcount(p.gpu_mask) == r.gpu_count);
  if (!node.cordoned) leave_class(p.node);
  node.state.cpu_free -= r.cpu_milli;
  node.state.mem_free -= r.memory_mib;
  for (int i = 0; i < node.state.gpu_count; ++i) {
    if (p.gpu_mask >> i & 1) {
      LEPTON_CHECK(node.gpu_free[i] >= r.gpu_milli);
      node.gpu_free[i] = static_cast<int16_t>(node.gpu_free[i] - r.gpu_milli);
    }
  }
  LEPTON_CHECK((p.gpu_mask >> node.state.gpu_count) == 0);
  gpu_allocated_milli_ += r.total_gpu_milli();
  refresh_sorted(node);
  if (!node.cordoned) enter_class(p.node);
}

void ClusterState::release(const Request& request, const Placement& p) {
  LEPTON_CHECK(p.node >= 0 && static_cast<size_t>(p.node) < nodes_.size());
  Node& node = nodes_[p.node];
  const Resources& r = request.res;
  if (!node.cordoned) leave_class(p.node);
  node.state.cpu_free += r.cpu_milli;
  node.state.mem_free += r.memory_mib;
  LEPTON_CHECK(node.state.cpu_free <= node.state.cpu_total &&
               node.state.mem_free <= node.state.mem_total);
  for (int i = 0; i < node.state.gpu_count; ++i) {
    if (p.gpu_mask >> i & 1) {
      node.gpu_free[i] = static_cast<int16_t>(node.gpu_free[i] + r.gpu_milli);
      LEPTON_CHECK(node.gpu_free[i] <= kMilliPerGpu);
    }
  }
  gpu_allocated_milli_ -= r.total_gpu_milli();
  refresh_sorted(node);
  if (!node.cordoned) enter_class(p.node);
}

void ClusterState::set_cordoned(NodeId id, bool cordoned) {
  LEPTON_CHECK(id >= 0 && static_cast<size_t>(id) < nodes_.size());
  Node& node = nodes_[id];
  if (node.cordoned == cordoned) return;
  if (cordoned) {
    leave_class(id);
  } else {
    enter_class(id);
  }
  node.cordoned = cordoned;
}

void ClusterState::refresh_sorted(Node& node) {
  node.state.gpu_free_sorted = node.gpu_free;
  std::sort(node.state.gpu_free_sorted.begin(),
            node.state.gpu_free_sorted.begin() + node.state.gpu_count, std::greater<>());
}

int ClusterState::bucket_of(const NodeState& state) {
  const int full = state.full_free_gpus();
  if (full > 0) return 10 + full;
  return state.gpu_count == 0 ? 0 : state.gpu_free_sorted[0] / 100;
}

int ClusterState::first_bucket(const Request& request) {
  const Resources& r = request.res;
  if (r.gpu_count == 0) return 0;
  if (r.gpu_milli >= kMilliPerGpu) return 10 + r.gpu_count;
  return r.gpu_milli / 100;
}

size_t ClusterState::live_class_count() const {
  size_t n = 0;
  for (const auto& bucket : live_) n += bucket.size();
  return n;
}

std::vector<int32_t> ClusterState::live_classes() const {
  std::vector<int32_t> all;
  for (const auto& bucket : live_) all.insert(all.end(), bucket.begin(), bucket.end());
  return all;
}

void ClusterState::enter_class(NodeId id) {
  Node& node = nodes_[id];
  auto [it, inserted] = class_of_state_.try_emplace(node.state, -1);
  if (inserted) {
    int32_t cid;
    if (!free_class_ids_.empty()) {
      cid = free_class_ids_.back();
      free_class_ids_.pop_back();
    } else {
      cid = static_cast<int32_t>(classes_.size());
      classes_.emplace_back();
      live_index_.push_back(-1);
    }
    Class& fresh = classes_[cid];
    fresh.state = node.state;
    fresh.state_hash = NodeStateHash{}(node.state);
    fresh.bucket = bucket_of(node.state);
    it->second = cid;
  }
  Class& c = classes_[it->second];
  if (c.nodes.empty()) {
    auto& bucket = live_[c.bucket];
    live_index_[it->second] = static_cast<int32_t>(bucket.size());
    bucket.push_back(it->second);
  }
  node.class_id = it->second;
  c.nodes.push_back(id);
  node.index_in_class = static_cast<int32_t>(c.nodes.size() - 1);
  heap_sift_up(c, c.nodes.size() - 1);
}

void ClusterState::heap_place(Class& c, size_t pos, NodeId id) {
  c.nodes[pos] = id;
  nodes_[id].index_in_class = static_cast<int32_t>(pos);
}

void ClusterState::heap_sift_up(Class& c, size_t pos) {
  NodeId id = c.nodes[pos];
  while (pos > 0) {
    size_t parent = (pos - 1) / 2;
    if (c.nodes[parent] <= id) break;
    heap_place(c, pos, c.nodes[parent]);
    pos = parent;
  }
  heap_place(c, pos, id);
}

void ClusterState::heap_sift_down(Class& c, size_t pos) {
  NodeId id = c.nodes[pos];
  const size_t n = c.nodes.size();
  while (true) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && c.nodes[child + 1] < c.nodes[child]) ++child;
    if (c.nodes[child] >= id) break;
    heap_place(c, pos, c.nodes[child]);
    pos = child;
  }
  heap_place(c, pos, id);
}

void ClusterState::leave_class(NodeId id) {
  Node& node = nodes_[id];
  Class& c = classes_[node.class_id];
  // Remove the node from its class's heap: move the last entry into its slot and restore order.
  const size_t pos = static_cast<size_t>(node.index_in_class);
  NodeId last = c.nodes.back();
  c.nodes.pop_back();
  if (last != id) {
    heap_place(c, pos, last);
    heap_sift_up(c, pos);
    heap_sift_down(c, static_cast<size_t>(nodes_[last].index_in_class));
  }
  if (c.nodes.empty()) {
    auto& bucket = live_[c.bucket];
    int32_t live_pos = live_index_[node.class_id];
    int32_t moved = bucket.back();
    bucket[live_pos] = moved;
    live_index_[moved] = live_pos;
    bucket.pop_back();
    live_index_[node.class_id] = -1;
    class_of_state_.erase(c.state);
    free_class_ids_.push_back(node.class_id);
  }
  node.class_id = -1;
  node.index_in_class = -1;
}

}  // namespace lepton::sched
