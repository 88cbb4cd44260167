// Packet numbers received on one path, kept as a short list of ranges so an
// ACK frame can be written at any time. Arrivals are almost always in order
// (paths are FIFO), so the common case extends the top range in O(1).
// Oldest ranges fall off when more than kMaxRanges are open: an ACK only
// ever reports the newest ones. Nothing allocates.
#pragma once

#include <array>
#include <cstdint>

#include "wire/frames.h"

namespace mpxdp::conn {

class AckTracker {
 public:
  static constexpr std::size_t kMaxRanges = wire::kMaxAckRanges;

  // Records packetNumber as received at nowNs. Returns false for a duplicate.
  bool onPacket(std::uint64_t packetNumber, std::uint64_t nowNs, std::uint32_t udpBytes,
                bool ackEliciting) noexcept;

  bool empty() const noexcept { return count_ == 0; }
  // Ack-eliciting packets received since the last ACK was written.
  std::uint32_t unacked() const noexcept { return unacked_; }
  // Receive time of the oldest ack-eliciting packet not yet acknowledged.
  std::uint64_t firstUnackedNs() const noexcept { return firstUnackedNs_; }
  std::uint64_t largest() const noexcept { return ranges_[0].largest; }
  std::uint64_t bytesReceived() const noexcept { return bytes_; }
  std::uint64_t duplicates() const noexcept { return duplicates_; }

  // The ACK frame for pathId as of nowNs; resets the unacknowledged count.
  wire::AckFrame makeAck(std::uint16_t pathId, std::uint64_t nowNs) noexcept;

 private:
  std::array<wire::AckRange, kMaxRanges> ranges_{};  // descending, disjoint, non-adjacent
  std::size_t count_ = 0;
  std::uint64_t largestRecvNs_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint32_t unacked_ = 0;
  std::uint64_t firstUnackedNs_ = 0;
};

}  // namespace mpxdp::conn
