#include "sent_packets.h"

#include <gtest/gtest.h>

#include <vector>

namespace mpxdp::conn {
namespace {

wire::AckFrame ackOf(std::initializer_list<wire::AckRange> ranges) {
  wire::AckFrame ack;
  for (const auto& r : ranges) ack.ranges[ack.rangeCount++] = r;
  return ack;
}

constexpr std::uint64_t kMs = 1'000'000;

TEST(SentPacketLogTest, AcknowledgesRangesOnce) {
  SentPacketLog log(64);
  for (std::uint64_t pn = 0; pn < 10; ++pn) log.onSent(pn, pn * kMs, 1000, true);
  EXPECT_EQ(log.packetsInFlight(), 10U);
  auto out = log.onAck(ackOf({{0, 4}}), 20 * kMs, 100 * kMs);
  EXPECT_EQ(out.newlyAckedPackets, 5U);
  EXPECT_EQ(out.newlyAckedBytes, 5000U);
  EXPECT_TRUE(out.largestNewlyAcked);
  EXPECT_TRUE(out.largestKnown);
  EXPECT_EQ(out.largestSendTsNs, 4 * kMs);
  EXPECT_EQ(out.newestAckedSendTsNs, 4 * kMs);
  EXPECT_EQ(out.lost.packets, 0U);
  // The same ACK again changes nothing.
  out = log.onAck(ackOf({{0, 4}}), 21 * kMs, 100 * kMs);
  EXPECT_EQ(out.newlyAckedPackets, 0U);
  EXPECT_FALSE(out.largestNewlyAcked);
  EXPECT_EQ(log.packetsInFlight(), 5U);
  EXPECT_EQ(log.bytesInFlight(), 5000U);
}

TEST(SentPacketLogTest, GapThreeBelowTheLargestIsLostByCount) {
  SentPacketLog log(64);
  for (std::uint64_t pn = 0; pn < 10; ++pn) log.onSent(pn, 0, 1000, true);
  // 5 missing; 6..7 acked: only 2 above it, not yet lost.
  auto out = log.onAck(ackOf({{6, 7}, {0, 4}}), kMs, 100 * kMs);
  EXPECT_EQ(out.lost.packets, 0U);
  out = log.onAck(ackOf({{6, 8}, {0, 4}}), kMs, 100 * kMs);
  EXPECT_EQ(out.lost.packets, 1U);
  EXPECT_EQ(out.lost.bytes, 1000U);
  EXPECT_EQ(out.newlyAckedPackets, 1U);
}

// The rate controller backs off once per flight: it needs to know when the
// newest lost packet was sent.
TEST(SentPacketLogTest, LossesTellWhenTheNewestOfThemWasSent) {
  SentPacketLog log(64);
  for (std::uint64_t pn = 0; pn < 10; ++pn) log.onSent(pn, pn * kMs, 1000, true);
  // 2 and 5 missing, 6..9 acked: both lost by count.
  auto out = log.onAck(ackOf({{6, 9}, {3, 4}, {0, 1}}), 20 * kMs, 100 * kMs);
  EXPECT_EQ(out.lost.packets, 2U);
  EXPECT_EQ(out.lost.newestSendTsNs, 5 * kMs);
}

TEST(SentPacketLogTest, GapIsLostByTimeWithoutFurtherAcks) {
  SentPacketLog log(64);
  log.onSent(0, 0, 1000, true);
  log.onSent(1, 1 * kMs, 1000, true);
  auto out = log.onAck(ackOf({{1, 1}}), 2 * kMs, 10 * kMs);
  EXPECT_EQ(out.lost.packets, 0U);
  EXPECT_EQ(log.nextLossTimeNs(10 * kMs), 10 * kMs);
  EXPECT_EQ(log.detectLost(9 * kMs, 10 * kMs).packets, 0U);
  EXPECT_EQ(log.detectLost(10 * kMs, 10 * kMs).packets, 1U);
  EXPECT_EQ(log.nextLossTimeNs(10 * kMs), UINT64_MAX);
  EXPECT_EQ(log.packetsInFlight(), 0U);
}

TEST(SentPacketLogTest, NothingAboveTheLargestAckedIsLost) {
  SentPacketLog log(64);
  for (std::uint64_t pn = 0; pn < 10; ++pn) log.onSent(pn, 0, 1000, true);
  (void)log.onAck(ackOf({{0, 2}}), kMs, 100 * kMs);
  EXPECT_EQ(log.detectLost(1000 * kMs, 100 * kMs).packets, 0U);  // 3..9 are in flight, not lost
  EXPECT_EQ(log.packetsInFlight(), 7U);
}

TEST(SentPacketLogTest, LoneAcksAreNeverWaitedForNorLost) {
  SentPacketLog log(64);
  log.onSent(0, 0, 100, false);  // an ACK-only packet
  log.onSent(1, 0, 1000, true);
  log.onSent(2, 0, 1000, true);
  log.onSent(3, 0, 1000, true);
  log.onSent(4, 0, 1000, true);
  EXPECT_EQ(log.packetsInFlight(), 4U);
  auto out = log.onAck(ackOf({{1, 4}}), kMs, 100 * kMs);
  EXPECT_EQ(out.lost.packets, 0U);
  EXPECT_EQ(out.newlyAckedPackets, 4U);
}

TEST(SentPacketLogTest, EvictsUnresolvedPacketsAsLostWhenTheRingWraps) {
  SentPacketLog log(8);
  for (std::uint64_t pn = 0; pn < 8; ++pn) EXPECT_EQ(log.onSent(pn, 0, 10, true).packets, 0U);
  const LossCount evicted = log.onSent(8, 0, 10, true);
  EXPECT_EQ(evicted.packets, 1U);
  EXPECT_EQ(log.packetsInFlight(), 8U);
  // An ACK for the evicted number finds nothing.
  auto out = log.onAck(ackOf({{0, 0}}), kMs, 100 * kMs);
  EXPECT_EQ(out.newlyAckedPackets, 0U);
  EXPECT_FALSE(out.largestKnown);
}

TEST(SentPacketLogTest, LateAckOfALostPacketCountsAsDelivered) {
  SentPacketLog log(64);
  for (std::uint64_t pn = 0; pn < 5; ++pn) log.onSent(pn, 0, 1000, true);
  auto out = log.onAck(ackOf({{1, 4}}), kMs, 100 * kMs);
  EXPECT_EQ(out.lost.packets, 1U);
  out = log.onAck(ackOf({{0, 4}}), 2 * kMs, 100 * kMs);
  EXPECT_EQ(out.newlyAckedPackets, 0U);  // below lowest: already resolved
  EXPECT_EQ(log.packetsInFlight(), 0U);
}

TEST(SentPacketLogTest, SkippedNumbersAreNotWaitedFor) {
  SentPacketLog log(64);
  log.onSent(0, 0, 1000, true);
  log.onSent(5, 0, 1000, true);  // 1..4 numbered but never sent
  auto out = log.onAck(ackOf({{5, 5}, {0, 0}}), kMs, 100 * kMs);
  EXPECT_EQ(out.newlyAckedPackets, 2U);
  EXPECT_EQ(out.lost.packets, 0U);
}

struct FateRecorder final : PacketFate {
  std::vector<std::uint64_t> ackedTags, lostTags;
  void acked(std::uint64_t tag) noexcept override { ackedTags.push_back(tag); }
  void lost(std::uint64_t tag) noexcept override { lostTags.push_back(tag); }
};

TEST(SentPacketLogTest, TaggedPacketsReportTheirFate) {
  SentPacketLog log(64);
  FateRecorder fate;
  log.setFate(&fate);
  for (std::uint64_t pn = 0; pn < 6; ++pn) log.onSent(pn, 0, 1000, true, pn == 2 ? 0 : 100 + pn);
  log.onSent(6, 0, 50, false, 999);  // a lone ACK is never tracked, its tag ignored
  // 1 and 2 missing; 3, 4, 5 acked: 1 (tag 101) lost by count, 2 untagged.
  const auto out = log.onAck(ackOf({{3, 6}, {0, 0}}), kMs, 100 * kMs);
  EXPECT_EQ(out.lost.packets, 2U);
  EXPECT_EQ(fate.ackedTags, (std::vector<std::uint64_t>{105, 104, 103, 100}));
  EXPECT_EQ(fate.lostTags, (std::vector<std::uint64_t>{101}));
  // An ACK of it after the log moved past it tells nothing more (its
  // retransmission's ACK settles the payload).
  log.onAck(ackOf({{0, 6}}), 2 * kMs, 100 * kMs);
  EXPECT_EQ(fate.ackedTags.size(), 4U);
  EXPECT_EQ(fate.lostTags.size(), 1U);
}

TEST(SentPacketLogTest, DeclareAllLostResolvesEveryPacketInFlight) {
  SentPacketLog log(64);
  FateRecorder fate;
  log.setFate(&fate);
  for (std::uint64_t pn = 0; pn < 5; ++pn) log.onSent(pn, 0, 1000, true, 10 + pn);
  log.onAck(ackOf({{1, 1}}), kMs, 100 * kMs);
  const LossCount lost = log.declareAllLost();
  EXPECT_EQ(lost.packets, 4U);
  EXPECT_EQ(log.packetsInFlight(), 0U);
  EXPECT_EQ(fate.lostTags, (std::vector<std::uint64_t>{10, 12, 13, 14}));
  EXPECT_EQ(log.declareAllLost().packets, 0U);  // nothing twice
}

TEST(SentPacketLog, FirstInFlightSentAfterSkipsWhatIsResolved) {
  SentPacketLog log(64);
  for (std::uint64_t pn = 0; pn < 6; ++pn) (void)log.onSent(pn, 1000 * (pn + 1), 100, pn != 2);
  // Packet 2 is a lone ACK (never waited for); 3 acknowledged out of order.
  (void)log.onAck(ackOf({{3, 3}}), 10'000, 1'000'000);
  EXPECT_EQ(log.firstInFlightSentAfter(0), 2000u);  // packet 1
  EXPECT_EQ(log.firstInFlightSentAfter(1), 5000u);  // 2 not tracked, 3 acked: packet 4
  EXPECT_EQ(log.firstInFlightSentAfter(5), 0u);     // nothing above
}

}  // namespace
}  // namespace mpxdp::conn
