// The ssh Provider: parsing hosts and targets, the records of hosts in use, and the Provider
// methods (the ssh runs are in ssh_run.cpp, starting and stopping agents in ssh_install.cpp).
#include "cloud/ssh_provider.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cloud/ssh_internal.h"
#include "core/gpu_model.h"
#include "core/hex.h"
#include "core/sha256.h"

namespace lepton::cloud::ssh {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool user_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}
bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
}
bool ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "MODEL:COUNT" or "none"; `gpus` is canonicalised in place.
Status normalize_gpus(std::string& gpus, const std::string& field) {
  if (gpus.empty()) return Status::ok();
  if (lower(gpus) == "none") {
    gpus = "none";
    return Status::ok();
  }
  const size_t colon = gpus.find(':');
  const std::string model = gpus.substr(0, colon);
  auto bad = [&](const std::string& what) {
    return Status::invalid_argument(field + " '" + gpus + "': " + what);
  };
  if (colon == std::string::npos) return bad("expected MODEL:COUNT (e.g. A100-80GB:8) or 'none'");
  if (model.empty() || !std::all_of(model.begin(), model.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      })) {
    return bad("expected a GPU model of letters, digits, '-', '_' and '.' before ':'");
  }
  const std::string count = gpus.substr(colon + 1);
  int n = 0;
  auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (count.empty() || ec != std::errc() || end != count.data() + count.size() || n < 1 ||
      n > 1024) {
    return bad("expected a whole GPU count from 1 to 1024 after ':', got '" + count + "'");
  }
  gpus = canonical_gpu_model(model) + ":" + std::to_string(n);
  return Status::ok();
}

// The declared model and count of a normalized host ("" and 0 for "none" or undeclared).
std::pair<std::string, int> declared_gpus(const SshHost& h) {
  const size_t colon = h.gpus.find(':');
  if (colon == std::string::npos) return {"", 0};
  return {h.gpus.substr(0, colon), std::stoi(h.gpus.substr(colon + 1))};
}

std::string iso_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<std::string> file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::invalid_argument("lepton binary " + path + ": cannot open");
  Sha256 hasher;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    hasher.update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  return hex_encode(hasher.digest());
}

// --- the records of hosts in use ---

struct Record {
  SshHost host;
  std::string state;  // "provisioning", "running", "terminating"
  std::string launch_time;
  std::string idempotency_key;
  Labels labels;
};

json to_json(const Record& r) {
  json labels = json::array();
  for (const auto& [k, v] : r.labels) labels.push_back({k, v});
  return {{"name", r.host.name},
          {"user", r.host.target.user},
          {"host", r.host.target.host},
          {"port", r.host.target.port},
          {"identity_file", r.host.identity_file},
          {"gpus", r.host.gpus},
          {"remote_dir", r.host.remote_dir},
          {"state", r.state},
          {"launch_time", r.launch_time},
          {"idempotency_key", r.idempotency_key},
          {"labels", labels}};
}

Record from_json(const json& j) {
  Record r;
  r.host.name = j.at("name").get<std::string>();
  r.host.target.user = j.at("user").get<std::string>();
  r.host.target.host = j.at("host").get<std::string>();
  r.host.target.port = j.at("port").get<int>();
  r.host.identity_file = j.value("identity_file", "");
  r.host.gpus = j.value("gpus", "");
  r.host.remote_dir = j.value("remote_dir", ".lepton");
  r.state = j.value("state", "running");
  r.launch_time = j.value("launch_time", "");
  r.idempotency_key = j.value("idempotency_key", "");
  for (const json& l : j.value("labels", json::array())) {
    r.labels.emplace_back(l.at(0).get<std::string>(), l.at(1).get<std::string>());
  }
  return r;
}

// An exclusive flock on STATE_DIR/instances.lock, held for the records' read-modify-write (never
// across an ssh run).
class RecordsLock {
 public:
  explicit RecordsLock(const std::string& state_dir) {
    fd_ = open((state_dir + "/instances.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~RecordsLock() {
    if (fd_ >= 0) close(fd_);
  }
  RecordsLock(const RecordsLock&) = delete;
  RecordsLock& operator=(const RecordsLock&) = delete;
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

std::string records_path(const std::string& state_dir) { return state_dir + "/instances.json"; }

Result<std::vector<Record>> load_records(const std::string& state_dir) {
  const std::string path = records_path(state_dir);
  std::ifstream in(path);
  if (!in) return std::vector<Record>{};
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    json j = json::parse(ss.str());
    std::vector<Record> out;
    for (const json& r : j.at("instances")) out.push_back(from_json(r));
    return out;
  } catch (const json::exception& e) {
    return Status::internal(path + ": not a record of ssh hosts in use (" + e.what() + ")");
  }
}

Status save_records(const std::string& state_dir, const std::vector<Record>& records) {
  json list = json::array();
  for (const Record& r : records) list.push_back(to_json(r));
  const std::string path = records_path(state_dir);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json{{"instances", list}}.dump(2) << "\n";
    if (!out) return Status::internal(tmp + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::internal(path + ": " + ec.message());
  return Status::ok();
}

Instance to_instance(const Record& r) {
  Instance i;
  i.id = r.host.name;
  i.cloud = "ssh";
  i.instance_type = r.host.name;
  i.region = format_ssh_target(r.host.target);
  i.state = r.state == "running"       ? InstanceState::kRunning
            : r.state == "terminating" ? InstanceState::kTerminating
                                       : InstanceState::kPending;
  i.private_ip = r.host.target.host;
  i.public_ip = r.host.target.host;
  i.launch_time = r.launch_time;
  i.labels = r.labels;
  return i;
}

bool same_machine(const SshHost& a, const SshHost& b) {
  return lower(a.target.host) == lower(b.target.host) && a.target.port == b.target.port;
}

bool in_use(const std::vector<Record>& records, const SshHost& h) {
  return std::any_of(records.begin(), records.end(), [&](const Record& r) {
    return r.host.name == h.name || same_machine(r.host, h);
  });
}

}  // namespace

// --- parsing and quoting ---

Result<SshTarget> parse_ssh_target(std::string_view text, std::string_view field) {
  const std::string f(field);
  const std::string shown(text);
  auto bad = [&](const std::string& what) {
    return Status::invalid_argument(f + " '" + shown + "': " + what +
                                    " (expected USER@HOST or USER@HOST:PORT)");
  };
  SshTarget t;
  const size_t at = text.find('@');
  if (at == std::string_view::npos) return bad("no USER@ before the host");
  std::string_view user = text.substr(0, at);
  std::string_view rest = text.substr(at + 1);
  if (user.empty()) return bad("empty user");
  if (user.front() == '-' || !std::all_of(user.begin(), user.end(), user_char)) {
    return bad("user '" + std::string(user) +
               "' may hold only letters, digits, '.', '_' and '-', and not start with '-'");
  }
  t.user = user;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("'[' without ']' around an IPv6 host");
    std::string_view host = rest.substr(1, close - 1);
    if (host.empty() || host.find(':') == std::string_view::npos ||
        !std::all_of(host.begin(), host.end(), ipv6_char)) {
      return bad("host '" + std::string(host) + "' in brackets is not an IPv6 address");
    }
    t.host = host;
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':PORT' after ']'");
      port = rest.substr(1);
      if (port.empty()) return bad("empty port after ':'");
    }
  } else {
    const size_t colon = rest.find(':');
    std::string_view host = rest.substr(0, colon);
    if (host.empty()) return bad("empty host");
    if (host.front() == '-' || host.front() == '.' ||
        !std::all_of(host.begin(), host.end(), host_char)) {
      return bad("host '" + std::string(host) +
                 "' may hold only letters, digits, '.' and '-', and not start with '-' or '.' "
                 "(an IPv6 address goes in brackets: USER@[::1]:22)");
    }
    t.host = host;
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return bad("empty port after ':'");
    }
  }
  if (!port.empty()) {
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535) {
      return bad("port '" + std::string(port) + "' is not a number from 1 to 65535");
    }
    t.port = p;
  }
  return t;
}

std::string format_ssh_target(const SshTarget& t) {
  const bool v6 = t.host.find(':') != std::string::npos;
  return t.user + "@" + (v6 ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
}

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

Result<SshHost> normalize_host(SshHost h, std::string_view field_prefix) {
  const std::string p(field_prefix);
  // The target: the same checks as parse_ssh_target, for hosts built in code.
  auto target = parse_ssh_target(format_ssh_target(h.target), p + "ssh");
  if (!target.is_ok()) return target.status();
  LEPTON_RETURN_IF_ERROR(normalize_gpus(h.gpus, p + "gpus"));
  if (h.name.empty()) {
    h.name = h.target.host;
    std::replace(h.name.begin(), h.name.end(), ':', '-');
  }
  const bool name_ok = h.name.size() <= 63 &&
                       std::isalnum(static_cast<unsigned char>(h.name.front())) &&
                       std::all_of(h.name.begin(), h.name.end(), user_char);
  if (!name_ok) {
    return Status::invalid_argument(p + "name '" + h.name +
                                    "': expected 1 to 63 letters, digits, '.', '_' and '-', "
                                    "starting with a letter or digit");
  }
  std::string& dir = h.remote_dir;
  if (dir.empty()) {
    dir = ".lepton";
  } else if (dir == "~") {
    dir = ".";
  } else if (dir.rfind("~/", 0) == 0) {
    dir = dir.size() == 2 ? "." : dir.substr(2);
  }
  while (h.remote_dir.size() > 1 && h.remote_dir.back() == '/') h.remote_dir.pop_back();
  const bool dir_ok = h.remote_dir.front() != '-' && h.remote_dir.front() != '~' &&
                      h.remote_dir.find('\n') == std::string::npos &&
                      h.remote_dir.find('\0') == std::string::npos;
  if (!dir_ok) {
    return Status::invalid_argument(p + "remote-dir '" + h.remote_dir +
                                    "': expected an absolute path or one relative to the home "
                                    "directory (not starting with '-', no line breaks)");
  }
  if (h.identity_file.find('\0') != std::string::npos) {
    return Status::invalid_argument(p + "identity '" + h.identity_file + "': not a file name");
  }
  return h;
}

// --- the provider ---

using internal::start_on_host;
using internal::stop_on_host;

namespace {
bool gpus_fit(const SshHost& h, const Offer& want) {
  auto [model, count] = declared_gpus(h);
  if (!want.gpu_model.empty() && lower(canonical_gpu_model(want.gpu_model)) != lower(model)) {
    return false;
  }
  return want.gpu_count <= 0 || want.gpu_count == count;
}

}  // namespace

Result<std::unique_ptr<SshProvider>> SshProvider::create(SshProviderOptions options) {
  std::set<std::string> names, machines;
  for (size_t i = 0; i < options.hosts.size(); ++i) {
    const std::string field = "hosts[" + std::to_string(i) + "].";
    auto h = normalize_host(options.hosts[i], field);
    if (!h.is_ok()) return h.status();
    if (!names.insert(h->name).second) {
      return Status::invalid_argument(field + "name '" + h->name + "': used by another host");
    }
    const std::string machine = lower(h->target.host) + ":" + std::to_string(h->target.port);
    if (!machines.insert(machine).second) {
      return Status::invalid_argument(field + "ssh '" + format_ssh_target(h->target) +
                                      "': the same machine as another host");
    }
    options.hosts[i] = std::move(*h);
  }
  if (options.state_dir.empty()) return Status::invalid_argument("state_dir: empty");
  if (options.state_dir.find_first_of(" \t\n\"'\\") != std::string::npos) {
    return Status::invalid_argument("state_dir '" + options.state_dir +
                                    "': white space, quotes and backslashes are not supported "
                                    "(ssh's UserKnownHostsFile option splits on them)");
  }
  std::error_code ec;
  fs::create_directories(options.state_dir, ec);
  if (ec) return Status::invalid_argument("state_dir " + options.state_dir + ": " + ec.message());
  fs::permissions(options.state_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (options.connect_timeout.count() < 1 || options.command_timeout.count() < 1 ||
      options.upload_timeout.count() < 1) {
    return Status::invalid_argument("timeouts: expected at least 1 s each");
  }
  return std::unique_ptr<SshProvider>(new SshProvider(std::move(options)));
}

Result<std::vector<Offer>> SshProvider::offers(const OfferQuery& query) const {
  RecordsLock lock(options_.state_dir);
  auto records = load_records(options_.state_dir);
  if (!records.is_ok()) return records.status();
  std::vector<Offer> all;
  for (const SshHost& h : options_.hosts) {
    if (in_use(*records, h)) continue;
    auto [model, count] = declared_gpus(h);
    Offer o;
    o.cloud = "ssh";
    o.instance_type = h.name;
    o.gpu_model = model;
    o.gpu_count = count;
    o.region = format_ssh_target(h.target);
    all.push_back(std::move(o));
  }
  return find_offers(all, query);
}

Result<std::vector<Instance>> SshProvider::provision(const ProvisionRequest& request) {
  if (request.count < 1) {
    return Status::invalid_argument("count: expected at least 1, got " +
                                    std::to_string(request.count));
  }
  if (request.spot) {
    return Status(StatusCode::kUnavailable, "ssh hosts are not spot instances");
  }
  if (options_.server_url.empty() || options_.token.empty()) {
    return Status::invalid_argument("server_url and token: needed to start agents");
  }
  if (request.bootstrap_script.empty() && options_.lepton_binary.empty()) {
    return Status::invalid_argument("lepton_binary: needed to start agents");
  }
  std::string local_sha;
  if (!options_.lepton_binary.empty()) {
    auto sha = file_sha256(options_.lepton_binary);
    if (!sha.is_ok()) return sha.status();
    local_sha = *sha;
  }

  // Choose the hosts and mark them in use.
  std::vector<SshHost> chosen;
  {
    RecordsLock lock(options_.state_dir);
    if (!lock.ok()) return Status::internal(options_.state_dir + ": cannot lock the records");
    auto records = load_records(options_.state_dir);
    if (!records.is_ok()) return records.status();
    if (!request.idempotency_key.empty()) {
      std::vector<Instance> earlier;
      for (const Record& r : *records) {
        if (r.idempotency_key == request.idempotency_key) earlier.push_back(to_instance(r));
      }
      if (!earlier.empty()) return earlier;
    }
    const std::string& wanted = request.offer.instance_type;
    for (const SshHost& h : options_.hosts) {
      if (!wanted.empty() && h.name != wanted) continue;
      if (wanted.empty() && !gpus_fit(h, request.offer)) continue;
      if (in_use(*records, h)) {
        if (!wanted.empty()) {
          return Status(StatusCode::kUnavailable, "ssh host " + h.name + " (" +
                                                      format_ssh_target(h.target) +
                                                      ") is in use; terminate it first");
        }
        continue;
      }
      chosen.push_back(h);
      if (static_cast<int>(chosen.size()) == request.count) break;
    }
    if (!wanted.empty() && chosen.empty()) {
      return Status::not_found("no ssh host named '" + wanted + "' in the pool");
    }
    if (static_cast<int>(chosen.size()) < request.count) {
      return Status(StatusCode::kUnavailable, "only " + std::to_string(chosen.size()) +
                                                  " free ssh host(s) fit, " +
                                                  std::to_string(request.count) + " asked for");
    }
    for (const SshHost& h : chosen) {
      records->push_back(Record{.host = h,
                                .state = "provisioning",
                                .launch_time = iso_now(),
                                .idempotency_key = request.idempotency_key,
                                .labels = request.labels});
    }
    LEPTON_RETURN_IF_ERROR(save_records(options_.state_dir, *records));
  }

  auto set_state = [&](const std::set<std::string>& names, const std::string& state) {
    RecordsLock lock(options_.state_dir);
    auto records = load_records(options_.state_dir);
    if (!records.is_ok()) return records.status();
    std::vector<Record> kept;
    for (Record& r : *records) {
      if (names.count(r.host.name) && state.empty()) continue;
      if (names.count(r.host.name)) r.state = state;
      kept.push_back(std::move(r));
    }
    return save_records(options_.state_dir, kept);
  };

  std::set<std::string> names;
  for (const SshHost& h : chosen) names.insert(h.name);
  for (size_t i = 0; i < chosen.size(); ++i) {
    Status s = start_on_host(options_, chosen[i], local_sha, request.bootstrap_script);
    if (!s.is_ok()) {
      // Undo: stop what was started (best effort) and give every chosen host back.
      for (size_t j = 0; j <= i; ++j) (void)stop_on_host(options_, chosen[j]);
      (void)set_state(names, "");
      return s;
    }
  }
  LEPTON_RETURN_IF_ERROR(set_state(names, "running"));
  std::vector<Instance> out;
  auto records = load_records(options_.state_dir);
  if (!records.is_ok()) return records.status();
  for (const Record& r : *records) {
    if (names.count(r.host.name)) {
      out.push_back(to_instance(r));
      out.back().state = InstanceState::kPending;  // the server has not necessarily heard it yet
    }
  }
  return out;
}

Status SshProvider::terminate(const std::vector<std::string>& instance_ids) {
  std::vector<SshHost> hosts;
  {
    RecordsLock lock(options_.state_dir);
    auto records = load_records(options_.state_dir);
    if (!records.is_ok()) return records.status();
    for (const std::string& id : instance_ids) {
      auto it = std::find_if(records->begin(), records->end(),
                             [&](const Record& r) { return r.host.name == id; });
      if (it == records->end()) {
        std::string known;
        for (const Record& r : *records) known += (known.empty() ? "" : ", ") + r.host.name;
        return Status::not_found("no ssh instance '" + id +
                                 "' in use (in use: " + (known.empty() ? "none" : known) +
                                 "; records in " + records_path(options_.state_dir) + ")");
      }
      it->state = "terminating";
      hosts.push_back(it->host);
    }
    LEPTON_RETURN_IF_ERROR(save_records(options_.state_dir, *records));
  }
  Status first;
  std::set<std::string> stopped;
  for (const SshHost& h : hosts) {
    Status s = stop_on_host(options_, h);
    if (s.is_ok()) {
      stopped.insert(h.name);
    } else if (first.is_ok()) {
      first = s;
    }
  }
  RecordsLock lock(options_.state_dir);
  auto records = load_records(options_.state_dir);
  if (!records.is_ok()) return records.status();
  std::vector<Record> kept;
  for (Record& r : *records) {
    if (!stopped.count(r.host.name)) kept.push_back(std::move(r));
  }
  LEPTON_RETURN_IF_ERROR(save_records(options_.state_dir, kept));
  return first;
}

Result<std::vector<Instance>> SshProvider::list_instances() {
  RecordsLock lock(options_.state_dir);
  auto records = load_records(options_.state_dir);
  if (!records.is_ok()) return records.status();
  std::vector<Instance> out;
  for (const Record& r : *records) out.push_back(to_instance(r));
  return out;
}

Result<SshHost> SshProvider::host_of(const std::string& instance_id) const {
  RecordsLock lock(options_.state_dir);
  auto records = load_records(options_.state_dir);
  if (!records.is_ok()) return records.status();
  for (const Record& r : *records) {
    if (r.host.name == instance_id) return r.host;
  }
  return Status::not_found("no ssh instance '" + instance_id + "' in use");
}

}  // namespace lepton::cloud::ssh
