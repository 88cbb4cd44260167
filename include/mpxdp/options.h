// Tuning of a connection's data path: which scheduler spreads the packets over
// the paths, and how the receiving side puts them back in order. The
// implementations live in the library (src/sched, src/reorder); these are the
// public knobs.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "mpxdp/error.h"
#include "mpxdp/export.h"

namespace mpxdp {

// How the sender chooses the path of each packet (each path is paced at its
// own rate whatever the scheduler):
//  - kEarliestArrival (eaf, the default): the path where the packet would
//    arrive first (queue + transmission + one-way delay), so paths of different
//    delay need little reordering at the receiver.
//  - kRoundRobin (rr): strict round robin over the paths.
//  - kWeightedRoundRobin (wrr): smooth weighted round robin, weights = the
//    paths' pacing rates, so byte shares follow the rate ratios.
enum class SchedulerKind : std::uint8_t { kRoundRobin, kWeightedRoundRobin, kEarliestArrival };

// "eaf", "rr" or "wrr".
MPXDP_API Result<SchedulerKind> parseSchedulerKind(std::string_view name);
MPXDP_API std::string_view toString(SchedulerKind kind) noexcept;

// How the receiver restores the global order:
//  - kWindow: a reorder window with loss detection by timeout and fast loss.
//  - kSort: the paper's baseline (a small buffer sorted on a timer).
//  - kOff: delivers in arrival order at once.
enum class ReorderKind : std::uint8_t { kWindow, kSort, kOff };

// "window", "sort" or "off".
MPXDP_API Result<ReorderKind> parseReorderKind(std::string_view name);
MPXDP_API std::string_view toString(ReorderKind kind) noexcept;

// Paths tracked per reorderer (pathId must be below pathCount <= this). Packets
// with a larger pathId are still reordered, but disable fast loss detection for
// a timeout period since their path cannot be reasoned about.
inline constexpr std::uint32_t kMaxReorderPaths = 64;
// Upper bound of ReorderOptions::fastLossThreshold.
inline constexpr std::uint32_t kMaxFastLossThreshold = 8;

struct ReorderOptions {
  ReorderKind kind = ReorderKind::kWindow;
  // Power of two, 64 .. 2^24. window: reorder window; sort/off: the range of
  // sequence numbers tracked for duplicate/late detection.
  std::uint32_t windowPackets = 16384;
  std::uint32_t sortCapacityPackets = 128;  // sort: buffer slots (the paper's 128)
  std::uint32_t pathCount = 1;              // 1 .. kMaxReorderPaths
  // The sender's first global seq. Unset: the first packet received starts the
  // stream, and a packet below it (reordered at the very start) is discarded as
  // kOutOfWindow. Set it when the sender's start is known.
  std::optional<std::uint64_t> initialSeq;
  // window: declare a hole lost before its timeout when every active path passed
  // it by fastLossThreshold packets and a gap in some path's packet numbers covers it
  // (see window_reorderer.cpp). Turn off when path packet numbers are not per-path counters.
  bool fastLoss = true;
  // window: how many packets above a hole each active path must have delivered
  // (its last arrivals) before fast loss; as TCP's duplicate-ACK threshold,
  // tolerates a path that swaps packets. 1 .. kMaxFastLossThreshold.
  std::uint32_t fastLossThreshold = 3;
  bool adaptiveTimeout = true;
  std::uint64_t fixedTimeoutNs = 5'000'000;  // used when !adaptiveTimeout
  // adaptive: added to the delay spread; it also absorbs a sender's lag on one
  // path (a TX ring kicked late under load), which the delays do not show
  std::uint64_t timeoutMarginNs = 5'000'000;
  std::uint64_t minTimeoutNs = 200'000;      // adaptive clamp
  std::uint64_t maxTimeoutNs = 100'000'000;  // adaptive clamp
  std::uint64_t sortIntervalNs = 100'000;    // sort: timer period
  // window only: no hole is ever declared lost (no timeout, no fast loss, the
  // window never moves past a hole): the sender retransmits and flow control
  // keeps it within the window; a packet beyond the window is discarded as
  // kOutOfWindow. Holes are lost only at flush() (the stream was abandoned).
  bool reliable = false;
};

}  // namespace mpxdp
