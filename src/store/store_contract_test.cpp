// The contract every Store backend keeps (store.h), as a typed test suite over backends. A new
// backend adds a type with a name and `Result<std::unique_ptr<Store>> open()` to `Backends`;
// one backend object lives for one test (e.g. to own a temporary file or database, or to skip
// when its server is not configured).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "store/sqlite_store.h"
#include "store/store.h"

namespace lepton::store {
namespace {

class SqliteMemory {
 public:
  static constexpr const char* kName = "SqliteMemory";
  Result<std::unique_ptr<Store>> open() { return open_sqlite_store(":memory:"); }
};

class SqliteFile {
 public:
  static constexpr const char* kName = "SqliteFile";
  SqliteFile() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lepton-store-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
  }
  ~SqliteFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SqliteFile(const SqliteFile&) = delete;
  SqliteFile& operator=(const SqliteFile&) = delete;
  Result<std::unique_ptr<Store>> open() { return open_sqlite_store((dir_ / "store.db").string()); }

 private:
  std::filesystem::path dir_;
};

using Backends = ::testing::Types<SqliteMemory, SqliteFile>;

struct BackendName {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

template <typename Backend>
class StoreContract : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = backend_.open();
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    store_ = std::move(s).value();
  }

  Store& store() { return *store_; }

  // Commits `batch`, expecting success; returns the new revision (-1 on failure).
  int64_t commit(const WriteBatch& batch) {
    auto r = store_->commit(batch);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : -1;
  }

  template <typename T>
  static T ok(Result<T> r) {
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? std::move(r).value() : T();
  }

  std::vector<JobRecord> jobs() { return ok(store_->list_jobs()); }
  std::optional<JobRecord> job(const std::string& id) { return ok(store_->get_job(id)); }
  std::vector<TaskRecord> tasks(const std::string& job_id = "") {
    return ok(store_->list_tasks(job_id));
  }
  std::vector<NodeRecord> nodes() { return ok(store_->list_nodes()); }
  std::vector<QueueRecord> queues() { return ok(store_->list_queues()); }
  std::vector<DeploymentRecord> deployments() { return ok(store_->list_deployments()); }
  std::vector<InstanceRecord> instances() { return ok(store_->list_instances()); }
  std::vector<FailedPoolRecord> failed_pools() { return ok(store_->list_failed_pools()); }
  std::vector<EventRecord> events(int64_t after = 0, size_t limit = 1000) {
    return ok(store_->events_since(after, limit));
  }
  int64_t next_id(std::string_view counter) { return ok(store_->next_id(counter)); }

 private:
  Backend backend_;
  std::unique_ptr<Store> store_;
};

TYPED_TEST_SUITE(StoreContract, Backends, BackendName);

JobRecord full_job() {
  JobRecord j;
  j.id = "j-42";
  j.name = "train-ß-训练-🚀";
  j.spec_json = "{\"run\": \"" + std::string(1 << 20, 'x') + "\"}";  // 1 MiB
  j.state = JobState::kFailed;
  j.restarts = 3;
  j.reason = "exit code 137 on node «gpu-1»";
  j.created_ms = 1'700'000'000'123;
  j.updated_ms = 1'700'000'999'456;
  return j;
}

TaskRecord task(std::string job_id, int rank) {
  TaskRecord t;
  t.job_id = std::move(job_id);
  t.rank = rank;
  return t;
}

NodeRecord node(std::string name) {
  NodeRecord n;
  n.name = std::move(name);
  return n;
}

EventRecord event(std::string object, std::string message, int64_t time_ms = 0) {
  return EventRecord{.revision = 0, .time_ms = time_ms, .object = object, .message = message};
}

JobRecord job_at(std::string id, int64_t created_ms) {
  JobRecord j;
  j.id = std::move(id);
  j.created_ms = created_ms;
  return j;
}

TYPED_TEST(StoreContract, NewStoreIsEmpty) {
  EXPECT_EQ(this->store().revision(), 0);
  EXPECT_TRUE(this->jobs().empty());
  EXPECT_TRUE(this->tasks().empty());
  EXPECT_TRUE(this->nodes().empty());
  EXPECT_TRUE(this->queues().empty());
  EXPECT_TRUE(this->events().empty());
  EXPECT_EQ(this->job("j-1"), std::nullopt);
}

TYPED_TEST(StoreContract, JobsReadBackWithEveryField) {
  JobRecord bare;  // every field at its default, but for the key
  bare.id = "j-0";
  WriteBatch b;
  b.jobs = {full_job(), bare};
  EXPECT_EQ(this->commit(b), 1);
  EXPECT_EQ(this->job("j-42"), full_job());
  EXPECT_EQ(this->job("j-0"), bare);
  EXPECT_EQ(this->jobs(), (std::vector<JobRecord>{bare, full_job()}));
  EXPECT_EQ(this->job("j-4"), std::nullopt);
  EXPECT_EQ(this->job(""), std::nullopt);
}

TYPED_TEST(StoreContract, JobsReadBackInEveryState) {
  WriteBatch b;
  for (int s = 0; s <= static_cast<int>(JobState::kCancelled); ++s) {
    JobRecord j = job_at("j-" + std::to_string(s), s);
    j.state = static_cast<JobState>(s);
    b.jobs.push_back(j);
  }
  this->commit(b);
  EXPECT_EQ(this->jobs(), b.jobs);
}

TYPED_TEST(StoreContract, TasksReadBackWithEveryField) {
  TaskRecord full = task("j-1", 7);
  full.attempt = 2;
  full.node = "gpu-nœud-1";
  full.gpu_mask = 0xFFFFFFFFu;
  full.gpu_milli = 460;
  full.state = JobState::kRunning;
  full.exit_code = 137;
  full.reason = "OOM: 显存不足";
  full.updated_ms = 1'700'000'000'000;
  TaskRecord bare = task("j-1", 0);  // unscheduled: empty node, mask 0, exit code -1
  ASSERT_EQ(bare.exit_code, -1);
  WriteBatch b;
  b.tasks = {full, bare};
  EXPECT_EQ(this->commit(b), 1);
  EXPECT_EQ(this->tasks("j-1"), (std::vector<TaskRecord>{bare, full}));
  EXPECT_EQ(this->tasks(), (std::vector<TaskRecord>{bare, full}));
}

TYPED_TEST(StoreContract, NodesReadBackWithEveryField) {
  NodeRecord full = node("gpu-1");
  full.address = "[2001:db8::1]:7070";
  full.cpu_milli = 192'000;
  full.memory_mib = int64_t{1} << 40;
  full.gpu_count = 8;
  full.gpu_model = "H100-80GB";
  full.ready = true;
  full.last_heartbeat_ms = 1'700'000'000'777;
  NodeRecord bare = node("cpu-1");  // not ready, no GPU, no address
  WriteBatch b;
  b.nodes = {full, bare};
  EXPECT_EQ(this->commit(b), 1);
  EXPECT_EQ(this->nodes(), (std::vector<NodeRecord>{bare, full}));
}

QueueRecord queue(std::string name, std::string spec_json = "{}") {
  return QueueRecord{.name = std::move(name), .spec_json = std::move(spec_json)};
}

TYPED_TEST(StoreContract, QueuesReadBackWithEveryField) {
  QueueRecord full =
      queue("team-a", R"({"guaranteed":{"cpus":16,"gpus":4,"memory_mib":65536},)"
                      R"("limit":{"gpus":8},"name":"team-a","parent":"dept-«ü»","weight":1})");
  QueueRecord bare = queue("default", "");
  WriteBatch b;
  b.queues = {full, bare};
  EXPECT_EQ(this->commit(b), 1);
  EXPECT_EQ(this->queues(), (std::vector<QueueRecord>{bare, full}));
}

TYPED_TEST(StoreContract, QueuesUpsertByNameAndDelete) {
  WriteBatch b;
  b.queues = {queue("a", "1"), queue("b", "1"), queue("c", "1")};
  this->commit(b);
  b = WriteBatch{};
  b.queues = {queue("b", "2")};
  EXPECT_EQ(this->commit(b), 2);
  EXPECT_EQ(this->queues(),
            (std::vector<QueueRecord>{queue("a", "1"), queue("b", "2"), queue("c", "1")}));
  b = WriteBatch{};
  b.deleted_queues = {"a", "absent"};  // deleting an absent queue is not an error
  EXPECT_EQ(this->commit(b), 3);
  EXPECT_EQ(this->queues(), (std::vector<QueueRecord>{queue("b", "2"), queue("c", "1")}));

  // Repeated in one batch: the last wins; upserted and deleted in one batch: deleted.
  b = WriteBatch{};
  b.queues = {queue("d", "1"), queue("d", "2"), queue("e", "1")};
  b.deleted_queues = {"e", "c"};
  this->commit(b);
  EXPECT_EQ(this->queues(), (std::vector<QueueRecord>{queue("b", "2"), queue("d", "2")}));
  // Deleted queues can come back.
  b = WriteBatch{};
  b.queues = {queue("a", "3")};
  this->commit(b);
  EXPECT_EQ(this->queues(),
            (std::vector<QueueRecord>{queue("a", "3"), queue("b", "2"), queue("d", "2")}));
}

TYPED_TEST(StoreContract, DeploymentsUpsertByNameAndDelete) {
  EXPECT_TRUE(this->deployments().empty());
  auto d = [](std::string name, std::string spec, std::string state) {
    return DeploymentRecord{
        .name = std::move(name), .spec_json = std::move(spec), .state_json = std::move(state)};
  };
  WriteBatch b;
  b.deployments = {d("chat", R"({"name":"chat"})", R"({"generation":1})"), d("asr", "1", "")};
  this->commit(b);
  EXPECT_EQ(this->deployments(),
            (std::vector<DeploymentRecord>{
                d("asr", "1", ""), d("chat", R"({"name":"chat"})", R"({"generation":1})")}));
  b = WriteBatch{};
  b.deployments = {d("chat", "2", "3")};
  b.deleted_deployments = {"asr", "absent"};
  this->commit(b);
  EXPECT_EQ(this->deployments(), (std::vector<DeploymentRecord>{d("chat", "2", "3")}));
  // Upserted and deleted in one batch: deleted.
  b = WriteBatch{};
  b.deployments = {d("tts", "1", "1")};
  b.deleted_deployments = {"tts"};
  this->commit(b);
  EXPECT_EQ(this->deployments(), (std::vector<DeploymentRecord>{d("chat", "2", "3")}));
}

TYPED_TEST(StoreContract, InstancesUpsertByIdAndStayAfterTheyEnd) {
  EXPECT_TRUE(this->instances().empty());
  WriteBatch b;
  b.instances = {{"sim-aws-2", R"({"state":"pending"})"}, {"sim-aws-1", R"({"state":"running"})"}};
  this->commit(b);
  b = WriteBatch{};
  b.instances = {{"sim-aws-2", R"({"state":"terminated"})"}};
  this->commit(b);
  EXPECT_EQ(this->instances(),
            (std::vector<InstanceRecord>{{"sim-aws-1", R"({"state":"running"})"},
                                         {"sim-aws-2", R"({"state":"terminated"})"}}));
}

TYPED_TEST(StoreContract, FailedPoolsUpsertByPool) {
  EXPECT_TRUE(this->failed_pools().empty());
  WriteBatch b;
  b.failed_pools = {{"aws/us-east-1/p4d.24xlarge/spot", 600'000}, {"aws/us-east-1/g5.xlarge", 5}};
  this->commit(b);
  b = WriteBatch{};
  b.failed_pools = {{"aws/us-east-1/p4d.24xlarge/spot", 1'200'000}};
  this->commit(b);
  EXPECT_EQ(this->failed_pools(),
            (std::vector<FailedPoolRecord>{{"aws/us-east-1/g5.xlarge", 5},
                                           {"aws/us-east-1/p4d.24xlarge/spot", 1'200'000}}));
  // A pool must have a name: the whole batch is refused.
  b = WriteBatch{};
  b.failed_pools = {{"gcp/us-central1/a2-highgpu-1g", 7}, {"", 7}};
  EXPECT_FALSE(this->store().commit(b).is_ok());
  EXPECT_EQ(this->failed_pools().size(), 2u);
}

TYPED_TEST(StoreContract, QueuesAreOrderedByName) {
  WriteBatch b;
  b.queues = {queue("team-b"), queue("team-10"), queue("default"), queue("team-a"),
              queue("Team-z")};
  this->commit(b);
  std::vector<std::string> names;
  for (const QueueRecord& q : this->queues()) names.push_back(q.name);
  EXPECT_EQ(names, (std::vector<std::string>{"Team-z", "default", "team-10", "team-a", "team-b"}));
}

// A queue and the records that go with it (the job moved into it, its event) commit together.
TYPED_TEST(StoreContract, QueuesCommitWithOtherRecordsInOneRevision) {
  WriteBatch b;
  b.jobs = {job_at("j-1", 1)};
  b.queues = {queue("team-a", "{\"weight\":1}")};
  b.deleted_queues = {"absent"};
  b.events = {event("queue/team-a", "created")};
  EXPECT_EQ(this->commit(b), 1);
  EXPECT_EQ(this->jobs().size(), 1u);
  EXPECT_EQ(this->queues(), std::vector<QueueRecord>{queue("team-a", "{\"weight\":1}")});
  EXPECT_EQ(this->events(), (std::vector<EventRecord>{{1, 0, "queue/team-a", "created"}}));

  b = WriteBatch{};
  b.deleted_queues = {"team-a"};
  b.events = {event("queue/team-a", "deleted")};
  EXPECT_EQ(this->commit(b), 2);
  EXPECT_TRUE(this->queues().empty());
  EXPECT_EQ(this->events(1).size(), 1u);
}

TYPED_TEST(StoreContract, EventsTakeTheCommitsRevision) {
  WriteBatch b;
  b.events = {event("job/j-1", "submitted by «ana» ✓", 5), event("", "", 0)};
  b.events[0].revision = 999;  // ignored on input
  EXPECT_EQ(this->commit(b), 1);
  EXPECT_EQ(this->events(),
            (std::vector<EventRecord>{{1, 5, "job/j-1", "submitted by «ana» ✓"}, {1, 0, "", ""}}));
}

TYPED_TEST(StoreContract, UpsertsOverwriteByKey) {
  WriteBatch b;
  b.jobs = {job_at("j-1", 10)};
  b.tasks = {task("j-1", 0)};
  b.nodes = {node("n-1")};
  this->commit(b);

  JobRecord j = full_job();
  j.id = "j-1";
  j.spec_json = "{}";
  TaskRecord t = task("j-1", 0);
  t.node = "n-1";
  t.gpu_mask = 0b101;
  t.state = JobState::kSucceeded;
  t.exit_code = 0;
  NodeRecord n = node("n-1");
  n.ready = true;
  n.gpu_count = 2;
  n.gpu_model = "A100-40GB";
  b = WriteBatch{};
  b.jobs = {j};
  b.tasks = {t};
  b.nodes = {n};
  this->commit(b);
  EXPECT_EQ(this->jobs(), std::vector<JobRecord>{j});
  EXPECT_EQ(this->tasks(), std::vector<TaskRecord>{t});
  EXPECT_EQ(this->nodes(), std::vector<NodeRecord>{n});

  // Back to defaults: overwriting with empty strings and zeros is an overwrite too.
  b = WriteBatch{};
  b.jobs = {job_at("j-1", 10)};
  b.tasks = {task("j-1", 0)};
  b.nodes = {node("n-1")};
  this->commit(b);
  EXPECT_EQ(this->jobs(), b.jobs);
  EXPECT_EQ(this->tasks(), b.tasks);
  EXPECT_EQ(this->nodes(), b.nodes);
}

TYPED_TEST(StoreContract, RepeatedKeyInOneBatchKeepsTheLast) {
  WriteBatch b;
  JobRecord first = job_at("j-1", 1);
  JobRecord last = job_at("j-1", 2);
  last.name = "last";
  b.jobs = {first, last};
  this->commit(b);
  EXPECT_EQ(this->jobs(), std::vector<JobRecord>{last});
}

TYPED_TEST(StoreContract, DeletedNodesAreRemoved) {
  WriteBatch b;
  b.nodes = {node("a"), node("b"), node("c")};
  this->commit(b);
  b = WriteBatch{};
  b.deleted_nodes = {"b", "absent"};  // deleting an absent node is not an error
  EXPECT_EQ(this->commit(b), 2);
  EXPECT_EQ(this->nodes(), (std::vector<NodeRecord>{node("a"), node("c")}));

  // Upserted and deleted in one batch: deleted.
  b = WriteBatch{};
  b.nodes = {node("d")};
  b.deleted_nodes = {"d", "a"};
  this->commit(b);
  EXPECT_EQ(this->nodes(), std::vector<NodeRecord>{node("c")});
  // Deleted nodes can come back.
  b = WriteBatch{};
  b.nodes = {node("b")};
  this->commit(b);
  EXPECT_EQ(this->nodes(), (std::vector<NodeRecord>{node("b"), node("c")}));
}

TYPED_TEST(StoreContract, EachCommitBumpsTheRevisionByOne) {
  std::vector<WriteBatch> batches(7);
  batches[0].jobs = {job_at("j-1", 1), job_at("j-2", 2)};
  batches[1].tasks = {task("j-1", 0)};
  batches[2].nodes = {node("n")};
  batches[3].deleted_nodes = {"n"};
  batches[4].events = {event("a", "1"), event("b", "2"), event("c", "3")};
  batches[5].queues = {queue("q")};
  batches[6].deleted_queues = {"q"};
  int64_t expected = 0;
  for (const WriteBatch& b : batches) {
    ++expected;
    EXPECT_EQ(this->commit(b), expected);
    EXPECT_EQ(this->store().revision(), expected);
  }
}

TYPED_TEST(StoreContract, EmptyBatchKeepsTheRevision) {
  EXPECT_EQ(this->commit(WriteBatch{}), 0);
  EXPECT_EQ(this->store().revision(), 0);
  WriteBatch b;
  b.jobs = {job_at("j-1", 1)};
  this->commit(b);
  this->commit(b);
  EXPECT_EQ(this->commit(WriteBatch{}), 2);
  EXPECT_EQ(this->store().revision(), 2);
  EXPECT_TRUE(this->events().empty());
}

TYPED_TEST(StoreContract, EventsSinceOrderAfterAndLimit) {
  WriteBatch b;
  b.events = {event("x", "1a"), event("x", "1b")};
  this->commit(b);  // revision 1
  b = WriteBatch{};
  b.jobs = {job_at("j-1", 1)};
  this->commit(b);  // revision 2: no events
  b = WriteBatch{};
  b.events = {event("z", "3a"), event("a", "3b"), event("m", "3c")};  // kept in append order
  this->commit(b);                                                    // revision 3

  auto messages = [](const std::vector<EventRecord>& events) {
    std::vector<std::string> out;
    for (const EventRecord& e : events) out.push_back(std::to_string(e.revision) + e.message);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(messages(this->events(0, 100)), (V{"11a", "11b", "33a", "33b", "33c"}));
  EXPECT_EQ(messages(this->events(-5, 100)), (V{"11a", "11b", "33a", "33b", "33c"}));
  EXPECT_EQ(messages(this->events(1, 100)), (V{"33a", "33b", "33c"}));
  EXPECT_EQ(messages(this->events(2, 100)), (V{"33a", "33b", "33c"}));
  EXPECT_EQ(messages(this->events(3, 100)), V{});
  EXPECT_EQ(messages(this->events(99, 100)), V{});
  EXPECT_EQ(messages(this->events(0, 3)), (V{"11a", "11b", "33a"}));
  EXPECT_EQ(messages(this->events(1, 1)), V{"33a"});
  EXPECT_EQ(messages(this->events(0, 0)), V{});
  EXPECT_EQ(this->events(0, static_cast<size_t>(-1)).size(), 5u);
}

TYPED_TEST(StoreContract, NextIdCountsPerCounter) {
  EXPECT_EQ(this->next_id("job"), 1);
  EXPECT_EQ(this->next_id("job"), 2);
  EXPECT_EQ(this->next_id("node"), 1);
  EXPECT_EQ(this->next_id("job"), 3);
  EXPECT_EQ(this->next_id("Job"), 1);  // names are case-sensitive
  EXPECT_EQ(this->next_id("node"), 2);
  for (int64_t i = 4; i <= 100; ++i) EXPECT_EQ(this->next_id("job"), i);
  EXPECT_EQ(this->store().revision(), 0);  // counters are not commits
}

// A counter written in a batch is stored with the batch, only ever rises, and next_id() goes on
// after it.
TYPED_TEST(StoreContract, CountersRiseWithTheirBatch) {
  EXPECT_EQ(this->ok(this->store().counter("job")), 0);
  WriteBatch b;
  b.jobs = {full_job()};
  b.counters = {{"job", 5}};
  EXPECT_EQ(this->commit(b), 1);
  EXPECT_EQ(this->ok(this->store().counter("job")), 5);
  WriteBatch lower;
  lower.counters = {{"job", 3}, {"node", 2}};
  EXPECT_EQ(this->commit(lower), 2);  // a batch of counters alone is a commit
  EXPECT_EQ(this->ok(this->store().counter("job")), 5);
  EXPECT_EQ(this->ok(this->store().counter("node")), 2);
  EXPECT_EQ(this->next_id("job"), 6);
  EXPECT_EQ(this->ok(this->store().counter("job")), 6);
  EXPECT_EQ(this->ok(this->store().counter("Job")), 0);  // names are case-sensitive
}

// A failed batch raises no counter: the id it carried was never handed out.
TYPED_TEST(StoreContract, AFailedBatchRaisesNoCounter) {
  WriteBatch bad;
  bad.counters = {{"job", 9}};
  bad.tasks = {TaskRecord{}};  // an empty key (job_id) is refused
  EXPECT_FALSE(this->store().commit(bad).is_ok());
  EXPECT_EQ(this->ok(this->store().counter("job")), 0);
  EXPECT_EQ(this->store().revision(), 0);
}

// Batches appended one to another (a group commit) leave what committing them in order leaves.
TYPED_TEST(StoreContract, AppendedBatchesLeaveWhatTheirCommitsInOrderLeave) {
  auto node = [](const std::string& name, int64_t cpu_milli) {
    NodeRecord n;
    n.name = name;
    n.cpu_milli = cpu_milli;
    return n;
  };
  WriteBatch first;
  first.nodes = {node("a", 1), node("b", 1)};
  first.queues = {{"q", "{}"}};
  first.counters = {{"job", 1}};
  first.events = {{0, 1, "node/a", "one"}};
  WriteBatch second;
  second.deleted_nodes = {"a"};
  second.deleted_queues = {"q"};
  second.nodes = {node("b", 2)};
  second.counters = {{"job", 2}};
  second.events = {{0, 2, "node/a", "two"}};
  WriteBatch third;
  third.nodes = {node("a", 3)};  // back after its deletion
  third.events = {{0, 3, "node/a", "three"}};
  first.append(std::move(second));
  first.append(std::move(third));
  EXPECT_TRUE(third.empty());
  EXPECT_EQ(this->commit(first), 1);
  std::vector<NodeRecord> nodes = this->nodes();
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].name, "a");
  EXPECT_EQ(nodes[0].cpu_milli, 3);
  EXPECT_EQ(nodes[1].cpu_milli, 2);
  EXPECT_TRUE(this->queues().empty());
  EXPECT_EQ(this->ok(this->store().counter("job")), 2);
  std::vector<EventRecord> events = this->events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].message, "three");
}

TYPED_TEST(StoreContract, JobsAreOrderedByCreationThenId) {
  WriteBatch b;
  b.jobs = {job_at("j-3", 300), job_at("j-9", 100), job_at("j-10", 100), job_at("j-1", 200),
            job_at("j-0", -1)};
  this->commit(b);
  std::vector<std::string> ids;
  for (const JobRecord& j : this->jobs()) ids.push_back(j.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"j-0", "j-10", "j-9", "j-1", "j-3"}));
}

TYPED_TEST(StoreContract, TasksAreOrderedByJobThenRank) {
  WriteBatch b;
  b.tasks = {task("j-2", 10), task("j-1", 2), task("j-2", 2),
             task("j-1", 0),  task("j-2", 0), task("j-10", 1)};
  this->commit(b);
  auto keys = [](const std::vector<TaskRecord>& tasks) {
    std::vector<std::string> out;
    for (const TaskRecord& t : tasks) out.push_back(t.job_id + "/" + std::to_string(t.rank));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(keys(this->tasks("j-2")), (V{"j-2/0", "j-2/2", "j-2/10"}));
  EXPECT_EQ(keys(this->tasks("j-1")), (V{"j-1/0", "j-1/2"}));
  EXPECT_EQ(keys(this->tasks("j-3")), V{});
  EXPECT_EQ(keys(this->tasks("j")), V{});  // an exact match, not a prefix
  EXPECT_EQ(keys(this->tasks()), (V{"j-1/0", "j-1/2", "j-10/1", "j-2/0", "j-2/2", "j-2/10"}));
}

TYPED_TEST(StoreContract, NodesAreOrderedByName) {
  WriteBatch b;
  b.nodes = {node("gpu-2"), node("gpu-10"), node("cpu-1"), node("gpu-1")};
  this->commit(b);
  std::vector<std::string> names;
  for (const NodeRecord& n : this->nodes()) names.push_back(n.name);
  EXPECT_EQ(names, (std::vector<std::string>{"cpu-1", "gpu-1", "gpu-10", "gpu-2"}));
}

TYPED_TEST(StoreContract, ReadsReturnCopies) {
  WriteBatch b;
  b.jobs = {job_at("j-1", 1)};
  this->commit(b);
  std::vector<JobRecord> read = this->jobs();
  read[0].name = "changed";
  b.jobs[0].name = "changed too";
  EXPECT_EQ(this->job("j-1")->name, "");
}

}  // namespace
}  // namespace lepton::store
