// Schedulers choose the path of each packet. They do not pace: each path
// has a send queue drained by its own pacer (the send stream), and the
// scheduler sees every path as a PathView: whether it may carry data now, its
// pacing rate, how long its queue takes to drain and how much later than the
// fastest path it delivers. A path admits a packet while its queue is short
// enough; pick() returns kNoPath when no path does.
//
// Kinds:
//  - eaf (earliest arrival first, the default): the packet goes to the path
//    where it would arrive first, queue drain time + transmission time +
//    extra delay (in the spirit of ECF and BLEST). A path admits a packet
//    while its arrival is within slackNs of the slowest usable path's empty-
//    queue arrival, so a fast path queues up to the delay difference and the
//    packets of both paths arrive in about the order they were sent.
//  - rr: strict round robin over the usable paths: when the path in turn has
//    no room, kNoPath (it waits instead of skipping ahead).
//  - wrr: smooth weighted round robin by bytes, weights = the paths' pacing
//    rates, so byte shares follow the rate ratios; when the preferred path
//    has no room, the one with the largest credit among those with room goes.
// rr and wrr admit a packet while the path's queue drains within slackNs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "mpxdp/error.h"
#include "mpxdp/options.h"

namespace mpxdp::sched {

struct PathView {
  bool usable = false;              // may carry data now (alive, and a backup only when needed)
  std::uint64_t rateBps = 0;        // pacing rate, wire bits per second (> 0 when usable)
  std::uint64_t queuedNs = 0;       // time until the path's queue is drained at rateBps
  std::uint64_t delayNs = 0;        // one-way delay beyond the fastest usable path's
  std::uint32_t overheadBytes = 0;  // added to each payload on the wire
  // In flight up to its rate controller's cap: admits no new packet until
  // answers come (its queue still drains). The send stream hides such a path.
  bool full = false;
};

using mpxdp::SchedulerKind;  // public (include/mpxdp/options.h)

struct SchedulerOptions {
  SchedulerKind kind = SchedulerKind::kEarliestArrival;
  std::uint64_t slackNs = 1'000'000;  // queue allowance beyond what the delays call for
};

inline constexpr int kNoPath = -1;
inline constexpr std::size_t kMaxSchedulerPaths = 256;

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // The path for a payload of packetBytes, or kNoPath when no path admits it.
  // The caller adds the packet to the chosen path's queue (its queuedNs grows).
  virtual int pick(std::span<const PathView> paths, std::uint32_t packetBytes) noexcept = 0;
  // How long until some path admits a packet as the queues drain (0: now;
  // UINT64_MAX: no usable path).
  virtual std::uint64_t waitNs(std::span<const PathView> paths, std::uint32_t packetBytes) const noexcept = 0;
  virtual std::size_t pathCount() const noexcept = 0;
};

Result<std::unique_ptr<Scheduler>> makeScheduler(const SchedulerOptions& options, std::size_t pathCount);
using mpxdp::parseSchedulerKind;
using mpxdp::toString;

// Time a payload of packetBytes takes on the path, headers included.
std::uint64_t transmitNs(const PathView& path, std::uint32_t packetBytes) noexcept;

}  // namespace mpxdp::sched
