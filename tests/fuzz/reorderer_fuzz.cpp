// Fuzz target: the reorderers (src/reorder/reorderer.h), window, sort, off and
// window in reliable mode, driven by a program of pushes, observed control
// packets, clock steps, polls and replays (format: reorder_program.h) and
// watched by a sink that checks the DeliverySink contract as it happens:
//  - every pushed packet comes back exactly once, delivered or discarded, as
//    it was pushed (cookie, seq, path, number, times);
//  - no seq is delivered twice, reported lost twice, or both;
//  - window delivers in order: each deliver() or lost() starts exactly at the
//    release point; in reliable mode nothing is lost before flush();
//  - a discard's reason holds: a duplicate's seq was accepted before, a late
//    one's seq was reported lost, an out-of-window one lies below the release
//    point (or, reliable, a window or more above it);
//  - the stats count what the sink saw;
//  - after flush() nothing is held and the seqs from the stream's start to the
//    highest delivered are each delivered or lost, none missing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "fuzz_support.h"
#include "reorder_program.h"
#include "reorderer.h"

namespace mpxdp::fuzz {
namespace {

using reorder::ArrivingPacket;
using reorder::DeliverySink;
using Reason = DeliverySink::DiscardReason;
using reorder_program::Kind;
using reorder_program::Op;

constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
constexpr std::int64_t kLowestRel = -(std::int64_t{1} << 61);
constexpr std::int64_t kHighestRel = (std::int64_t{1} << 62) - 1;
constexpr std::uint64_t kUs = 1000;
constexpr std::uint64_t kMs = 1000 * kUs;

bool samePacket(const ArrivingPacket& a, const ArrivingPacket& b) {
  return a.globalSeq == b.globalSeq && a.pathId == b.pathId && a.pathPacketNumber == b.pathPacketNumber &&
         a.sendTsNs == b.sendTsNs && a.arrivalNs == b.arrivalNs && a.cookie == b.cookie;
}

class ContractSink final : public DeliverySink {
 public:
  ContractSink(Kind kind, std::uint32_t window) : kind_(kind), window_(window) {}

  bool windowKind() const { return kind_ == Kind::kWindow || kind_ == Kind::kWindowReliable; }

  // Called before each push.
  void pushing(const ArrivingPacket& packet, std::uint64_t start) {
    if (!started_) {
      started_ = true;
      start_ = start;
    }
    FUZZ_CHECK(packet.cookie == pushed_.size());
    pushed_.push_back({packet, rel(packet.globalSeq), next_, highestPushedRel_, State::kPending});
    ++live_[packet.globalSeq];
    highestPushedRel_ = std::max(highestPushedRel_, rel(packet.globalSeq));
  }

  void deliver(const ArrivingPacket& packet, std::uint64_t /*holdNs*/) override {
    Pushed& p = resolve(packet);
    p.state = State::kDelivered;
    const std::int64_t seq = p.rel;
    FUZZ_CHECK(seq >= 0);  // not below the stream's start
    FUZZ_CHECK(!isDelivered(seq) && !isLost(seq));
    if (windowKind()) {
      FUZZ_CHECK(seq == next_);
      ++next_;
    }
    if (anyDelivered_ && seq < highestDeliveredRel_) ++outOfOrder_;
    if (!anyDelivered_ || seq > highestDeliveredRel_) highestDeliveredRel_ = seq;
    anyDelivered_ = true;
    delivered_.insert(seq);
    ++deliveries_;
  }

  void lost(std::uint64_t firstSeq, std::uint64_t count) override {
    FUZZ_CHECK(started_ && count > 0);
    FUZZ_CHECK(kind_ != Kind::kWindowReliable || flushing_);  // reliable: lost only when abandoned
    const std::int64_t first = rel(firstSeq);
    FUZZ_CHECK(first >= 0 && count < (std::uint64_t{1} << 63) &&
               static_cast<std::uint64_t>(first) + count <= (std::uint64_t{1} << 63));
    const auto end = static_cast<std::int64_t>(static_cast<std::uint64_t>(first) + count);
    if (windowKind()) {
      FUZZ_CHECK(first == next_);
      next_ = end;
    }
    // Disjoint from every lost run and delivered seq.
    auto after = lost_.lower_bound(first);
    FUZZ_CHECK(after == lost_.end() || after->first >= end);
    if (after != lost_.begin()) FUZZ_CHECK(std::prev(after)->second <= first);
    auto delivered = delivered_.lower_bound(first);
    FUZZ_CHECK(delivered == delivered_.end() || *delivered >= end);
    lost_[first] = end;
    lostSum_ += count;
  }

  void discard(const ArrivingPacket& packet, Reason reason) override {
    Pushed& p = resolve(packet);
    p.state = State::kDiscarded;
    const std::int64_t seq = p.rel;
    switch (reason) {
      case Reason::kDuplicate:
        // Another copy was accepted: delivered, or still held.
        FUZZ_CHECK(live_[packet.globalSeq] >= 2);
        ++duplicates_;
        break;
      case Reason::kLate:
        FUZZ_CHECK(isLost(seq));
        ++late_;
        break;
      case Reason::kOutOfWindow:
        if (windowKind()) {
          const bool below = seq < p.nextAtPush;
          const bool beyond = kind_ == Kind::kWindowReliable && seq - p.nextAtPush >= window_;
          FUZZ_CHECK(below || beyond);
        } else {
          FUZZ_CHECK(seq < 0 || seq <= p.highestBefore);
        }
        ++outOfWindow_;
        break;
      case Reason::kImplausible:
        FUZZ_CHECK(kind_ != Kind::kWindowReliable);
        if (windowKind()) FUZZ_CHECK(seq - p.nextAtPush >= window_);  // was far ahead when pushed
        ++implausible_;
        break;
      default:
        FUZZ_CHECK(false);
    }
    --live_[packet.globalSeq];
  }

  // The stats count what the sink saw.
  void checkStats(const reorder::Reorderer& r) const {
    const reorder::ReorderStats s = r.stats();
    FUZZ_CHECK(s.pushed == pushed_.size());
    FUZZ_CHECK(s.delivered == deliveries_);
    FUZZ_CHECK(s.lost == lostSum_);
    FUZZ_CHECK(s.duplicates == duplicates_);
    FUZZ_CHECK(s.late == late_);
    FUZZ_CHECK(s.outOfWindow == outOfWindow_);
    FUZZ_CHECK(s.implausible == implausible_);
    FUZZ_CHECK(s.outOfOrderDelivered == outOfOrder_);
    const std::uint64_t pending =
        pushed_.size() - deliveries_ - duplicates_ - late_ - outOfWindow_ - implausible_;
    if (kind_ == Kind::kOff) FUZZ_CHECK(s.held == 0 && pending == 0);
    if (kind_ == Kind::kSort) FUZZ_CHECK(s.held == pending);
    FUZZ_CHECK(s.held <= pending);  // window: far-ahead evidence waits outside `held`
    if (s.held == 0) FUZZ_CHECK(r.nextDeadlineNs() == kNever);
  }

  void flushing() { flushing_ = true; }

  // After flush(): everything settled, [0, highest delivered] covered exactly.
  void checkFlushed(const reorder::Reorderer& r) const {
    checkStats(r);
    FUZZ_CHECK(r.stats().held == 0);
    for (const Pushed& p : pushed_) FUZZ_CHECK(p.state != State::kPending);
    if (!anyDelivered_) {
      FUZZ_CHECK(lost_.empty());
      return;
    }
    const auto span = static_cast<std::uint64_t>(highestDeliveredRel_) + 1;
    FUZZ_CHECK(lost_.empty() || std::prev(lost_.end())->second <= highestDeliveredRel_ + 1);
    FUZZ_CHECK(*delivered_.begin() >= 0);
    FUZZ_CHECK(delivered_.size() + lostSum_ == span);  // disjoint and within [0, span): all of it
  }

 private:
  enum class State : std::uint8_t { kPending, kDelivered, kDiscarded };
  struct Pushed {
    ArrivingPacket packet;
    std::int64_t rel = 0;            // seq - start
    std::int64_t nextAtPush = 0;     // window: release point when pushed
    std::int64_t highestBefore = 0;  // highest seq pushed before it
    State state = State::kPending;
  };

  std::int64_t rel(std::uint64_t seq) const { return static_cast<std::int64_t>(seq - start_); }

  Pushed& resolve(const ArrivingPacket& packet) {
    FUZZ_CHECK(packet.cookie < pushed_.size());
    Pushed& p = pushed_[packet.cookie];
    FUZZ_CHECK(p.state == State::kPending);  // exactly once
    FUZZ_CHECK(samePacket(packet, p.packet));
    return p;
  }

  bool isDelivered(std::int64_t seq) const { return delivered_.count(seq) != 0; }
  bool isLost(std::int64_t seq) const {
    auto it = lost_.upper_bound(seq);
    return it != lost_.begin() && std::prev(it)->second > seq;
  }

  const Kind kind_;
  const std::int64_t window_;
  bool started_ = false;
  bool flushing_ = false;
  std::uint64_t start_ = 0;
  std::vector<Pushed> pushed_;
  std::unordered_map<std::uint64_t, std::uint32_t> live_;  // seq -> copies pending or delivered
  std::int64_t highestPushedRel_ = std::numeric_limits<std::int64_t>::min();
  std::int64_t next_ = 0;  // window: release point
  std::set<std::int64_t> delivered_;
  std::map<std::int64_t, std::int64_t> lost_;  // first -> end, disjoint
  bool anyDelivered_ = false;
  std::int64_t highestDeliveredRel_ = 0;
  std::uint64_t deliveries_ = 0;
  std::uint64_t lostSum_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t late_ = 0;
  std::uint64_t outOfWindow_ = 0;
  std::uint64_t implausible_ = 0;
  std::uint64_t outOfOrder_ = 0;
};

struct Program {
  Kind kind = Kind::kWindow;
  reorder::ReorderOptions options;
  std::uint64_t start = 0;
};

Program readConfig(ByteReader& r) {
  Program p;
  const std::uint8_t b0 = r.u8();
  const std::uint8_t b1 = r.u8();
  const std::uint8_t b2 = r.u8();
  const std::uint8_t b3 = r.u8();
  p.start = r.u64();
  p.kind = static_cast<Kind>(b0 & 3);
  reorder::ReorderOptions& o = p.options;
  o.kind = p.kind == Kind::kSort  ? reorder::ReorderKind::kSort
           : p.kind == Kind::kOff ? reorder::ReorderKind::kOff
                                  : reorder::ReorderKind::kWindow;
  o.reliable = p.kind == Kind::kWindowReliable;
  o.fastLoss = (b0 & 4) == 0;
  o.adaptiveTimeout = (b0 & 8) == 0;
  if ((b0 & 16) != 0) o.initialSeq = p.start;
  o.pathCount = 1U + (b0 >> 5);
  o.windowPackets = 64U << std::min(b1 & 7, 4);
  o.fastLossThreshold = 1U + ((b1 >> 3) & 7);
  o.sortCapacityPackets = 1U + b2 * o.windowPackets / 256;
  o.fixedTimeoutNs = ((b3 & 15) + 1) * 200 * kUs;
  o.maxTimeoutNs = ((b3 >> 4) + 1) * 2 * kMs;
  o.minTimeoutNs = 100 * kUs;
  o.timeoutMarginNs = o.maxTimeoutNs / 4;
  o.sortIntervalNs = 100 * kUs;
  return p;
}

void run(std::span<const std::uint8_t> in) {
  ByteReader r(in);
  const Program program = readConfig(r);
  auto made = reorder::makeReorderer(program.options);
  FUZZ_CHECK(made.ok());
  reorder::Reorderer& reorderer = *made.value();
  ContractSink sink(program.kind, program.options.windowPackets);
  const std::uint64_t start = program.options.initialSeq.value_or(0);

  std::uint64_t now = 1'000'000'000;
  std::int64_t highest = -1;  // relative to program.start
  std::uint64_t nextNumber[8] = {};
  std::vector<ArrivingPacket> pushed;
  constexpr std::size_t kMaxOps = 20000;

  const auto doPush = [&](std::int64_t relSeq) {
    relSeq = std::clamp(relSeq, kLowestRel, kHighestRel);
    const std::uint8_t p = r.u8();
    const std::uint8_t t = r.u8();
    ArrivingPacket packet;
    packet.globalSeq = program.start + static_cast<std::uint64_t>(relSeq);
    packet.pathId = p & 7;
    packet.pathPacketNumber = nextNumber[packet.pathId] + (p >> 3) - reorder_program::kPacketNumberBias;
    if (packet.pathPacketNumber >= nextNumber[packet.pathId])
      nextNumber[packet.pathId] = packet.pathPacketNumber + 1;
    packet.arrivalNs = now + ((t & 15) * 10 * kUs) - 40 * kUs;
    packet.sendTsNs = packet.arrivalNs - packet.pathId * kMs - (t >> 4) * 50 * kUs;
    packet.cookie = pushed.size();
    highest = std::max(highest, relSeq);
    pushed.push_back(packet);
    sink.pushing(packet, program.options.initialSeq ? start : packet.globalSeq);
    reorderer.push(packet, now, sink);
  };

  for (std::size_t ops = 0; !r.empty() && ops < kMaxOps; ++ops) {
    const std::uint8_t b = r.u8();
    const auto op = static_cast<Op>(b >> 5);
    const std::uint8_t arg = b & 31;
    switch (op) {
      case Op::kJump: {
        // highest is in [-1, 2^62): the sum cannot overflow.
        constexpr std::int64_t kMaxStep = std::int64_t{1} << 62;
        const std::int64_t step = static_cast<std::int64_t>(r.u64()) >> arg;
        doPush(highest + std::clamp(step, -kMaxStep, kMaxStep));
        break;
      }
      case Op::kTime:
        now += arg < 28 ? std::uint64_t{arg} * arg * 20 * kUs : (arg - 27) * 200 * kMs;
        break;
      case Op::kObserve: {
        const std::uint16_t path = arg & 7;
        const std::uint64_t number = nextNumber[path] + r.u8() - reorder_program::kObserveBias;
        if (number >= nextNumber[path]) nextNumber[path] = number + 1;
        reorderer.observePath(path, number, now);
        break;
      }
      case Op::kPoll:
        if (arg == 1) {
          const std::uint64_t deadline = reorderer.nextDeadlineNs();
          if (deadline != kNever && deadline > now && deadline - now <= 1000 * kMs) now = deadline;
        } else if (arg > 1) {
          now += arg * 100 * kUs;
        }
        reorderer.poll(now, sink);
        break;
      case Op::kReplay: {
        const std::size_t index = (std::size_t{arg} << 8) | r.u8();
        if (pushed.empty()) break;
        ArrivingPacket copy = pushed[index % pushed.size()];
        copy.cookie = pushed.size();
        copy.arrivalNs = now;
        pushed.push_back(copy);
        sink.pushing(copy, 0);
        reorderer.push(copy, now, sink);
        break;
      }
      default:  // push, ops 0..2
        doPush(highest + arg - reorder_program::kSeqBias);
        break;
    }
    sink.checkStats(reorderer);
  }
  sink.flushing();
  reorderer.flush(sink);
  sink.checkFlushed(reorderer);
}

}  // namespace
}  // namespace mpxdp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mpxdp::fuzz::run({data, size});
  return 0;
}
