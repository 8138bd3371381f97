#include "gateway/worker.h"

#include <algorithm>
#include <boost/asio/error.hpp>
#include <cerrno>
#include <cstdio>
#include <exception>

#include "gateway/proxy_session.h"

namespace lepton::gateway {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace {

// How long accepting waits after running out of descriptors or memory: accepting again at once
// fails again at once, a busy loop.
constexpr std::chrono::milliseconds kAcceptBackOff{50};

bool out_of_resources(const error_code& ec) {
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory || ec == error_code(ENFILE, boost::system::system_category());
}

}  // namespace

Worker::Worker(const GatewayOptions& o, Router& r, GatewayStats& s, uint32_t seed)
    : options(o),
      router(r),
      stats(s),
      rng(seed),
      min_timeout_ns(std::max<int64_t>(
          1'000'000, std::chrono::nanoseconds(
                         std::min({o.connect_timeout, o.first_byte_timeout, o.idle_timeout,
                                   o.header_timeout, o.body_timeout, o.keep_alive_timeout}))
                         .count())),
      pool(o.max_idle_per_upstream) {}

void Worker::watch_later(ProxySession& s) {
  WatchLink& link = s;
  link.linked_ns = now_ns();
  link.link_before(unwatched);
  if (!watch_timer_armed) arm_watch_timer();
}

void Worker::arm_watch_timer() {
  watch_timer_armed = true;
  watch_timer.expires_after(kWatchAfter);
  watch_timer.async_wait([this](error_code ec) {
    watch_timer_armed = false;
    if (!ec) on_watch_timer();
  });
}

// Watches the clients of the exchanges that have waited kWatchAfter or more.
void Worker::on_watch_timer() {
  const int64_t linked_before = now_ns() - std::chrono::nanoseconds(kWatchAfter).count();
  while (unwatched.linked() && unwatched.next->linked_ns <= linked_before) {
    static_cast<ProxySession*>(unwatched.next)->arm_client_watch();  // unlinks it
  }
  if (unwatched.linked()) arm_watch_timer();
}

void Worker::accept() {
  acceptor.async_accept(ioc.get_executor(), [this](error_code ec, Socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) return back_off(ec);
    stats.connections.fetch_add(1, std::memory_order_relaxed);
    // At the cap the connection that has waited longest for a request makes room; when every
    // connection has a request in flight, the new one is closed.
    if (open < max_open || evict_oldest_idle()) {
      std::make_shared<ProxySession>(*this, std::move(socket))->start();
    }
    accept();
  });
}

// Accepting failed (out of descriptors, say): accepting again at once would fail again at once.
// Wait a little, and close an idle connection to free a descriptor.
void Worker::back_off(const error_code& ec) {
  if (out_of_resources(ec)) evict_oldest_idle();
  accept_timer.expires_after(kAcceptBackOff);
  accept_timer.async_wait([this](error_code e) {
    if (!e) accept();
  });
}

bool Worker::evict_oldest_idle() {
  if (!idle_sessions.linked()) return false;
  static_cast<ProxySession*>(idle_sessions.next)->evict();  // unlinks it
  return true;
}

void run_guarded(asio::io_context& ioc) {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lepton: gateway: dropped a connection: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "lepton: gateway: dropped a connection: unknown exception\n");
    }
  }
}

}  // namespace lepton::gateway
