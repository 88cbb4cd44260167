// What this side sent on one path, by packet number, until the peer's ACKs
// resolve it: acknowledged, or lost by per-path evidence (RFC 9002's packet
// and time thresholds). Fixed capacity, allocated once: a packet still
// unresolved when its slot is needed again is counted lost.
#pragma once

#include <cstdint>
#include <vector>

#include "wire/frames.h"

namespace mpxdp::conn {

struct LossCount {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t newestSendTsNs = 0;  // send time of the newest of them
};

struct AckOutcome {
  std::uint64_t newlyAckedPackets = 0;
  std::uint64_t newlyAckedBytes = 0;
  // The ACK's largest packet was acknowledged for the first time: an RTT sample.
  bool largestNewlyAcked = false;
  // Send time of the ACK's largest packet (when still in the log): with the
  // peer's receive time of it, a one-way delay sample.
  bool largestKnown = false;
  std::uint64_t largestSendTsNs = 0;
  // Send time of the newest packet this ACK acknowledged for the first time.
  std::uint64_t newestAckedSendTsNs = 0;
  LossCount lost;
};

// Told what became of tagged packets (reliable mode: the tag names the
// payload, so the send stream keeps it until acknowledged and sends it again
// when lost). Called from inside the log's methods.
class PacketFate {
 public:
  virtual ~PacketFate() = default;
  virtual void acked(std::uint64_t tag) noexcept = 0;
  virtual void lost(std::uint64_t tag) noexcept = 0;
};

class SentPacketLog {
 public:
  // Reordering a path may show before a gap counts as loss (RFC 9002: 3).
  static constexpr std::uint64_t kPacketThreshold = 3;

  explicit SentPacketLog(std::uint32_t capacityPow2 = 16384);

  // Packet numbers go up by one per packet. A non-ack-eliciting packet (a
  // lone ACK) is never waited for. Returns packets evicted unresolved.
  // tag != 0: fate (when set) hears whether it was acknowledged or lost.
  LossCount onSent(std::uint64_t packetNumber, std::uint64_t nowNs, std::uint32_t bytes, bool ackEliciting,
                   std::uint64_t tag = 0) noexcept;
  void setFate(PacketFate* fate) noexcept { fate_ = fate; }
  // Every packet still in flight is lost now (the path stopped carrying
  // data): tagged ones go to the fate; the count is not path evidence.
  LossCount declareAllLost() noexcept;
  // lossDelayNs: time threshold (9/8 of the RTT) after which a packet below
  // the largest acknowledged counts as lost.
  AckOutcome onAck(const wire::AckFrame& ack, std::uint64_t nowNs, std::uint64_t lossDelayNs) noexcept;
  // The time threshold alone (no ACK needed), for the timers.
  LossCount detectLost(std::uint64_t nowNs, std::uint64_t lossDelayNs) noexcept;

  std::uint64_t bytesInFlight() const noexcept { return bytesInFlight_; }
  std::uint64_t packetsInFlight() const noexcept { return packetsInFlight_; }
  bool anyAcked() const noexcept { return anyAcked_; }
  std::uint64_t largestAcked() const noexcept { return largestAcked_; }
  // Earliest send time at which detectLost could declare something lost (UINT64_MAX: none).
  std::uint64_t nextLossTimeNs(std::uint64_t lossDelayNs) const noexcept;
  // Send time of the first packet above packetNumber still waiting for an
  // answer (looking at most kScanLimit packets ahead); 0 when none is found.
  static constexpr std::uint64_t kScanLimit = 64;
  std::uint64_t firstInFlightSentAfter(std::uint64_t packetNumber) const noexcept;

 private:
  enum class Slot : std::uint8_t { kEmpty, kInFlight, kAcked, kLost, kNotTracked };
  struct Entry {
    std::uint64_t packetNumber = 0;
    std::uint64_t sendTsNs = 0;
    std::uint32_t bytes = 0;
    Slot slot = Slot::kEmpty;
    std::uint64_t tag = 0;
  };

  Entry* find(std::uint64_t packetNumber) noexcept;
  void resolveLost(Entry& e, LossCount& lost) noexcept;
  // Moves lowest_ past resolved packets, declaring losable ones lost.
  void advance(std::uint64_t nowNs, std::uint64_t lossDelayNs, LossCount& lost) noexcept;

  std::vector<Entry> entries_;
  std::uint64_t mask_;
  std::uint64_t nextPacketNumber_ = 0;  // one past the highest sent
  std::uint64_t lowest_ = 0;            // every packet below is resolved
  std::uint64_t largestAcked_ = 0;
  bool anyAcked_ = false;
  std::uint64_t bytesInFlight_ = 0;
  std::uint64_t packetsInFlight_ = 0;
  PacketFate* fate_ = nullptr;
};

}  // namespace mpxdp::conn
