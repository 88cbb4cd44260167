// A thread that makes the kernel send what AF_XDP sockets hold in their TX
// rings. In copy mode the kick (sendto) runs the driver's whole transmit path
// (on veth: the peer's receive, a bridge, a qdisc) in the calling thread, so
// the thread filling the rings spends most of its time there. With a
// TxKicker the filling thread only publishes descriptors and asks for a
// kick; this thread does the system calls, on another core. Rings keep one
// producer (the filling thread) and one consumer (the kernel); completions
// are still reaped by the filling thread.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "mpxdp/error.h"

namespace mpxdp::xsk {
class XskSocket;
}

namespace mpxdp::transport {

class TxKicker {
 public:
  static constexpr std::size_t kMaxSockets = 64;

  // Starts the thread (EAGAIN when it cannot).
  static Result<std::shared_ptr<TxKicker>> start();
  ~TxKicker();  // stops and joins the thread
  TxKicker(const TxKicker&) = delete;
  TxKicker& operator=(const TxKicker&) = delete;

  // A socket to kick on request (its TX ring mapped); EBUSY beyond kMaxSockets.
  Result<std::size_t> add(xsk::XskSocket& socket);
  // After it returns the thread no longer touches the socket.
  void remove(std::size_t slot) noexcept;
  // Asks for the slot's TX ring to be drained; never blocks, no system call
  // while the thread is busy kicking.
  void request(std::size_t slot) noexcept;
  // The last error a kick of the slot met (0: none), cleared by reading it.
  int takeError(std::size_t slot) noexcept;

  std::uint64_t kicks() const noexcept { return kicks_.load(std::memory_order_relaxed); }

 private:
  TxKicker() = default;
  void run() noexcept;
  void drain(std::size_t slot) noexcept;

  std::mutex mutex_;  // sockets_: add/remove against a round of kicks
  std::array<xsk::XskSocket*, kMaxSockets> sockets_{};
  std::array<std::atomic<bool>, kMaxSockets> pending_{};
  std::array<std::atomic<int>, kMaxSockets> errors_{};
  std::atomic<std::uint32_t> generation_{0};  // bumped by every request: the thread waits on it
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> kicks_{0};
  std::thread thread_;
};

}  // namespace mpxdp::transport
