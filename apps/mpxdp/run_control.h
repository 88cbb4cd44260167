// Stopping a run on SIGINT/SIGTERM: the handler only sets a flag; the main
// loops check it, finish the stream and print their final report.
#pragma once

#include <poll.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "mpxdp/error.h"

namespace mpxdp::cli {

// Installs the handler (without SA_RESTART, so blocking waits return EINTR).
void installStopHandler();
bool stopRequested() noexcept;
// The signal that asked to stop, 0 when none.
int stopSignal() noexcept;

// CLOCK_MONOTONIC in nanoseconds (the clock the connection uses).
std::uint64_t monotonicNs() noexcept;
// Sleeps until deadlineNs, returning early when a stop signal arrives.
void sleepUntilOrStopped(std::uint64_t deadlineNs) noexcept;

// Bound on every wait of the run loops, so reports and signals are never late by more.
inline constexpr std::uint64_t kMaxWaitNs = 50'000'000;
// Waits until one of fds is readable, deadlineNs (at most kMaxWaitNs from
// now) or a signal; with no fds, sleeps.
void waitOnFds(std::vector<pollfd>& fds, std::uint64_t deadlineNs) noexcept;

// waitOnFds with receive coalescing, like a NIC's rx-usecs: after a wake-up
// for readable descriptors, the next one comes no sooner than holdoffNs
// later. At a high packet rate the loop then reads tens of packets per
// system call instead of a few; a packet after a quiet spell still wakes
// it at once, and none waits longer than holdoffNs. Timers (deadlineNs) are
// never held off. holdoffNs 0: waitOnFds.
class FdWaiter {
 public:
  explicit FdWaiter(std::uint64_t holdoffNs) noexcept : holdoffNs_(holdoffNs) {}
  void wait(std::vector<pollfd>& fds, std::uint64_t deadlineNs) noexcept;

 private:
  // Polls fds until deadlineNs; notes the time when one was ready.
  bool pollUntil(std::vector<pollfd>& fds, std::uint64_t nowNs, std::uint64_t deadlineNs) noexcept;

  std::uint64_t holdoffNs_;
  std::uint64_t lastReadyNs_ = 0;  // the last wake-up for readable fds
};

// Pins the calling thread to cpu (default: the CPU it runs on now) and
// returns that CPU. On veth a thread that migrates enqueues consecutive
// packets of one link on different CPUs' backlogs, which reorders them
// within the link. EINVAL when cpu is not one the thread may run on.
Result<int> pinThreadToCpu(std::optional<int> cpu);

}  // namespace mpxdp::cli
