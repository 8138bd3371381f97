#include "gateway/gateway.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "gateway/io.h"
#include "gateway/worker.h"

namespace lepton::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
// A probe's stream: beast's timed stream is fine here, off the request path.
using Stream = beast::basic_stream<tcp, Executor, beast::unlimited_rate_policy>;

class GatewayImpl : public Gateway {
 public:
  GatewayImpl(const GatewayOptions& options, std::shared_ptr<Router> router)
      : options_(options), router_(std::move(router)) {}
  ~GatewayImpl() override { stop(); }

  Status listen() {
    int threads = options_.io_threads > 0 ? options_.io_threads
                                          : static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    error_code ec;
    asio::ip::address address = asio::ip::make_address(options_.address, ec);
    if (ec) return Status::invalid_argument("--address '" + options_.address + "': not an IP");
    uint16_t port = options_.port;
    std::random_device seed;
    for (int i = 0; i < threads; ++i) {
      auto w = std::make_unique<Worker>(options_, *router_, stats_, seed());
      w->max_open = std::max<size_t>(1, options_.max_connections / static_cast<size_t>(threads));
      tcp::endpoint endpoint(address, port);
      w->acceptor.open(endpoint.protocol(), ec);
      if (!ec) w->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) w->acceptor.set_option(ReusePort(true), ec);
      if (!ec) w->acceptor.bind(endpoint, ec);
      if (!ec) w->acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        return {StatusCode::kUnavailable, "cannot listen on " + options_.address + ":" +
                                              std::to_string(port) + ": " + ec.message()};
      }
      port = w->acceptor.local_endpoint().port();
      workers_.push_back(std::move(w));
    }
    port_ = port;
    for (auto& w : workers_) {
      w->accept();
      Worker* raw = w.get();
      w->thread = std::thread([raw] { run_guarded(raw->ioc); });
    }
    prober_ = std::thread([this] { probe_loop(); });
    return Status::ok();
  }

  uint16_t port() const override { return port_; }

  std::string metrics_text() const override {
    return prometheus_text(*router_->snapshot(), stats_);
  }

  void stop() override {
    {
      std::lock_guard lock(probe_mu_);
      stopping_ = true;
    }
    probe_cv_.notify_all();
    if (prober_.joinable()) prober_.join();
    for (auto& w : workers_) w->ioc.stop();
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    workers_.clear();
  }

 private:
  // Every probe_interval, probes every replica of every deployment with a probe path, one after
  // the other (each bounded by probe_timeout).
  void probe_loop() {
    asio::io_context ioc;
    std::unique_lock lock(probe_mu_);
    while (!stopping_) {
      lock.unlock();
      std::shared_ptr<const RouteTable> table = router_->snapshot();
      for (const auto& [name, d] : table->deployments) {
        for (const auto& r : d.replicas) {
          if (d.probe_path.empty() && r->probe_path.empty()) continue;
          if (probe(ioc, *r, r->probe_path.empty() ? d.probe_path : r->probe_path)) {
            r->probe_failures = 0;
            r->ready = true;
          } else if (r->probe_failures.fetch_add(1) + 1 >= options_.probe_failures ||
                     !r->ready.load()) {
            r->ready = false;
          }
        }
      }
      lock.lock();
      probe_cv_.wait_for(lock, options_.probe_interval, [this] { return stopping_; });
    }
  }

  // GET `path` on the replica: true on a 2xx within probe_timeout.
  bool probe(asio::io_context& ioc, const Replica& r, const std::string& path) const {
    error_code ec;
    asio::ip::address ip = asio::ip::make_address(r.ip, ec);
    if (ec) return false;
    Stream stream(ioc.get_executor());
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, r.address);
    req.set(http::field::user_agent, "lepton-gateway-probe");
    req.keep_alive(false);
    http::response<http::string_body> res;
    beast::flat_buffer buf;
    bool ok = false;
    stream.expires_after(options_.probe_timeout);
    stream.async_connect(tcp::endpoint(ip, r.port), [&](error_code e) {
      if (e) return;
      http::async_write(stream, req, [&](error_code e2, size_t) {
        if (e2) return;
        http::async_read(stream, buf, res, [&](error_code e3, size_t) {
          ok = !e3 && res.result_int() >= 200 && res.result_int() < 300;
        });
      });
    });
    ioc.restart();
    ioc.run();
    stream.socket().close(ec);
    return ok;
  }

  GatewayOptions options_;
  std::shared_ptr<Router> router_;
  GatewayStats stats_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint16_t port_ = 0;
  std::thread prober_;
  std::mutex probe_mu_;
  std::condition_variable probe_cv_;
  bool stopping_ = false;
};

}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::start(const GatewayOptions& options,
                                                std::shared_ptr<Router> router) {
  auto gateway = std::make_unique<GatewayImpl>(options, std::move(router));
  LEPTON_RETURN_IF_ERROR(gateway->listen());
  return std::unique_ptr<Gateway>(std::move(gateway));
}

}  // namespace lepton::gateway
