// What the gateway's workers run on: sockets and timers bound to the worker's io_context executor
// type, and the steady clock they measure deadlines with.
//
// The io_context's own executor type rather than the type-erased any_io_executor: every
// asynchronous operation copies its executor, and the erased one costs an allocation-free but
// virtual copy and destroy each time (about 3% of the gateway's CPU under load). Plain sockets,
// not beast::basic_stream: its timeouts arm, cancel and complete an asio timer around every read
// and write; a proxy session keeps one deadline and one lazily armed timer instead.
#pragma once

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>

namespace lepton::gateway {

using Executor = boost::asio::io_context::executor_type;
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using Timer = boost::asio::basic_waitable_timer<
    std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace lepton::gateway
