#include "ack_tracker.h"

#include <algorithm>

namespace mpxdp::conn {

bool AckTracker::onPacket(std::uint64_t pn, std::uint64_t nowNs, std::uint32_t udpBytes,
                          bool ackEliciting) noexcept {
  if (count_ == 0) {
    ranges_[0] = {pn, pn};
    count_ = 1;
    largestRecvNs_ = nowNs;
  } else if (pn > ranges_[0].largest) {
    if (pn == ranges_[0].largest + 1) {
      ranges_[0].largest = pn;
    } else {
      // A gap: open a new top range, dropping the oldest when full.
      const std::size_t keep = std::min(count_, kMaxRanges - 1);
      std::move_backward(ranges_.begin(), ranges_.begin() + static_cast<std::ptrdiff_t>(keep),
                         ranges_.begin() + static_cast<std::ptrdiff_t>(keep) + 1);
      ranges_[0] = {pn, pn};
      count_ = keep + 1;
    }
    largestRecvNs_ = nowNs;
  } else {
    // Below the top: i = the first range entirely below pn; pn sits in the gap
    // between ranges_[i - 1] (above it) and ranges_[i] (below it, if any).
    std::size_t i = 0;
    for (; i < count_ && pn <= ranges_[i].largest; ++i) {
      if (pn >= ranges_[i].smallest) {
        ++duplicates_;
        return false;
      }
    }
    wire::AckRange& above = ranges_[i - 1];
    const bool joinsAbove = pn + 1 == above.smallest;
    const bool joinsBelow = i < count_ && ranges_[i].largest + 1 == pn;
    const auto at = [this](std::size_t k) { return ranges_.begin() + static_cast<std::ptrdiff_t>(k); };
    if (joinsAbove && joinsBelow) {
      above.smallest = ranges_[i].smallest;
      std::move(at(i + 1), at(count_), at(i));
      --count_;
    } else if (joinsAbove) {
      above.smallest = pn;
    } else if (joinsBelow) {
      ranges_[i].largest = pn;
    } else if (count_ < kMaxRanges || i < count_) {
      if (count_ == kMaxRanges) --count_;  // drop the oldest range to make room
      std::move_backward(at(i), at(count_), at(count_ + 1));
      ranges_[i] = {pn, pn};
      ++count_;
    }
    // else: older than every range kept; received, but too old to report.
  }
  bytes_ += udpBytes;
  if (ackEliciting) {
    if (unacked_ == 0) firstUnackedNs_ = nowNs;
    ++unacked_;
  }
  return true;
}

wire::AckFrame AckTracker::makeAck(std::uint16_t pathId, std::uint64_t nowNs) noexcept {
  wire::AckFrame ack;
  ack.pathId = pathId;
  const std::uint64_t delayUs = nowNs > largestRecvNs_ ? (nowNs - largestRecvNs_) / 1000 : 0;
  ack.ackDelayUs = static_cast<std::uint32_t>(std::min<std::uint64_t>(delayUs, UINT32_MAX));
  ack.largestRecvTsNs = largestRecvNs_;
  ack.bytesReceived = bytes_;
  ack.rangeCount = static_cast<std::uint8_t>(count_);
  std::copy(ranges_.begin(), ranges_.begin() + static_cast<std::ptrdiff_t>(count_), ack.ranges.begin());
  unacked_ = 0;
  return ack;
}

}  // namespace mpxdp::conn
