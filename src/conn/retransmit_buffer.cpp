#include "retransmit_buffer.h"

#include <algorithm>
#include <cstring>

namespace mpxdp::conn {

RetransmitBuffer::RetransmitBuffer(std::uint32_t capacityPow2, std::uint32_t maxPayload)
    : slots_(capacityPow2),
      arena_(std::size_t{capacityPow2} * maxPayload),
      queue_(capacityPow2),
      mask_(capacityPow2 - 1),
      maxPayload_(maxPayload) {}

RetransmitBuffer::Slot* RetransmitBuffer::find(std::uint64_t seq) noexcept {
  if (seq < base_ || seq >= end_) return nullptr;
  Slot& slot = slots_[seq & mask_];
  return slot.state == State::kPending && slot.seq == seq ? &slot : nullptr;
}

void RetransmitBuffer::store(std::uint64_t seq, std::span<const std::uint8_t> payload,
                             std::uint16_t copies) noexcept {
  if (seq != end_ || room() == 0) return;
  Slot& slot = slots_[seq & mask_];
  const std::size_t length = std::min<std::size_t>(payload.size(), maxPayload_);
  std::memcpy(arena_.data() + (seq & mask_) * maxPayload_, payload.data(), length);
  slot = Slot{seq, static_cast<std::uint32_t>(length), copies, State::kPending, false};
  ++end_;
  ++unacked_;
}

std::span<const std::uint8_t> RetransmitBuffer::payload(std::uint64_t seq) const noexcept {
  const Slot& slot = slots_[seq & mask_];
  return {arena_.data() + (seq & mask_) * maxPayload_, slot.length};
}

bool RetransmitBuffer::pending(std::uint64_t seq) const noexcept {
  if (seq < base_ || seq >= end_) return false;
  const Slot& slot = slots_[seq & mask_];
  return slot.state == State::kPending && slot.seq == seq;
}

void RetransmitBuffer::onAcked(std::uint64_t seq) noexcept {
  Slot* slot = find(seq);
  if (slot == nullptr) return;
  slot->state = State::kAcked;
  --unacked_;
  // Move the base over acknowledged slots.
  while (base_ < end_ && slots_[base_ & mask_].state == State::kAcked) {
    slots_[base_ & mask_].state = State::kEmpty;
    ++base_;
  }
}

void RetransmitBuffer::onLost(std::uint64_t seq) noexcept {
  Slot* slot = find(seq);
  if (slot == nullptr) return;
  if (slot->copiesInFlight > 0) --slot->copiesInFlight;
  if (slot->copiesInFlight > 0 || slot->queued) return;
  slot->queued = true;
  queue_[(queueHead_ + queueCount_) & mask_] = seq;
  ++queueCount_;
}

void RetransmitBuffer::onResent(std::uint64_t seq) noexcept {
  if (Slot* slot = find(seq)) ++slot->copiesInFlight;
}

bool RetransmitBuffer::peekLost(std::uint64_t& seq) noexcept {
  while (queueCount_ > 0) {
    const std::uint64_t head = queue_[queueHead_ & mask_];
    if (find(head) != nullptr) {
      seq = head;
      return true;
    }
    ++queueHead_;  // acknowledged meanwhile (a copy arrived after all)
    --queueCount_;
  }
  return false;
}

void RetransmitBuffer::popLost() noexcept {
  if (queueCount_ == 0) return;
  if (Slot* slot = find(queue_[queueHead_ & mask_])) slot->queued = false;
  ++queueHead_;
  --queueCount_;
}

}  // namespace mpxdp::conn
