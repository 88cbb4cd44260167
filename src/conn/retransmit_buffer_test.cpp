#include "retransmit_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace mpxdp::conn {
namespace {

std::vector<std::uint8_t> bytesOf(std::uint64_t seq, std::size_t length) {
  std::vector<std::uint8_t> bytes(length);
  for (std::size_t i = 0; i < length; ++i) bytes[i] = static_cast<std::uint8_t>(seq * 31 + i);
  return bytes;
}

TEST(RetransmitBufferTest, KeepsPayloadsUntilAcknowledgedAndBoundsTheWindow) {
  RetransmitBuffer buffer(8, 100);
  for (std::uint64_t seq = 0; seq < 8; ++seq) buffer.store(seq, bytesOf(seq, 10 + seq), 1);
  EXPECT_EQ(buffer.room(), 0U);
  EXPECT_EQ(buffer.unacked(), 8U);
  const auto kept = buffer.payload(5);
  EXPECT_EQ(std::vector<std::uint8_t>(kept.begin(), kept.end()), bytesOf(5, 15));
  // Acknowledging 1..3 frees nothing while 0 is outstanding.
  for (std::uint64_t seq = 1; seq < 4; ++seq) buffer.onAcked(seq);
  EXPECT_EQ(buffer.base(), 0U);
  EXPECT_EQ(buffer.room(), 0U);
  buffer.onAcked(0);
  EXPECT_EQ(buffer.base(), 4U);
  EXPECT_EQ(buffer.room(), 4U);
  EXPECT_EQ(buffer.unacked(), 4U);
  buffer.onAcked(0);  // twice: ignored
  buffer.onAcked(99);
  EXPECT_EQ(buffer.unacked(), 4U);
  // The ring reuses slots: what comes back is the new payload.
  buffer.store(8, bytesOf(8, 100), 1);
  const auto reused = buffer.payload(8);
  EXPECT_EQ(std::vector<std::uint8_t>(reused.begin(), reused.end()), bytesOf(8, 100));
  EXPECT_FALSE(buffer.pending(0));
  EXPECT_TRUE(buffer.pending(8));
}

TEST(RetransmitBufferTest, LostPayloadsQueueOnceInOrderOfLoss) {
  RetransmitBuffer buffer(16, 10);
  for (std::uint64_t seq = 0; seq < 6; ++seq) buffer.store(seq, bytesOf(seq, 4), 1);
  buffer.onLost(4);
  buffer.onLost(1);
  buffer.onLost(4);  // already queued
  std::uint64_t seq = 0;
  ASSERT_TRUE(buffer.peekLost(seq));
  EXPECT_EQ(seq, 4U);
  buffer.popLost();
  buffer.onResent(4);
  ASSERT_TRUE(buffer.peekLost(seq));
  EXPECT_EQ(seq, 1U);
  // Acknowledged while queued (the first copy arrived after all): skipped.
  buffer.onAcked(1);
  EXPECT_FALSE(buffer.peekLost(seq));
  // The retransmission of 4 is lost too: queued again.
  buffer.onLost(4);
  ASSERT_TRUE(buffer.peekLost(seq));
  EXPECT_EQ(seq, 4U);
}

TEST(RetransmitBufferTest, ARedundantPayloadIsResentOnlyWhenEveryCopyIsLost) {
  RetransmitBuffer buffer(16, 10);
  buffer.store(0, bytesOf(0, 4), 2);
  buffer.store(1, bytesOf(1, 4), 2);
  std::uint64_t seq = 0;
  buffer.onLost(0);
  EXPECT_FALSE(buffer.peekLost(seq));
  buffer.onLost(0);
  ASSERT_TRUE(buffer.peekLost(seq));
  EXPECT_EQ(seq, 0U);
  // One copy lost, the other acknowledged: nothing to resend.
  buffer.popLost();
  buffer.onLost(1);
  buffer.onAcked(1);
  buffer.onLost(1);
  EXPECT_FALSE(buffer.peekLost(seq));
}

TEST(RetransmitBufferTest, StoreOutOfOrderOrWhenFullIsRefused) {
  RetransmitBuffer buffer(4, 10);
  buffer.store(1, bytesOf(1, 4), 1);  // not end(): ignored
  EXPECT_EQ(buffer.end(), 0U);
  for (std::uint64_t seq = 0; seq < 5; ++seq) buffer.store(seq, bytesOf(seq, 4), 1);
  EXPECT_EQ(buffer.end(), 4U);
}

}  // namespace
}  // namespace mpxdp::conn
