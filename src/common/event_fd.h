// An eventfd used as a wake-up between threads: one side signals, the
// other polls it and drains it before looking at what it guards.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace mpxdp {

// A non-blocking, close-on-exec eventfd (-1 and errno set on failure).
inline int makeEventFd() noexcept { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

inline void signalEventFd(int eventFd) noexcept {
  const std::uint64_t one = 1;
  // Non-blocking: it fails only when 2^64 - 2 signals wait unread, and the waiter then wakes anyway.
  [[maybe_unused]] const ssize_t put = ::write(eventFd, &one, sizeof(one));
}

inline void drainEventFd(int eventFd) noexcept {
  std::uint64_t count = 0;
  [[maybe_unused]] const ssize_t got = ::read(eventFd, &count, sizeof(count));
}

}  // namespace mpxdp
