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
// Per-path delay estimate, as TCP's RTO (RFC 6298) but per packet, not per RTT:
// smoothed delay and mean deviation with gain 1/16 (a running mean for the first
// 16 samples, so the deviation does not start at 0 or at the meaningless delay/2:
// the delays carry the unknown clock offset).
constexpr std::int64_t kDelayGainDivisor = 16;
// A path's delay estimate counts once it has this many samples; until every path
// has (or the stream is maxTimeoutNs old) the timeout stays at maxTimeoutNs.
constexpr std::uint32_t kWarmupSamples = 32;
// Mean deviations on either side of a path's smoothed delay (TCP's K = 4).
constexpr std::int64_t kDeviations = 4;
// A path's delay estimate counts for the spread until it is this old (or
// maxTimeoutNs, if longer): idle paths keep their last estimate.
constexpr std::uint64_t kDelayStaleNs = 1'000'000'000;
// The largest hold a packet actually needed decays linearly to 0 over this time.
constexpr std::uint64_t kHoldMemoryNs = 2'000'000'000;
// Open gaps remembered per path; when more are open the oldest is forgotten (its
// hole then waits for the timeout).
constexpr std::uint32_t kGapsPerPath = 16;
// A jump beyond the window is followed once this many far-ahead packets arrived
// on every active path, and on at least kJumpMinPaths paths (fewer only when
// fewer paths were ever heard from).
constexpr std::uint32_t kJumpEvidencePerPath = 2;
constexpr std::uint32_t kJumpMinPaths = 2;
// A packet beyond the window but at most this far (and a quarter window) above the
// highest seq seen continues the stream (past a head that is stuck): it moves the
// window at once. Farther ones need corroboration.
constexpr std::uint64_t kPlausibleStep = 64;
// A hole times out after this many timeouts when nothing arrived since the first.
constexpr std::uint64_t kStalledTimeouts = 4;
// Far-ahead packets kept per path while a jump waits for corroboration.
// (A path that lags the others by more packets than this loses the excess: they
// are discarded and then declared lost.)
constexpr std::uint32_t kJumpHeldPerPath = 64;

class WindowReorderer final : public Reorderer {
  struct PathState;

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
        jumpSlots_(static_cast<std::size_t>(options.pathCount) * kJumpHeldPerPath),
        timeoutNs_(options.adaptiveTimeout ? initialAdaptiveTimeout() : options.fixedTimeoutNs) {
    stats_.timeoutNs = timeoutNs_;
    for (std::uint32_t i = 0; i < options.pathCount; ++i) jump_[i].held = &jumpSlots_[i * kJumpHeldPerPath];
  }

  void push(const ArrivingPacket& packet, std::uint64_t nowNs, DeliverySink& sink) override {
    ++stats_.pushed;
    lastNowNs_ = nowNs;
    lastReadNs_ = std::max(lastReadNs_, std::max(nowNs, packet.arrivalNs));
    const std::uint64_t seq = packet.globalSeq;
    if (!started_) {
      started_ = true;
      startNs_ = nowNs;
      next_ = options_.initialSeq.value_or(seq);
      maxSeen_ = next_ - 1;
    }
    const std::int64_t ahead = seqDiff(seq, next_);
    const bool beyond = ahead >= 0 && static_cast<std::uint64_t>(ahead) >= size_;
    if (beyond && options_.reliable) {
      ++stats_.outOfWindow;
      sink.discard(packet, DeliverySink::DiscardReason::kOutOfWindow);
      return;
    }
    if (beyond && seqDiff(seq, maxSeen_) > plausibleStep()) {
      noteFarAhead(packet, nowNs, sink);
      return;
    }
    PathState* path = notePathDelay(packet, nowNs);
    if (options_.adaptiveTimeout && stats_.pushed % kTimeoutUpdateEvery == 1) updateTimeout(nowNs);
    if (jumpHeld_ > 0 && path != nullptr) checkJumpContradicted(packet, sink);

    if (ahead < 0) {
      const auto behind = static_cast<std::uint64_t>(-ahead);
      if (behind > releasedCount_) {
        ++stats_.outOfWindow;
        sink.discard(packet, DeliverySink::DiscardReason::kOutOfWindow);
      } else if (delivered_.test(seq)) {
        ++stats_.duplicates;
        sink.discard(packet, DeliverySink::DiscardReason::kDuplicate);
      } else {
        // It did cross the wire: it fills its path's gap, and tells how long it needed.
        if (path != nullptr) notePathNumber(*path, packet.pathPacketNumber, &packet.globalSeq);
        noteLateArrival(seq, nowNs);
        ++stats_.late;
        sink.discard(packet, DeliverySink::DiscardReason::kLate);
      }
      return;
    }
    // The stream flows on past a head stuck for a window: move it (by at most
    // plausibleStep() beyond the highest seq seen).
    if (beyond) forceRelease(seq - size_ + 1, nowNs, sink);
    insert(packet, path, nowNs, sink);
  }

  // Stores a packet within the window [next_, next_ + size_) and releases what it allows.
  [[gnu::always_inline]] inline void insert(const ArrivingPacket& packet, PathState* path,
                                            std::uint64_t nowNs, DeliverySink& sink) {
    const std::uint64_t seq = packet.globalSeq;
    if (occupied_.test(seq)) {
      ++stats_.duplicates;
      sink.discard(packet, DeliverySink::DiscardReason::kDuplicate);
      return;
    }
    if (path != nullptr) notePathNumber(*path, packet.pathPacketNumber, &packet.globalSeq);
    // The hold clock starts when the packet was read (arrivalNs), not at nowNs: a
    // caller pushes a batch as of its last full drain of every link, and after a
    // pause (descheduled thread) that moment can lie long before the packet came in.
    const std::uint64_t heldSinceNs = std::max(nowNs, packet.arrivalNs);
    if (seqLess(maxSeen_, seq)) {
      maxSeen_ = seq;
    } else {
      ++stats_.outOfOrderArrived;
    }
    if (seq == next_) {
      // The head goes out at once (held 0 ns) without a trip through the ring;
      // release() then delivers the run it completes.
      if (stats_.held == 0) {
        deliverHead(packet, sink);
        return;
      }
      // It fills the head hole: the oldest held packet waited exactly as long as needed.
      noteHoldNeeded(heldSinceNs - std::min(heldSinceNs, oldestHeldSinceNs()));
      deliverHead(packet, sink);
      release(nowNs, sink);
      return;
    }
    slots_[seq & mask_] = Slot{packet, heldSinceNs};
    occupied_.set(seq);
    ++stats_.held;
    arrivals_[arrivalsTail_++ & arrivalsMask_] = Arrival{seq, heldSinceNs};
    // Above the head hole it releases nothing by itself (release() left no run at
    // the head); only a timeout or fast loss could move the head now.
    if (options_.reliable || !headMayBeLost(nowNs)) return;
    release(nowNs, sink);
  }

  void observePath(std::uint16_t pathId, std::uint64_t packetNumber, std::uint64_t /*nowNs*/) override {
    if (pathId >= options_.pathCount || !started_) return;
    notePathNumber(paths_[pathId], packetNumber, nullptr);
  }

  void poll(std::uint64_t nowNs, DeliverySink& sink) override {
    lastNowNs_ = std::max(lastNowNs_, nowNs);
    if (options_.adaptiveTimeout) updateTimeout(nowNs);
    if (jumpHeld_ > 0 && jumpExpired(nowNs)) dropJumpEvidence(sink);
    if (stats_.held > 0) release(nowNs, sink);
  }

  void flush(DeliverySink& sink) override {
    if (!started_) return;
    if (jumpHeld_ > 0) dropJumpEvidence(sink);
    forceRelease(maxSeen_ + 1, lastNowNs_, sink);
  }

  // Without further arrivals a hole times out only after kStalledTimeouts
  // timeouts (see timedOut()); an arrival wakes the caller anyway.
  std::uint64_t nextDeadlineNs() const noexcept override {
    if (stats_.held == 0 || options_.reliable) return kNever;
    const std::uint64_t since = oldestHeldSinceNs();
    const std::uint64_t wait = timeoutNs_ * kStalledTimeouts;
    return since > kNever - wait ? kNever : since + wait;
  }

  ReorderStats stats() const noexcept override { return stats_; }

 private:
  struct Slot {
    ArrivingPacket packet;
    std::uint64_t heldSinceNs = 0;  // max(nowNs at push, arrivalNs)
  };
  // An entry of arrivals_. It repeats the slot's heldSinceNs so the hold of the
  // oldest packet is one load, not three dependent ones.
  struct Arrival {
    std::uint64_t seq = 0;
    std::uint64_t heldSinceNs = 0;
  };
  // Packet numbers [firstNumber, endNumber) missing on a path: they were sent
  // between the data packets with global seqs low and high (exclusive; high is
  // unknown until the next data packet on the path when a control packet opened
  // the gap), and `open` of them have not arrived yet.
  struct Gap {
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    std::uint64_t firstNumber = 0;
    std::uint64_t endNumber = 0;
    std::uint32_t open = 0;
    bool highKnown = true;
  };
  struct PathState {
    bool seen = false;          // a packet arrived (delay known)
    bool seqSeen = false;       // a packet number was seen (data or control)
    std::uint32_t samples = 0;  // delay samples, saturating at kWarmupSamples
    std::uint64_t highestNumber = 0;
    std::uint64_t highestGlobalSeq = 0;  // global seq of the data packet numbered highest so far
    std::uint64_t lastArrivalNs = 0;
    // arrivalNs - sendTsNs (offset by the unknown clock difference): smoothed, mean deviation.
    std::int64_t delayNs = 0;
    std::int64_t delayDevNs = 0;
    // Open gaps in the packet numbers, oldest first (so also in global seq order, as
    // a sender numbers both in the same order): gapFirst .. gapEnd in a ring.
    std::array<Gap, kGapsPerPath> gaps{};
    std::uint32_t gapFirst = 0;
    std::uint32_t gapEnd = 0;
    // Global seqs of the last fastLossThreshold non-duplicate arrivals (a ring).
    std::array<std::uint64_t, kMaxFastLossThreshold> recent{};
    std::uint32_t recentNext = 0;
    std::uint32_t recentCount = 0;
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

  // Updates the path's delay estimate; nullptr for a path id beyond pathCount.
  PathState* notePathDelay(const ArrivingPacket& packet, std::uint64_t nowNs) noexcept {
    if (packet.pathId >= options_.pathCount) {
      unknownPathSeen_ = true;
      unknownPathAtNs_ = nowNs;
      return nullptr;
    }
    PathState& path = paths_[packet.pathId];
    const auto delay = static_cast<std::int64_t>(packet.arrivalNs - packet.sendTsNs);
    if (!path.seen) {
      path.seen = true;
      path.samples = 1;
      path.delayNs = delay;
      path.delayDevNs = 0;
    } else {
      if (path.samples < kWarmupSamples) ++path.samples;
      const std::int64_t error = delay - path.delayNs;
      const std::int64_t deviation = (error < 0 ? -error : error) - path.delayDevNs;
      if (path.samples >= kDelayGainDivisor) {  // constant divisor: no division instruction
        path.delayNs += error / kDelayGainDivisor;
        path.delayDevNs += deviation / kDelayGainDivisor;
      } else {
        path.delayNs += error / path.samples;
        path.delayDevNs += deviation / path.samples;
      }
    }
    path.lastArrivalNs = nowNs;
    return &path;
  }

  // Per-path packet number accounting of a packet that crossed the wire (not a
  // duplicate): globalSeq is null for a control packet (observePath()), which
  // consumes a number but carries no data.
  [[gnu::always_inline]] inline void notePathNumber(PathState& path, std::uint64_t number,
                                                    const std::uint64_t* globalSeq) noexcept {
    if (globalSeq != nullptr) {
      path.recent[path.recentNext] = *globalSeq;
      if (++path.recentNext == options_.fastLossThreshold) path.recentNext = 0;
      if (path.recentCount < options_.fastLossThreshold) ++path.recentCount;
    }
    if (!path.seqSeen) {
      path.seqSeen = true;
      path.highestNumber = number;
      path.highestGlobalSeq = globalSeq != nullptr ? *globalSeq : next_ - 1;
      return;
    }
    const std::int64_t pathAhead = seqDiff(number, path.highestNumber);
    if (pathAhead > 0 && globalSeq != nullptr && path.gapEnd != path.gapFirst) {
      // A control packet's gap ends below this data packet.
      Gap& newest = path.gaps[(path.gapEnd - 1) % kGapsPerPath];
      if (!newest.highKnown) {
        newest.high = *globalSeq;
        newest.highKnown = true;
      }
    }
    if (pathAhead > 1) {
      // A new gap: the missing ones were sent between the previous highest and this packet.
      if (path.gapEnd - path.gapFirst == kGapsPerPath) {
        ++path.gapFirst;
      } else {
        ++gapsKept_;
      }
      const auto missing = static_cast<std::uint64_t>(pathAhead - 1);
      path.gaps[path.gapEnd++ % kGapsPerPath] =
          Gap{path.highestGlobalSeq,
              globalSeq != nullptr ? *globalSeq : 0,
              path.highestNumber + 1,
              number,
              static_cast<std::uint32_t>(std::min<std::uint64_t>(missing, size_)),
              globalSeq != nullptr};
    } else if (pathAhead < 0) {
      // Reordered within the path: fills a gap, most likely the newest.
      for (std::uint32_t k = path.gapEnd; k != path.gapFirst; --k) {
        Gap& gap = path.gaps[(k - 1) % kGapsPerPath];
        if (!seqLess(number, gap.firstNumber) && seqLess(number, gap.endNumber)) {
          if (gap.open > 0) --gap.open;
          break;
        }
      }
    }
    if (pathAhead > 0) {
      path.highestNumber = number;
      if (globalSeq != nullptr) path.highestGlobalSeq = *globalSeq;
    }
  }

  void noteHoldNeeded(std::uint64_t holdNs) noexcept {
    holdNeededNs_ = std::max(holdNeededNs_, std::min(holdNs, options_.maxTimeoutNs));
  }

  // A packet declared lost arrived: had the timeout been longer it would have been
  // delivered. Only the latest lost run is remembered (O(1)).
  void noteLateArrival(std::uint64_t seq, std::uint64_t nowNs) noexcept {
    if (lastLostCount_ == 0 || seqLess(seq, lastLostFirst_) ||
        static_cast<std::uint64_t>(seqDiff(seq, lastLostFirst_)) >= lastLostCount_) {
      return;
    }
    noteHoldNeeded(nowNs - std::min(nowNs, lastLostHeldSinceNs_));
  }

  // Adaptive timeout = max(delay bound, largest hold needed recently) + margin, clamped.
  //
  // Delay bound: a hole on path s is waited for from the arrival of the earliest
  // later packet, which is the fastest of many on the quick paths (at 75 kpps a
  // few ms of jitter span hundreds of them), so the wait reaches from the low tail
  // of the quickest path to the high tail of the slowest:
  //   max_p(delay_p + 4 dev_p) - min_p(delay_p - 4 dev_p).
  // (TCP's srtt + 4 rttvar on the slow side only would cover just one tail.) For
  // Gaussian noise dev = 0.8 sigma, so each side covers 3.2 sigma (p < 1e-3 for
  // the late packet, and the minimum of ~200 early ones sits near -2.8 sigma);
  // uniform noise +-a gives dev = a/2: 2a per side, twice the true worst case.
  //
  // Hold needed: the per-packet estimate follows the delay within ~16 packets, so
  // it forgets a delay excursion (a stalled CPU on a loaded VM) within a
  // millisecond. The longest time a hole really had to be waited for (measured
  // when it is filled, or when a packet declared lost arrives late) is kept and
  // decays linearly to 0 over kHoldMemoryNs: after one false loss the timeout
  // covers that excursion for the next seconds, like TCP's RTO backoff.
  void updateTimeout(std::uint64_t nowNs) noexcept {
    if (nowNs > holdDecayAtNs_) {
      const std::uint64_t elapsed = std::min(nowNs - holdDecayAtNs_, kHoldMemoryNs);
      holdNeededNs_ -= holdNeededNs_ * elapsed / kHoldMemoryNs;  // holdNeededNs_ <= maxTimeoutNs
      holdDecayAtNs_ = nowNs;
    }
    const std::uint64_t staleNs = std::max(kDelayStaleNs, options_.maxTimeoutNs);
    std::int64_t lowest = std::numeric_limits<std::int64_t>::max();
    std::int64_t highest = std::numeric_limits<std::int64_t>::min();
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      const PathState& path = paths_[i];
      if (path.samples < kWarmupSamples) {
        // Early in the stream a silent or barely heard path has an unknown delay.
        if (within(nowNs, startNs_, options_.maxTimeoutNs)) {
          timeoutNs_ = options_.maxTimeoutNs;
          stats_.timeoutNs = timeoutNs_;
          return;
        }
        if (!path.seen) continue;
      }
      if (!within(nowNs, path.lastArrivalNs, staleNs)) continue;
      lowest = std::min(lowest, path.delayNs - kDeviations * path.delayDevNs);
      highest = std::max(highest, path.delayNs + kDeviations * path.delayDevNs);
    }
    const std::uint64_t spread = highest > lowest ? static_cast<std::uint64_t>(highest - lowest) : 0;
    const std::uint64_t bound = std::max(spread, holdNeededNs_);
    timeoutNs_ = clampTimeout(std::min(bound, options_.maxTimeoutNs) + options_.timeoutMarginNs);
    stats_.timeoutNs = timeoutNs_;
  }

  // Fast loss, the multipath form of TCP's duplicate-ACK threshold. The head hole
  // next_ is declared lost before its timeout only when
  //  (a) every active path delivered its last fastLossThreshold packets (in arrival
  //      order) above next_: a path that merely swapped two packets has delivered
  //      one, so it cannot vouch; and
  //  (b) some path's oldest open gap in its packet numbers has a global range
  //      (gapLow, gapHigh) that contains next_: a packet is missing on the wire
  //      right where the hole is. Without such a gap every packet sent on any path
  //      below its highest has arrived, so the hole is still in flight. Control
  //      packets consume numbers too: observePath() marks them arrived.
  // Gaps are kept per path oldest first; those entirely below next_ or filled are
  // dropped from the front, so the front is the only one that can contain next_
  // (amortised O(1)).
  // Returns how many seqs from next_ may be declared lost (at most what the
  // witness gap still misses), 0 when fast loss cannot decide. `witness` is the
  // gap that vouched.
  std::uint64_t fastLossSpan(std::uint64_t nowNs, Gap*& witness) noexcept {
    if (!options_.fastLoss || gapsKept_ == 0) return 0;
    if (unknownPathSeen_ && within(nowNs, unknownPathAtNs_, timeoutNs_)) return 0;
    // (b) first: without loss there is no open gap, and this is all the work done.
    witness = nullptr;
    for (std::uint32_t i = 0; i < options_.pathCount && witness == nullptr; ++i) {
      Gap* gap = frontGap(paths_[i]);
      if (gap != nullptr && seqLess(gap->low, next_)) witness = gap;
    }
    if (witness == nullptr) return 0;
    std::uint64_t span = kNever;
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      PathState& path = paths_[i];
      if (!path.seen) {
        // Not heard from yet: it may still carry the hole early in the stream.
        if (within(nowNs, startNs_, timeoutNs_)) return 0;
        continue;
      }
      if (!within(nowNs, path.lastArrivalNs, timeoutNs_)) continue;
      if (!seqLess(next_, path.highestGlobalSeq) || path.recentCount < options_.fastLossThreshold) return 0;
      std::uint64_t lowestRecent = path.recent[0];
      for (std::uint32_t k = 1; k < options_.fastLossThreshold; ++k) {
        if (seqLess(path.recent[k], lowestRecent)) lowestRecent = path.recent[k];
      }
      const std::int64_t passed = seqDiff(lowestRecent, next_);
      if (passed <= 0) return 0;
      span = std::min(span, static_cast<std::uint64_t>(passed));
    }
    if (span == kNever) return 0;
    if (witness->highKnown) {
      span = std::min<std::uint64_t>(span, static_cast<std::uint64_t>(seqDiff(witness->high, next_)));
    }
    return std::min<std::uint64_t>(span, witness->open);
  }

  // The oldest gap of the path that is still open and reaches above next_.
  Gap* frontGap(PathState& path) noexcept {
    while (path.gapFirst != path.gapEnd) {
      Gap& gap = path.gaps[path.gapFirst % kGapsPerPath];
      if (gap.open > 0 && (!gap.highKnown || seqLess(next_, gap.high))) return &gap;
      ++path.gapFirst;
      --gapsKept_;
    }
    return nullptr;
  }

  // A timed-out hole at next_ that lies in a path's open gap accounts for (some of) it.
  void settleGaps(std::uint64_t count) noexcept {
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      Gap* gap = frontGap(paths_[i]);
      if (gap == nullptr || !seqLess(gap->low, next_)) continue;
      gap->open -= static_cast<std::uint32_t>(std::min<std::uint64_t>(gap->open, count));
    }
  }

  // Delivers the packet for next_, which was never stored.
  void deliverHead(const ArrivingPacket& packet, DeliverySink& sink) {
    delivered_.set(next_);
    ++stats_.delivered;
    ++next_;
    if (releasedCount_ < size_) ++releasedCount_;
    sink.deliver(packet, 0);
  }

  // Delivers the run of count held packets from next_ on. The bookkeeping is
  // done once for the run: the sink's virtual call makes the compiler reload
  // every member after it.
  void deliverRun(std::uint64_t count, std::uint64_t nowNs, DeliverySink& sink) {
    const Slot* slots = slots_.data();
    const std::uint64_t first = next_;
    const std::uint64_t mask = mask_;
    for (std::uint64_t seq = first; seq != first + count; ++seq) {
      const Slot& slot = slots[seq & mask];
      sink.deliver(slot.packet, nowNs > slot.heldSinceNs ? nowNs - slot.heldSinceNs : 0);
    }
    occupied_.moveRange(delivered_, first, count);
    stats_.held -= count;
    stats_.delivered += count;
    next_ = first + count;
    releasedCount_ = std::min(size_, releasedCount_ + count);
  }

  // heldSinceNs: since when the hole was waited for (for a late arrival's hold sample).
  void declareLost(std::uint64_t count, bool fast, std::uint64_t heldSinceNs, DeliverySink& sink) {
    lastLostFirst_ = next_;
    lastLostCount_ = count;
    lastLostHeldSinceNs_ = heldSinceNs;
    if (!fast) settleGaps(count);
    sink.lost(next_, count);
    stats_.lost += count;
    if (fast) stats_.lostFast += count;
    // Only the last size_ of them stay in the history.
    const std::uint64_t remembered = std::min<std::uint64_t>(count, size_);
    delivered_.assignRange(next_ + count - remembered, remembered, false);
    next_ += count;
    releasedCount_ = std::min<std::uint64_t>(size_, releasedCount_ + count);
  }

  void dropReleasedArrivals() noexcept {
    while (arrivalsHead_ != arrivalsTail_ && seqLess(arrivals_[arrivalsHead_ & arrivalsMask_].seq, next_)) {
      ++arrivalsHead_;
    }
  }

  // The hole waited for since heldSince timed out: a timeout passed and the stream
  // went on flowing (a packet was read at or after the timeout, by nowNs) without
  // it. While nothing arrives on any path (the sender or every path stalled, e.g.
  // a descheduled sender with the hole's packet still in its TX ring) the wait
  // is stretched to kStalledTimeouts timeouts.
  bool timedOut(std::uint64_t heldSince, std::uint64_t nowNs) const noexcept {
    if (nowNs < heldSince || nowNs - heldSince < timeoutNs_) return false;
    if (std::min(lastReadNs_, nowNs) - heldSince >= timeoutNs_) return true;
    return nowNs - heldSince >= timeoutNs_ * kStalledTimeouts;
  }

  // release() keeps the front of arrivals_ on a held packet.
  std::uint64_t oldestHeldSinceNs() const noexcept {
    return arrivals_[arrivalsHead_ & arrivalsMask_].heldSinceNs;
  }

  // False when release() would certainly not declare the head hole lost now.
  bool headMayBeLost(std::uint64_t nowNs) const noexcept {
    return timedOut(oldestHeldSinceNs(), nowNs) || (options_.fastLoss && gapsKept_ > 0);
  }

  // Delivers in-order runs and declares the head hole lost when it timed out or
  // every active path passed it.
  void release(std::uint64_t nowNs, DeliverySink& sink) {
    while (stats_.held > 0) {
      if (occupied_.test(next_)) {
        const std::uint64_t run = occupied_.find(next_, size_, false);
        deliverRun(run, nowNs, sink);
        if (stats_.held == 0) break;
      }
      dropReleasedArrivals();
      if (options_.reliable) return;
      const std::uint64_t heldSince = oldestHeldSinceNs();
      if (timedOut(heldSince, nowNs)) {
        declareLost(occupied_.find(next_, size_, true), false, heldSince, sink);
        continue;
      }
      Gap* witness = nullptr;
      const std::uint64_t passed = fastLossSpan(nowNs, witness);
      if (passed == 0) return;
      const std::uint64_t count = std::min(occupied_.find(next_, size_, true), passed);
      witness->open -= static_cast<std::uint32_t>(count);
      declareLost(count, true, heldSince, sink);
    }
    arrivalsHead_ = arrivalsTail_;
  }

  // ---- Far-ahead packets (ahead of next_ by a window or more) -----------------
  // One such packet would force the window on and declare everything between
  // lost; an unauthenticated receiver must not let one forged or replayed frame
  // do that. So a far-ahead packet moves nothing by itself: it is kept as evidence
  // of a jump (kJumpHeldPerPath per path at most) and the jump is made only
  // when the evidence is corroborated (see reorderer.h); otherwise it is
  // discarded as kImplausible.
  struct JumpPath {
    Slot* held = nullptr;  // kJumpHeldPerPath slots in jumpSlots_
    std::uint32_t count = 0;
  };

  void discardImplausible(const ArrivingPacket& packet, DeliverySink& sink) {
    ++stats_.implausible;
    sink.discard(packet, DeliverySink::DiscardReason::kImplausible);
  }

  std::int64_t plausibleStep() const noexcept {
    return static_cast<std::int64_t>(std::min<std::uint64_t>(kPlausibleStep, size_ / 4));
  }

  bool jumpExpired(std::uint64_t nowNs) const noexcept {
    return !within(nowNs, jumpSinceNs_, 2 * timeoutNs_);
  }

  void noteFarAhead(const ArrivingPacket& packet, std::uint64_t nowNs, DeliverySink& sink) {
    if (jumpHeld_ > 0 && jumpExpired(nowNs)) dropJumpEvidence(sink);
    if (packet.pathId >= options_.pathCount) return discardImplausible(packet, sink);
    const PathState& path = paths_[packet.pathId];
    JumpPath& jump = jump_[packet.pathId];
    // A real jump continues its path's numbering: new on the path, at most a
    // window ahead, above the path's earlier evidence. A replayed frame has an
    // old number.
    // (A path not heard from yet, e.g. a receiver that started late, has no numbering.)
    if (jump.count == kJumpHeldPerPath) return discardImplausible(packet, sink);
    if (path.seqSeen || jump.count > 0) {
      const std::uint64_t floor =
          jump.count > 0 ? jump.held[jump.count - 1].packet.pathPacketNumber : path.highestNumber;
      const std::int64_t pathAhead = seqDiff(packet.pathPacketNumber, floor);
      if (pathAhead <= 0 || static_cast<std::uint64_t>(pathAhead) > size_) {
        return discardImplausible(packet, sink);
      }
    }
    // All evidence must point at one place: within a window of each other.
    const std::uint64_t seq = packet.globalSeq;
    if (jumpHeld_ > 0) {
      const std::uint64_t low = seqLess(seq, jumpLow_) ? seq : jumpLow_;
      const std::uint64_t high = seqLess(jumpHigh_, seq) ? seq : jumpHigh_;
      if (static_cast<std::uint64_t>(seqDiff(high, low)) >= size_) return discardImplausible(packet, sink);
      jumpLow_ = low;
      jumpHigh_ = high;
    } else {
      jumpLow_ = jumpHigh_ = seq;
      jumpSinceNs_ = nowNs;
    }
    jump.held[jump.count++] = Slot{packet, std::max(nowNs, packet.arrivalNs)};
    ++jumpHeld_;
    if (jumpCorroborated(nowNs)) jumpTo(nowNs, sink);
  }

  // Every active path (data within the timeout) shows kJumpEvidencePerPath
  // packets, and so do at least min(kJumpMinPaths, paths heard from) paths.
  bool jumpCorroborated(std::uint64_t nowNs) const noexcept {
    std::uint32_t heard = 0;
    std::uint32_t vouching = 0;
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      const PathState& path = paths_[i];
      if (!path.seqSeen && jump_[i].count == 0) continue;
      ++heard;
      const bool full = jump_[i].count >= kJumpEvidencePerPath;
      if (full) {
        ++vouching;
      } else if (path.seen && within(nowNs, path.lastArrivalNs, timeoutNs_)) {
        return false;
      }
    }
    return vouching >= std::min(heard, kJumpMinPaths);
  }

  // The sender did skip ahead: move the window just far enough for the evidence
  // (as a plausible packet beyond the window always did) and take it in.
  void jumpTo(std::uint64_t nowNs, DeliverySink& sink) {
    forceRelease(jumpHigh_ - size_ + 1, nowNs, sink);
    std::uint32_t taken = 0;
    for (std::uint32_t i = 0; i < options_.pathCount && taken < jumpHeld_; ++i) {
      JumpPath& jump = jump_[i];
      for (std::uint32_t k = 0; k < jump.count; ++k, ++taken) {
        const ArrivingPacket& packet = jump.held[k].packet;
        if (seqLess(packet.globalSeq, next_)) {  // timeouts moved next_ past it meanwhile
          discardImplausible(packet, sink);
          continue;
        }
        PathState* path = notePathDelay(packet, nowNs);
        insert(packet, path, std::max(nowNs, jump.held[k].heldSinceNs), sink);
      }
      jump.count = 0;
    }
    jumpHeld_ = 0;
    ++stats_.jumps;
  }

  // A data packet in the window with a number at or above a path's evidence: that
  // path did not jump, its evidence was forged.
  void checkJumpContradicted(const ArrivingPacket& packet, DeliverySink& sink) {
    JumpPath& jump = jump_[packet.pathId];
    if (jump.count == 0 || seqLess(packet.pathPacketNumber, jump.held[0].packet.pathPacketNumber)) return;
    for (std::uint32_t k = 0; k < jump.count; ++k) discardImplausible(jump.held[k].packet, sink);
    jumpHeld_ -= jump.count;
    jump.count = 0;
    // The range of what is left.
    bool first = true;
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      for (std::uint32_t k = 0; k < jump_[i].count; ++k) {
        const std::uint64_t seq = jump_[i].held[k].packet.globalSeq;
        if (first || seqLess(seq, jumpLow_)) jumpLow_ = seq;
        if (first || seqLess(jumpHigh_, seq)) jumpHigh_ = seq;
        first = false;
      }
    }
  }

  void dropJumpEvidence(DeliverySink& sink) {
    for (std::uint32_t i = 0; i < options_.pathCount; ++i) {
      JumpPath& jump = jump_[i];
      for (std::uint32_t k = 0; k < jump.count; ++k) discardImplausible(jump.held[k].packet, sink);
      jump.count = 0;
    }
    jumpHeld_ = 0;
  }

  // Releases everything below target: held packets delivered, holes lost.
  void forceRelease(std::uint64_t target, std::uint64_t nowNs, DeliverySink& sink) {
    while (seqLess(next_, target)) {
      const auto distance = static_cast<std::uint64_t>(seqDiff(target, next_));
      if (stats_.held == 0) {
        declareLost(distance, false, nowNs, sink);
        break;
      }
      const std::uint64_t limit = std::min<std::uint64_t>(distance, size_);
      const std::uint64_t run = occupied_.find(next_, limit, false);
      deliverRun(run, nowNs, sink);
      if (run == limit) continue;
      const std::uint64_t gap = occupied_.find(next_, limit - run, true);
      declareLost(gap, false, nowNs, sink);
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
  std::vector<Arrival> arrivals_;
  const std::uint64_t arrivalsMask_;
  std::uint64_t arrivalsHead_ = 0;
  std::uint64_t arrivalsTail_ = 0;
  std::array<PathState, kMaxReorderPaths> paths_{};
  std::uint32_t gapsKept_ = 0;  // gaps in all paths' rings: none, no fast loss to look for
  std::vector<Slot> jumpSlots_;
  std::array<JumpPath, kMaxReorderPaths> jump_{};
  std::uint32_t jumpHeld_ = 0;  // evidence packets held in jump_
  std::uint64_t jumpLow_ = 0;   // their lowest and highest global seq
  std::uint64_t jumpHigh_ = 0;
  std::uint64_t jumpSinceNs_ = 0;  // when the first of them arrived
  bool unknownPathSeen_ = false;
  std::uint64_t unknownPathAtNs_ = 0;
  bool started_ = false;
  std::uint64_t startNs_ = 0;
  std::uint64_t next_ = 0;     // release point: lowest seq neither delivered nor declared lost
  std::uint64_t maxSeen_ = 0;  // highest seq accepted
  std::uint64_t releasedCount_ = 0;
  std::uint64_t timeoutNs_;
  std::uint64_t lastNowNs_ = 0;
  std::uint64_t lastReadNs_ = 0;    // latest max(nowNs, arrivalNs) pushed
  std::uint64_t holdNeededNs_ = 0;  // longest hold a hole needed recently (decaying)
  std::uint64_t holdDecayAtNs_ = 0;
  // The latest run declared lost and since when its oldest held packet waited.
  std::uint64_t lastLostFirst_ = 0;
  std::uint64_t lastLostCount_ = 0;
  std::uint64_t lastLostHeldSinceNs_ = 0;
  ReorderStats stats_;
};

}  // namespace

std::unique_ptr<Reorderer> newWindowReorderer(const ReorderOptions& options) {
  return std::make_unique<WindowReorderer>(options);
}

}  // namespace mpxdp::reorder::detail
