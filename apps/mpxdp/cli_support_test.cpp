// Unit tests of the send/recv helpers: payload pattern and --link parsing.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "link_args.h"
#include "payload_pattern.h"

namespace mpxdp::cli {
namespace {

TEST(PayloadPatternTest, RoundTripsForEveryLengthAndDetectsDamage) {
  std::vector<std::uint8_t> buffer(1500);
  for (std::uint32_t length : {1u, 7u, 8u, 9u, 63u, 1024u, 1440u}) {
    fillPattern(buffer.data(), length, 12345);
    EXPECT_TRUE(checkPattern(buffer.data(), length, 12345)) << length;
    EXPECT_FALSE(checkPattern(buffer.data(), length, 12346)) << length;
    for (std::uint32_t at : {0u, length / 2, length - 1}) {
      buffer[at] ^= 0x10;
      EXPECT_FALSE(checkPattern(buffer.data(), length, 12345)) << length << " byte " << at;
      buffer[at] ^= 0x10;
    }
  }
  // A payload cut short is not the pattern of a shorter packet.
  fillPattern(buffer.data(), 1024, 7);
  EXPECT_FALSE(checkPattern(buffer.data(), 1000, 7));
}

TEST(PayloadPatternTest, NeighbouringPacketsDifferInEveryWord) {
  std::vector<std::uint8_t> a(1024), b(1024);
  fillPattern(a.data(), 1024, 100);
  fillPattern(b.data(), 1024, 101);
  for (std::size_t i = 0; i < 1024; i += 8) {
    EXPECT_NE(0, std::memcmp(a.data() + i, b.data() + i, 8)) << i;
  }
}

TEST(LinkArgTest, ParsesInterfacePeerAndRate) {
  auto full = parseLinkArg("s0=198.18.1.2@300M");
  ASSERT_TRUE(full) << full.error().message();
  EXPECT_EQ(full->interface, "s0");
  ASSERT_TRUE(full->peerIp);
  EXPECT_EQ(full->peerIp->toString(), "198.18.1.2");
  EXPECT_EQ(full->rateBps, 300'000'000u);

  auto v6 = parseLinkArg("eth1=fd00::2@1G");
  ASSERT_TRUE(v6) << v6.error().message();
  EXPECT_FALSE(v6->peerIp->isV4());
  EXPECT_EQ(v6->rateBps, 1'000'000'000u);

  auto bare = parseLinkArg("r0");
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->peerIp);
  EXPECT_EQ(bare->rateBps, 0u);
}

TEST(LinkArgTest, RejectsBadSyntax) {
  for (const char* text : {"", "=1.2.3.4", "s0=", "s0=1.2.3", "s0=1.2.3.4@", "s0=1.2.3.4@fast",
                           "s0=1.2.3.4@-1M", "averyveryverylongname=1.2.3.4"}) {
    auto arg = parseLinkArg(text);
    EXPECT_FALSE(arg) << text;
    if (!arg) {
      EXPECT_EQ(arg.error().code(), EINVAL) << text;
    }
  }
}

TEST(LinkArgTest, PlanRejectsUnknownInterfaceMissingPeerAndDuplicates) {
  auto unknown = planLinks({LinkArg{"no-such-if0", IpAddress::parse("198.18.1.2"), 0}}, Side::kSender);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ENODEV);
  auto noPeer = planLinks({LinkArg{"lo", std::nullopt, 0}}, Side::kSender);
  ASSERT_FALSE(noPeer);
  EXPECT_EQ(noPeer.error().code(), EINVAL);
  auto twice = planLinks(
      {LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}, LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}},
      Side::kReceiver);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), EINVAL);
  auto ok = planLinks({LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}}, Side::kSender);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ((*ok)[0].localIp.toString(), "127.0.0.1");
  EXPECT_TRUE(planLinks({}, Side::kReceiver).error().code() == EINVAL);
}

TEST(LinkArgTest, ReceiverPlansABareInterfaceWithItsOwnAddress) {
  auto bare = planLinks({LinkArg{"lo", std::nullopt, 0}}, Side::kReceiver);
  ASSERT_TRUE(bare) << bare.error().message();
  EXPECT_EQ((*bare)[0].localIp.toString(), "127.0.0.1");
  EXPECT_FALSE((*bare)[0].peerIp);
  auto withPeer = planLinks({LinkArg{"lo", IpAddress::parse("127.0.0.1"), 0}}, Side::kReceiver);
  ASSERT_TRUE(withPeer) << withPeer.error().message();
  ASSERT_TRUE((*withPeer)[0].peerIp);
}

}  // namespace
}  // namespace mpxdp::cli
