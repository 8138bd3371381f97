// One of the gateway's I/O threads: its io_context, its SO_REUSEPORT acceptor on the gateway's
// port, the client connections it accepted (ProxySession, each on this worker from accept to
// close), its pool of keep-alive connections to replicas, and its copy of the route table.
// Nothing here is touched by another thread except through the Router and the atomic counters.
#pragma once

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>

#include "gateway/gateway.h"
#include "gateway/io.h"
#include "gateway/routing.h"
#include "gateway/upstream_pool.h"

namespace lepton::gateway {

class ProxySession;

// A link in one of a worker's intrusive lists of sessions (Tag tells the lists apart): a session
// is in a list or not, with no allocation, and unlinks itself when it is destroyed.
template <int Tag>
struct ListLink {
  ListLink* prev = this;
  ListLink* next = this;
  int64_t linked_ns = 0;
  bool linked() const { return next != this; }
  void unlink() {
    prev->next = next;
    next->prev = prev;
    prev = next = this;
  }
  void link_before(ListLink& at) {
    prev = at.prev;
    next = &at;
    at.prev->next = this;
    at.prev = this;
  }
};
// Exchanges whose client is not watched yet; connections waiting for a request.
using WatchLink = ListLink<0>;
using IdleLink = ListLink<1>;

// How long an exchange runs before the gateway watches its client for going away. Most requests
// are answered sooner and never pay the watch's read (a system call each); a client that leaves a
// long one is noticed within twice this.
constexpr std::chrono::milliseconds kWatchAfter{20};

struct Worker {
  Worker(const GatewayOptions& o, Router& r, GatewayStats& s, uint32_t seed);

  // Before the io_context: sessions, destroyed with it, unlink themselves from these lists.
  WatchLink unwatched;     // oldest first
  IdleLink idle_sessions;  // waiting for a request, longest first
  size_t open = 0;         // client connections open
  size_t max_open = 1;
  // Declared first so it is destroyed last: everything below holds sockets on it.
  boost::asio::io_context ioc{1};
  Timer watch_timer{ioc.get_executor()};
  bool watch_timer_armed = false;
  Timer accept_timer{ioc.get_executor()};
  boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, Executor> acceptor{ioc.get_executor()};
  const GatewayOptions& options;
  Router& router;
  GatewayStats& stats;
  std::minstd_rand rng;
  // The shortest of the timeouts: how far ahead a session's timer is armed at most.
  int64_t min_timeout_ns;
  UpstreamPool pool;
  std::shared_ptr<const RouteTable> table;
  uint64_t table_version = 0;
  std::thread thread;

  // The current table; refreshed only when the router's version moved.
  const std::shared_ptr<const RouteTable>& routes() {
    uint64_t v = router.version();
    if (v != table_version || !table) {
      table = router.snapshot();
      table_version = v;
    }
    return table;
  }

  void accept();
  void back_off(const boost::system::error_code& ec);
  // Closes the connection that has waited longest for a request; false when none waits.
  bool evict_oldest_idle();
  // Puts an exchange on the list whose clients get watched once they have run kWatchAfter.
  void watch_later(ProxySession& s);
  void on_watch_timer();
  void arm_watch_timer();
};

// Runs the io_context until it is stopped. An exception out of a completion handler would end the
// thread and, uncaught, the process: what threw is dropped (with its connection, when it held the
// last reference) and the loop goes on.
void run_guarded(boost::asio::io_context& ioc);

}  // namespace lepton::gateway
