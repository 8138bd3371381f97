#include "spec/agent_protocol.h"

#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>

#include "spec/json_text.h"

namespace lepton::spec {
namespace {

using nlohmann::json;

constexpr int64_t kMaxRankOrAttempt = 1'000'000;

// Reads the fields of one JSON object; the first error is kept, later reads do nothing, and
// field names in errors are prefixed with where the object sits ("tasks.state").
class Fields {
 public:
  Fields(const json& object, std::string prefix) : j_(object), prefix_(std::move(prefix)) {
    if (!j_.is_object()) {
      status_ = Status::invalid_argument(
          (prefix_.empty() ? std::string("body") : prefix_.substr(0, prefix_.size() - 1)) +
          ": expected a JSON object");
    }
  }

  const Status& status() const { return status_; }

  void string(const char* name, std::string& out, bool required = true) {
    const json* v = find(name, required);
    if (!v) return;
    if (!v->is_string()) return fail(name, "wrong type; expected a string");
    out = v->get<std::string>();
  }

  // An integer in [lo, hi].
  template <typename T>
  void integer(const char* name, T& out, bool required, int64_t lo, int64_t hi) {
    const json* v = find(name, required);
    if (!v) return;
    if (!v->is_number_integer()) return fail(name, "wrong type; expected an integer");
    // Unsigned JSON numbers past INT64_MAX read as negative int64_t: compare them as unsigned.
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
      return fail(name, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi) {
      return fail(name, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    out = static_cast<T>(x);
  }

  void boolean(const char* name, bool& out) {
    const json* v = find(name, false);
    if (!v) return;
    if (!v->is_boolean()) return fail(name, "wrong type; expected true or false");
    out = v->get<bool>();
  }

  void task(TaskRef& out, bool rank_required) {
    string("job_id", out.job_id);
    if (status_.is_ok() && !is_valid_job_id(out.job_id)) {
      fail("job_id", "expected 1 to 128 characters of A-Z a-z 0-9 . _ - not starting with '.'");
    }
    integer("rank", out.rank, rank_required, 0, kMaxRankOrAttempt);
    integer("attempt", out.attempt, rank_required, 0, kMaxRankOrAttempt);
  }

  // An optional array field; each element is read by `item(element, prefix)`.
  template <typename F>
  void array(const char* name, F&& item) {
    const json* v = find(name, false);
    if (!v || v->is_null()) return;
    if (!v->is_array()) return fail(name, "expected an array");
    for (const json& element : *v) {
      Status s = item(element, prefix_ + name + ".");
      if (!s.is_ok()) {
        status_ = std::move(s);
        return;
      }
    }
  }

  void fail(const std::string& name, const std::string& what) {
    if (status_.is_ok()) status_ = Status::invalid_argument(prefix_ + name + ": " + what);
  }

 private:
  const json* find(const char* name, bool required) {
    if (!status_.is_ok() || !j_.is_object()) return nullptr;
    auto it = j_.find(name);
    if (it == j_.end()) {
      if (required) fail(name, "missing");
      return nullptr;
    }
    return &*it;
  }

  const json& j_;
  std::string prefix_;
  Status status_;
};

Result<json> parse(std::string_view text) {
  if (text.size() > kMaxAgentMessageBytes) {
    return Status::invalid_argument("body: larger than " +
                                    std::to_string(kMaxAgentMessageBytes >> 20) + " MiB");
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::invalid_argument("body: expected a JSON object");
  }
  return j;
}

json task_json(const TaskRef& t) {
  return {{"job_id", t.job_id}, {"rank", t.rank}, {"attempt", t.attempt}};
}

void read_timing(Fields& f, AgentTiming& t) {
  f.integer("heartbeat_ms", t.heartbeat_ms, false, 0, 3'600'000);
  f.integer("lease_ms", t.lease_ms, false, 0, std::numeric_limits<int32_t>::max());
}

}  // namespace

bool is_valid_job_id(std::string_view job_id) {
  if (job_id.empty() || job_id.size() > 128 || job_id[0] == '.') return false;
  for (char c : job_id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

std::string_view task_report_state_name(TaskReport::State state) {
  switch (state) {
    case TaskReport::State::kRunning:
      return "RUNNING";
    case TaskReport::State::kExited:
      return "EXITED";
    case TaskReport::State::kGone:
      return "GONE";
    case TaskReport::State::kFenced:
      return "FENCED";
  }
  return "RUNNING";
}

std::string encode(const AgentRegistration& m) {
  return to_json_text({{"name", m.name},
                       {"cpu_milli", m.cpu_milli},
                       {"memory_mib", m.memory_mib},
                       {"gpu_count", m.gpu_count},
                       {"gpu_model", m.gpu_model},
                       {"address", m.address}});
}

std::string encode(const RegistrationReply& m) {
  return to_json_text(
      {{"name", m.name}, {"heartbeat_ms", m.timing.heartbeat_ms}, {"lease_ms", m.timing.lease_ms}});
}

std::string encode(const Heartbeat& m) {
  json tasks = json::array();
  for (const TaskReport& r : m.tasks) {
    json t = task_json(r.task);
    t["state"] = task_report_state_name(r.state);
    if (r.state == TaskReport::State::kExited || r.state == TaskReport::State::kFenced) {
      t["exit_code"] = r.exit_code;
    }
    t["log_size"] = r.log_size;
    tasks.push_back(std::move(t));
  }
  json logs = json::array();
  for (const LogChunk& c : m.logs) {
    json l = task_json(c.task);
    l["offset"] = c.offset;
    l["data"] = c.data;
    logs.push_back(std::move(l));
  }
  return to_json_text({{"tasks", std::move(tasks)}, {"logs", std::move(logs)}});
}

std::string encode(const HeartbeatReply& m) {
  json start = json::array();
  for (const TaskStart& s : m.start) {
    json t = task_json(s.task);
    t["script"] = s.script;
    t["env"] = s.env;
    start.push_back(std::move(t));
  }
  json stop = json::array();
  for (const TaskStop& s : m.stop) {
    json t = task_json(s.task);
    if (s.grace_ms) t["grace_ms"] = *s.grace_ms;
    if (s.notice) t["notice"] = true;
    stop.push_back(std::move(t));
  }
  json offsets = json::array();
  for (const LogOffset& o : m.log_offsets) {
    json t = task_json(o.task);
    t["offset"] = o.offset;
    offsets.push_back(std::move(t));
  }
  return to_json_text({{"heartbeat_ms", m.timing.heartbeat_ms},
                       {"lease_ms", m.timing.lease_ms},
                       {"start", std::move(start)},
                       {"stop", std::move(stop)},
                       {"log_offsets", std::move(offsets)}});
}

Result<AgentRegistration> decode_agent_registration(std::string_view text) {
  auto j = parse(text);
  if (!j.is_ok()) return j.status();
  AgentRegistration m;
  Fields f(*j, "");
  f.string("name", m.name);
  f.integer("cpu_milli", m.cpu_milli, true, 0, int64_t{1} << 40);
  f.integer("memory_mib", m.memory_mib, true, 0, int64_t{1} << 40);
  f.integer("gpu_count", m.gpu_count, true, 0, 1024);
  f.string("gpu_model", m.gpu_model);
  f.string("address", m.address, false);
  if (f.status().is_ok() && (m.name.empty() || m.name.size() > 253)) {
    f.fail("name", "expected 1 to 253 characters");
  }
  if (f.status().is_ok() && m.address.size() > 253) f.fail("address", "longer than 253 characters");
  if (!f.status().is_ok()) return f.status();
  return m;
}

Result<RegistrationReply> decode_registration_reply(std::string_view text) {
  auto j = parse(text);
  if (!j.is_ok()) return j.status();
  RegistrationReply m;
  Fields f(*j, "");
  f.string("name", m.name, false);
  read_timing(f, m.timing);
  if (!f.status().is_ok()) return f.status();
  return m;
}

Result<Heartbeat> decode_heartbeat(std::string_view text) {
  auto j = parse(text);
  if (!j.is_ok()) return j.status();
  Heartbeat m;
  Fields f(*j, "");
  f.array("tasks", [&](const json& e, const std::string& prefix) {
    TaskReport r;
    Fields t(e, prefix);
    t.task(r.task, /*rank_required=*/true);
    std::string state;
    t.string("state", state);
    t.integer("exit_code", r.exit_code, false, std::numeric_limits<int32_t>::min(),
              std::numeric_limits<int32_t>::max());
    t.integer("log_size", r.log_size, false, 0, std::numeric_limits<int64_t>::max());
    if (!t.status().is_ok()) return t.status();
    if (state == "RUNNING") {
      r.state = TaskReport::State::kRunning;
    } else if (state == "EXITED") {
      r.state = TaskReport::State::kExited;
    } else if (state == "GONE") {
      r.state = TaskReport::State::kGone;
    } else if (state == "FENCED") {
      r.state = TaskReport::State::kFenced;
    } else {
      return Status::invalid_argument(
          prefix + "state: expected RUNNING, EXITED, GONE or FENCED, got '" + state + "'");
    }
    m.tasks.push_back(std::move(r));
    return Status::ok();
  });
  f.array("logs", [&](const json& e, const std::string& prefix) {
    LogChunk c;
    Fields t(e, prefix);
    t.task(c.task, /*rank_required=*/true);
    t.integer("offset", c.offset, true, 0, std::numeric_limits<int64_t>::max());
    t.string("data", c.data);
    if (!t.status().is_ok()) return t.status();
    m.logs.push_back(std::move(c));
    return Status::ok();
  });
  if (!f.status().is_ok()) return f.status();
  return m;
}

Result<HeartbeatReply> decode_heartbeat_reply(std::string_view text) {
  auto j = parse(text);
  if (!j.is_ok()) return j.status();
  HeartbeatReply m;
  Fields f(*j, "");
  read_timing(f, m.timing);
  f.array("start", [&](const json& e, const std::string& prefix) {
    TaskStart s;
    Fields t(e, prefix);
    t.task(s.task, /*rank_required=*/false);
    t.string("script", s.script, false);
    if (t.status().is_ok() && e.contains("env")) {
      const json& env = e["env"];
      if (!env.is_object()) return Status::invalid_argument(prefix + "env: expected an object");
      for (auto it = env.begin(); it != env.end(); ++it) {
        if (!it->is_string()) {
          return Status::invalid_argument(prefix + "env." + it.key() + ": expected a string");
        }
        s.env[it.key()] = it->get<std::string>();
      }
    }
    if (!t.status().is_ok()) return t.status();
    m.start.push_back(std::move(s));
    return Status::ok();
  });
  f.array("stop", [&](const json& e, const std::string& prefix) {
    TaskStop s;
    Fields t(e, prefix);
    t.task(s.task, /*rank_required=*/false);
    if (e.is_object() && e.contains("grace_ms")) {
      int64_t grace = 0;
      t.integer("grace_ms", grace, true, 0, std::numeric_limits<int32_t>::max());
      s.grace_ms = grace;
    }
    t.boolean("notice", s.notice);
    if (!t.status().is_ok()) return t.status();
    m.stop.push_back(std::move(s));
    return Status::ok();
  });
  f.array("log_offsets", [&](const json& e, const std::string& prefix) {
    LogOffset o;
    Fields t(e, prefix);
    t.task(o.task, /*rank_required=*/false);
    t.integer("offset", o.offset, true, 0, std::numeric_limits<int64_t>::max());
    if (!t.status().is_ok()) return t.status();
    m.log_offsets.push_back(std::move(o));
    return Status::ok();
  });
  if (!f.status().is_ok()) return f.status();
  return m;
}

}  // namespace lepton::spec
