// The default reorderer: a ring indexed by global sequence number.
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "reorderer_kinds.h"
#include "seq_bits.h"

namespace mpxdp::reorder::detail {
namespace {

constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
// The adaptive timeout is recomputed every this many pushes (and on every poll).
constexpr std::uint64_t kTimeoutUpdateEvery = 16;
constexpr std::int64_t kDelayEwmaDivisor = 16;
// A path's delay estimate counts for the spread until it is this old (or
// maxTimeoutNs, if longer): idle paths keep their last estimate.
constexpr std::uint64_t kDelayStaleNs = 1'000'000'000;

class WindowReorderer final : public Reorderer {
 public:
  explicit WindowReorderer(const ReorderOptions& options)
      : options_(options),
        size_(options.windowPackets),
        mask_(options.windowPackets - 1),
        slots_(options.windowPackets),
        occupied_(options.windowPackets),
        delivered_(options.windowPackets),
        arrivals_(2 * static_cast<std::size_t>(options.windowPackets)),
        arrivalsMask_(2 * static_cast<std::uint64_t>(options.windowPackets) - 1),
        timeoutNs_(options.adaptiveTimeout ? initialAdaptiveTimeout() : options.fixedTimeoutNs) {
    stats_.timeoutNs = timeoutNs_;
  }

  void push(const ArrivingPacket& packet, std::uint64_t nowNs, DeliverySink& sink) override {
    ++stats_.pushed;
    lastNowNs_ = nowNs;
    const std::uint64_t seq = packet.globalSeq;
    if (!started_) {
      started_ = true;
      startNs_ = nowNs;
      next_ = options_.initialSeq.value_or(seq);
      maxSeen_ = next_ - 1;
    }
    notePath(packet, nowNs);
    if (options_.adaptiveTimeout && stats_.pushed % kTimeoutUpdateEvery == 1) updateTimeout(nowNs);

    const std::int64_t ahead = seqDiff(seq, next_);
    if (ahead < 0) {
      const auto behind = static_cast<std::uint64_t>(-ahead);
      if (behind > releasedCount_) {
        ++stats_.outOfWindow;
        sink.discard(packet, DeliverySink::DiscardReason::kOutOfWindow);
      } else if (delivered_.test(seq)) {
        ++stats_.duplicates;
        sink.discard(packet, DeliverySink::DiscardReason::kDuplicate);
      } else {
        ++stats_.late;
        sink.discard(packet, DeliverySink::DiscardReason::kLate);
      }
      return;
    }
    if (static_cast<std::uint64_t>(ahead) >= size_) forceRelease(seq - size_ + 1, nowNs, sink);
    if (occupied_.test(seq)) {
      ++stats_.duplicates;
      sink.discard(packet, DeliverySink::DiscardReason::kDuplicate);
      return;
    }
    slots_[seq & mask_] = Slot{packet, nowNs};
    occupied_.set(seq);
    ++stats_.held;
    arrivals_[arrivalsTail_++ & arrivalsMask_] = seq;
    if (seqLess(maxSeen_, seq)) {
      maxSeen_ = seq;
    } else {
      ++stats_.outOfOrderArrived;
    }
    release(nowNs, sink);
  }

  void poll(std::uint64_t nowNs, DeliverySink& sink) override {
    lastNowNs_ = std::max(lastNowNs_, nowNs);
    if (options_.adaptiveTimeout) updateTimeout(nowNs);
    if (stats_.held > 0) release(nowNs, sink);
  }

  void flush(DeliverySink& sink) override {
    if (!started_) return;
    forceRelease(maxSeen_ + 1, lastNowNs_, sink);
  }

  std::uint64_t nextDeadlineNs() const noexcept override {
    if (stats_.held == 0) return kNever;
    const std::uint64_t since = oldestHeldSinceNs();
    return since > kNever - timeoutNs_ ? kNever : since + timeoutNs_;
  }

  ReorderStats stats() const noexcept override { return stats_; }

 private:
  struct Slot {
    ArrivingPacket packet;
    std::uint64_t heldSinceNs = 0;  // nowNs at push
  };
  struct PathState {
    bool seen = false;
    bool fifo = true;  // path seqs never went backwards: this path can vouch for fast loss
    std::uint32_t highestPathSeq = 0;
    std::uint64_t highestGlobalSeq = 0;  // global seq of the packet with highestPathSeq
    std::uint64_t lastArrivalNs = 0;
    std::int64_t delayNs = 0;  // EWMA of arrivalNs - sendTsNs (offset by the unknown clock difference)
  };

  std::uint64_t clampTimeout(std::uint64_t ns) const noexcept {
    return std::clamp(ns, options_.minTimeoutNs, options_.maxTimeoutNs);
  }

  // Until every path has been heard from, the spread is unknown.
  std::uint64_t initialAdaptiveTimeout() const noexcept {
    return options_.pathCount > 1 ? options_.maxTimeoutNs : clampTimeout(options_.timeoutMarginNs);
  }

  static bool within(std::uint64_t nowNs, std::uint64_t thenNs, std::uint64_t periodNs) noexcept {
    return nowNs < thenNs || nowNs - thenNs <= periodNs;
  }

  void notePath(const ArrivingPacket& packet, std::uint64_t nowNs) noexcept {
    if (packet.pathId >= options_.pathCount) {
      unknownPathSeen_ = true;
      unknownPathAtNs_ = nowNs;
      return;
    }
    PathState& path = paths_[packet.pathId];
    const auto delay = static_cast<std::int64_t>(packet.arrivalNs - packet.sendTsNs);
    if (!path.seen) {
      path.seen = true;
      path.highestPathSeq = packet.pathSeq;
      path.highestGlobalSeq = packet.globalSeq;
      path.delayNs = delay;
    } else {
      const auto pathAhead = static_cast<std::int32_t>(packet.pathSeq - path.highestPathSeq);
      if (pathAhead > 0) {
        path.highestPathSeq = packet.pathSeq;
        if (seqLess(path.highestGlobalSeq, packet.globalSeq)) path.highestGlobalSeq = packet.globalSeq;
      } else if (pathAhead < 0) {
        path.fifo = false;
      }
      path.delayNs += (delay - path.delayNs) / kDelayEwmaDivisor;
    }
    path.lastArrivalNs = nowNs;
  }

  void updateTimeout(std::uint64_t nowNs) noexcept {
    const std::uint64_t staleNs = std::max(kDelayStaleNs, options_.maxTimeoutNs);
    std::int64_t lowest = std::numeric_limits<std::int64_t>::max();
    std::int64_t highest = std::numeric_limits<std::int64_t>::min();
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      const PathState& path = paths_[i];
      if (!path.seen) {
        // Early in the stream a silent path may still be on its way, with an unknown delay.
        if (within(nowNs, startNs_, options_.maxTimeoutNs)) {
          timeoutNs_ = options_.maxTimeoutNs;
          stats_.timeoutNs = timeoutNs_;
          return;
        }
        continue;
      }
      if (!within(nowNs, path.lastArrivalNs, staleNs)) continue;
      lowest = std::min(lowest, path.delayNs);
      highest = std::max(highest, path.delayNs);
    }
    const std::uint64_t spread = highest > lowest ? static_cast<std::uint64_t>(highest - lowest) : 0;
    timeoutNs_ = clampTimeout(spread + options_.timeoutMarginNs);
    stats_.timeoutNs = timeoutNs_;
  }

  // How many sequence numbers from next_ on every active path has passed; 0 when
  // fast loss cannot be decided.
  std::uint64_t fastLossSpan(std::uint64_t nowNs) const noexcept {
    if (!options_.fastLoss) return 0;
    if (unknownPathSeen_ && within(nowNs, unknownPathAtNs_, timeoutNs_)) return 0;
    std::uint64_t span = kNever;
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      const PathState& path = paths_[i];
      if (!path.seen) {
        // Not heard from yet: it may still carry the hole early in the stream.
        if (within(nowNs, startNs_, timeoutNs_)) return 0;
        continue;
      }
      if (!within(nowNs, path.lastArrivalNs, timeoutNs_)) continue;
      if (!path.fifo) return 0;
      const std::int64_t passed = seqDiff(path.highestGlobalSeq, next_);
      if (passed <= 0) return 0;
      span = std::min(span, static_cast<std::uint64_t>(passed));
    }
    return span == kNever ? 0 : span;
  }

  void deliverHead(std::uint64_t nowNs, DeliverySink& sink) {
    const Slot& slot = slots_[next_ & mask_];
    occupied_.clear(next_);
    delivered_.set(next_);
    --stats_.held;
    ++stats_.delivered;
    sink.deliver(slot.packet, nowNs > slot.heldSinceNs ? nowNs - slot.heldSinceNs : 0);
    ++next_;
    if (releasedCount_ < size_) ++releasedCount_;
  }

  void declareLost(std::uint64_t count, bool fast, DeliverySink& sink) {
    sink.lost(next_, count);
    stats_.lost += count;
    if (fast) stats_.lostFast += count;
    // Only the last size_ of them stay in the history.
    const std::uint64_t remembered = std::min<std::uint64_t>(count, size_);
    for (std::uint64_t seq = next_ + count - remembered; seq != next_ + count; ++seq) delivered_.clear(seq);
    next_ += count;
    releasedCount_ = std::min<std::uint64_t>(size_, releasedCount_ + count);
  }

  void dropReleasedArrivals() noexcept {
    while (arrivalsHead_ != arrivalsTail_ && seqLess(arrivals_[arrivalsHead_ & arrivalsMask_], next_)) {
      ++arrivalsHead_;
    }
  }

  // release() keeps the front of arrivals_ on a held packet.
  std::uint64_t oldestHeldSinceNs() const noexcept {
    return slots_[arrivals_[arrivalsHead_ & arrivalsMask_] & mask_].heldSinceNs;
  }

  // Delivers in-order runs and declares the head hole lost when it timed out or
  // every active path passed it.
  void release(std::uint64_t nowNs, DeliverySink& sink) {
    while (stats_.held > 0) {
      const std::uint64_t run = occupied_.find(next_, size_, false);
      for (std::uint64_t i = 0; i < run; ++i) deliverHead(nowNs, sink);
      if (stats_.held == 0) break;
      const std::uint64_t gap = occupied_.find(next_, size_, true);
      dropReleasedArrivals();
      const std::uint64_t heldSince = oldestHeldSinceNs();
      if (nowNs >= heldSince && nowNs - heldSince >= timeoutNs_) {
        declareLost(gap, false, sink);
        continue;
      }
      const std::uint64_t passed = fastLossSpan(nowNs);
      if (passed == 0) break;
      declareLost(std::min(gap, passed), true, sink);
    }
    if (stats_.held == 0) {
      arrivalsHead_ = arrivalsTail_;
    } else {
      dropReleasedArrivals();
    }
  }

  // Releases everything below target: held packets delivered, holes lost.
  void forceRelease(std::uint64_t target, std::uint64_t nowNs, DeliverySink& sink) {
    while (seqLess(next_, target)) {
      const auto distance = static_cast<std::uint64_t>(seqDiff(target, next_));
      if (stats_.held == 0) {
        declareLost(distance, false, sink);
        break;
      }
      const std::uint64_t limit = std::min<std::uint64_t>(distance, size_);
      const std::uint64_t run = occupied_.find(next_, limit, false);
      for (std::uint64_t i = 0; i < run; ++i) deliverHead(nowNs, sink);
      if (run == limit) continue;
      const std::uint64_t gap = occupied_.find(next_, limit - run, true);
      declareLost(gap, false, sink);
    }
    if (stats_.held == 0) arrivalsHead_ = arrivalsTail_;
    release(nowNs, sink);
  }

  const ReorderOptions options_;
  const std::uint64_t size_;
  const std::uint64_t mask_;
  std::vector<Slot> slots_;
  SeqBitmap occupied_;
  SeqBitmap delivered_;  // for the last releasedCount_ seqs below next_: delivered (1) or lost (0)
  // Held packets in push order (with already released ones skipped lazily): the
  // front is the one held longest. At most 2 windows of entries are live.
  std::vector<std::uint64_t> arrivals_;  // seqs
  const std::uint64_t arrivalsMask_;
  std::uint64_t arrivalsHead_ = 0;
  std::uint64_t arrivalsTail_ = 0;
  std::array<PathState, kMaxReorderPaths> paths_{};
  bool unknownPathSeen_ = false;
  std::uint64_t unknownPathAtNs_ = 0;
  bool started_ = false;
  std::uint64_t startNs_ = 0;
  std::uint64_t next_ = 0;     // release point: lowest seq neither delivered nor declared lost
  std::uint64_t maxSeen_ = 0;  // highest seq accepted
  std::uint64_t releasedCount_ = 0;
  std::uint64_t timeoutNs_;
  std::uint64_t lastNowNs_ = 0;
  ReorderStats stats_;
};

}  // namespace

std::unique_ptr<Reorderer> newWindowReorderer(const ReorderOptions& options) {
  return std::make_unique<WindowReorderer>(options);
}

}  // namespace mpxdp::reorder::detail
