// Stopping a run on SIGINT/SIGTERM: the handler only sets a flag; the main
// loops check it, finish the stream and print their final report.
#pragma once

#include <cstdint>

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

}  // namespace mpxdp::cli
