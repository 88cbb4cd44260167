#include "sent_packets.h"

#include <algorithm>

namespace mpxdp::conn {

SentPacketLog::SentPacketLog(std::uint32_t capacityPow2) : entries_(capacityPow2), mask_(capacityPow2 - 1) {}

SentPacketLog::Entry* SentPacketLog::find(std::uint64_t packetNumber) noexcept {
  Entry& e = entries_[packetNumber & mask_];
  return e.slot != Slot::kEmpty && e.packetNumber == packetNumber ? &e : nullptr;
}

void SentPacketLog::resolveLost(Entry& e, LossCount& lost) noexcept {
  e.slot = Slot::kLost;
  ++lost.packets;
  lost.bytes += e.bytes;
  lost.newestSendTsNs = std::max(lost.newestSendTsNs, e.sendTsNs);
  bytesInFlight_ -= e.bytes;
  --packetsInFlight_;
  if (e.tag != 0 && fate_ != nullptr) fate_->lost(e.tag);
}

LossCount SentPacketLog::onSent(std::uint64_t packetNumber, std::uint64_t nowNs, std::uint32_t bytes,
                                bool ackEliciting, std::uint64_t tag) noexcept {
  LossCount evicted;
  // Numbers may skip (a packet numbered but never sent): the skipped ones are nothing to wait for.
  if (packetNumber < nextPacketNumber_) return evicted;
  nextPacketNumber_ = packetNumber + 1;
  Entry& e = entries_[packetNumber & mask_];
  if (e.slot == Slot::kInFlight) resolveLost(e, evicted);
  e.packetNumber = packetNumber;
  e.sendTsNs = nowNs;
  e.bytes = bytes;
  e.tag = ackEliciting ? tag : 0;
  e.slot = ackEliciting ? Slot::kInFlight : Slot::kNotTracked;
  if (ackEliciting) {
    bytesInFlight_ += bytes;
    ++packetsInFlight_;
  }
  lowest_ = std::max(lowest_, nextPacketNumber_ > entries_.size() ? nextPacketNumber_ - entries_.size() : 0);
  return evicted;
}

AckOutcome SentPacketLog::onAck(const wire::AckFrame& ack, std::uint64_t nowNs,
                                std::uint64_t lossDelayNs) noexcept {
  AckOutcome out;
  if (ack.rangeCount == 0 || nextPacketNumber_ == 0) return out;
  const std::uint64_t largest = ack.largestAcked();
  if (const Entry* e = find(largest)) {
    out.largestKnown = true;
    out.largestSendTsNs = e->sendTsNs;
    out.largestNewlyAcked = e->slot == Slot::kInFlight || e->slot == Slot::kNotTracked;
  }
  for (std::size_t r = 0; r < ack.rangeCount; ++r) {
    const std::uint64_t top = std::min(ack.ranges[r].largest, nextPacketNumber_ - 1);
    const std::uint64_t bottom = std::max(ack.ranges[r].smallest, lowest_);
    for (std::uint64_t pn = top + 1; pn-- > bottom;) {
      Entry* e = find(pn);
      if (e == nullptr) continue;
      if (e->slot == Slot::kNotTracked) {
        e->slot = Slot::kAcked;
        continue;
      }
      if (e->slot != Slot::kInFlight && e->slot != Slot::kLost) continue;
      // A packet declared lost and acknowledged later (spurious loss) counts as delivered again.
      if (e->slot == Slot::kInFlight) {
        bytesInFlight_ -= e->bytes;
        --packetsInFlight_;
      }
      e->slot = Slot::kAcked;
      if (e->tag != 0 && fate_ != nullptr) fate_->acked(e->tag);
      ++out.newlyAckedPackets;
      out.newlyAckedBytes += e->bytes;
      out.newestAckedSendTsNs = std::max(out.newestAckedSendTsNs, e->sendTsNs);
    }
  }
  if (largest < nextPacketNumber_ && (!anyAcked_ || largest > largestAcked_)) {
    largestAcked_ = largest;
    anyAcked_ = true;
  }
  advance(nowNs, lossDelayNs, out.lost);
  return out;
}

LossCount SentPacketLog::declareAllLost() noexcept {
  LossCount lost;
  const std::uint64_t first = nextPacketNumber_ > entries_.size() ? nextPacketNumber_ - entries_.size() : 0;
  for (std::uint64_t pn = std::max(first, lowest_); pn < nextPacketNumber_; ++pn) {
    Entry* e = find(pn);
    if (e != nullptr && e->slot == Slot::kInFlight) resolveLost(*e, lost);
  }
  return lost;
}

LossCount SentPacketLog::detectLost(std::uint64_t nowNs, std::uint64_t lossDelayNs) noexcept {
  LossCount lost;
  advance(nowNs, lossDelayNs, lost);
  return lost;
}

void SentPacketLog::advance(std::uint64_t nowNs, std::uint64_t lossDelayNs, LossCount& lost) noexcept {
  if (!anyAcked_) return;
  // Below the largest acknowledged, in order: packet threshold and time
  // threshold are both monotone in the packet number, so the first packet
  // that is neither resolved nor losable ends the scan.
  while (lowest_ < largestAcked_) {
    Entry* e = find(lowest_);
    if (e != nullptr && e->slot == Slot::kInFlight) {
      const bool byCount = largestAcked_ - lowest_ >= kPacketThreshold;
      const bool byTime = e->sendTsNs + lossDelayNs <= nowNs;
      if (!byCount && !byTime) break;
      resolveLost(*e, lost);
    }
    ++lowest_;
  }
}

std::uint64_t SentPacketLog::nextLossTimeNs(std::uint64_t lossDelayNs) const noexcept {
  if (!anyAcked_ || lowest_ >= largestAcked_) return UINT64_MAX;
  const Entry& e = entries_[lowest_ & mask_];
  if (e.slot != Slot::kInFlight || e.packetNumber != lowest_) return UINT64_MAX;
  return e.sendTsNs + lossDelayNs;
}

std::uint64_t SentPacketLog::firstInFlightSentAfter(std::uint64_t packetNumber) const noexcept {
  const std::uint64_t end = std::min(nextPacketNumber_, packetNumber + 1 + kScanLimit);
  for (std::uint64_t n = std::max(packetNumber + 1, lowest_); n < end; ++n) {
    const Entry& e = entries_[n & mask_];
    if (e.packetNumber == n && e.slot == Slot::kInFlight) return e.sendTsNs;
  }
  return 0;
}

}  // namespace mpxdp::conn
