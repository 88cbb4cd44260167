#include "reorderer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "seq_bits.h"

namespace mpxdp::reorder {
namespace {

using Reason = DeliverySink::DiscardReason;
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

struct Recorder final : DeliverySink {
  struct Delivery {
    ArrivingPacket packet;
    std::uint64_t holdNs;
  };
  struct Discard {
    ArrivingPacket packet;
    Reason reason;
  };
  std::vector<Delivery> delivered;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> lostRuns;
  std::vector<Discard> discarded;

  void deliver(const ArrivingPacket& packet, std::uint64_t holdNs) override {
    delivered.push_back({packet, holdNs});
  }
  void lost(std::uint64_t firstSeq, std::uint64_t count) override { lostRuns.emplace_back(firstSeq, count); }
  void discard(const ArrivingPacket& packet, Reason reason) override {
    discarded.push_back({packet, reason});
  }

  std::vector<std::uint64_t> deliveredSeqs() const {
    std::vector<std::uint64_t> seqs;
    for (const auto& d : delivered) seqs.push_back(d.packet.globalSeq);
    return seqs;
  }
  std::uint64_t lostCount() const {
    std::uint64_t n = 0;
    for (const auto& run : lostRuns) n += run.second;
    return n;
  }
};

std::unique_ptr<Reorderer> make(const ReorderOptions& options) {
  auto result = makeReorderer(options);
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message());
  return result.ok() ? std::move(result.value()) : nullptr;
}

ArrivingPacket pkt(std::uint64_t seq, std::uint16_t path = 0, std::uint32_t pathSeq = 0,
                   std::uint64_t nowNs = 0) {
  ArrivingPacket p;
  p.globalSeq = seq;
  p.pathId = path;
  p.pathPacketNumber = pathSeq;
  p.sendTsNs = nowNs;
  p.arrivalNs = nowNs;
  p.cookie = seq;
  return p;
}

ReorderOptions windowOptions(std::uint32_t window = 1024, std::uint64_t timeoutNs = kMax / 4) {
  ReorderOptions options;
  options.kind = ReorderKind::kWindow;
  options.windowPackets = window;
  options.adaptiveTimeout = false;
  options.fixedTimeoutNs = timeoutNs;
  return options;
}

// One simulated stream: what was pushed (cookies unique per push), and which seqs
// were dropped in the network.
struct Scenario {
  std::uint64_t firstSeq = 0;
  std::uint64_t count = 0;
  std::vector<ArrivingPacket> arrivals;  // in arrival order, nowNs = arrivalNs
  std::set<std::uint64_t> dropped;
  std::set<std::uint64_t> duplicatedCookies;  // cookies of injected second copies
  std::set<std::uint64_t> duplicatedSeqs;
};

// Packets displaced by at most maxDisplacement, dropped with dropRate, duplicated with dupRate.
Scenario permutedScenario(std::uint64_t seed, std::uint64_t firstSeq, std::uint64_t count,
                          std::uint64_t maxDisplacement, double dropRate, double dupRate) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<std::uint64_t> shift(0, maxDisplacement);
  Scenario s;
  s.firstSeq = firstSeq;
  s.count = count;
  std::vector<std::pair<std::uint64_t, ArrivingPacket>> keyed;
  std::uint64_t cookie = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t seq = firstSeq + i;
    // Keep the first packet so that the stream start is well defined.
    if (i > 0 && unit(rng) < dropRate) {
      s.dropped.insert(seq);
      continue;
    }
    ArrivingPacket p = pkt(seq, static_cast<std::uint16_t>(i % 3), static_cast<std::uint32_t>(i));
    p.cookie = cookie++;
    keyed.emplace_back(i == 0 ? 0 : i + shift(rng), p);
    if (unit(rng) < dupRate) {
      ArrivingPacket copy = p;
      copy.cookie = cookie++;
      s.duplicatedCookies.insert(copy.cookie);
      s.duplicatedSeqs.insert(seq);
      keyed.emplace_back(i + shift(rng) + 1, copy);
    }
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::uint64_t nowNs = 1'000'000;
  for (auto& [key, p] : keyed) {
    nowNs += 100;
    p.arrivalNs = nowNs;
    p.sendTsNs = nowNs;
    s.arrivals.push_back(p);
  }
  return s;
}

// Paths are FIFO with their own delay; packets are sprayed round robin.
Scenario multipathScenario(std::uint64_t seed, std::uint64_t count, std::vector<std::uint64_t> pathDelayNs,
                           double dropRate) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Scenario s;
  s.count = count;
  std::vector<std::uint32_t> pathSeq(pathDelayNs.size(), 0);
  std::vector<std::pair<std::uint64_t, ArrivingPacket>> timed;
  constexpr std::uint64_t kSendGapNs = 1000;
  for (std::uint64_t i = 0; i < count; ++i) {
    const auto path = static_cast<std::uint16_t>(i % pathDelayNs.size());
    ArrivingPacket p = pkt(i, path, pathSeq[path]++);
    p.sendTsNs = 5'000'000'000ULL + i * kSendGapNs;  // sender clock: arbitrary offset
    p.cookie = i;
    if (i > 0 && unit(rng) < dropRate) {
      s.dropped.insert(i);
      continue;
    }
    const std::uint64_t arrival = 1'000'000 + i * kSendGapNs + pathDelayNs[path];
    p.arrivalNs = arrival;
    timed.emplace_back(arrival, p);
  }
  std::stable_sort(timed.begin(), timed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [t, p] : timed) s.arrivals.push_back(p);
  return s;
}

// Pushes every arrival, flushes, and checks the sink contract: every push comes
// back exactly once; every seq from the start to the highest seen is delivered or
// lost exactly once; dropped seqs are never delivered.
void runAndCheckContract(Reorderer& reorderer, const Scenario& s, Recorder& sink, bool pollEachPush = false) {
  for (const auto& p : s.arrivals) {
    reorderer.push(p, p.arrivalNs, sink);
    if (pollEachPush) reorderer.poll(p.arrivalNs, sink);
  }
  reorderer.flush(sink);

  std::map<std::uint64_t, int> cookieSeen;
  for (const auto& d : sink.delivered) ++cookieSeen[d.packet.cookie];
  for (const auto& d : sink.discarded) ++cookieSeen[d.packet.cookie];
  ASSERT_EQ(cookieSeen.size(), s.arrivals.size());
  for (const auto& [cookie, n] : cookieSeen) ASSERT_EQ(n, 1) << "cookie " << cookie;

  // Implausible (uncorroborated far-ahead) packets do not extend the stream.
  std::set<std::uint64_t> implausibleCookies;
  for (const auto& d : sink.discarded) {
    if (d.reason == Reason::kImplausible) implausibleCookies.insert(d.packet.cookie);
  }
  std::uint64_t highest = s.firstSeq;
  for (const auto& p : s.arrivals) {
    if (implausibleCookies.count(p.cookie) > 0) continue;
    if (p.globalSeq - s.firstSeq > highest - s.firstSeq) highest = p.globalSeq;
  }
  std::map<std::uint64_t, int> settled;  // offset from firstSeq -> times settled
  for (const auto& d : sink.delivered) {
    ASSERT_EQ(s.dropped.count(d.packet.globalSeq), 0U) << "dropped seq delivered";
    ++settled[d.packet.globalSeq - s.firstSeq];
  }
  for (const auto& [first, count] : sink.lostRuns) {
    for (std::uint64_t i = 0; i < count; ++i) ++settled[first + i - s.firstSeq];
  }
  const std::uint64_t span = highest - s.firstSeq + 1;
  ASSERT_EQ(settled.size(), span);
  for (const auto& [offset, n] : settled) {
    ASSERT_LT(offset, span);
    ASSERT_EQ(n, 1) << "seq offset " << offset;
  }
  const ReorderStats stats = reorderer.stats();
  EXPECT_EQ(stats.pushed, s.arrivals.size());
  EXPECT_EQ(stats.delivered, sink.delivered.size());
  EXPECT_EQ(stats.lost, sink.lostCount());
  EXPECT_EQ(stats.duplicates + stats.late + stats.outOfWindow + stats.implausible, sink.discarded.size());
  EXPECT_EQ(stats.held, 0U);
}

void expectStrictlyIncreasing(const Recorder& sink, std::uint64_t firstSeq) {
  const auto seqs = sink.deliveredSeqs();
  for (std::size_t i = 1; i < seqs.size(); ++i) {
    ASSERT_LT(seqs[i - 1] - firstSeq, seqs[i] - firstSeq) << "at " << i;
  }
}

TEST(WindowReordererTest, PermutationsWithinWindowComeOutInOrderExactlyOnce) {
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE(seed);
    const std::uint64_t firstSeq = seed % 3 == 0 ? kMax - 500 : seed * 1'000'003;
    const Scenario s = permutedScenario(seed, firstSeq, 3000, 200, 0.03, 0.02);
    auto options = windowOptions(256);
    options.pathCount = 3;
    options.initialSeq = firstSeq;
    options.fastLoss = false;  // the random permutation is not FIFO per path
    auto reorderer = make(options);
    Recorder sink;
    runAndCheckContract(*reorderer, s, sink);
    expectStrictlyIncreasing(sink, firstSeq);
    // Displacement below the window, no timeout, no fast loss: only dropped seqs are lost.
    std::set<std::uint64_t> lost;
    for (const auto& [first, count] : sink.lostRuns) {
      for (std::uint64_t i = 0; i < count; ++i) lost.insert(first + i);
    }
    std::set<std::uint64_t> droppedInRange;
    const std::uint64_t highest = sink.deliveredSeqs().back();
    for (auto seq : s.dropped) {
      if (seq - firstSeq < highest - firstSeq) droppedInRange.insert(seq);
    }
    EXPECT_EQ(lost, droppedInRange);
    // One copy of each duplicated seq comes back as a duplicate (never as late:
    // nothing was lost wrongly); the copy may overtake the original.
    for (const auto& d : sink.discarded) {
      EXPECT_EQ(s.duplicatedSeqs.count(d.packet.globalSeq), 1U);
      EXPECT_EQ(d.reason, Reason::kDuplicate);
    }
    EXPECT_EQ(reorderer->stats().duplicates, s.duplicatedCookies.size());
  }
}

TEST(WindowReordererTest, DisplacementBeyondWindowStillSettlesEverySeqOnce) {
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    SCOPED_TRACE(seed);
    const Scenario s = permutedScenario(seed, seed, 3000, 300, 0.02, 0.02);
    auto options = windowOptions(64, 20'000);
    options.initialSeq = seed;
    auto reorderer = make(options);
    Recorder sink;
    runAndCheckContract(*reorderer, s, sink, seed % 2 == 0);
    expectStrictlyIncreasing(sink, seed);
    for (const auto& d : sink.discarded) {
      if (d.reason == Reason::kDuplicate) continue;
      // Declared lost (late), so far behind that the history no longer tells, or
      // far ahead and uncorroborated (displaced by up to 300 over a window of 64,
      // out of order within its path: nothing can tell it from a forged one).
      EXPECT_TRUE(d.reason == Reason::kLate || d.reason == Reason::kOutOfWindow ||
                  d.reason == Reason::kImplausible);
      EXPECT_EQ(s.dropped.count(d.packet.globalSeq), 0U);
    }
  }
}

TEST(WindowReordererTest, FifoPathsWithDropsLoseExactlyTheDroppedByFastDetection) {
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    SCOPED_TRACE(seed);
    const Scenario s = multipathScenario(seed, 5000, {10'000, 60'000, 250'000}, 0.01);
    auto options = windowOptions(1024);
    options.pathCount = 3;
    options.initialSeq = 0;
    auto reorderer = make(options);
    Recorder sink;
    runAndCheckContract(*reorderer, s, sink);
    expectStrictlyIncreasing(sink, 0);
    const ReorderStats stats = reorderer->stats();
    std::uint64_t droppedBelowHighest = 0;
    const std::uint64_t highest = sink.deliveredSeqs().back();
    for (auto seq : s.dropped) droppedBelowHighest += seq < highest ? 1 : 0;
    EXPECT_EQ(stats.lost, droppedBelowHighest);
    EXPECT_TRUE(sink.discarded.empty());
    // The timeout is effectively infinite: everything lost before the flush was found fast.
    EXPECT_GT(stats.lostFast, 0U);
    EXPECT_LE(stats.lostFast, stats.lost);
  }
}

// Reliable mode (issue 9): a hole waits for its retransmission however long
// it takes and whatever the paths show; nothing beyond the window moves it.
TEST(WindowReordererTest, ReliableNeverDeclaresAHoleLost) {
  auto options = windowOptions(64, 1'000'000);  // a 1 ms timeout that must not apply
  options.pathCount = 3;
  options.initialSeq = 0;
  options.reliable = true;
  auto reorderer = make(options);
  Recorder sink;
  // Seq 5 is missing; every path passes it by far (fast loss would fire).
  for (std::uint64_t seq = 0; seq < 64; ++seq) {
    if (seq == 5) continue;
    reorderer->push(pkt(seq, static_cast<std::uint16_t>(seq % 3),
                        static_cast<std::uint32_t>(seq / 3 + (seq > 5 && seq % 3 == 2 ? 1 : 0)), seq * 1000),
                    seq * 1000, sink);
  }
  reorderer->poll(10'000'000'000, sink);  // 10 s later
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(sink.lostRuns.empty());
  EXPECT_EQ(reorderer->nextDeadlineNs(), kMax);
  // Beyond the window: discarded, the window stays.
  reorderer->push(pkt(5 + 64, 0, 1000, 10'000'000'000), 10'000'000'000, sink);
  ASSERT_EQ(sink.discarded.size(), 1U);
  EXPECT_EQ(sink.discarded[0].reason, Reason::kOutOfWindow);
  // The retransmission fills the hole: everything comes out in order.
  reorderer->push(pkt(5, 1, 2000, 10'000'000'001), 10'000'000'001, sink);
  ASSERT_EQ(sink.delivered.size(), 64U);
  for (std::uint64_t i = 0; i < 64; ++i) EXPECT_EQ(sink.delivered[i].packet.globalSeq, i);
  EXPECT_TRUE(sink.lostRuns.empty());
  // Only an abandoned stream (flush) declares what is still missing lost.
  reorderer->push(pkt(66, 0, 2001, 10'000'000'002), 10'000'000'002, sink);
  reorderer->flush(sink);
  EXPECT_EQ(sink.lostCount(), 2U);
}

TEST(ReordererTest, ReliableNeedsTheWindowKind) {
  ReorderOptions options;
  options.kind = ReorderKind::kSort;
  options.reliable = true;
  EXPECT_FALSE(makeReorderer(options).ok());
}

// Issue 7: replaying a real frame with its global seq moved 2^40 ahead made the
// receiver force the window on (10^12 "lost", the real stream late). A far-ahead
// packet must move nothing until corroborated, and be counted.
TEST(ReordererTest, ForgedFarAheadPacketsChangeNothing) {
  constexpr std::uint64_t kForgeOffset = std::uint64_t{1} << 40;
  for (const ReorderKind kind : {ReorderKind::kWindow, ReorderKind::kSort, ReorderKind::kOff}) {
    for (const bool handful : {false, true}) {
      SCOPED_TRACE(std::string(toString(kind)) + (handful ? " handful on one path" : " one replayed frame"));
      Scenario s = multipathScenario(7, 6000, {10'000, 60'000, 250'000}, 0.0);
      std::vector<ArrivingPacket> forged;
      if (!handful) {
        // The frame as captured: its own path and packet number, seq moved ahead.
        ArrivingPacket p = s.arrivals[3000];
        p.globalSeq += kForgeOffset;
        forged.push_back(p);
      } else {
        // Worst case: 5 frames on path 1 carrying its next packet numbers.
        const ArrivingPacket& base = s.arrivals[3000];
        for (std::uint64_t j = 1; j <= 5; ++j) {
          ArrivingPacket p = base;
          p.pathId = 1;
          p.pathPacketNumber = base.globalSeq / 3 + j;
          p.globalSeq = kForgeOffset + base.globalSeq + 3 * j;
          forged.push_back(p);
        }
      }
      std::uint64_t cookie = 1'000'000;
      for (auto& p : forged) p.cookie = cookie++;
      s.arrivals.insert(s.arrivals.begin() + 3001, forged.begin(), forged.end());
      for (std::size_t i = 3001; i < 3001 + forged.size(); ++i)
        s.arrivals[i].arrivalNs = s.arrivals[3000].arrivalNs;

      ReorderOptions options = windowOptions(1024, 5'000'000);
      options.kind = kind;
      options.pathCount = 3;
      options.initialSeq = 0;
      options.sortCapacityPackets = 128;
      auto reorderer = make(options);
      Recorder sink;
      runAndCheckContract(*reorderer, s, sink);
      const ReorderStats stats = reorderer->stats();
      EXPECT_EQ(stats.lost, 0U);
      EXPECT_EQ(stats.late, 0U);
      EXPECT_EQ(stats.implausible, forged.size());
      EXPECT_EQ(stats.jumps, 0U);
      EXPECT_EQ(stats.delivered, 6000U);
      std::set<std::uint64_t> forgedCookies;
      for (const auto& p : forged) forgedCookies.insert(p.cookie);
      for (const auto& d : sink.discarded) {
        EXPECT_EQ(forgedCookies.count(d.packet.cookie), 1U);
        EXPECT_EQ(d.reason, Reason::kImplausible);
      }
      if (kind == ReorderKind::kWindow) expectStrictlyIncreasing(sink, 0);
    }
  }
}

// A real jump: the sender skipped 2^40 seqs on every path, its path packet
// numbers continue. The window follows within a few packets per path.
TEST(WindowReordererTest, CorroboratedJumpIsFollowed) {
  constexpr std::uint64_t kSkip = std::uint64_t{1} << 40;
  for (const bool fastLoss : {true, false}) {
    SCOPED_TRACE(fastLoss);
    Scenario s;
    // The next 3000 sends carry seqs 3000 + kSkip ...: same timing as a stream of 6000.
    Scenario whole = multipathScenario(3, 6000, {10'000, 60'000, 250'000}, 0.0);
    s.arrivals.clear();
    for (ArrivingPacket p : whole.arrivals) {
      if (p.globalSeq >= 3000) p.globalSeq += kSkip;
      s.arrivals.push_back(p);
    }
    ReorderOptions options = windowOptions(1024, 5'000'000);
    options.pathCount = 3;
    options.initialSeq = 0;
    options.fastLoss = fastLoss;
    auto reorderer = make(options);
    Recorder sink;
    // (Not runAndCheckContract: it would walk 2^40 lost seqs.)
    for (const auto& p : s.arrivals) reorderer->push(p, p.arrivalNs, sink);
    reorderer->flush(sink);
    expectStrictlyIncreasing(sink, 0);
    const ReorderStats stats = reorderer->stats();
    EXPECT_EQ(stats.held, 0U);
    EXPECT_EQ(stats.jumps, 1U);
    EXPECT_EQ(stats.late, 0U);  // the slow path's packets from before the jump all made it
    // Path 0 (10 us) runs ~80 packets ahead of path 2 (250 us), whose first packet
    // after the jump completes the evidence: what exceeds the 64 held is discarded.
    EXPECT_LE(stats.implausible, 30U);
    EXPECT_EQ(stats.implausible, sink.discarded.size());
    for (const auto& d : sink.discarded) EXPECT_EQ(d.reason, Reason::kImplausible);
    EXPECT_EQ(stats.delivered + stats.implausible, 6000U);
    // Every seq before the jump delivered; the skipped ones lost, as are the
    // discarded evidence packets, once.
    ASSERT_GE(sink.lostRuns.size(), 1U);
    EXPECT_EQ(sink.lostRuns[0].first, 3000U);
    EXPECT_EQ(stats.lost, kSkip + stats.implausible);
    const auto seqs = sink.deliveredSeqs();
    ASSERT_GE(seqs.size(), 3000U);
    EXPECT_EQ(seqs[2999], 2999U);
  }
}

TEST(WindowReordererTest, DeliversInOrderAndCountsOutOfOrderArrivals) {
  auto reorderer = make(windowOptions());
  Recorder sink;
  reorderer->push(pkt(0, 0, 0), 0, sink);
  reorderer->push(pkt(2, 1, 0), 10, sink);
  reorderer->push(pkt(3, 1, 1), 20, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0}));
  EXPECT_EQ(reorderer->stats().held, 2U);
  reorderer->push(pkt(1, 0, 1), 50, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(sink.delivered[2].holdNs, 40U);
  EXPECT_EQ(sink.delivered[3].holdNs, 30U);
  const ReorderStats stats = reorderer->stats();
  EXPECT_EQ(stats.outOfOrderArrived, 1U);
  EXPECT_EQ(stats.outOfOrderDelivered, 0U);
  EXPECT_EQ(stats.held, 0U);
  EXPECT_EQ(reorderer->nextDeadlineNs(), kMax);
}

TEST(WindowReordererTest, DuplicatesAndLateArrivalsAreDiscardedWithReason) {
  auto reorderer = make(windowOptions(64));
  Recorder sink;
  reorderer->push(pkt(0), 0, sink);
  reorderer->push(pkt(0), 1, sink);  // duplicate of a delivered packet
  reorderer->push(pkt(3, 1), 2, sink);
  reorderer->push(pkt(3, 1), 3, sink);  // duplicate of a held packet
  // 67 and 68 are beyond the window [1, 65), continuing path 0's numbers (the
  // only path): the head moves to 5, so 1, 2 and 4 are lost.
  reorderer->push(pkt(67, 0, 1), 4, sink);
  EXPECT_TRUE(sink.lostRuns.empty());  // one packet alone does not move the window
  reorderer->push(pkt(68, 0, 2), 5, sink);
  reorderer->push(pkt(2), 6, sink);  // late: declared lost
  ASSERT_EQ(sink.discarded.size(), 3U);
  EXPECT_EQ(sink.discarded[0].reason, Reason::kDuplicate);
  EXPECT_EQ(sink.discarded[1].reason, Reason::kDuplicate);
  EXPECT_EQ(sink.discarded[2].reason, Reason::kLate);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 2}, {4, 1}}));
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 3}));
  const ReorderStats stats = reorderer->stats();
  EXPECT_EQ(stats.duplicates, 2U);
  EXPECT_EQ(stats.late, 1U);
  EXPECT_EQ(stats.lost, 3U);
  EXPECT_EQ(stats.lostFast, 0U);
  EXPECT_EQ(stats.held, 2U);
  EXPECT_EQ(stats.jumps, 1U);
}

TEST(WindowReordererTest, PacketBelowStreamStartIsOutOfWindow) {
  auto reorderer = make(windowOptions());
  Recorder sink;
  reorderer->push(pkt(10), 0, sink);
  reorderer->push(pkt(9), 1, sink);
  ASSERT_EQ(sink.discarded.size(), 1U);
  EXPECT_EQ(sink.discarded[0].reason, Reason::kOutOfWindow);
  EXPECT_EQ(reorderer->stats().outOfWindow, 1U);
}

TEST(WindowReordererTest, InitialSeqHoldsPacketsThatOvertookTheFirst) {
  auto options = windowOptions();
  options.initialSeq = 100;
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  reorderer->push(pkt(101, 1, 0), 0, sink);
  EXPECT_TRUE(sink.delivered.empty());
  reorderer->push(pkt(100, 0, 0), 5, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{100, 101}));
}

TEST(WindowReordererTest, HoleIsReleasedExactlyWhenTheTimeoutPasses) {
  auto options = windowOptions(1024, 1000);
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  reorderer->push(pkt(0, 1, 0), 100, sink);  // path 1 has not passed seq 1: no fast loss
  reorderer->push(pkt(2, 0, 0), 100, sink);
  reorderer->push(pkt(3, 0, 1), 400, sink);
  // From the first packet held behind the hole; 4 timeouts while nothing arrives.
  EXPECT_EQ(reorderer->nextDeadlineNs(), 4100U);
  reorderer->poll(1099, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0}));
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->poll(1100, sink);  // a timeout passed, but nothing arrived since: stalled
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->push(pkt(5, 0, 2), 1100, sink);  // the stream flows on without seq 1
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 1}}));
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 2, 3}));
  EXPECT_EQ(sink.delivered[1].holdNs, 1000U);
  EXPECT_EQ(sink.delivered[2].holdNs, 700U);
  EXPECT_EQ(reorderer->stats().lostFast, 0U);
  EXPECT_EQ(reorderer->nextDeadlineNs(), 5100U);  // hole 4, 5 held since 1100
}

TEST(WindowReordererTest, TimeoutRestartsFromTheOldestPacketStillHeld) {
  auto options = windowOptions(1024, 1000);
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  reorderer->push(pkt(0, 1, 0), 0, sink);
  reorderer->push(pkt(2, 0, 0), 100, sink);       // hole 1
  reorderer->push(pkt(1, 1, 1), 600, sink);       // fills it: 1, 2 delivered
  reorderer->push(pkt(4, 0, 1), 700, sink);       // hole 3
  EXPECT_EQ(reorderer->nextDeadlineNs(), 4700U);  // nothing arrives after: 4 timeouts
  reorderer->poll(1600, sink);                    // path 1 still active (last at 600) and has not passed 3
  EXPECT_EQ(sink.lostCount(), 0U);
  reorderer->poll(4699, sink);  // a timeout passed, but nothing arrived since (stalled)
  EXPECT_EQ(sink.lostCount(), 0U);
  reorderer->poll(4700, sink);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 1}}));
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 4}));
}

TEST(WindowReordererTest, FastLossWhenEveryActivePathPassedTheHole) {
  auto options = windowOptions(1024, 1'000'000);
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  // Even seqs on path 0, odd on path 1; seq 2 (path 0, path seq 1) is lost in the network.
  reorderer->push(pkt(0, 0, 0), 0, sink);
  reorderer->push(pkt(1, 1, 0), 10, sink);
  reorderer->push(pkt(3, 1, 1), 20, sink);
  reorderer->push(pkt(4, 0, 2), 30, sink);  // path 0's gap covers seq 2
  reorderer->push(pkt(5, 1, 2), 40, sink);
  reorderer->push(pkt(6, 0, 3), 50, sink);
  reorderer->push(pkt(7, 1, 3), 60, sink);  // path 1 passed it by 3 packets, path 0 by 2
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->push(pkt(8, 0, 4), 70, sink);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2, 1}}));
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(reorderer->stats().lostFast, 1U);
  EXPECT_EQ(reorderer->stats().lost, 1U);
}

TEST(WindowReordererTest, NoFastLossWithoutAGapInSomePathsSeqs) {
  auto options = windowOptions(1024, 1'000'000);
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  // Seq 2 (path 0, path seq 1) is late on its path, which swapped it with seq 4: both
  // paths passed it by 3, but no path seq is missing beyond the swap, which seq 2 fills.
  reorderer->push(pkt(0, 0, 0), 0, sink);
  reorderer->push(pkt(1, 1, 0), 10, sink);
  reorderer->push(pkt(3, 1, 1), 20, sink);
  reorderer->push(pkt(5, 1, 2), 30, sink);
  reorderer->push(pkt(7, 1, 3), 40, sink);
  reorderer->push(pkt(4, 0, 2), 50, sink);  // opens a gap in path 0's seqs: seq 2 may be lost
  EXPECT_TRUE(sink.lostRuns.empty());       // path 0 passed it by one packet only
  reorderer->push(pkt(2, 0, 1), 60, sink);  // the swapped packet fills the gap
  reorderer->push(pkt(6, 0, 3), 70, sink);
  reorderer->push(pkt(8, 0, 4), 80, sink);
  EXPECT_TRUE(sink.lostRuns.empty());
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));

  // Same arrivals, but seq 2 never comes: the open gap proves it lost once path 0
  // also passed it by 3.
  auto second = make(options);
  Recorder sink2;
  for (const auto& [seq, path, pathSeq] :
       std::vector<std::tuple<std::uint64_t, std::uint16_t, std::uint32_t>>{
           {0, 0, 0}, {1, 1, 0}, {3, 1, 1}, {5, 1, 2}, {7, 1, 3}, {4, 0, 2}, {6, 0, 3}}) {
    second->push(pkt(seq, path, pathSeq), 100, sink2);
  }
  EXPECT_TRUE(sink2.lostRuns.empty());
  second->push(pkt(8, 0, 4), 100, sink2);
  EXPECT_EQ(sink2.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2, 1}}));
  EXPECT_EQ(second->stats().lostFast, 1U);
}

// Control packets (ACKs, pings) consume path packet numbers but are never pushed;
// observePath() tells the reorderer so that their numbers are not taken for holes.
// Path 1 is slow: its seq 3 is in flight while path 0 (silent path 1 inactive)
// passes it; path 0 sent a control packet between its data seqs 2 and 4.
TEST(WindowReordererTest, ObservedControlPacketsAreNotPathHoles) {
  for (const bool observe : {true, false}) {
    SCOPED_TRACE(observe);
    auto options = windowOptions(1024, 1000);
    options.pathCount = 2;
    options.initialSeq = 0;
    auto reorderer = make(options);
    Recorder sink;
    reorderer->push(pkt(0, 0, 0), 0, sink);
    reorderer->push(pkt(1, 1, 0), 0, sink);
    reorderer->push(pkt(2, 0, 1), 1500, sink);
    if (observe) reorderer->observePath(0, 2, 1500);  // an ACK
    reorderer->push(pkt(4, 0, 3), 1510, sink);        // hole 3: path 1's packet number 1, in flight
    if (observe) reorderer->observePath(0, 4, 1512);  // a ping
    reorderer->push(pkt(6, 0, 5), 1515, sink);
    reorderer->push(pkt(8, 0, 6), 1520, sink);  // path 0 passed 3 by 3; path 1 silent > timeout
    if (observe) {
      EXPECT_TRUE(sink.lostRuns.empty());
      reorderer->push(pkt(3, 1, 1), 1600, sink);
      EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));  // 5 is next on path 1
      EXPECT_EQ(reorderer->stats().lost, 0U);
      EXPECT_EQ(reorderer->stats().late, 0U);
    } else {
      // Unobserved, the ACK's number looks like a packet lost between 2 and 4.
      EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 1}}));
      EXPECT_EQ(reorderer->stats().lostFast, 1U);
    }
  }
}

TEST(WindowReordererTest, PathThatReordersInternallyCannotVouchForFastLoss) {
  auto options = windowOptions(1024, 1000);
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  reorderer->push(pkt(0, 0, 0), 0, sink);
  reorderer->push(pkt(1, 1, 0), 10, sink);
  reorderer->push(pkt(4, 0, 2), 20, sink);  // hole 2, 3; path 1 has not passed them
  reorderer->push(pkt(3, 0, 1), 30, sink);  // path 0's seq went backwards: not FIFO
  reorderer->push(pkt(5, 1, 1), 40, sink);  // path 1 passes the hole, path 0 cannot vouch
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1}));
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->poll(4019, sink);  // (4 timeouts: nothing arrived after the first)
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->poll(4020, sink);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2, 1}}));
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 3, 4, 5}));
  EXPECT_EQ(reorderer->stats().lostFast, 0U);
}

TEST(WindowReordererTest, UnseenPathHoldsFastLossOnlyDuringTheFirstTimeout) {
  auto options = windowOptions(1024, 1000);
  options.pathCount = 2;
  options.initialSeq = 0;
  auto reorderer = make(options);
  Recorder sink;
  reorderer->push(pkt(1, 1, 0), 0, sink);  // 0 may be on path 0, not heard from yet
  reorderer->push(pkt(2, 1, 1), 500, sink);
  EXPECT_TRUE(sink.delivered.empty());
  reorderer->push(pkt(0, 0, 0), 600, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2}));

  auto lonely = make(options);
  Recorder sink2;
  lonely->push(pkt(1, 1, 0), 0, sink2);
  lonely->push(pkt(3, 1, 2), 1001, sink2);  // path 0 silent for a whole timeout: path 1 alone decides
  EXPECT_EQ(sink2.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 1}}));
  lonely->push(pkt(4, 1, 3), 1002, sink2);
  lonely->push(pkt(5, 1, 4), 1003, sink2);  // 3 packets past 2, and path 1's seq 1 is missing
  EXPECT_EQ(sink2.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 1}, {2, 1}}));
  EXPECT_EQ(lonely->stats().lostFast, 1U);  // 0 timed out (held since 0), 2 was found fast
}

ArrivingPacket timed(std::uint64_t seq, std::uint16_t path, std::uint32_t pathSeq, std::uint64_t sendNs,
                     std::uint64_t delayNs) {
  ArrivingPacket p = pkt(seq, path, pathSeq);
  p.sendTsNs = sendNs;
  p.arrivalNs = sendNs + delayNs + 7'000'000'000ULL;  // receiver clock runs ahead by an unknown amount
  return p;
}

// Sends `packets` round robin over two paths with the given one-way delays and
// pushes them in arrival order.
struct TwoPathSender {
  Reorderer& reorderer;
  Recorder sink;
  std::uint64_t seq = 0;
  std::uint32_t pathSeq[2] = {0, 0};
  std::uint64_t pauseNs = 0;  // idle time inserted so far

  void send(std::uint64_t delay0, std::uint64_t delay1, int packets) {
    std::vector<ArrivingPacket> batch;
    for (int i = 0; i < packets; ++i, ++seq) {
      const auto path = static_cast<std::uint16_t>(seq % 2);
      batch.push_back(timed(seq, path, pathSeq[path]++, seq * 10'000 + pauseNs, path == 0 ? delay0 : delay1));
    }
    std::stable_sort(batch.begin(), batch.end(),
                     [](const auto& a, const auto& b) { return a.arrivalNs < b.arrivalNs; });
    for (const auto& p : batch) reorderer.push(p, p.arrivalNs, sink);
    reorderer.poll(batch.back().arrivalNs, sink);
  }
};

// A receiver that reads its links in pumps pushes each batch as of its previous
// pump (every link was drained then) and polls after reading every link. When the
// thread was descheduled longer than the timeout between two pumps, the packets
// read now must not count as held since the previous pump: the hole's packet, sent
// earlier on a slower path, comes in microseconds later (the next pump), it was
// not lost. The hold clock starts when the packet was read.
TEST(WindowReordererTest, DescheduledReceiverDoesNotTimeOutHolesItJustSaw) {
  auto options = windowOptions(1024, 5'000'000);
  options.pathCount = 3;
  options.fastLoss = false;
  auto reorderer = make(options);
  Recorder sink;
  auto readAt = [](std::uint64_t seq, std::uint64_t readNs) {
    ArrivingPacket p = pkt(seq, static_cast<std::uint16_t>(seq % 3), static_cast<std::uint32_t>(seq / 3));
    p.arrivalNs = readNs;
    return p;
  };
  const std::uint64_t pump0 = 1'000'000;
  for (std::uint64_t seq = 0; seq < 3; ++seq) reorderer->push(readAt(seq, pump0), pump0, sink);
  reorderer->poll(pump0, sink);
  // Descheduled for 20 ms. Pump 1 reads 3 (path 0) and 5 (path 2); 4 (path 1) is
  // still in flight. Both are pushed as of pump 0.
  const std::uint64_t pump1 = pump0 + 20'000'000;
  reorderer->push(readAt(3, pump1), pump0, sink);
  reorderer->push(readAt(5, pump1 + 1'000), pump0, sink);
  reorderer->poll(pump1 + 2'000, sink);
  EXPECT_TRUE(sink.lostRuns.empty());
  EXPECT_EQ(reorderer->nextDeadlineNs(), pump1 + 1'000 + 4 * 5'000'000);  // nothing arrives after
  // Pump 2, 50 us later: 4 arrived.
  reorderer->push(readAt(4, pump1 + 50'000), pump1 + 2'000, sink);
  reorderer->poll(pump1 + 51'000, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5}));
  // A packet that really went missing still times out, a timeout after its
  // successor was read, once the stream flows on without it.
  reorderer->push(readAt(7, pump1 + 60'000), pump1 + 51'000, sink);
  reorderer->poll(pump1 + 60'000 + 4'999'999, sink);
  EXPECT_TRUE(sink.lostRuns.empty());
  const std::uint64_t pump3 = pump1 + 60'000 + 5'000'000;
  reorderer->push(readAt(8, pump3), pump3, sink);
  reorderer->poll(pump3, sink);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{6, 1}}));
  const ReorderStats stats = reorderer->stats();
  EXPECT_EQ(stats.lost, 1U);
  EXPECT_EQ(stats.late, 0U);
}

// While nothing arrives on any path (a descheduled sender with the hole's packet
// still in one link's TX ring, measured on the test bed: every path silent for
// 11 ms, the packet 12 ms late), a passed timeout proves nothing: the hole waits
// until the stream flows on without it, or 4 timeouts.
TEST(WindowReordererTest, StalledStreamStretchesTheTimeout) {
  auto options = windowOptions(1024, 5'000'000);
  options.pathCount = 3;
  options.fastLoss = false;
  auto reorderer = make(options);
  Recorder sink;
  for (std::uint64_t seq = 0; seq < 3; ++seq)
    reorderer->push(pkt(seq, static_cast<std::uint16_t>(seq)), 0, sink);
  reorderer->push(pkt(4, 1, 1), 10'000, sink);  // 3 (path 0) stuck at the sender
  reorderer->push(pkt(5, 2, 1), 10'000, sink);
  reorderer->poll(11'000'000, sink);  // 11 ms of silence on every path
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->push(pkt(3, 0, 1), 12'000'000, sink);  // the sender ran again: 3 first
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(reorderer->stats().lost, 0U);
  // A packet lost just before the stream stops times out after 4 timeouts.
  reorderer->push(pkt(7, 1, 2), 13'000'000, sink);
  reorderer->poll(13'000'000 + 19'999'999, sink);
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->poll(13'000'000 + 20'000'000, sink);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{6, 1}}));
}

TEST(WindowReordererTest, AdaptiveTimeoutFollowsTheDelaySpread) {
  ReorderOptions options;
  options.pathCount = 2;
  options.timeoutMarginNs = 1'000'000;
  auto reorderer = make(options);
  TwoPathSender sender{*reorderer};
  sender.send(1'000'000, 4'000'000, 2000);
  EXPECT_NEAR(static_cast<double>(reorderer->stats().timeoutNs), 4'000'000.0, 20'000.0);
  // The timeout started at the maximum until both paths were heard from: nothing lost.
  EXPECT_EQ(reorderer->stats().lost, 0U);
  // The spread shrinks: the timeout keeps covering the 3 ms holds seen until that
  // memory has decayed (2 s), then follows the new spread.
  sender.send(1'000'000, 2'000'000, 2000);
  EXPECT_NEAR(static_cast<double>(reorderer->stats().timeoutNs), 4'000'000.0, 50'000.0);
  sender.pauseNs += 3'000'000'000ULL;
  sender.send(1'000'000, 2'000'000, 2000);
  EXPECT_NEAR(static_cast<double>(reorderer->stats().timeoutNs), 2'000'000.0, 20'000.0);
  // It grows at once.
  sender.send(3'000'000, 1'000'000, 2000);
  EXPECT_NEAR(static_cast<double>(reorderer->stats().timeoutNs), 3'000'000.0, 20'000.0);
}

TEST(WindowReordererTest, AdaptiveTimeoutRespectsTheClamp) {
  ReorderOptions options;
  options.pathCount = 2;
  options.timeoutMarginNs = 0;
  options.minTimeoutNs = 300'000;
  options.maxTimeoutNs = 50'000'000;
  auto reorderer = make(options);
  EXPECT_EQ(reorderer->stats().timeoutNs, 50'000'000U);  // delay of the paths not known yet
  TwoPathSender sender{*reorderer};
  sender.send(1'000'000, 1'000'000, 500);  // spread 0 -> minimum
  EXPECT_EQ(reorderer->stats().timeoutNs, 300'000U);
  sender.send(1'000'000, 81'000'000, 20000);  // 80 ms spread -> maximum
  EXPECT_EQ(reorderer->stats().timeoutNs, 50'000'000U);
}

TEST(WindowReordererTest, SequencesWrapAroundUint64Max) {
  auto options = windowOptions(64);
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  const std::vector<std::uint64_t> order = {kMax - 2, kMax, 0, kMax - 1, 2, 1};
  std::uint64_t now = 0;
  for (auto seq : order) reorderer->push(pkt(seq, static_cast<std::uint16_t>(seq & 1), 0), now += 10, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{kMax - 2, kMax - 1, kMax, 0, 1, 2}));
  reorderer->push(pkt(kMax), now, sink);
  ASSERT_EQ(sink.discarded.size(), 1U);
  EXPECT_EQ(sink.discarded[0].reason, Reason::kDuplicate);
  // Window [3, 67): 64 is held behind holes, 70 forces the head to 7.
  reorderer->push(pkt(64), now, sink);
  reorderer->push(pkt(70), now, sink);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 4}}));
}

// Range updates cross word boundaries and the ring's end, and touch nothing else.
TEST(SeqBitmapTest, RangesCrossWordsAndTheRingEnd) {
  detail::SeqBitmap occupied(128);
  detail::SeqBitmap delivered(128);
  const std::uint64_t first = 1000 * 128 + 120;  // slots 120 .. 127, then 0 .. 75
  occupied.assignRange(first, 84, true);
  delivered.set(first + 84);
  for (std::uint64_t seq = first - 10; seq < first + 100; ++seq) {
    EXPECT_EQ(occupied.test(seq), seq >= first && seq < first + 84) << seq;
  }
  EXPECT_EQ(occupied.find(first, 128, false), 84U);
  occupied.moveRange(delivered, first + 4, 70);
  for (std::uint64_t seq = first; seq < first + 90; ++seq) {
    const bool moved = seq >= first + 4 && seq < first + 74;
    EXPECT_EQ(occupied.test(seq), seq < first + 84 && !moved) << seq;
    EXPECT_EQ(delivered.test(seq), moved || seq == first + 84) << seq;
  }
  occupied.assignRange(first, 128, false);  // a whole ring's worth
  EXPECT_EQ(occupied.find(first, 128, true), 128U);
  delivered.assignRange(first + 8, 64, false);  // exactly one whole word: slots 0 .. 63
  EXPECT_EQ(delivered.find(first + 8, 64, true), 64U);
  EXPECT_TRUE(delivered.test(first + 72));
  EXPECT_TRUE(delivered.test(first + 4));
  EXPECT_FALSE(delivered.test(first + 2));
}

// A packet that arrives for the head is handed to the sink without being stored;
// the ones behind it come out of the ring with their hold time.
TEST(WindowReordererTest, HeadGoesOutOnArrivalAndTheRunBehindItKeepsItsHold) {
  auto options = windowOptions(64);
  options.pathCount = 2;
  auto reorderer = make(options);
  Recorder sink;
  reorderer->push(pkt(0, 0, 0, 100), 100, sink);
  reorderer->push(pkt(2, 0, 1, 200), 200, sink);
  reorderer->push(pkt(3, 1, 0, 300), 300, sink);
  EXPECT_EQ(reorderer->stats().held, 2U);
  reorderer->push(pkt(1, 1, 1, 450), 450, sink);
  ASSERT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(sink.delivered[0].holdNs, 0U);
  EXPECT_EQ(sink.delivered[1].holdNs, 0U);
  EXPECT_EQ(sink.delivered[2].holdNs, 250U);
  EXPECT_EQ(sink.delivered[3].holdNs, 150U);
  EXPECT_EQ(sink.delivered[3].packet.pathId, 1U);
  EXPECT_EQ(sink.delivered[3].packet.sendTsNs, 300U);
  EXPECT_EQ(reorderer->stats().held, 0U);
  EXPECT_EQ(reorderer->nextDeadlineNs(), kMax);
  // The head again, with nothing held; then its duplicate.
  reorderer->push(pkt(4, 0, 2, 500), 500, sink);
  reorderer->push(pkt(4, 0, 2, 510), 510, sink);
  EXPECT_EQ(sink.deliveredSeqs().back(), 4U);
  ASSERT_EQ(sink.discarded.size(), 1U);
  EXPECT_EQ(sink.discarded[0].reason, Reason::kDuplicate);
  const ReorderStats stats = reorderer->stats();
  EXPECT_EQ(stats.delivered, 5U);
  EXPECT_EQ(stats.outOfOrderArrived, 1U);
}

// Whatever way a packet leaves the window reorderer (on arrival, once its hole is
// filled, after a timeout, a forced window move or a jump, at flush; or discarded),
// deliver() and discard() get the record that was pushed, every field of it, even
// after the ring wrapped many times; and the hold is the time since it arrived.
TEST(WindowReordererTest, SinkGetsEachPushedRecordWholeAfterManyWraps) {
  struct TimedRecorder final : DeliverySink {
    std::uint64_t nowNs = 0;  // the time of the push, poll or flush under way
    std::vector<std::pair<ArrivingPacket, std::uint64_t>> delivered;  // record, expected hold
    std::vector<Recorder::Delivery> got;
    std::vector<ArrivingPacket> discarded;
    void deliver(const ArrivingPacket& packet, std::uint64_t holdNs) override {
      got.push_back({packet, holdNs});
      delivered.emplace_back(packet, nowNs - packet.arrivalNs);
    }
    void lost(std::uint64_t /*firstSeq*/, std::uint64_t /*count*/) override {}
    void discard(const ArrivingPacket& packet, Reason /*reason*/) override { discarded.push_back(packet); }
  };
  auto same = [](const ArrivingPacket& a, const ArrivingPacket& b) {
    return a.globalSeq == b.globalSeq && a.pathId == b.pathId && a.pathPacketNumber == b.pathPacketNumber &&
           a.sendTsNs == b.sendTsNs && a.arrivalNs == b.arrivalNs && a.cookie == b.cookie;
  };
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    const std::uint64_t firstSeq = seed % 2 == 0 ? kMax - 1000 : seed * 7919;
    Scenario s = permutedScenario(seed, firstSeq, 4000, seed % 4 == 0 ? 150 : 40, 0.02, 0.01);
    std::map<std::uint64_t, ArrivingPacket> pushed;  // by cookie
    for (ArrivingPacket& p : s.arrivals) {
      p.sendTsNs = p.arrivalNs - 1000 - p.cookie % 977;  // distinct per record
      pushed[p.cookie] = p;
    }
    auto options = windowOptions(64, 20'000);  // 4000 packets: the ring wraps ~60 times
    options.pathCount = 3;
    options.initialSeq = firstSeq;
    auto reorderer = make(options);
    TimedRecorder sink;
    for (const ArrivingPacket& p : s.arrivals) {
      sink.nowNs = p.arrivalNs;
      reorderer->push(p, p.arrivalNs, sink);
      if (p.cookie % 5 == 0) reorderer->poll(p.arrivalNs, sink);
    }
    reorderer->flush(sink);  // at the last time pushed or polled, which nowNs still holds
    ASSERT_EQ(sink.got.size() + sink.discarded.size(), s.arrivals.size());
    const ReorderStats stats = reorderer->stats();
    for (std::size_t i = 0; i < sink.got.size(); ++i) {
      const ArrivingPacket& got = sink.got[i].packet;
      ASSERT_TRUE(same(got, pushed.at(got.cookie))) << "delivery " << i << " seq " << got.globalSeq;
      // (Evidence of a jump is held from when the jump is followed, not from its arrival.)
      if (stats.jumps == 0) {
        ASSERT_EQ(sink.got[i].holdNs, sink.delivered[i].second) << "delivery " << i;
      } else {
        ASSERT_LE(sink.got[i].holdNs, sink.delivered[i].second) << "delivery " << i;
      }
    }
    for (const ArrivingPacket& got : sink.discarded) ASSERT_TRUE(same(got, pushed.at(got.cookie)));
    EXPECT_EQ(stats.held, 0U);
    EXPECT_GT(stats.lost, 0U);
    if (seed % 4 == 0) {
      EXPECT_GT(stats.implausible + stats.late + stats.outOfWindow, 0U);
    }
  }
}

// A path of the real test bed: a FIFO queue whose delay wanders (a bounded random
// walk: CPU contention on a loaded VM) plus per-packet noise, which still keeps
// the path FIFO except for rare adjacent swaps (a sender thread migrating between
// CPUs enqueues consecutive packets on different backlog queues).
struct JitterPath {
  std::uint64_t meanDelayNs = 1'000'000;
  std::uint64_t wanderNs = 0;  // the slow component stays within +-wanderNs
  std::uint64_t noiseNs = 0;   // per-packet Gaussian sigma, clipped at 3 sigma
  double swapRate = 0.0;       // chance that a packet swaps places with its path predecessor
};

struct JitterRun {
  std::uint64_t lost = 0;
  std::uint64_t lostFast = 0;
  std::uint64_t late = 0;
  std::uint64_t falseLoss = 0;         // seqs declared lost that were not dropped
  std::uint64_t missedDrops = 0;       // dropped seqs (below the highest) not declared lost
  std::uint64_t maxTimeoutSeenNs = 0;  // after the first quarter of the stream (startup: maxTimeoutNs)
};

// Sprays `count` packets round robin, one every sendGapNs, drops dropRate of them,
// and pushes them in arrival order with a timer-accurate poll loop.
JitterRun runJitter(const ReorderOptions& options, const std::vector<JitterPath>& paths, std::uint64_t count,
                    std::uint64_t sendGapNs, double dropRate, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> gauss(0.0, 1.0);
  const std::size_t n = paths.size();
  std::vector<double> wander(n, 0.0);
  std::vector<std::uint32_t> pathSeq(n, 0);
  std::vector<std::uint64_t> lastArrival(n, 0);
  std::vector<std::int64_t> lastIndex(n, -1);  // index in `sent` of the path's previous packet
  struct Sent {
    ArrivingPacket packet;
    bool dropped;
  };
  std::vector<Sent> sent;
  std::set<std::uint64_t> dropped;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::size_t p = i % n;
    const JitterPath& model = paths[p];
    const double w = static_cast<double>(model.wanderNs);
    wander[p] = std::clamp(wander[p] + (unit(rng) - 0.5) * w / 4.0, -w, w);
    const double noise = std::clamp(gauss(rng), -3.0, 3.0) * static_cast<double>(model.noiseNs);
    const double delay = std::max(0.0, static_cast<double>(model.meanDelayNs) + wander[p] + noise);
    ArrivingPacket packet = pkt(i, static_cast<std::uint16_t>(p), pathSeq[p]++);
    packet.sendTsNs = 3'000'000'000ULL + i * sendGapNs;
    // FIFO: never before the path's previous packet.
    const std::uint64_t arrival =
        std::max(lastArrival[p] + 1, 1'000'000 + i * sendGapNs + static_cast<std::uint64_t>(delay));
    packet.arrivalNs = arrival;
    const bool drop = i > 0 && unit(rng) < dropRate;
    if (drop) dropped.insert(i);
    sent.push_back({packet, drop});
    if (!drop) {
      lastArrival[p] = arrival;
      if (lastIndex[p] >= 0 && unit(rng) < model.swapRate) {
        auto& previous = sent[static_cast<std::size_t>(lastIndex[p])].packet;
        std::swap(previous.arrivalNs, sent.back().packet.arrivalNs);
      }
      lastIndex[p] = static_cast<std::int64_t>(sent.size() - 1);
    }
  }
  std::vector<ArrivingPacket> arrivals;
  for (const auto& s : sent) {
    if (!s.dropped) arrivals.push_back(s.packet);
  }
  std::stable_sort(arrivals.begin(), arrivals.end(),
                   [](const auto& a, const auto& b) { return a.arrivalNs < b.arrivalNs; });

  auto reorderer = make(options);
  Recorder sink;
  JitterRun run;
  std::size_t pushed = 0;
  for (const auto& p : arrivals) {
    for (std::uint64_t deadline = reorderer->nextDeadlineNs(); deadline <= p.arrivalNs;) {
      reorderer->poll(deadline, sink);
      const std::uint64_t after = reorderer->nextDeadlineNs();
      if (after == deadline) break;
      deadline = after;
    }
    reorderer->push(p, p.arrivalNs, sink);
    if (++pushed > arrivals.size() / 4) {
      run.maxTimeoutSeenNs = std::max(run.maxTimeoutSeenNs, reorderer->stats().timeoutNs);
    }
  }
  reorderer->flush(sink);
  const ReorderStats stats = reorderer->stats();
  run.lost = stats.lost;
  run.lostFast = stats.lostFast;
  run.late = stats.late;
  std::uint64_t highest = 0;
  for (const auto& p : arrivals) highest = std::max(highest, p.globalSeq);
  std::set<std::uint64_t> declared;
  for (const auto& [first, runCount] : sink.lostRuns) {
    for (std::uint64_t k = 0; k < runCount; ++k) declared.insert(first + k);
  }
  for (auto seq : declared) run.falseLoss += dropped.count(seq) == 0 ? 1 : 0;
  for (auto seq : dropped) run.missedDrops += seq < highest && declared.count(seq) == 0 ? 1 : 0;
  return run;
}

// Three paths shaped like the test bed's veth links on a loaded 2-vCPU VM: means
// 0.5 / 1.5 / 3 ms, delay wandering by +-3 ms, 0.4 ms noise; ~75 kpps in total.
std::vector<JitterPath> testBedPaths(double swapRate) {
  return {{500'000, 3'000'000, 400'000, swapRate},
          {1'500'000, 3'000'000, 400'000, swapRate},
          {3'000'000, 3'000'000, 400'000, swapRate}};
}

std::string describe(const JitterRun& run) {
  return "lost " + std::to_string(run.lost) + " (fast " + std::to_string(run.lostFast) + "), false " +
         std::to_string(run.falseLoss) + ", late " + std::to_string(run.late) + ", missed drops " +
         std::to_string(run.missedDrops) + ", max timeout " + std::to_string(run.maxTimeoutSeenNs);
}

TEST(WindowReordererJitterTest, AdaptiveTimeoutNeverLosesJitteryPacketsButFindsDrops) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    ReorderOptions options;
    options.pathCount = 3;
    options.initialSeq = 0;
    options.fastLoss = false;  // the timeout alone decides
    const JitterRun clean = runJitter(options, testBedPaths(0.0), 100'000, 13'000, 0.0, seed);
    EXPECT_EQ(clean.falseLoss, 0U) << describe(clean);
    EXPECT_EQ(clean.late, 0U) << describe(clean);
    const JitterRun lossy = runJitter(options, testBedPaths(0.0), 100'000, 13'000, 0.005, seed);
    EXPECT_EQ(lossy.falseLoss, 0U) << describe(lossy);
    EXPECT_EQ(lossy.missedDrops, 0U) << describe(lossy);
    EXPECT_GT(lossy.lost, 300U) << describe(lossy);
    // The timeout stays far below the 100 ms cap: holes are still released quickly.
    EXPECT_LT(lossy.maxTimeoutSeenNs, 40'000'000U) << describe(lossy);
  }
}

TEST(WindowReordererJitterTest, FastLossSurvivesSmallWithinPathReordering) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    ReorderOptions options;
    options.pathCount = 3;
    options.initialSeq = 0;
    // Fixed 20 ms, as measured on the test bed: the timeout itself is ample.
    options.adaptiveTimeout = false;
    options.fixedTimeoutNs = 20'000'000;
    const JitterRun clean = runJitter(options, testBedPaths(0.01), 100'000, 13'000, 0.0, seed);
    EXPECT_EQ(clean.falseLoss, 0U) << describe(clean);
    EXPECT_EQ(clean.late, 0U) << describe(clean);
    const JitterRun lossy = runJitter(options, testBedPaths(0.01), 100'000, 13'000, 0.005, seed);
    EXPECT_EQ(lossy.falseLoss, 0U) << describe(lossy);
    EXPECT_EQ(lossy.missedDrops, 0U) << describe(lossy);
    // Per-path gaps prove most drops: they are found without waiting for the timeout.
    EXPECT_GT(lossy.lostFast * 2, lossy.lost) << describe(lossy);
    // Calm paths (small skew and noise): every path passes a swapped packet at once.
    const std::vector<JitterPath> calm = {
        {1'000'000, 0, 20'000, 0.01}, {1'100'000, 0, 20'000, 0.01}, {1'200'000, 0, 20'000, 0.01}};
    const JitterRun calmClean = runJitter(options, calm, 100'000, 13'000, 0.0, seed);
    EXPECT_EQ(calmClean.falseLoss, 0U) << describe(calmClean);
    const JitterRun calmLossy = runJitter(options, calm, 100'000, 13'000, 0.005, seed);
    EXPECT_EQ(calmLossy.falseLoss, 0U) << describe(calmLossy);
    EXPECT_EQ(calmLossy.missedDrops, 0U) << describe(calmLossy);
    EXPECT_GT(calmLossy.lostFast * 2, calmLossy.lost) << describe(calmLossy);
  }
}

TEST(WindowReordererJitterTest, AdaptiveTimeoutWithFastLossOnTheTestBedShape) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    ReorderOptions options;
    options.pathCount = 3;
    options.initialSeq = 0;
    const JitterRun clean = runJitter(options, testBedPaths(0.01), 100'000, 13'000, 0.0, seed);
    EXPECT_EQ(clean.falseLoss, 0U) << describe(clean);
    EXPECT_EQ(clean.late, 0U) << describe(clean);
    const JitterRun lossy = runJitter(options, testBedPaths(0.01), 100'000, 13'000, 0.005, seed);
    EXPECT_EQ(lossy.falseLoss, 0U) << describe(lossy);
    EXPECT_EQ(lossy.missedDrops, 0U) << describe(lossy);
  }
}

TEST(BaselineReordererTest, SortAndOffSettleEveryPacketAndSeqExactlyOnce) {
  for (ReorderKind kind : {ReorderKind::kSort, ReorderKind::kOff}) {
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
      SCOPED_TRACE(std::string(toString(kind)) + " seed " + std::to_string(seed));
      const std::uint64_t firstSeq = seed % 2 == 0 ? kMax - 300 : seed;
      const Scenario s = permutedScenario(seed, firstSeq, 3000, seed % 3 == 0 ? 300 : 40, 0.02, 0.02);
      ReorderOptions options;
      options.kind = kind;
      options.windowPackets = 128;
      options.sortCapacityPackets = 32;
      options.sortIntervalNs = 1000;
      options.initialSeq = firstSeq;
      auto reorderer = make(options);
      Recorder sink;
      runAndCheckContract(*reorderer, s, sink, seed % 2 == 1);
      for (const auto& d : sink.discarded) {
        if (d.reason == Reason::kLate) {
          EXPECT_EQ(s.dropped.count(d.packet.globalSeq), 0U);
        }
        if (d.reason == Reason::kDuplicate) {
          EXPECT_EQ(s.duplicatedSeqs.count(d.packet.globalSeq), 1U);
        }
      }
    }
  }
}

TEST(BaselineReordererTest, OffDeliversInArrivalOrderAndReportsHolesOnFlush) {
  ReorderOptions options;
  options.kind = ReorderKind::kOff;
  auto reorderer = make(options);
  Recorder sink;
  for (std::uint64_t seq : {0, 2, 1, 5, 4}) reorderer->push(pkt(seq), 0, sink);
  reorderer->push(pkt(4), 0, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 2, 1, 5, 4}));
  EXPECT_TRUE(sink.lostRuns.empty());
  reorderer->flush(sink);
  EXPECT_EQ(sink.lostRuns, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 1}}));
  reorderer->push(pkt(3), 0, sink);
  ASSERT_EQ(sink.discarded.size(), 2U);
  EXPECT_EQ(sink.discarded[0].reason, Reason::kDuplicate);
  EXPECT_EQ(sink.discarded[1].reason, Reason::kLate);
  const ReorderStats stats = reorderer->stats();
  EXPECT_EQ(stats.outOfOrderArrived, 2U);
  EXPECT_EQ(stats.outOfOrderDelivered, 2U);
  EXPECT_EQ(reorderer->nextDeadlineNs(), kMax);
}

TEST(BaselineReordererTest, SortReleasesWhenFullOrWhenTheTimerFires) {
  ReorderOptions options;
  options.kind = ReorderKind::kSort;
  options.sortCapacityPackets = 4;
  options.sortIntervalNs = 1000;
  options.fixedTimeoutNs = 3000;  // how long packets above a hole are held
  options.initialSeq = 0;
  auto reorderer = make(options);
  Recorder sink;
  for (std::uint64_t seq : {1, 0, 3, 2}) reorderer->push(pkt(seq), 10, sink);  // full: sorted batch
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(reorderer->stats().sorts, 1U);
  reorderer->push(pkt(6), 100, sink);
  reorderer->push(pkt(5), 200, sink);
  EXPECT_EQ(reorderer->nextDeadlineNs(), 1100U);  // the timer started with the first held packet
  reorderer->poll(1099, sink);
  EXPECT_EQ(reorderer->stats().sorts, 1U);
  reorderer->poll(1100, sink);  // tick: sorted, but 4 is missing: nothing in order to release
  EXPECT_EQ(reorderer->stats().sorts, 2U);
  EXPECT_EQ(sink.delivered.size(), 4U);
  EXPECT_EQ(reorderer->nextDeadlineNs(), 2100U);
  reorderer->poll(2100, sink);  // the whole buffer is sorted again on every tick
  EXPECT_EQ(reorderer->stats().sorts, 3U);
  EXPECT_EQ(sink.delivered.size(), 4U);
  reorderer->poll(3100, sink);  // 6 has been held 3000 ns: the sorted buffer goes out
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3, 5, 6}));
  EXPECT_EQ(sink.delivered[4].holdNs, 2900U);
  EXPECT_EQ(reorderer->nextDeadlineNs(), kMax);
  reorderer->push(pkt(4), 3200, sink);  // after its batch: delivered out of order
  reorderer->flush(sink);
  EXPECT_EQ(sink.deliveredSeqs().back(), 4U);
  EXPECT_EQ(reorderer->stats().outOfOrderDelivered, 1U);
  EXPECT_EQ(reorderer->stats().outOfOrderArrived, 4U);  // 0, 2, 5, 4
  EXPECT_TRUE(sink.lostRuns.empty());
}

TEST(BaselineReordererTest, SortTickReleasesTheInOrderPrefixAndHoldsTheRest) {
  ReorderOptions options;
  options.kind = ReorderKind::kSort;
  options.sortCapacityPackets = 8;
  options.sortIntervalNs = 1000;
  options.fixedTimeoutNs = 10'000;
  options.initialSeq = 0;
  auto reorderer = make(options);
  Recorder sink;
  for (std::uint64_t seq : {2, 0, 4, 1}) reorderer->push(pkt(seq), 0, sink);
  reorderer->poll(1000, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2}));
  EXPECT_EQ(reorderer->stats().held, 1U);  // 4 waits for 3
  reorderer->push(pkt(3), 1500, sink);
  reorderer->poll(2000, sink);
  EXPECT_EQ(sink.deliveredSeqs(), (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(sink.delivered[4].holdNs, 2000U);
  EXPECT_EQ(reorderer->stats().sorts, 2U);
  EXPECT_EQ(reorderer->stats().outOfOrderDelivered, 0U);
}

TEST(ReordererFactoryTest, RejectsBadOptions) {
  ReorderOptions options;
  options.windowPackets = 1000;
  EXPECT_FALSE(makeReorderer(options).ok());
  options.windowPackets = 32;
  EXPECT_FALSE(makeReorderer(options).ok());
  options.windowPackets = 1024;
  options.pathCount = 0;
  EXPECT_FALSE(makeReorderer(options).ok());
  options.pathCount = kMaxReorderPaths + 1;
  EXPECT_FALSE(makeReorderer(options).ok());
  options.pathCount = 2;
  options.minTimeoutNs = 10;
  options.maxTimeoutNs = 5;
  auto bad = makeReorderer(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  options.maxTimeoutNs = 50;
  EXPECT_TRUE(makeReorderer(options).ok());
  options.kind = ReorderKind::kSort;
  options.sortCapacityPackets = 0;
  EXPECT_FALSE(makeReorderer(options).ok());
}

TEST(ReordererFactoryTest, ParsesKindNames) {
  for (ReorderKind kind : {ReorderKind::kWindow, ReorderKind::kSort, ReorderKind::kOff}) {
    auto parsed = parseReorderKind(toString(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_FALSE(parseReorderKind("quick").ok());
}

}  // namespace
}  // namespace mpxdp::reorder
