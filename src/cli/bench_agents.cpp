// `lepton bench agents`: a real `lepton server` process and N simulated agents in this process,
// each speaking the real agent protocol (spec/agent_protocol.h) over real HTTP on 127.0.0.1, one
// connection per request as `lepton agent` does, at the interval the server tells them. Clients
// submit small jobs and read them back through the REST API while the agents heartbeat and "run"
// what they are given (RUNNING for --task-ms, then EXITED 0). Prints durable submissions per
// second, API latency, and the server process's CPU and memory.
// clang-format off
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange
// clang-format on

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "cli/cli.h"
#include "cli/experiments.h"
#include "net/http.h"
#include "spec/agent_protocol.h"

namespace lepton::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct AgentsFlags {
  int agents = 1000;
  double seconds = 20;
  int clients = 8;
  int task_ms = 5000;
  int cpus_per_agent = 8;
  bool json = false;
};

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---- the server process

int free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

struct ProcStat {
  double cpu_s = 0;    // user + system
  double rss_mb = 0;   // now
  double peak_mb = 0;  // high-water mark
};

ProcStat proc_stat(pid_t pid) {
  ProcStat s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  const size_t close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in(text.substr(close + 2));
    std::string f;
    std::vector<std::string> fields;
    while (in >> f) fields.push_back(f);
    if (fields.size() > 12) {
      const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
      s.cpu_s = (std::stod(fields[11]) + std::stod(fields[12])) / tick;  // utime, stime
    }
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    auto kib = [&](const char* key) {
      return line.rfind(key, 0) == 0 ? std::stod(line.substr(std::string(key).size())) / 1024 : -1;
    };
    if (double v = kib("VmRSS:"); v >= 0) s.rss_mb = v;
    if (double v = kib("VmHWM:"); v >= 0) s.peak_mb = v;
  }
  return s;
}

class ServerProcess {
 public:
  ServerProcess(const std::string& data_dir, int port) : port_(port) {
    const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
    const std::string log = data_dir + ".log";
    pid_ = fork();
    if (pid_ < 0) fail("cannot fork the server");
    if (pid_ == 0) {
      FILE* out = std::freopen(log.c_str(), "w", stderr);
      (void)out;
      (void)!std::freopen("/dev/null", "w", stdout);
      const std::string port_text = std::to_string(port);
      execl(exe.c_str(), exe.c_str(), "server", "--data-dir", data_dir.c_str(), "--port",
            port_text.c_str(), "--gateway-port", "-1", static_cast<char*>(nullptr));
      _exit(127);
    }
    url_ = {"127.0.0.1", static_cast<uint16_t>(port)};
    const auto start = Clock::now();
    while (since(start) < 30) {
      auto r = net::http_request(url_, "GET", "/healthz", "", {.timeout = milliseconds(1000)});
      if (r.is_ok() && r->status == 200) break;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        fail("the server exited at start; see " + log);
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    std::ifstream in(data_dir + "/token");
    std::getline(in, token_);
    if (token_.empty()) fail("the server did not start within 30 s; see " + log);
  }
  ~ServerProcess() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  const net::Url& url() const { return url_; }
  const std::string& token() const { return token_; }
  int port() const { return port_; }

 private:
  int port_;
  pid_t pid_ = -1;
  net::Url url_;
  std::string token_;
};

// ---- the simulated agents

struct Counters {
  std::atomic<int64_t> registered{0};
  std::atomic<int64_t> heartbeats{0};
  std::atomic<int64_t> errors{0};
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> finished{0};
  std::atomic<int64_t> interval_ms{0};  // the last interval a server reply gave
};

class SimAgents;

// One agent: register, then heartbeat at the interval the server gives; a started task reports
// RUNNING until its time is up, then EXITED 0 until the server says stop.
struct SimAgent : std::enable_shared_from_this<SimAgent> {
  SimAgent(SimAgents& owner, asio::io_context& io, std::string agent_name,
           const asio::ip::address_v4& source)
      : agents(owner), timer(io), name(std::move(agent_name)), address(source) {}

  SimAgents& agents;
  asio::steady_timer timer;
  std::string name;
  // Each agent connects from an address of its own (127.0.0.0/8 is all loopback), as agents on
  // separate machines do: from one address, a few thousand connections a second would run out
  // of source ports (TIME-WAIT), which no real cluster meets.
  asio::ip::address_v4 address;
  int64_t interval_ms = 300;
  struct Task {
    Clock::time_point ends;
    bool exited = false;
  };
  std::map<spec::TaskRef, Task> tasks;
};

class SimAgents {
 public:
  SimAgents(const ServerProcess& server, const AgentsFlags& flags, Counters& counters)
      : flags_(flags),
        counters_(counters),
        endpoint_(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(server.port())),
        auth_("Bearer " + server.token()) {}

  asio::io_context& io() { return io_; }

  void start() {
    for (int i = 0; i < flags_.agents; ++i) {
      // 127.X.Y.Z with Z in 1..254, from 127.1.0.1 on.
      const uint32_t host = static_cast<uint32_t>(i);
      const asio::ip::address_v4 source((127u << 24) | ((1 + host / (254 * 256)) << 16) |
                                        (((host / 254) % 256) << 8) | (1 + host % 254));
      agents_.push_back(std::make_shared<SimAgent>(*this, io_, "sim-" + std::to_string(i), source));
    }
    // Registrations go out a bounded number at a time.
    for (int i = 0; i < std::min<int>(kRegistering, flags_.agents); ++i) register_next();
    thread_ = std::thread([this] {
      auto guard = asio::make_work_guard(io_);
      io_.run();
    });
  }

  void stop() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  // Failed requests by what failed ("read: end of stream", "HTTP 503"); after stop().
  const std::map<std::string, int64_t>& errors_by_kind() const { return errors_by_kind_; }

 private:
  static constexpr int kRegistering = 64;

  // One POST on a new connection; `done(ok, body)` runs on the I/O thread.
  template <typename Done>
  void post(const asio::ip::address_v4& source, const std::string& target, const std::string& body,
            Done done) {
    struct Call {
      beast::tcp_stream stream;
      http::request<http::string_body> req;
      beast::flat_buffer buffer;
      http::response<http::string_body> res;
      explicit Call(asio::io_context& io) : stream(io) {}
    };
    auto call = std::make_shared<Call>(io_);
    call->req = {http::verb::post, target, 11};
    call->req.set(http::field::host, "127.0.0.1");
    call->req.set(http::field::authorization, auth_);
    call->req.set(http::field::content_type, "application/json");
    call->req.set(http::field::connection, "close");
    call->req.body() = body;
    call->req.prepare_payload();
    call->stream.expires_after(std::chrono::seconds(10));
    auto finish = [this, call, done](bool ok, const char* stage, beast::error_code ec) {
      if (!ok) {
        ++errors_by_kind_[std::string(stage) + ": " + ec.message()];
      } else if (call->res.result_int() != 200) {
        ++errors_by_kind_["HTTP " + std::to_string(call->res.result_int())];
      }
      beast::error_code ignored;
      call->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      done(ok && call->res.result_int() == 200, call->res.body());
    };
    beast::error_code bound;
    call->stream.socket().open(tcp::v4(), bound);
    if (!bound) call->stream.socket().bind(tcp::endpoint(source, 0), bound);
    if (bound) return finish(false, "bind", bound);
    call->stream.async_connect(endpoint_, [call, finish](beast::error_code connected) {
      if (connected) return finish(false, "connect", connected);
      http::async_write(call->stream, call->req, [call, finish](beast::error_code wrote, size_t) {
        if (wrote) return finish(false, "write", wrote);
        http::async_read(
            call->stream, call->buffer, call->res,
            [call, finish](beast::error_code read, size_t) { finish(!read, "read", read); });
      });
    });
  }

  void register_next() {
    if (next_register_ >= agents_.size()) return;
    std::shared_ptr<SimAgent> agent = agents_[next_register_++];
    const spec::AgentRegistration message{.name = agent->name,
                                          .cpu_milli = int64_t{flags_.cpus_per_agent} * 1000,
                                          .memory_mib = int64_t{flags_.cpus_per_agent} * 4096,
                                          .gpu_count = 0,
                                          .gpu_model = "",
                                          .address = "127.0.0.1"};
    post(agent->address, "/api/v1/agents/register", spec::encode(message),
         [this, agent](bool ok, const std::string& body) {
           auto reply =
               ok ? spec::decode_registration_reply(body)
                  : Result<spec::RegistrationReply>(Status::invalid_argument("request failed"));
           if (!reply.is_ok()) {
             ++counters_.errors;
             agents_.push_back(agent);  // try it again later
           } else {
             ++counters_.registered;
             if (reply->timing.heartbeat_ms > 0) agent->interval_ms = reply->timing.heartbeat_ms;
             // The first heartbeat at a random point of the interval, so they spread.
             std::uniform_int_distribution<int64_t> pick(0, agent->interval_ms);
             schedule(agent, milliseconds(pick(rng_)));
           }
           register_next();
         });
  }

  void schedule(const std::shared_ptr<SimAgent>& agent, milliseconds after) {
    agent->timer.expires_after(after);
    agent->timer.async_wait([this, agent](beast::error_code ec) {
      if (!ec) heartbeat(agent);
    });
  }

  void heartbeat(const std::shared_ptr<SimAgent>& agent) {
    using State = spec::TaskReport::State;
    spec::Heartbeat message;
    const auto now = Clock::now();
    for (auto& [ref, task] : agent->tasks) {
      if (!task.exited && now >= task.ends) {
        task.exited = true;
        ++counters_.finished;
      }
      message.tasks.push_back({.task = ref,
                               .state = task.exited ? State::kExited : State::kRunning,
                               .exit_code = 0,
                               .log_size = 0});
    }
    post(agent->address, "/api/v1/agents/" + agent->name + "/heartbeat", spec::encode(message),
         [this, agent](bool ok, const std::string& body) {
           auto reply =
               ok ? spec::decode_heartbeat_reply(body)
                  : Result<spec::HeartbeatReply>(Status::invalid_argument("request failed"));
           if (!reply.is_ok()) {
             ++counters_.errors;
           } else {
             ++counters_.heartbeats;
             for (const spec::TaskStop& s : reply->stop) agent->tasks.erase(s.task);
             for (const spec::TaskStart& s : reply->start) {
               if (agent->tasks.count(s.task)) continue;
               agent->tasks[s.task] = {Clock::now() + milliseconds(flags_.task_ms), false};
               ++counters_.started;
             }
             if (reply->timing.heartbeat_ms > 0) agent->interval_ms = reply->timing.heartbeat_ms;
             counters_.interval_ms = agent->interval_ms;
           }
           schedule(agent, milliseconds(agent->interval_ms));
         });
  }

  const AgentsFlags& flags_;
  Counters& counters_;
  asio::io_context io_;
  tcp::endpoint endpoint_;
  std::string auth_;
  std::vector<std::shared_ptr<SimAgent>> agents_;
  size_t next_register_ = 0;
  std::mt19937_64 rng_{1};
  std::map<std::string, int64_t> errors_by_kind_;  // I/O thread
  std::thread thread_;
};

// An API client on one keep-alive connection (as an SDK holds one), reconnecting when the server
// closes it.
class ApiClient {
 public:
  ApiClient(const net::Url& url, std::string token)
      : endpoint_(asio::ip::make_address(url.host), url.port),
        auth_("Bearer " + std::move(token)) {}

  // The status, or 0 when the request failed twice.
  int request(http::verb method, const std::string& target, const std::string& body,
              std::string* reply) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!stream_) {
          stream_ = std::make_unique<beast::tcp_stream>(io_);
          stream_->connect(endpoint_);
        }
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        req.set(http::field::authorization, auth_);
        if (method == http::verb::post) req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        stream_->expires_after(std::chrono::seconds(10));
        http::write(*stream_, req);
        http::response<http::string_body> res;
        http::read(*stream_, buffer_, res);
        if (!res.keep_alive()) stream_.reset();
        *reply = std::move(res.body());
        return res.result_int();
      } catch (const std::exception&) {
        stream_.reset();
        buffer_.clear();
      }
    }
    return 0;
  }

 private:
  asio::io_context io_;
  tcp::endpoint endpoint_;
  std::string auth_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

// ---- the run

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

void run_agents(const AgentsFlags& f) {
  namespace fs = std::filesystem;
  (void)net::raise_fd_limit();
  char tmpl[] = "/tmp/lepton-bench-agents-XXXXXX";
  if (!mkdtemp(tmpl)) fail("cannot create a temporary directory under /tmp");
  const std::string root = tmpl;
  ServerProcess server(root + "/data", free_port());
  Counters counters;
  SimAgents agents(server, f, counters);

  std::fprintf(stderr, "registering %d simulated agents...\n", f.agents);
  const auto reg_start = Clock::now();
  agents.start();
  while (counters.registered < f.agents && since(reg_start) < 300) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  const double register_s = since(reg_start);
  if (counters.registered < f.agents) fail("not every agent registered within 300 s");
  // Let every agent heartbeat at least once at the interval the server gives.
  std::this_thread::sleep_for(milliseconds(std::max<int64_t>(1000, counters.interval_ms.load())));
  std::fprintf(stderr,
               "registered in %.1f s; heartbeat interval %lld ms; measuring for %.0f s...\n",
               register_s, static_cast<long long>(counters.interval_ms.load()), f.seconds);

  // Clients: each submits a job, reads it back, and lists the newest jobs, in a loop.
  const std::string spec = R"({"name":"bench","resources":{"cpus":0.1,"memory":0.1},"run":"true"})";
  std::mutex mu;
  std::vector<double> submit_ms, read_ms;
  std::atomic<int64_t> submitted{0}, api_errors{0};
  std::atomic<bool> done{false};
  const int64_t heartbeats_before = counters.heartbeats;
  const ProcStat before = proc_stat(server.pid());
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < f.clients; ++c) {
    clients.emplace_back([&] {
      std::vector<double> mine_submit, mine_read;
      ApiClient client(server.url(), server.token());
      std::string body;
      for (int i = 0; !done; ++i) {
        auto t0 = Clock::now();
        const int status = client.request(http::verb::post, "/api/v1/jobs", spec, &body);
        mine_submit.push_back(since(t0) * 1000);
        if (status != 201) {
          ++api_errors;
          continue;
        }
        ++submitted;
        const std::string id = nlohmann::json::parse(body, nullptr, false).value("id", "");
        t0 = Clock::now();
        const std::string target = i % 2 ? "/api/v1/jobs/" + id : "/api/v1/jobs?limit=20";
        const int read = client.request(http::verb::get, target, "", &body);
        mine_read.push_back(since(t0) * 1000);
        if (read != 200) ++api_errors;
      }
      std::lock_guard lock(mu);
      submit_ms.insert(submit_ms.end(), mine_submit.begin(), mine_submit.end());
      read_ms.insert(read_ms.end(), mine_read.begin(), mine_read.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(f.seconds));
  done = true;
  for (auto& t : clients) t.join();
  const double seconds = since(start);
  const ProcStat after = proc_stat(server.pid());
  const int64_t heartbeats = counters.heartbeats - heartbeats_before;
  agents.stop();
  server.stop();
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::remove(root + "/data.log", ec);

  std::vector<double> all = submit_ms;
  all.insert(all.end(), read_ms.begin(), read_ms.end());
  nlohmann::json j = {{"agents", f.agents},
                      {"clients", f.clients},
                      {"seconds", seconds},
                      {"heartbeat_interval_ms", counters.interval_ms.load()},
                      {"heartbeats_per_s", static_cast<double>(heartbeats) / seconds},
                      {"agent_errors", counters.errors.load()},
                      {"agent_errors_by_kind", agents.errors_by_kind()},
                      {"register_s", register_s},
                      {"submissions", submitted.load()},
                      {"submissions_per_s", static_cast<double>(submitted) / seconds},
                      {"tasks_started", counters.started.load()},
                      {"tasks_finished", counters.finished.load()},
                      {"api_errors", api_errors.load()},
                      {"api_p50_ms", percentile(all, 0.5)},
                      {"api_p99_ms", percentile(all, 0.99)},
                      {"submit_p99_ms", percentile(submit_ms, 0.99)},
                      {"read_p99_ms", percentile(read_ms, 0.99)},
                      {"server_cpu_pct", 100 * (after.cpu_s - before.cpu_s) / seconds},
                      {"server_rss_mb", after.rss_mb},
                      {"server_peak_rss_mb", after.peak_mb}};
  if (f.json) {
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf(
      "%d agents (heartbeat every %lld ms, %.0f heartbeats/s): %.0f durable submissions/s with %d "
      "clients; API p50 %.1f ms, p99 %.1f ms; server CPU %.0f%%, RSS %.0f MB (peak %.0f MB); "
      "%lld tasks started, %lld finished; %lld agent errors, %lld API errors\n",
      f.agents, static_cast<long long>(counters.interval_ms.load()),
      static_cast<double>(heartbeats) / seconds, static_cast<double>(submitted) / seconds,
      f.clients, j["api_p50_ms"].get<double>(), j["api_p99_ms"].get<double>(),
      j["server_cpu_pct"].get<double>(), after.rss_mb, after.peak_mb,
      static_cast<long long>(counters.started.load()),
      static_cast<long long>(counters.finished.load()),
      static_cast<long long>(counters.errors.load()), static_cast<long long>(api_errors.load()));
}

}  // namespace

void add_bench_agents_command(CLI::App& bench) {
  auto f = std::make_shared<AgentsFlags>();
  CLI::App* cmd = bench.add_subcommand(
      "agents",
      "A real server and N simulated agents (real HTTP, the real agent protocol, the server's "
      "heartbeat interval) while clients submit and read jobs: durable submissions/s, API p99, "
      "server CPU and memory");
  cmd->add_option("--agents", f->agents, "Simulated agents")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  cmd->add_option("--seconds", f->seconds, "Length of the measured part")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  cmd->add_option("--clients", f->clients, "Concurrent API clients (submit, then read)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--task-ms", f->task_ms, "How long a simulated task runs")
      ->capture_default_str()
      ->check(CLI::Range(0, 3'600'000));
  cmd->add_flag("--json", f->json, "Print one JSON object");
  cmd->callback([f] { run_agents(*f); });
}

}  // namespace lepton::cli
