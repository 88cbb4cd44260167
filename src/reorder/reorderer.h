// Reorderers turn packets arriving out of order over several paths back
// into global-sequence order. Time is always passed in (nowNs) so tests
// drive it with an injected clock.
//
// Kinds:
//  - window: ring indexed by global seq with occupancy bitmaps; O(1) insert and
//    in-order release. Holes are declared lost when (a) no held packet may be held
//    longer than the hole timeout (measured from the push of the earliest-arrived
//    held packet), (b) fast loss: every active path (one that delivered within the
//    timeout) delivered its last fastLossThreshold packets above the hole, and an
//    open gap in some path's path seqs covers it (a path not yet heard from counts
//    as active for the first timeout period of the stream), or (c) a packet beyond
//    the window forces the head on.
//    The timeout is fixed or adaptive: max(spread of the per-path delays widened by
//    4 mean deviations on each side, the longest hold a hole needed in the last
//    ~2 s) + margin, clamped; it is maxTimeoutNs while a path has fewer than 32
//    delay samples in the stream's first maxTimeoutNs (its delay is unknown).
//  - sort: the paper's baseline: a sortCapacityPackets buffer, quicksorted whole on
//    every sortIntervalNs timer tick while anything is held (checked in poll()); each
//    tick releases the in-order prefix, the rest waits until the buffer is full or
//    its oldest packet was held fixedTimeoutNs. Late packets are still delivered,
//    out of order.
//  - off: delivers in arrival order at once.
// sort and off track seen sequences over windowPackets sequences: holes that fall
// out of that range (or are below the highest seq at flush()) are reported lost, and
// a packet arriving for a seq already reported lost is discarded as kLate. So every
// kind keeps the sink contract below.
//
// Additions to the first interface: ReorderOptions::initialSeq,
// ReorderOptions::sortCapacityPackets, ReorderOptions::fastLoss, ReorderOptions::fastLossThreshold,
// ReorderStats::outOfWindow, ReorderStats::timeoutNs, ReorderStats::sorts, kMaxReorderPaths,
// kMaxFastLossThreshold.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "mpxdp/error.h"
#include "mpxdp/options.h"

namespace mpxdp::reorder {

struct ArrivingPacket {
  std::uint64_t globalSeq = 0;
  std::uint16_t pathId = 0;
  std::uint32_t pathSeq = 0;
  std::uint64_t sendTsNs = 0;   // sender clock
  std::uint64_t arrivalNs = 0;  // receiver clock
  std::uint64_t cookie = 0;     // caller's handle for the buffer
};

// Receives the reorderer's decisions. Every pushed packet comes back exactly
// once, through deliver() or discard(); every sequence number below the
// release point is either delivered or reported lost exactly once.
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  // In order (for "window"/"sort" best effort); holdNs is the time held.
  virtual void deliver(const ArrivingPacket& packet, std::uint64_t holdNs) = 0;
  // [firstSeq, firstSeq + count) will never be delivered.
  virtual void lost(std::uint64_t firstSeq, std::uint64_t count) = 0;
  enum class DiscardReason : std::uint8_t { kDuplicate, kLate, kOutOfWindow };
  virtual void discard(const ArrivingPacket& packet, DiscardReason reason) = 0;
};

struct ReorderStats {
  std::uint64_t pushed = 0;
  std::uint64_t delivered = 0;
  std::uint64_t outOfOrderArrived = 0;    // arrived with a lower seq than one already seen
  std::uint64_t outOfOrderDelivered = 0;  // delivered below a seq already delivered
  std::uint64_t lost = 0;                 // sequence numbers declared lost
  std::uint64_t lostFast = 0;             // of those, by fast loss detection
  std::uint64_t duplicates = 0;
  std::uint64_t late = 0;  // arrived after being declared lost
  std::uint64_t held = 0;  // currently buffered
  // Discarded as kOutOfWindow: too far below the release point to tell delivered
  // from lost, or below the stream start.
  std::uint64_t outOfWindow = 0;
  std::uint64_t timeoutNs = 0;  // window: current hole timeout; sort: sortIntervalNs; off: 0
  std::uint64_t sorts = 0;      // sort: buffer sorts performed (timer ticks with packets held, or full)
};

// The options are public (include/mpxdp/options.h).
using mpxdp::kMaxFastLossThreshold;
using mpxdp::kMaxReorderPaths;
using mpxdp::ReorderKind;
using mpxdp::ReorderOptions;

class Reorderer {
 public:
  virtual ~Reorderer() = default;
  virtual void push(const ArrivingPacket& packet, std::uint64_t nowNs, DeliverySink& sink) = 0;
  // Releases what timed out by nowNs.
  virtual void poll(std::uint64_t nowNs, DeliverySink& sink) = 0;
  // End of stream: delivers everything held and declares the remaining holes
  // below the highest sequence seen lost.
  virtual void flush(DeliverySink& sink) = 0;
  // When poll() next has something to do; UINT64_MAX when nothing is held.
  virtual std::uint64_t nextDeadlineNs() const noexcept = 0;
  virtual ReorderStats stats() const noexcept = 0;
};

Result<std::unique_ptr<Reorderer>> makeReorderer(const ReorderOptions& options);
using mpxdp::parseReorderKind;
using mpxdp::toString;

}  // namespace mpxdp::reorder
