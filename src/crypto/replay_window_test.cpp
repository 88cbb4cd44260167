// The anti-replay window against a plain set of every number accepted.
#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <set>

#include "packet_protection.h"

namespace mpxdp::crypto {
namespace {

using Verdict = ReplayWindow::Verdict;

TEST(ReplayWindowTest, FirstPacketAnyNumberAndZero) {
  ReplayWindow w;
  EXPECT_EQ(w.check(0), Verdict::kNew);
  EXPECT_EQ(w.check(123456789), Verdict::kNew);
  w.accept(0);
  EXPECT_EQ(w.check(0), Verdict::kDuplicate);
  EXPECT_EQ(w.check(1), Verdict::kNew);
  EXPECT_EQ(w.highest(), 0u);

  ReplayWindow high;
  high.accept(1'000'000);
  EXPECT_EQ(high.check(1'000'000), Verdict::kDuplicate);
  EXPECT_EQ(high.check(999'999), Verdict::kNew);  // reordered before the first one
  EXPECT_EQ(high.check(1'000'000 - kReplayWindowPackets), Verdict::kTooOld);
}

TEST(ReplayWindowTest, WindowEdges) {
  ReplayWindow w;
  for (std::uint64_t n = 0; n <= 20000; ++n) {
    ASSERT_EQ(w.check(n), Verdict::kNew) << n;
    w.accept(n);
    ASSERT_EQ(w.check(n), Verdict::kDuplicate) << n;
    if (n >= kReplayWindowPackets - 1) {
      ASSERT_EQ(w.check(n - (kReplayWindowPackets - 1)), Verdict::kDuplicate) << n;
    }
    if (n >= kReplayWindowPackets) {
      ASSERT_EQ(w.check(n - kReplayWindowPackets), Verdict::kTooOld) << n;
    }
  }
}

TEST(ReplayWindowTest, OutOfOrderWithinTheWindow) {
  ReplayWindow w;
  w.accept(100);
  w.accept(5000);
  EXPECT_EQ(w.check(101), Verdict::kNew);
  EXPECT_EQ(w.check(4999), Verdict::kNew);
  w.accept(4999);
  w.accept(101);
  EXPECT_EQ(w.check(4999), Verdict::kDuplicate);
  EXPECT_EQ(w.check(101), Verdict::kDuplicate);
  EXPECT_EQ(w.check(100), Verdict::kDuplicate);
  EXPECT_EQ(w.check(102), Verdict::kNew);
  EXPECT_EQ(w.highest(), 5000u);
}

TEST(ReplayWindowTest, JumpsClearTheSkippedWords) {
  ReplayWindow w;
  for (std::uint64_t n = 0; n < 8192; ++n) w.accept(n);
  // Ahead by two words: the numbers skipped are new (their bits were of 0..8191's ring).
  w.accept(8191 + 128);
  for (std::uint64_t n = 8192; n < 8191 + 128; ++n) ASSERT_EQ(w.check(n), Verdict::kNew) << n;
  // A jump far ahead empties the window.
  w.accept(10'000'000);
  for (std::uint64_t n = 10'000'000 - kReplayWindowPackets + 1; n < 10'000'000; ++n) {
    ASSERT_EQ(w.check(n), Verdict::kNew) << n;
  }
  EXPECT_EQ(w.check(8191 + 128), Verdict::kTooOld);
  // Exactly one ring ahead (the same word index): still cleared.
  ReplayWindow ring;
  for (std::uint64_t n = 0; n < 64; ++n) ring.accept(n);
  ring.accept(64 * 129);
  for (std::uint64_t n = 64 * 129 + 1; n < 64 * 130; ++n) ASSERT_EQ(ring.check(n), Verdict::kNew) << n;
}

TEST(ReplayWindowTest, NearTheTopOfTheNumberSpace) {
  ReplayWindow w;
  const std::uint64_t top = std::numeric_limits<std::uint64_t>::max();
  w.accept(top - 1);
  EXPECT_EQ(w.check(top), Verdict::kNew);
  w.accept(top);
  EXPECT_EQ(w.check(top), Verdict::kDuplicate);
  EXPECT_EQ(w.check(top - 1), Verdict::kDuplicate);
  EXPECT_EQ(w.check(top - 2), Verdict::kNew);
  EXPECT_EQ(w.check(top - kReplayWindowPackets), Verdict::kTooOld);
}

TEST(ReplayWindowTest, MatchesAReferenceUnderRandomTraffic) {
  std::mt19937_64 rng(42);
  ReplayWindow w;
  std::set<std::uint64_t> seen;
  std::uint64_t highest = 0;
  bool any = false;
  std::uint64_t next = 0;
  for (int i = 0; i < 200000; ++i) {
    std::uint64_t n = 0;
    switch (rng() % 8) {
      case 0:  // a replay of something recent
        n = highest - std::min<std::uint64_t>(highest, rng() % 100);
        break;
      case 1:  // late, maybe beyond the window
        n = highest - std::min<std::uint64_t>(highest, rng() % 10000);
        break;
      case 2:  // a jump ahead
        next += rng() % 20000;
        n = next++;
        break;
      default:
        next += rng() % 3;
        n = next++;
        break;
    }
    Verdict expected = Verdict::kNew;
    if (any && n <= highest) {
      if (highest - n >= kReplayWindowPackets) {
        expected = Verdict::kTooOld;
      } else if (seen.count(n) != 0) {
        expected = Verdict::kDuplicate;
      }
    }
    ASSERT_EQ(w.check(n), expected) << "step " << i << " number " << n << " highest " << highest;
    if (expected == Verdict::kNew) {
      w.accept(n);
      seen.insert(n);
      if (!any || n > highest) highest = n;
      any = true;
      next = std::max(next, highest + 1);
    }
    // Forget what fell out of the window.
    while (!seen.empty() && highest - *seen.begin() >= kReplayWindowPackets) seen.erase(seen.begin());
  }
}

}  // namespace
}  // namespace mpxdp::crypto
