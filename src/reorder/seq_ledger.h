// Internal: which sequence numbers the sort/off reorderers have accepted, over a
// sliding range, so that duplicates and packets already declared lost are
// recognised and holes are reported lost exactly once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include "reorderer.h"
#include "seq_bits.h"

namespace mpxdp::reorder::detail {

class SeqLedger {
 public:
  enum class Verdict : std::uint8_t { kAccepted, kDuplicate, kLate, kOutOfWindow };

  SeqLedger(std::uint32_t size, std::optional<std::uint64_t> initialSeq)
      : size_(size), seen_(size), accepted_(size), initialSeq_(initialSeq) {}

  // Records seq as accepted, reporting holes that slide out of range as lost.
  Verdict accept(std::uint64_t seq, DeliverySink& sink, ReorderStats& stats) {
    if (!started_) {
      started_ = true;
      base_ = initialSeq_.value_or(seq);
      maxSeen_ = base_ - 1;
    }
    const std::int64_t ahead = seqDiff(seq, base_);
    if (ahead < 0) {
      const auto behind = static_cast<std::uint64_t>(-ahead);
      if (behind > releasedCount_) return Verdict::kOutOfWindow;
      return accepted_.test(seq) ? Verdict::kDuplicate : Verdict::kLate;
    }
    if (static_cast<std::uint64_t>(ahead) >= size_) slide(seq - size_ + 1, sink, stats);
    if (seen_.test(seq)) return Verdict::kDuplicate;
    seen_.set(seq);
    if (seqLess(maxSeen_, seq)) maxSeen_ = seq;
    return Verdict::kAccepted;
  }

  bool started() const noexcept { return started_; }
  std::uint64_t maxSeen() const noexcept { return maxSeen_; }

  // End of stream: everything below the highest accepted seq is settled.
  void flush(DeliverySink& sink, ReorderStats& stats) {
    if (started_) slide(maxSeen_ + 1, sink, stats);
  }

 private:
  void slide(std::uint64_t target, DeliverySink& sink, ReorderStats& stats) {
    std::uint64_t lostFirst = 0;
    std::uint64_t lostCount = 0;
    auto reportLost = [&] {
      if (lostCount == 0) return;
      sink.lost(lostFirst, lostCount);
      stats.lost += lostCount;
      lostCount = 0;
    };
    // Beyond one range nothing was seen: skip that part as one lost run, walking
    // only the last range so the history is right.
    const auto distance = static_cast<std::uint64_t>(seqDiff(target, base_));
    if (distance > 2 * size_) {
      walk(base_ + size_, lostFirst, lostCount, reportLost);
      const std::uint64_t skip = target - size_ - base_;
      if (lostCount == 0) lostFirst = base_;
      lostCount += skip;
      base_ += skip;
    }
    walk(target, lostFirst, lostCount, reportLost);
    reportLost();
  }

  template <typename Report>
  void walk(std::uint64_t target, std::uint64_t& lostFirst, std::uint64_t& lostCount, Report& reportLost) {
    while (base_ != target) {
      const bool seen = seen_.test(base_);
      seen_.clear(base_);
      accepted_.assign(base_, seen);
      if (seen) {
        reportLost();
      } else {
        if (lostCount == 0) lostFirst = base_;
        ++lostCount;
      }
      ++base_;
      if (releasedCount_ < size_) ++releasedCount_;
    }
  }

  const std::uint64_t size_;
  SeqBitmap seen_;      // [base_, base_ + size_): accepted
  SeqBitmap accepted_;  // the last releasedCount_ seqs below base_: accepted (1) or lost (0)
  std::optional<std::uint64_t> initialSeq_;
  bool started_ = false;
  std::uint64_t base_ = 0;
  std::uint64_t maxSeen_ = 0;
  std::uint64_t releasedCount_ = 0;
};

// Reports a ledger verdict other than kAccepted to the sink and the stats.
inline void discardFor(SeqLedger::Verdict verdict, const ArrivingPacket& packet, DeliverySink& sink,
                       ReorderStats& stats) {
  switch (verdict) {
    case SeqLedger::Verdict::kDuplicate:
      ++stats.duplicates;
      sink.discard(packet, DeliverySink::DiscardReason::kDuplicate);
      break;
    case SeqLedger::Verdict::kLate:
      ++stats.late;
      sink.discard(packet, DeliverySink::DiscardReason::kLate);
      break;
    case SeqLedger::Verdict::kOutOfWindow:
      ++stats.outOfWindow;
      sink.discard(packet, DeliverySink::DiscardReason::kOutOfWindow);
      break;
    case SeqLedger::Verdict::kAccepted:
      break;
  }
}

}  // namespace mpxdp::reorder::detail
