// Reads one queue of a multi-queue TUN on a thread of its own into a ring of
// packet buffers that one other thread takes in order (one producer, one
// consumer): the reads and their copies of up to 64 KiB leave the tunnel's
// thread. A full ring stops the reads, so the TUN's queue pushes back as it
// does when the tunnel's thread reads it itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "mpxdp/error.h"
#include "unique_fd.h"

namespace mpxdp::tun {

class QueueReader {
 public:
  // Starts the thread on fd (non-blocking, one packet per read(): a TUN
  // queue or a SOCK_SEQPACKET socket); the caller keeps fd open until the
  // reader is gone. slots: packets in the ring; slotBytes: the largest read.
  static Result<std::unique_ptr<QueueReader>> start(int fd, std::uint32_t slots, std::size_t slotBytes,
                                                    std::string name);
  ~QueueReader();  // stops the thread and waits for it
  QueueReader(const QueueReader&) = delete;
  QueueReader& operator=(const QueueReader&) = delete;

  // Readable when a packet came into an empty ring or the thread failed;
  // poll it, then clearReady() before looking at the ring again.
  int readyFd() const noexcept { return ready_.get(); }
  void clearReady() noexcept;

  // The oldest packet read (valid until pop()), empty when none waits.
  std::span<const std::uint8_t> front() const noexcept;
  void pop() noexcept;

  // Set when a read failed with something other than EAGAIN, or found the
  // end of the file (EPIPE): the thread has stopped.
  std::optional<Error> failure() const;
  std::uint64_t reads() const noexcept { return reads_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::vector<std::uint8_t> bytes;
    std::size_t length = 0;
  };
  QueueReader(int fd, std::uint32_t slots, std::size_t slotBytes, std::string name);
  void run() noexcept;
  // Blocks until fd or wakeFd (either may be -1) is readable, or stop_ is written.
  void waitFor(int fd, int wakeFd) noexcept;

  const int fd_;
  const std::string name_;
  std::vector<Slot> slots_;
  UniqueFd ready_;  // eventfd, to the consumer
  UniqueFd space_;  // eventfd, to the reader: a full ring has room again
  UniqueFd stop_;   // eventfd, to the reader: end
  // Free-running indices; head_ - tail_ packets wait. Sequentially consistent,
  // so that a consumer about to sleep on an empty ring and a producer filling
  // it cannot both miss each other.
  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::atomic<std::uint64_t> reads_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> failed_{false};
  std::optional<Error> failure_;  // written before failed_
  std::thread thread_;
};

}  // namespace mpxdp::tun
