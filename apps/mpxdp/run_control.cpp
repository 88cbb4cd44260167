#include "run_control.h"

#include <signal.h>
#include <time.h>

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace mpxdp::cli {
namespace {

volatile sig_atomic_t stopSignal_ = 0;

void onStopSignal(int signal) { stopSignal_ = signal; }

}  // namespace

void installStopHandler() {
  struct sigaction action {};
  action.sa_handler = onStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool stopRequested() noexcept { return stopSignal_ != 0; }
int stopSignal() noexcept { return stopSignal_; }

std::uint64_t monotonicNs() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

void sleepUntilOrStopped(std::uint64_t deadlineNs) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(deadlineNs / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long>(deadlineNs % 1'000'000'000ULL);
  while (!stopRequested() && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

Result<int> pinThreadToCpu(std::optional<int> cpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return Error::fromErrno("sched_getaffinity");
  int target = 0;
  if (cpu) {
    target = *cpu;
  } else {
    target = sched_getcpu();
    if (target < 0) return Error::fromErrno("sched_getcpu");
  }
  if (target < 0 || target >= CPU_SETSIZE || !CPU_ISSET(target, &allowed)) {
    return Error(EINVAL, "--cpu " + std::to_string(target) + ": not a CPU this process may run on (" +
                             std::to_string(CPU_COUNT(&allowed)) + " allowed)");
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(target, &one);
  if (sched_setaffinity(0, sizeof(one), &one) != 0) {
    return Error::fromErrno("pinning to CPU " + std::to_string(target));
  }
  return target;
}

void waitOnFds(std::vector<pollfd>& fds, std::uint64_t deadlineNs) noexcept {
  FdWaiter(0).wait(fds, deadlineNs);
}

bool FdWaiter::pollUntil(std::vector<pollfd>& fds, std::uint64_t nowNs, std::uint64_t deadlineNs) noexcept {
  const std::uint64_t waitNs = deadlineNs > nowNs ? std::min(deadlineNs - nowNs, kMaxWaitNs) : 0;
  timespec timeout{static_cast<time_t>(waitNs / 1'000'000'000ULL),
                   static_cast<long>(waitNs % 1'000'000'000ULL)};
  for (auto& fd : fds) fd.revents = 0;
  if (ppoll(fds.data(), fds.size(), &timeout, nullptr) <= 0) return false;
  lastReadyNs_ = monotonicNs();
  return true;
}

void FdWaiter::wait(std::vector<pollfd>& fds, std::uint64_t deadlineNs) noexcept {
  std::uint64_t now = monotonicNs();
  if (deadlineNs <= now) return;
  if (fds.empty()) {
    sleepUntilOrStopped(std::min(deadlineNs, now + kMaxWaitNs));
    return;
  }
  if (holdoffNs_ != 0 && lastReadyNs_ != 0 && now < lastReadyNs_ + holdoffNs_) {
    const std::uint64_t heldUntil = std::min(deadlineNs, lastReadyNs_ + holdoffNs_);
    sleepUntilOrStopped(heldUntil);
    if (heldUntil == deadlineNs || stopRequested()) return;
    // What came during the hold-off is read now; nothing: wait as usual.
    if (pollUntil(fds, 0, 0)) return;
    now = monotonicNs();
    if (deadlineNs <= now) return;
  }
  (void)pollUntil(fds, now, deadlineNs);
}

}  // namespace mpxdp::cli
