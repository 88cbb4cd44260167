// Reorderers turn packets arriving out of order over several paths back
// into global-sequence order. Time is always passed in (nowNs) so tests
// drive it with an injected clock.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "mpxdp/error.h"

namespace mpxdp::reorder {

struct ArrivingPacket {
  std::uint64_t globalSeq = 0;
  std::uint16_t pathId = 0;
  std::uint32_t pathSeq = 0;
  std::uint64_t sendTsNs = 0;  // sender clock
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
};

enum class ReorderKind : std::uint8_t { kWindow, kSort, kOff };

struct ReorderOptions {
  ReorderKind kind = ReorderKind::kWindow;
  std::uint32_t windowPackets = 16384;  // power of two (window); capacity (sort: 128)
  std::uint32_t pathCount = 1;
  bool adaptiveTimeout = true;
  std::uint64_t fixedTimeoutNs = 5'000'000;     // used when !adaptiveTimeout
  std::uint64_t timeoutMarginNs = 1'000'000;    // adaptive: added to the delay spread
  std::uint64_t minTimeoutNs = 200'000;         // adaptive clamp
  std::uint64_t maxTimeoutNs = 100'000'000;     // adaptive clamp
  std::uint64_t sortIntervalNs = 100'000;       // sort: timer period
};

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
Result<ReorderKind> parseReorderKind(std::string_view name);
std::string_view toString(ReorderKind kind) noexcept;

}  // namespace mpxdp::reorder
