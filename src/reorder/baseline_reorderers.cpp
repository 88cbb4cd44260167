// The baselines: "sort" (the paper's prototype) and "off".
#include <algorithm>
#include <cstddef>
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
    const auto verdict = ledger_.accept(packet.globalSeq, packet.pathId, sink, stats_);
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

  // Path numbers do not matter here.
  void observePath(std::uint16_t /*pathId*/, std::uint64_t /*packetNumber*/,
                   std::uint64_t /*nowNs*/) override {}
  void poll(std::uint64_t /*nowNs*/, DeliverySink& /*sink*/) override {}
  void flush(DeliverySink& sink) override { ledger_.flush(sink, stats_); }
  std::uint64_t nextDeadlineNs() const noexcept override { return kNever; }
  ReorderStats stats() const noexcept override { return stats_; }

 private:
  SeqLedger ledger_;
  ReorderStats stats_;
};

// The paper's baseline, as its prototype ran it: packets go into a buffer of
// sortCapacityPackets slots; a timer fires every sortIntervalNs while anything is
// held, and on every tick the WHOLE buffer is quicksorted again (however few
// packets are new since the last tick: that per-tick full sort is the cost the
// paper measures). After the sort, the in-order prefix is released: packets whose
// seq is the next one expected (or below it: they come too late and go out at
// once, out of order). The rest stays held until the buffer is full or its oldest
// packet has been held fixedTimeoutNs; then the whole sorted buffer is released,
// skipping the holes. Holes are reported lost by the ledger when they fall out of
// its range or at flush(). A full buffer is sorted and released at once in push().
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
    const auto verdict = ledger_.accept(packet.globalSeq, packet.pathId, sink, stats_);
    if (verdict != SeqLedger::Verdict::kAccepted) {
      discardFor(verdict, packet, sink, stats_);
      return;
    }
    if (!wasStarted) expected_ = options_.initialSeq.value_or(packet.globalSeq);
    if (wasStarted && seqLess(packet.globalSeq, maxBefore)) ++stats_.outOfOrderArrived;
    if (count_ == 0) tickNs_ = after(nowNs, options_.sortIntervalNs);  // the timer starts
    buffer_[count_++] = Held{packet, nowNs, 0};
    ++stats_.held;
    if (count_ == buffer_.size()) {
      sortBuffer();
      releaseSorted(count_, nowNs, sink);
    }
  }

  // Path numbers do not matter here.
  void observePath(std::uint16_t /*pathId*/, std::uint64_t /*packetNumber*/,
                   std::uint64_t /*nowNs*/) override {}
  void poll(std::uint64_t nowNs, DeliverySink& sink) override {
    if (nowNs > lastNowNs_) lastNowNs_ = nowNs;
    if (count_ == 0 || nowNs < tickNs_) return;
    sortBuffer();
    std::size_t release = 0;
    for (std::uint64_t next = expected_; release < count_; ++release) {
      const std::uint64_t seq = buffer_[release].packet.globalSeq;
      if (seqLess(next, seq)) break;  // a hole: hold the rest
      if (seq == next) ++next;
    }
    std::uint64_t oldestNs = kNever;
    for (std::size_t i = release; i < count_; ++i) oldestNs = std::min(oldestNs, buffer_[i].sinceNs);
    if (oldestNs != kNever && nowNs >= oldestNs && nowNs - oldestNs >= options_.fixedTimeoutNs)
      release = count_;
    releaseSorted(release, nowNs, sink);
    tickNs_ = after(nowNs, options_.sortIntervalNs);
  }

  void flush(DeliverySink& sink) override {
    if (count_ > 0) {
      sortBuffer();
      releaseSorted(count_, lastNowNs_, sink);
    }
    ledger_.flush(sink, stats_);
  }

  std::uint64_t nextDeadlineNs() const noexcept override { return count_ > 0 ? tickNs_ : kNever; }
  ReorderStats stats() const noexcept override { return stats_; }

 private:
  struct Held {
    ArrivingPacket packet;
    std::uint64_t sinceNs = 0;
    std::int64_t key = 0;  // seq relative to the highest seen, for the sort
  };

  static std::uint64_t after(std::uint64_t nowNs, std::uint64_t periodNs) noexcept {
    return nowNs > kNever - periodNs ? kNever : nowNs + periodNs;
  }

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

  void sortBuffer() {
    ++stats_.sorts;
    const std::uint64_t reference = ledger_.maxSeen();
    for (std::size_t i = 0; i < count_; ++i) buffer_[i].key = seqDiff(buffer_[i].packet.globalSeq, reference);
    quicksort(buffer_.data(), 0, static_cast<std::int64_t>(count_) - 1);
  }

  // Delivers the first n packets of the sorted buffer and keeps the rest.
  void releaseSorted(std::size_t n, std::uint64_t nowNs, DeliverySink& sink) {
    for (std::size_t i = 0; i < n; ++i) {
      const Held& held = buffer_[i];
      const std::uint64_t seq = held.packet.globalSeq;
      if (anyDelivered_ && seqLess(seq, highestDelivered_)) {
        ++stats_.outOfOrderDelivered;
      } else {
        highestDelivered_ = seq;
        anyDelivered_ = true;
      }
      if (!seqLess(seq, expected_)) expected_ = seq + 1;
      ++stats_.delivered;
      --stats_.held;
      sink.deliver(held.packet, nowNs > held.sinceNs ? nowNs - held.sinceNs : 0);
    }
    if (n > 0 && n < count_)
      std::move(buffer_.begin() + static_cast<std::ptrdiff_t>(n),
                buffer_.begin() + static_cast<std::ptrdiff_t>(count_), buffer_.begin());
    count_ -= n;
    if (count_ == 0) tickNs_ = kNever;
  }

  const ReorderOptions options_;
  SeqLedger ledger_;
  std::vector<Held> buffer_;
  std::size_t count_ = 0;
  std::uint64_t tickNs_ = kNever;  // next timer tick (while anything is held)
  std::uint64_t expected_ = 0;     // next seq the in-order prefix starts at
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
