// Internal: which sequence numbers the sort/off reorderers have accepted, over a
// sliding range, so that duplicates and packets already declared lost are
// recognised and holes are reported lost exactly once.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <optional>

#include "reorderer.h"
#include "seq_bits.h"

namespace mpxdp::reorder::detail {

class SeqLedger {
 public:
  enum class Verdict : std::uint8_t { kAccepted, kDuplicate, kLate, kOutOfWindow, kImplausible };

  SeqLedger(std::uint32_t size, std::optional<std::uint64_t> initialSeq)
      : size_(size), seen_(size), accepted_(size), initialSeq_(initialSeq) {}

  // Records seq as accepted, reporting holes that slide out of range as lost. A
  // seq beyond the range moves it only when corroborated (see reorderer.h).
  Verdict accept(std::uint64_t seq, std::uint16_t pathId, DeliverySink& sink, ReorderStats& stats) {
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
    if (static_cast<std::uint64_t>(ahead) >= size_) {
      // A little above the highest seen continues the stream; farther needs corroboration.
      const auto step = static_cast<std::int64_t>(std::min<std::uint64_t>(64, size_ / 4));
      if (seqDiff(seq, maxSeen_) > step && !jumpCorroborated(seq, pathId)) return Verdict::kImplausible;
      slide(seq - size_ + 1, sink, stats);
    }
    if (pathId < kMaxReorderPaths) heard_ |= std::uint64_t{1} << pathId;
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
  // Far-ahead evidence: kEvidencePerPath packets within one range from each of
  // min(kMinPaths, paths heard from) paths; the one that completes it is accepted,
  // the others were discarded. A packet outside the evidence range starts anew.
  static constexpr std::uint32_t kEvidencePerPath = 2;
  static constexpr std::uint32_t kMinPaths = 2;

  bool jumpCorroborated(std::uint64_t seq, std::uint16_t pathId) noexcept {
    if (pathId >= kMaxReorderPaths) return false;
    if (evidencePaths_ != 0) {
      const std::uint64_t low = seqLess(seq, evidenceLow_) ? seq : evidenceLow_;
      const std::uint64_t high = seqLess(evidenceHigh_, seq) ? seq : evidenceHigh_;
      if (static_cast<std::uint64_t>(seqDiff(high, low)) >= size_) {
        resetEvidence();
      } else {
        evidenceLow_ = low;
        evidenceHigh_ = high;
      }
    }
    if (evidencePaths_ == 0) evidenceLow_ = evidenceHigh_ = seq;
    const std::uint64_t bit = std::uint64_t{1} << pathId;
    evidencePaths_ |= bit;
    if (evidence_[pathId] < kEvidencePerPath) ++evidence_[pathId];
    std::uint32_t full = 0;
    for (std::uint32_t i = 0; i < kMaxReorderPaths; ++i) full += evidence_[i] == kEvidencePerPath ? 1 : 0;
    const auto heard = static_cast<std::uint32_t>(std::popcount(heard_ | evidencePaths_));
    if (full < std::min(heard, kMinPaths)) return false;
    resetEvidence();
    return true;
  }

  void resetEvidence() noexcept {
    evidence_.fill(0);
    evidencePaths_ = 0;
  }

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
  std::uint64_t heard_ = 0;  // paths (bit per id) with an accepted packet
  std::array<std::uint8_t, kMaxReorderPaths> evidence_{};
  std::uint64_t evidencePaths_ = 0;
  std::uint64_t evidenceLow_ = 0;
  std::uint64_t evidenceHigh_ = 0;
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
    case SeqLedger::Verdict::kImplausible:
      ++stats.implausible;
      sink.discard(packet, DeliverySink::DiscardReason::kImplausible);
      break;
    case SeqLedger::Verdict::kAccepted:
      break;
  }
}

}  // namespace mpxdp::reorder::detail
