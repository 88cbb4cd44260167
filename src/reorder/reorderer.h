// Reorderers turn packets arriving out of order over several paths back
// into global-sequence order. Time is always passed in (nowNs) so tests
// drive it with an injected clock.
//
// Kinds:
//  - window: ring indexed by global seq with occupancy bitmaps; O(1) insert and
//    in-order release (a packet for the head is delivered at once, never stored;
//    a push above the head hole only checks whether that hole may now be lost).
//    Holes are declared lost when (a) no held packet may be held
//    longer than the hole timeout (measured from when the earliest-arrived held
//    packet was read: max(push's nowNs, arrivalNs)), (b) fast loss: every active
//    path (one that delivered within the timeout) delivered its last
//    fastLossThreshold packets above the hole, and an open gap in some path's
//    packet numbers covers it (a path not yet heard from counts as active for the
//    first timeout period of the stream), or (c) the window moves on (below).
//    The timeout is fixed or adaptive: max(spread of the per-path delays widened
//    by 4 mean deviations on each side, the longest hold a hole needed in the last
//    ~2 s) + margin, clamped; it is maxTimeoutNs while a path has fewer than 32
//    delay samples in the stream's first maxTimeoutNs (its delay is unknown).
//    Beyond the window: a packet at most min(64, window/4) above the highest seq
//    seen continues the stream past a stuck head and moves the window at once.
//    Farther ones (far-ahead) move nothing on their own: one forged or replayed
//    frame must not declare 10^12 seqs lost and make the real stream late. One is
//    kept as evidence of a jump (at most 64 per path) if it continues its path's
//    packet numbering (above the path's highest and its earlier evidence, at most
//    a window ahead; any number on a path not heard from yet) and lies within a
//    window of the other evidence; else it is discarded as kImplausible. The jump
//    is followed (the window moved just far enough for all evidence, which is
//    then taken in) when every active path has 2 pieces of evidence and at least
//    2 paths do (1 if only one path was ever heard from): as paths are FIFO, all
//    a path sent before the jump has arrived once its evidence has. Evidence is
//    dropped (kImplausible) when its path then delivers an in-window packet
//    numbered at or above it, after 2 timeouts, or at flush(). So replaying one
//    frame (its number is old) or a handful on one path cannot move the stream;
//    with a single path, 2 well-numbered packets can (nothing tells them apart).
//    The connection should also check that a packet's path id is its link's.
//  - sort: the paper's baseline: a sortCapacityPackets buffer, quicksorted whole on
//    every sortIntervalNs timer tick while anything is held (checked in poll()); each
//    tick releases the in-order prefix, the rest waits until the buffer is full or
//    its oldest packet was held fixedTimeoutNs. Late packets are still delivered,
//    out of order.
//  - off: delivers in arrival order at once.
// sort and off track seen sequences over windowPackets sequences: holes that fall
// out of that range (or are below the highest seq at flush()) are reported lost; a
// packet beyond that range and more than min(64, range/4) above the highest seq
// moves it only when at least 2 paths (1 if only one was heard from) each sent 2
// such packets within one range (else it is kImplausible); a packet arriving for a
// seq already reported lost is discarded as kLate. So every kind keeps the sink
// contract below.
//
// Additions to the first interface: ReorderOptions::initialSeq,
// ReorderOptions::sortCapacityPackets, ReorderOptions::fastLoss, ReorderOptions::fastLossThreshold,
// ReorderStats::outOfWindow, ReorderStats::timeoutNs, ReorderStats::sorts, kMaxReorderPaths,
// ReorderStats::implausible, ReorderStats::jumps, DiscardReason::kImplausible,
// ArrivingPacket::pathPacketNumber (was the 32-bit pathSeq), Reorderer::observePath,
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
  // Per-path packet number: counts every packet on the path, data and control
  // (ACKs, pings, close), so data packets alone show gaps; see observePath().
  std::uint64_t pathPacketNumber = 0;
  std::uint64_t sendTsNs = 0;  // sender clock
  // Receiver clock, when the packet was read: the window reorderer starts its hold
  // clock at max(push's nowNs, arrivalNs).
  std::uint64_t arrivalNs = 0;
  std::uint64_t cookie = 0;  // caller's handle for the buffer
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
  // kImplausible: far ahead of the window and not corroborated (see the header).
  enum class DiscardReason : std::uint8_t { kDuplicate, kLate, kOutOfWindow, kImplausible };
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
  // Discarded as kImplausible: a window or more ahead of the release point and
  // not corroborated as a real jump of the sender (forged, replayed or stale).
  std::uint64_t implausible = 0;
  std::uint64_t jumps = 0;  // corroborated jumps followed
};

// The options are public (include/mpxdp/options.h).
using mpxdp::kMaxFastLossThreshold;
using mpxdp::kMaxReorderPaths;
using mpxdp::ReorderKind;
using mpxdp::ReorderOptions;

class Reorderer {
 public:
  virtual ~Reorderer() = default;
  // nowNs is the time timeouts are judged at. A receiver that reads several links
  // passes a time by which every link was drained (e.g. its previous poll time), so
  // no hole times out while its packet waits unread in another link; the packet's
  // own hold clock starts at arrivalNs if that is later.
  virtual void push(const ArrivingPacket& packet, std::uint64_t nowNs, DeliverySink& sink) = 0;
  // A non-data packet numbered packetNumber arrived on pathId: that number is not
  // a hole in the path's numbering (fast loss looks for holes there). Call it for
  // every packet that consumes a path packet number but is not pushed.
  virtual void observePath(std::uint16_t pathId, std::uint64_t packetNumber, std::uint64_t nowNs) = 0;
  // Releases what timed out by nowNs; call it with a time taken before the last
  // read of every link (a hole must not time out while its packet sits unread).
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
