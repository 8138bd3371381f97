#include "server/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/hex.h"
#include "net/http.h"
#include "server/api_routes.h"
#include "server/console_assets.h"
#include "store/sqlite_store.h"

namespace lepton::server {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// The flock on DATA_DIR/lock, held while the server runs (the kernel drops it when the process
// ends, however it ends).
class DataDirLock {
 public:
  explicit DataDirLock(int fd) : fd_(fd) {}
  DataDirLock(DataDirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DataDirLock& operator=(DataDirLock&&) = delete;
  ~DataDirLock() { release(); }
  void release() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_;
};

class ServerImpl final : public Server, private ApiHost {
 public:
  ServerImpl(ServerOptions options, std::unique_ptr<ControlPlane> cp, std::string token,
             DataDirLock lock)
      : lock_(std::move(lock)),
        options_(std::move(options)),
        cp_(std::move(cp)),
        token_(std::move(token)),
        work_(asio::make_work_guard(loop_)),
        timer_(loop_) {}

  ~ServerImpl() override { stop(); }

  Status start_serving() {
    if (options_.gateway_port >= 0) {
      router_ = std::make_shared<gateway::Router>();
      gateway::GatewayOptions g = options_.gateway;
      g.address = options_.address;
      g.port = static_cast<uint16_t>(options_.gateway_port);
      // Its metrics list every replica's address: the API token is needed to read them.
      g.metrics_token = token_;
      auto gw = gateway::Gateway::start(g, router_);
      if (!gw.is_ok()) return gw.status();
      gateway_ = std::move(*gw);
      gateway_url_ = "http://" + options_.address + ":" + std::to_string(gateway_->port());
      cp_->set_gateway_url(gateway_url_);
    }
    // The API listens first (requests wait on the loop, which starts below), so its address is
    // known to the bootstrap script of rented machines.
    net::HttpServerOptions http_options{.address = options_.address, .port = options_.port};
    // The token is checked on the request's head: a client without it cannot make the server
    // read (and hold) a body.
    http_options.check_head = [this](const net::HttpRequest& head) {
      return permitted(permission_for(head.segments), head) ? std::nullopt
                                                            : std::optional(unauthorized());
    };
    auto http =
        net::HttpServer::start(http_options, [this](net::HttpRequest req, net::Responder respond) {
          handle(std::move(req), std::move(respond));
        });
    if (!http.is_ok()) {
      stop();
      return http.status();
    }
    http_ = std::move(*http);
    if (!options_.providers.empty()) {
      cp_->set_clouds(options_.providers,
                      [script = bootstrap_script(
                           options_.advertise_url.empty() ? url() : options_.advertise_url, token_,
                           this_binary())] { return script; });
    }
    loop_thread_ = std::thread([this] { loop_.run(); });
    schedule_tick();
    return Status::ok();
  }

  std::string url() const override {
    return "http://" + options_.address + ":" + std::to_string(http_->port());
  }
  std::string gateway_url() const override { return gateway_url_; }
  std::string token() const override { return token_; }
  std::string token_path() const override { return options_.data_dir + "/token"; }

  void stop() override {
    if (stopped_.exchange(true)) return;
    if (http_) http_->stop();
    asio::post(loop_, [this] { timer_.cancel(); });
    work_.reset();
    loop_.stop();
    if (loop_thread_.joinable()) loop_thread_.join();
    readers_.join();
    // Launches still being made off the loop are waited for and recorded.
    if (Status s = cp_->stop_clouds(now_ms()); !s.is_ok()) {
      std::fprintf(stderr, "lepton server: stopping the clouds: %s\n", s.to_string().c_str());
    }
    // What the last calls changed is stored; their answers are not sent any more.
    if (Status s = cp_->flush(); !s.is_ok()) {
      std::fprintf(stderr, "lepton server: stopping: %s\n", s.to_string().c_str());
    }
    held_.clear();
    if (gateway_) gateway_->stop();
    lock_.release();  // nothing of this server writes any more
  }

 private:
  void schedule_tick() {
    timer_.expires_after(std::chrono::milliseconds(50));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      const int64_t now = now_ms();
      if (router_) cp_->observe_gateway(*router_->snapshot(), now);
      if (Status s = cp_->tick(now); !s.is_ok()) {
        stop_if_store_failed();
        std::fprintf(stderr, "lepton server: tick: %s\n", s.to_string().c_str());
      }
      if (router_) update_routes();
      flush_soon();
      schedule_tick();
    });
  }

  // Group commit: the changes of every call the loop ran since the last flush are stored in one
  // durable write (the store's fsync is most of a call's cost), and their answers wait for it.
  // Calls that arrive meanwhile queue on the loop and share the next one.
  void answer(const net::Responder& respond, net::HttpResponse response) {
    if (!cp_->has_unflushed()) return respond(std::move(response));
    held_.emplace_back(respond, std::move(response));
    flush_soon();
  }
  // The flush runs after the calls already queued on the loop, so that they join it.
  void flush_soon() {
    if (flush_posted_ || !cp_->has_unflushed()) return;
    flush_posted_ = true;
    asio::post(loop_, [this] {
      flush_posted_ = false;
      (void)cp_->flush();  // a failure is the store failure, checked next
      stop_if_store_failed();
      std::vector<std::pair<net::Responder, net::HttpResponse>> held;
      held.swap(held_);
      for (auto& [respond, response] : held) respond(std::move(response));
    });
  }

  // Gives the gateway the control plane's routes when they changed.
  void update_routes() {
    gateway::RouteSpec spec = cp_->routes();
    if (spec == routes_) return;
    // A table the router refuses (an address that does not resolve) is not tried again every
    // round, which would block the control loop on name lookups: only when the routes change.
    if (Status s = router_->update(spec); !s.is_ok()) {
      std::fprintf(stderr, "lepton server: gateway routes not updated: %s\n", s.message().c_str());
    }
    routes_ = std::move(spec);
  }

  // ApiHost: the route handlers' way onto the control loop (api_routes.h).
  void on_loop(net::Responder respond, LoopCall fn) override {
    asio::post(loop_, [this, respond = std::move(respond), fn = std::move(fn)] {
      // The control plane reports errors as values; an exception here is a bug, and it must not
      // take the control loop down with it.
      try {
        net::HttpResponse response = fn(*cp_);
        stop_if_store_failed();
        answer(respond, std::move(response));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lepton server: internal error: %s\n", e.what());
        respond(net::error_response(Status::internal(std::string("internal error: ") + e.what())));
      }
    });
  }
  void on_loop_routed(net::Responder respond, LoopCall fn) override {
    on_loop(std::move(respond), [this, fn = std::move(fn)](ControlPlane& cp) {
      net::HttpResponse response = fn(cp);
      if (router_) update_routes();
      return response;
    });
  }
  void on_loop_async(net::Responder respond,
                     std::function<void(ControlPlane&, net::Responder)> fn) override {
    asio::post(loop_, [this, respond = std::move(respond), fn = std::move(fn)] {
      try {
        fn(*cp_, respond);
        flush_soon();
      } catch (const std::exception& e) {
        // Only the first answer counts: one given before the exception stands.
        std::fprintf(stderr, "lepton server: internal error: %s\n", e.what());
        respond(net::error_response(Status::internal(std::string("internal error: ") + e.what())));
      }
    });
  }
  void off_loop(std::function<void()> fn) override { asio::post(readers_, std::move(fn)); }

  // Fail-stop: once a commit has failed with memory ahead of the store, no answer may go out
  // from that memory (a client would be told of a change a restart forgets). The process ends at
  // once, as after kill -9, which lepton is built to survive: a restart rebuilds everything from
  // the store, and tasks keep running meanwhile.
  void stop_if_store_failed() {
    const Status& failure = cp_->store_failure();
    if (failure.is_ok()) return;
    std::fprintf(stderr, "lepton server: stopping: %s\n", failure.message().c_str());
    std::fflush(stderr);
    std::_Exit(kStoreFailedExitCode);
  }

  // Dispatches on the route table (api_routes.h): the permission, then the route, or 405 for a
  // path known to other methods, or a console file, or 404.
  void handle(net::HttpRequest req, net::Responder respond) {
    RouteMatch match = match_route(req.method, req.segments);
    if (!permitted(match.permission, req)) return respond(unauthorized());
    if (match.route) {
      ApiCall call{.req = std::move(req),
                   .params = std::move(match.params),
                   .respond = std::move(respond),
                   .host = *this};
      match.route->handle(call);
      return;
    }
    if (!match.allowed.empty()) {
      net::HttpResponse r = net::error_response(
          Status::invalid_argument("method: " + req.method + " is not allowed on " + req.path));
      r.status = 405;
      std::string& allow = r.headers["Allow"];
      for (std::string_view m : match.allowed) {
        if (!allow.empty()) allow += ", ";
        allow += m;
      }
      return respond(std::move(r));
    }
    // The web console's files need no token: the page asks for one and sends it with its API
    // calls. They are no routes: any other method is 404, as for any path nothing serves.
    const std::vector<std::string>& parts = req.segments;
    if (req.method == "GET" && parts.size() <= 1) {
      if (const ConsoleAsset* asset = find_console_asset(parts.empty() ? "/" : "/" + parts[0])) {
        return respond({.status = 200,
                        .content_type = std::string(asset->content_type),
                        .body = std::string(asset->body),
                        .headers = {{"Cache-Control", "no-cache"},
                                    {"X-Content-Type-Options", "nosniff"},
                                    {"Content-Security-Policy",
                                     "default-src 'self'; frame-ancestors 'none'"}}});
      }
    }
    respond(net::error_response(Status::not_found("path " + req.path + ": no such endpoint")));
  }

  // Every permission but public needs the API token today (users, agents and scrapers will get
  // credentials of their own).
  bool permitted(Permission permission, const net::HttpRequest& req) const {
    switch (permission) {
      case Permission::kPublic:
        return true;
      case Permission::kApi:
      case Permission::kAgent:
      case Permission::kMetrics:
        return authorized(req);
    }
    return false;
  }
  bool authorized(const net::HttpRequest& req) const {
    return net::token_equals(req.header("authorization"), "Bearer " + token_);
  }
  net::HttpResponse unauthorized() const {
    return net::error_response(
        Status(StatusCode::kPermissionDenied,
               "authorization: expected 'Bearer TOKEN' with the token from " + token_path()));
  }

  DataDirLock lock_;  // first member: released last
  ServerOptions options_;
  std::unique_ptr<ControlPlane> cp_;
  std::string token_;
  // Before loop_: answers still queued on the loop at the end hold the API's sessions, which must
  // go before the API server's I/O context does.
  std::unique_ptr<net::HttpServer> http_;
  // Answers waiting for the group commit of what they report (loop thread); after http_ for the
  // same reason as the loop.
  std::vector<std::pair<net::Responder, net::HttpResponse>> held_;
  bool flush_posted_ = false;  // loop thread
  asio::io_context loop_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  asio::steady_timer timer_;
  std::thread loop_thread_;
  asio::thread_pool readers_{2};  // reads of task output, off the loop
  std::shared_ptr<gateway::Router> router_;
  std::unique_ptr<gateway::Gateway> gateway_;
  std::string gateway_url_;
  gateway::RouteSpec routes_;  // the routes last given to the router
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::string this_binary() {
  std::error_code ec;
  std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  // Rebuilt while running: the link names the old file as deleted; the new one is at the path.
  constexpr std::string_view kDeleted = " (deleted)";
  if (self.size() > kDeleted.size() && self.ends_with(kDeleted)) {
    self.resize(self.size() - kDeleted.size());
  }
  return self;
}

std::string bootstrap_script(const std::string& server_url, const std::string& token,
                             const std::string& agent) {
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  // Emulated machines (cloud/sim_provider.h) declare their GPUs, CPUs and memory in LEPTON_SIM_*;
  // a real machine's agent discovers its own.
  return "# lepton: join this machine to " + server_url +
         " as a node\n"
         "export LEPTON_TOKEN=" +
         quote(token) +
         "\n"
         "agent=" +
         quote(agent.empty() ? "lepton" : agent) +
         "\n"
         "[ -x \"$agent\" ] || agent=lepton\n"
         "exec \"$agent\" agent --server " +
         quote(server_url) +
         " --name \"${LEPTON_INSTANCE_ID:-$(hostname)}\""
         " ${LEPTON_SIM_GPUS:+--gpus \"$LEPTON_SIM_GPUS\"}"
         " ${LEPTON_SIM_CPUS:+--cpus \"$LEPTON_SIM_CPUS\"}"
         " ${LEPTON_SIM_MEMORY_GIB:+--memory \"$LEPTON_SIM_MEMORY_GIB\"}"
         " --work-dir \"${LEPTON_INSTANCE_DIR:-${HOME:-/root}/.lepton}/agent\"\n";
}

Result<std::string> load_or_create_token(const std::string& data_dir) {
  const std::string path = data_dir + "/token";
  std::ifstream in(path);
  if (in) {
    std::string token;
    std::getline(in, token);
    if (token.size() >= 32) return token;
    return Status::invalid_argument(path + ": expected a token of at least 32 characters");
  }
  const std::string token = random_hex(32);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << token << "\n";
    if (!out) return Status::internal(tmp + ": cannot write the API token");
  }
  ::chmod(tmp.c_str(), 0600);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::internal(path + ": " + ec.message());
  return token;
}

namespace {

Result<int> lock_data_dir(const std::string& data_dir) {
  const std::string path = data_dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::invalid_argument("data dir " + data_dir + ": cannot open " + path + ": " +
                                    std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string pid(holder, static_cast<size_t>(std::max<ssize_t>(0, n)));
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return Status(StatusCode::kConflict,
                    "data dir " + data_dir + ": in use by another lepton server" +
                        (pid.empty() ? "" : " (pid " + pid + ")") +
                        "; stop it first, or give this one another --data-dir");
    }
    return Status::internal("data dir " + data_dir + ": cannot lock " + path + ": " +
                            std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // Only informative (the lock is the flock): a full disk must not stop a start.
  }
  return fd;
}

Status check_store_identity(const std::string& data_dir, const std::string& store_id) {
  const std::string path = data_dir + "/store-id";
  std::ifstream in(path);
  std::string expected;
  if (in && std::getline(in, expected)) {
    if (expected == store_id) return Status::ok();
    return Status(StatusCode::kConflict,
                  "data dir " + data_dir + ": lepton.db is not the store this data dir was used " +
                      "with (store " + store_id + ", expected " + expected + " from " + path +
                      "): it was replaced, emptied or deleted. Restore it from "
                      "a backup; or, to start anew, move the whole data dir aside (its logs "
                      "belong to the old store's jobs, whose ids a new store would reuse)");
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << store_id << "\n";
    if (!out) return Status(StatusCode::kUnavailable, tmp + ": cannot write the store id");
  }
  ::chmod(tmp.c_str(), 0600);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status(StatusCode::kUnavailable, path + ": " + ec.message());
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Server>> Server::start(ServerOptions options) {
  std::error_code ec;
  fs::create_directories(options.data_dir + "/logs", ec);
  if (ec) {
    return Status::invalid_argument("data dir " + options.data_dir +
                                    ": cannot create: " + ec.message());
  }
  // The store, the token and the jobs' logs are for this user alone.
  for (const std::string& dir : {options.data_dir, options.data_dir + "/logs"}) {
    if (::chmod(dir.c_str(), 0700) != 0) {
      return Status::invalid_argument("data dir " + dir +
                                      ": cannot make it private: " + std::strerror(errno));
    }
  }
  if (!sched::make_policy(options.control.policy, {}).is_ok()) {
    return sched::make_policy(options.control.policy, {}).status();
  }
  // Connections are capped per port; a higher descriptor limit leaves the tasks' and the
  // store's files room beside them.
  net::raise_fd_limit();
  // One server per data dir: two would both run every pending job.
  auto lock = lock_data_dir(options.data_dir);
  if (!lock.is_ok()) return lock.status();
  DataDirLock held(*lock);
  auto token = load_or_create_token(options.data_dir);
  if (!token.is_ok()) return token.status();
  auto store = store::open_sqlite_store(options.data_dir + "/lepton.db");
  if (!store.is_ok()) return store.status();
  LEPTON_RETURN_IF_ERROR(check_store_identity(options.data_dir, (*store)->store_id()));
  options.control.data_dir = options.data_dir;
  auto cp = ControlPlane::open(std::move(*store), options.control, now_ms());
  if (!cp.is_ok()) return cp.status();
  (*cp)->group_commits(true);  // the server holds its answers until they are stored
  auto server =
      std::make_unique<ServerImpl>(options, std::move(*cp), std::move(*token), std::move(held));
  LEPTON_RETURN_IF_ERROR(server->start_serving());
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace lepton::server
