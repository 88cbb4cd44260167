// Time source of a connection. Everything that reads the time or waits goes
// through a Clock so tests drive a whole connection with simulated time.
#pragma once

#include <time.h>

#include <cerrno>
#include <cstdint>

#include "mpxdp/export.h"

namespace mpxdp {

class MPXDP_API Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time in nanoseconds.
  virtual std::uint64_t nowNs() const noexcept = 0;
  // Returns once nowNs() >= deadlineNs (immediately when it already is).
  virtual void sleepUntil(std::uint64_t deadlineNs) noexcept = 0;
};

// CLOCK_MONOTONIC; the same clock the sender stamps into the header.
class MPXDP_API MonotonicClock final : public Clock {
 public:
  std::uint64_t nowNs() const noexcept override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
  }
  void sleepUntil(std::uint64_t deadlineNs) noexcept override {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(deadlineNs / 1'000'000'000ULL);
    ts.tv_nsec = static_cast<long>(deadlineNs % 1'000'000'000ULL);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
  }
};

// Simulated time for tests: only moves when told to. sleepUntil() jumps the
// time forward instead of sleeping, so a "blocking" wait costs nothing.
class MPXDP_API ManualClock final : public Clock {
 public:
  explicit ManualClock(std::uint64_t startNs = 0) noexcept : nowNs_(startNs) {}

  std::uint64_t nowNs() const noexcept override { return nowNs_; }
  void sleepUntil(std::uint64_t deadlineNs) noexcept override {
    ++sleeps_;
    if (deadlineNs > nowNs_) nowNs_ = deadlineNs;
  }

  void advance(std::uint64_t deltaNs) noexcept { nowNs_ += deltaNs; }
  // Never moves time backwards.
  void set(std::uint64_t nowNs) noexcept {
    if (nowNs > nowNs_) nowNs_ = nowNs;
  }
  std::uint64_t sleeps() const noexcept { return sleeps_; }

 private:
  std::uint64_t nowNs_;
  std::uint64_t sleeps_ = 0;
};

}  // namespace mpxdp
