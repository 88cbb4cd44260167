// Reliable mode: every payload sent, by global sequence number, until the
// peer acknowledged one of its copies. Fixed capacity, allocated once (a ring
// of slots and one arena of maxPayload bytes per slot): the sender may run at
// most capacity() payloads ahead of the oldest unacknowledged one. A payload
// all of whose copies were lost is queued to be sent again; the queue holds
// each sequence number at most once.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mpxdp::conn {

class RetransmitBuffer {
 public:
  // capacityPow2: a power of two.
  RetransmitBuffer(std::uint32_t capacityPow2, std::uint32_t maxPayload);

  std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(slots_.size()); }
  // Lowest sequence number not yet acknowledged (= next stored when all are).
  std::uint64_t base() const noexcept { return base_; }
  std::uint64_t end() const noexcept { return end_; }  // one past the newest stored
  // Payloads that may still be stored now.
  std::uint64_t room() const noexcept { return capacity() - (end_ - base_); }
  std::uint64_t unacked() const noexcept { return unacked_; }

  // Keeps the payload of seq (== end(), room() > 0); copies: sent this many times.
  void store(std::uint64_t seq, std::span<const std::uint8_t> payload, std::uint16_t copies) noexcept;
  std::span<const std::uint8_t> payload(std::uint64_t seq) const noexcept;
  bool pending(std::uint64_t seq) const noexcept;  // stored and not acknowledged

  // A copy of seq was acknowledged / lost / sent again. Unknown or already
  // acknowledged sequence numbers are ignored.
  void onAcked(std::uint64_t seq) noexcept;
  void onLost(std::uint64_t seq) noexcept;
  void onResent(std::uint64_t seq) noexcept;

  // The oldest payload waiting to be sent again (skips those acknowledged
  // meanwhile); false when none. popLost takes it off the queue.
  bool peekLost(std::uint64_t& seq) noexcept;
  void popLost() noexcept;
  std::uint64_t lostQueued() const noexcept { return queueCount_; }

 private:
  enum class State : std::uint8_t { kEmpty, kPending, kAcked };
  struct Slot {
    std::uint64_t seq = 0;
    std::uint32_t length = 0;
    std::uint16_t copiesInFlight = 0;
    State state = State::kEmpty;
    bool queued = false;
  };

  Slot* find(std::uint64_t seq) noexcept;

  std::vector<Slot> slots_;
  std::vector<std::uint8_t> arena_;
  std::vector<std::uint64_t> queue_;  // ring of seqs to send again
  std::uint64_t mask_;
  std::uint32_t maxPayload_;
  std::uint64_t base_ = 0;
  std::uint64_t end_ = 0;
  std::uint64_t unacked_ = 0;
  std::uint64_t queueHead_ = 0;
  std::uint64_t queueCount_ = 0;
};

}  // namespace mpxdp::conn
