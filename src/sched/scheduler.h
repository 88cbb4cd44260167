// Schedulers choose the path of each packet; pacers keep each path under
// its configured rate. Time is passed in (nowNs) so tests inject a clock.
//
// Pacing: a token bucket per path with rateBps > 0 (paths with 0 are unpaced),
// plus one on the total when totalRateBps > 0. On a path a packet counts
// packetBytes + the path's overhead (its frame as the shaper sees it); on the
// total it counts packetBytes (application payload, as iperf3's -b). The depth is burstNs at the rate, but a
// full bucket always admits one packet, so the bytes granted by time t never exceed rate * t + max(burst, one
// packet). Shaped links drop rather than push back, so this bound is what keeps the sender from overrunning a
// link. The buckets are exact (integer arithmetic in bit-nanoseconds, no rounding drift).
//
// Kinds:
//  - rr: strict round robin (the paper's behaviour): the next path in turn; when
//    that path (or the total) lacks tokens pick() returns kNoPath without skipping
//    ahead, and nextEligibleNs() tells when that path can go.
//  - wrr: smooth weighted round robin by bytes, weights = the paths' rateBps, so
//    byte shares converge to the rate ratios. When the preferred path lacks tokens,
//    the eligible path with the largest credit goes instead; kNoPath when none is
//    eligible. Either every path has a rate or none has (then equal weights).
//
// Additions to the first interface: kMaxSchedulerPaths, refund().

#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "mpxdp/error.h"
#include "mpxdp/options.h"

namespace mpxdp::sched {

struct PathConfig {
  std::uint64_t rateBps = 0;  // configured link rate in bit/s; 0 = unknown/unlimited
  // Bytes the link adds to each payload (outer headers + mpxdp's); 0 =
  // SchedulerOptions::perPacketOverheadBytes.
  std::uint32_t overheadBytes = 0;
};

using mpxdp::SchedulerKind;  // public (include/mpxdp/options.h)

struct SchedulerOptions {
  SchedulerKind kind = SchedulerKind::kRoundRobin;
  // Cap on the payload bits of all paths together (iperf3's -b); 0 = none.
  std::uint64_t totalRateBps = 0;
  // Bytes a path's bucket counts per packet besides the payload, for paths
  // whose PathConfig::overheadBytes is 0: a path counts the whole frame as the
  // link sees it, the total counts payload only.
  std::uint32_t perPacketOverheadBytes = 0;
  std::uint64_t burstNs = 1'000'000;  // token bucket depth, in time at rate
};

inline constexpr int kNoPath = -1;
inline constexpr std::size_t kMaxSchedulerPaths = 256;

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Path for a packet of packetBytes payload at nowNs, with its tokens
  // taken; kNoPath when pacing allows none right now.
  virtual int pick(std::uint64_t nowNs, std::uint32_t packetBytes) noexcept = 0;
  // Gives back the tokens pick() took for a packet of packetBytes on path
  // that was not sent after all (e.g. the link had no transmit buffer).
  // Only the pacing is undone, not the turn: rr stays on the next path and
  // wrr keeps the credit it charged, so a path that could not take its turn
  // does not get a burst of turns later.
  virtual void refund(std::size_t path, std::uint32_t packetBytes) noexcept = 0;
  // Earliest time at which pick() can return a path.
  virtual std::uint64_t nextEligibleNs(std::uint64_t nowNs, std::uint32_t packetBytes) const noexcept = 0;
  virtual std::size_t pathCount() const noexcept = 0;
};

Result<std::unique_ptr<Scheduler>> makeScheduler(const SchedulerOptions& options,
                                                 std::span<const PathConfig> paths);
using mpxdp::parseSchedulerKind;
using mpxdp::toString;

}  // namespace mpxdp::sched
