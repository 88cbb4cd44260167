// Receive on another thread: an RxThread reads one or more links (their
// PacketIo::receive, which for AF_XDP peeks the RX ring, decodes the outer
// headers and checks the UDP checksum) and returns released buffers to
// them (the fill ring), so that the connection's thread only takes ready
// packets from a ring. Each link's two rings have one producer and one
// consumer: ready packets (thread to connection) and released ones
// (connection to thread). Transmit stays with the caller, as before.
#pragma once

#include <poll.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "mpxdp/clock.h"
#include "mpxdp/error.h"
#include "mpxdp/packet_io.h"
#include "unique_fd.h"

namespace mpxdp::transport {

// A ring of received-packet records with one producer and one consumer.
// Free-running indices, sequentially consistent: a side about to sleep on
// what it saw and the other side changing it cannot both miss each other.
class RxPacketRing {
 public:
  explicit RxPacketRing(std::size_t capacity);  // rounded up to a power of two
  std::size_t capacity() const noexcept { return slots_.size(); }
  bool empty() const noexcept { return head_.load() == tail_.load(); }
  // Producer: appends as many as fit; returns how many.
  std::size_t push(std::span<const RxPacket> packets) noexcept;
  // Consumer: takes up to out.size(); returns how many.
  std::size_t pop(std::span<RxPacket> out) noexcept;

 private:
  std::vector<RxPacket> slots_;
  std::size_t mask_;
  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint64_t> tail_{0};
};

class RxThread;

// One link served by an RxThread: what the link's thread and the receive
// thread share.
struct RxChannel {
  PacketIo* link = nullptr;
  RxPacketRing ready;     // receive thread -> connection
  RxPacketRing released;  // connection -> receive thread
  UniqueFd readyFd;       // eventfd: ready went from empty to not, or the link failed
  std::atomic<bool> signalled{false};
  // The start of the thread's last read of the link that found it drained.
  std::atomic<std::uint64_t> drainedAtNs{0};
  std::atomic<bool> failed{false};
  Error failure{0, ""};  // written before failed
  explicit RxChannel(std::size_t capacity) : ready(capacity), released(capacity) {}
};

class RxThread {
 public:
  // Starts the thread; clock is the connection's (drainedAtNs is on it).
  static Result<std::shared_ptr<RxThread>> start(std::shared_ptr<const Clock> clock, std::string name);
  ~RxThread();  // stops and joins the thread
  RxThread(const RxThread&) = delete;
  RxThread& operator=(const RxThread&) = delete;

  void add(RxChannel& channel);
  // After it returns the thread no longer touches the channel or its link.
  void remove(RxChannel& channel) noexcept;
  // After the connection released buffers: wakes the thread if it sleeps.
  void released() noexcept;
  // True while the thread sleeps with every link drained.
  bool parked() const noexcept { return parked_.load(); }
  const Clock& clock() const noexcept { return *clock_; }

 private:
  RxThread(std::shared_ptr<const Clock> clock, std::string name);
  void run() noexcept;
  // One round over the links; true when any of them had work.
  bool serveAll() noexcept;
  bool serve(RxChannel& channel) noexcept;
  void sleep() noexcept;

  std::shared_ptr<const Clock> clock_;
  std::string name_;
  std::mutex mutex_;  // channels_ against a round of reads
  std::vector<RxChannel*> channels_;
  std::vector<RxPacket> batch_;
  std::vector<pollfd> pollFds_;  // only the thread touches it
  bool pollFdsStale_ = true;     // under mutex_
  UniqueFd wake_;                // eventfd: released buffers, a new or removed link, stop
  std::atomic<bool> parked_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The link, received on `thread`: receive() and release() go through the
// channel's rings, pollFds() is the channel's eventfd, everything else is the
// link's own. The thread must be started; several links may share one.
Result<std::unique_ptr<PacketIo>> receiveOnThread(std::unique_ptr<PacketIo> link,
                                                  std::shared_ptr<RxThread> thread);
// The link under a receiveOnThread wrapper; `io` itself otherwise.
const PacketIo& linkOf(const PacketIo& io) noexcept;

}  // namespace mpxdp::transport
