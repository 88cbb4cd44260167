#include "peer_routes.h"

#include <gtest/gtest.h>

#include <array>

namespace mpxdp::cli {
namespace {

tun::IpPrefix prefix(const char* text) {
  auto parsed = tun::IpPrefix::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed ? *parsed : tun::IpPrefix{};
}

IpAddress address(const char* text) { return IpAddress::parse(text).value(); }

TEST(PeerArg, ParsesAKeyAndItsPrefixes) {
  auto arg = parsePeerArg("/etc/mpxdp/a.key=10.99.0.2/32,fd00::2/128");
  ASSERT_TRUE(arg) << arg.error().message();
  EXPECT_EQ(arg->keyFile, "/etc/mpxdp/a.key");
  ASSERT_EQ(arg->allowed.size(), 2u);
  EXPECT_EQ(arg->allowed[0].toString(), "10.99.0.2/32");
  EXPECT_EQ(arg->allowed[1].toString(), "fd00::2/128");
}

TEST(PeerArg, BadSyntaxNamesTheArgumentAndWhatIsExpected) {
  for (const char* bad : {"a.key", "=10.0.0.1/32", "a.key=", "a.key=10.0.0.1", "a.key=10.0.0.1/33",
                          "a.key=10.0.0.1/32,", "a.key=10.0.0.1/32,,10.0.0.2/32", "a.key=nonsense/8"}) {
    auto arg = parsePeerArg(bad);
    ASSERT_FALSE(arg) << bad;
    EXPECT_EQ(arg.error().code(), EINVAL) << bad;
    EXPECT_NE(arg.error().message().find(std::string("--peer '") + bad + "'"), std::string::npos)
        << arg.error().message();
  }
}

TEST(PacketAddresses, ReadsIpv4AndIpv6HeadersAndRefusesOthers) {
  std::array<std::uint8_t, 20> v4{0x45};
  v4[12] = 10, v4[13] = 99, v4[14] = 0, v4[15] = 1;
  v4[16] = 10, v4[17] = 99, v4[18] = 0, v4[19] = 2;
  EXPECT_EQ(packetSource(v4), address("10.99.0.1"));
  EXPECT_EQ(packetDestination(v4), address("10.99.0.2"));
  std::array<std::uint8_t, 40> v6{0x60};
  v6[8] = 0xfd, v6[23] = 1;
  v6[24] = 0xfd, v6[39] = 2;
  EXPECT_EQ(packetSource(v6), address("fd00::1"));
  EXPECT_EQ(packetDestination(v6), address("fd00::2"));
  EXPECT_FALSE(packetDestination(std::span<const std::uint8_t>(v4.data(), 19)));
  EXPECT_FALSE(packetDestination(std::span<const std::uint8_t>(v6.data(), 39)));
  EXPECT_FALSE(packetDestination({}));
  std::array<std::uint8_t, 40> other{0x50};
  EXPECT_FALSE(packetSource(other));
}

TEST(PrefixContains, MasksTheHostBitsAndKeepsFamiliesApart) {
  EXPECT_TRUE(prefixContains(prefix("10.99.0.7/24"), address("10.99.0.200")));
  EXPECT_FALSE(prefixContains(prefix("10.99.0.7/24"), address("10.99.1.1")));
  EXPECT_TRUE(prefixContains(prefix("10.99.0.64/26"), address("10.99.0.127")));
  EXPECT_FALSE(prefixContains(prefix("10.99.0.64/26"), address("10.99.0.128")));
  EXPECT_TRUE(prefixContains(prefix("0.0.0.0/0"), address("192.0.2.1")));
  EXPECT_FALSE(prefixContains(prefix("0.0.0.0/0"), address("fd00::1")));
  EXPECT_TRUE(prefixContains(prefix("fd00:1::/33"), address("fd00:1:7fff::1")));
  EXPECT_FALSE(prefixContains(prefix("fd00:1::/33"), address("fd00:1:8000::1")));
}

TEST(PeerRoutes, TheLongestMatchWinsAndASourceMustRouteBackToItsPeer) {
  auto routes = PeerRoutes::create({{prefix("10.99.0.2/32")}, {prefix("10.99.0.0/24"), prefix("fd00::/64")}});
  ASSERT_TRUE(routes) << routes.error().message();
  EXPECT_EQ(routes->peerFor(address("10.99.0.2")), 0u);
  EXPECT_EQ(routes->peerFor(address("10.99.0.3")), 1u);
  EXPECT_EQ(routes->peerFor(address("fd00::9")), 1u);
  EXPECT_FALSE(routes->peerFor(address("10.98.0.1")));
  EXPECT_TRUE(routes->allows(0, address("10.99.0.2")));
  EXPECT_FALSE(routes->allows(1, address("10.99.0.2")));  // peer 1 may not speak for peer 0
  EXPECT_TRUE(routes->allows(1, address("10.99.0.9")));
  EXPECT_FALSE(routes->allows(0, address("10.99.0.9")));
  EXPECT_FALSE(routes->allows(1, address("192.0.2.1")));
}

TEST(PeerRoutes, ANetworkClaimedTwiceIsRefused) {
  auto twice = PeerRoutes::create({{prefix("10.99.0.2/24")}, {prefix("10.99.0.9/24")}});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), EINVAL);
  EXPECT_NE(twice.error().message().find("claimed by two peers"), std::string::npos)
      << twice.error().message();
  auto same = PeerRoutes::create({{prefix("10.99.0.2/32"), prefix("10.99.0.2/32")}});
  ASSERT_FALSE(same);
  EXPECT_NE(same.error().message().find("given twice"), std::string::npos) << same.error().message();
}

}  // namespace
}  // namespace mpxdp::cli
