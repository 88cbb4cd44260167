// The baselines: "sort" (the paper's prototype) and "off".
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "reorderer_kinds.h"
#include "seq_bits.h"
#include "seq_ledger.h"

namespace mpxdp::reorder::detail {
namespace {

constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();

class OffReorderer final : public Reorderer {
 public:
  explicit OffReorderer(const ReorderOptions& options) : ledger_(options.windowPackets, options.initialSeq) {}

  void push(const ArrivingPacket& packet, std::uint64_t /*nowNs*/, DeliverySink& sink) override {
    ++stats_.pushed;
    const bool wasStarted = ledger_.started();
    const std::uint64_t maxBefore = ledger_.maxSeen();
    const auto verdict = ledger_.accept(packet.globalSeq, sink, stats_);
    if (verdict != SeqLedger::Verdict::kAccepted) {
      discardFor(verdict, packet, sink, stats_);
      return;
    }
    if (wasStarted && seqLess(packet.globalSeq, maxBefore)) {
      ++stats_.outOfOrderArrived;
      ++stats_.outOfOrderDelivered;
    }
    ++stats_.delivered;
    sink.deliver(packet, 0);
  }

  void poll(std::uint64_t /*nowNs*/, DeliverySink& /*sink*/) override {}
  void flush(DeliverySink& sink) override { ledger_.flush(sink, stats_); }
  std::uint64_t nextDeadlineNs() const noexcept override { return kNever; }
  ReorderStats stats() const noexcept override { return stats_; }

 private:
  SeqLedger ledger_;
  ReorderStats stats_;
};

class SortReorderer final : public Reorderer {
 public:
  explicit SortReorderer(const ReorderOptions& options)
      : options_(options),
        ledger_(options.windowPackets, options.initialSeq),
        buffer_(options.sortCapacityPackets) {
    stats_.timeoutNs = options.sortIntervalNs;
  }

  void push(const ArrivingPacket& packet, std::uint64_t nowNs, DeliverySink& sink) override {
    ++stats_.pushed;
    lastNowNs_ = nowNs;
    const bool wasStarted = ledger_.started();
    const std::uint64_t maxBefore = ledger_.maxSeen();
    const auto verdict = ledger_.accept(packet.globalSeq, sink, stats_);
    if (verdict != SeqLedger::Verdict::kAccepted) {
      discardFor(verdict, packet, sink, stats_);
      return;
    }
    if (wasStarted && seqLess(packet.globalSeq, maxBefore)) ++stats_.outOfOrderArrived;
    if (count_ == 0)
      deadlineNs_ = nowNs > kNever - options_.sortIntervalNs ? kNever : nowNs + options_.sortIntervalNs;
    buffer_[count_++] = Held{packet, nowNs, 0};
    ++stats_.held;
    if (count_ == buffer_.size()) sortAndRelease(nowNs, sink);
  }

  void poll(std::uint64_t nowNs, DeliverySink& sink) override {
    if (nowNs > lastNowNs_) lastNowNs_ = nowNs;
    if (count_ > 0 && nowNs >= deadlineNs_) sortAndRelease(nowNs, sink);
  }

  void flush(DeliverySink& sink) override {
    sortAndRelease(lastNowNs_, sink);
    ledger_.flush(sink, stats_);
  }

  std::uint64_t nextDeadlineNs() const noexcept override { return count_ > 0 ? deadlineNs_ : kNever; }
  ReorderStats stats() const noexcept override { return stats_; }

 private:
  struct Held {
    ArrivingPacket packet;
    std::uint64_t sinceNs;
    std::int64_t key;  // seq relative to the highest seen, for the sort
  };

  // In-place quicksort over the buffer, as in the prototype.
  static void quicksort(Held* items, std::int64_t low, std::int64_t high) {
    while (low < high) {
      const std::int64_t pivot = items[low + (high - low) / 2].key;
      std::int64_t i = low;
      std::int64_t j = high;
      while (i <= j) {
        while (items[i].key < pivot) ++i;
        while (items[j].key > pivot) --j;
        if (i <= j) {
          std::swap(items[i], items[j]);
          ++i;
          --j;
        }
      }
      // Recurse into the smaller side, loop on the larger: bounded stack.
      if (j - low < high - i) {
        quicksort(items, low, j);
        low = i;
      } else {
        quicksort(items, i, high);
        high = j;
      }
    }
  }

  void sortAndRelease(std::uint64_t nowNs, DeliverySink& sink) {
    if (count_ == 0) return;
    const std::uint64_t reference = ledger_.maxSeen();
    for (std::size_t i = 0; i < count_; ++i) buffer_[i].key = seqDiff(buffer_[i].packet.globalSeq, reference);
    quicksort(buffer_.data(), 0, static_cast<std::int64_t>(count_) - 1);
    for (std::size_t i = 0; i < count_; ++i) {
      const Held& held = buffer_[i];
      const std::uint64_t seq = held.packet.globalSeq;
      if (anyDelivered_ && seqLess(seq, highestDelivered_)) {
        ++stats_.outOfOrderDelivered;
      } else {
        highestDelivered_ = seq;
        anyDelivered_ = true;
      }
      ++stats_.delivered;
      --stats_.held;
      sink.deliver(held.packet, nowNs > held.sinceNs ? nowNs - held.sinceNs : 0);
    }
    count_ = 0;
    deadlineNs_ = kNever;
  }

  const ReorderOptions options_;
  SeqLedger ledger_;
  std::vector<Held> buffer_;
  std::size_t count_ = 0;
  std::uint64_t deadlineNs_ = kNever;
  bool anyDelivered_ = false;
  std::uint64_t highestDelivered_ = 0;
  std::uint64_t lastNowNs_ = 0;
  ReorderStats stats_;
};

}  // namespace

std::unique_ptr<Reorderer> newSortReorderer(const ReorderOptions& options) {
  return std::make_unique<SortReorderer>(options);
}

std::unique_ptr<Reorderer> newOffReorderer(const ReorderOptions& options) {
  return std::make_unique<OffReorderer>(options);
}

}  // namespace mpxdp::reorder::detail
