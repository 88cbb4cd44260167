#include "ack_tracker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

namespace mpxdp::wire {
// For EXPECT_EQ on range lists (found by argument-dependent lookup).
bool operator==(const AckRange& a, const AckRange& b) {
  return a.smallest == b.smallest && a.largest == b.largest;
}
}  // namespace mpxdp::wire

namespace mpxdp::conn {
namespace {

std::vector<wire::AckRange> rangesOf(const wire::AckFrame& ack) {
  return {ack.ranges.begin(), ack.ranges.begin() + ack.rangeCount};
}

// The ranges a set of received numbers should give, newest first, at most kMaxRanges.
std::vector<wire::AckRange> expectedRanges(const std::set<std::uint64_t>& got) {
  std::vector<wire::AckRange> ranges;
  for (auto it = got.rbegin(); it != got.rend(); ++it) {
    if (!ranges.empty() && ranges.back().smallest == *it + 1) {
      ranges.back().smallest = *it;
    } else {
      ranges.push_back({*it, *it});
    }
  }
  if (ranges.size() > AckTracker::kMaxRanges) ranges.resize(AckTracker::kMaxRanges);
  return ranges;
}

TEST(AckTracker, InOrderArrivalsFormOneRange) {
  AckTracker t;
  for (std::uint64_t pn = 0; pn < 100; ++pn) ASSERT_TRUE(t.onPacket(pn, 1000 + pn, 100, true));
  EXPECT_EQ(t.unacked(), 100u);
  EXPECT_EQ(t.firstUnackedNs(), 1000u);
  const wire::AckFrame ack = t.makeAck(3, 1199 + 500'000);
  EXPECT_EQ(ack.pathId, 3u);
  ASSERT_EQ(ack.rangeCount, 1u);
  EXPECT_EQ(ack.ranges[0].smallest, 0u);
  EXPECT_EQ(ack.ranges[0].largest, 99u);
  EXPECT_EQ(ack.largestRecvTsNs, 1099u);
  EXPECT_EQ(ack.ackDelayUs, 500u);
  EXPECT_EQ(ack.bytesReceived, 10'000u);
  EXPECT_EQ(t.unacked(), 0u);
}

TEST(AckTracker, GapsAndLateFillsMergeRanges) {
  AckTracker t;
  for (std::uint64_t pn : {0, 1, 2, 5, 6, 9}) t.onPacket(pn, 0, 1, true);
  EXPECT_EQ(rangesOf(t.makeAck(0, 0)), (std::vector<wire::AckRange>{{9, 9}, {5, 6}, {0, 2}}));
  t.onPacket(4, 0, 1, true);  // joins the range above
  t.onPacket(3, 0, 1, true);  // fills the gap: merges
  EXPECT_EQ(rangesOf(t.makeAck(0, 0)), (std::vector<wire::AckRange>{{9, 9}, {0, 6}}));
  t.onPacket(8, 0, 1, true);
  t.onPacket(7, 0, 1, true);
  EXPECT_EQ(rangesOf(t.makeAck(0, 0)), (std::vector<wire::AckRange>{{0, 9}}));
}

TEST(AckTracker, DuplicatesAreRefusedAndNotCounted) {
  AckTracker t;
  for (std::uint64_t pn : {0, 1, 2, 5}) t.onPacket(pn, 0, 10, true);
  EXPECT_FALSE(t.onPacket(1, 0, 10, true));
  EXPECT_FALSE(t.onPacket(5, 0, 10, true));
  EXPECT_EQ(t.duplicates(), 2u);
  EXPECT_EQ(t.bytesReceived(), 40u);
}

TEST(AckTracker, AckOnlyPacketsDoNotElicitAnAck) {
  AckTracker t;
  t.onPacket(0, 0, 10, false);
  EXPECT_EQ(t.unacked(), 0u);
  t.onPacket(1, 7, 10, true);
  EXPECT_EQ(t.unacked(), 1u);
  EXPECT_EQ(t.firstUnackedNs(), 7u);
}

TEST(AckTracker, MatchesASetUnderRandomReorderingAndKeepsTheNewestRanges) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    AckTracker t;
    std::set<std::uint64_t> got;
    std::vector<std::uint64_t> order;
    for (std::uint64_t pn = 0; pn < 300; ++pn) {
      if (rng() % 5 != 0) order.push_back(pn);  // 20 % never arrive
    }
    // Local shuffles: each number moves at most a few places.
    for (std::size_t i = 0; i + 1 < order.size(); ++i) {
      if (rng() % 4 == 0) std::swap(order[i], order[std::min(order.size() - 1, i + 1 + rng() % 6)]);
    }
    for (std::uint64_t pn : order) {
      t.onPacket(pn, 0, 1, true);
      got.insert(pn);
      const auto expected = expectedRanges(got);
      // Ranges beyond the oldest kept may be forgotten; the newest ones are exact.
      const auto ranges = rangesOf(t.makeAck(0, 0));
      ASSERT_FALSE(ranges.empty());
      const std::size_t check =
          std::min(ranges.size(), expected.size()) - 1;  // the oldest kept may be cut short
      for (std::size_t i = 0; i < check; ++i)
        ASSERT_EQ(ranges[i], expected[i]) << "round " << round << " range " << i;
      ASSERT_LE(ranges.size(), AckTracker::kMaxRanges);
    }
  }
}

}  // namespace
}  // namespace mpxdp::conn
