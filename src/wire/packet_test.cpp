#include "packet.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

namespace mpxdp::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A heap copy of exactly n bytes, so a sanitizer build catches any read past the span.
struct Exact {
  explicit Exact(const Bytes& b, std::size_t n) : storage(new std::uint8_t[n == 0 ? 1 : n]), size(n) {
    std::memcpy(storage.get(), b.data(), n);
  }
  std::span<const std::uint8_t> span() const { return {storage.get(), size}; }
  std::unique_ptr<std::uint8_t[]> storage;
  std::size_t size;
};

PacketHeader sampleHeader() {
  return {.flags = 0,
          .connId = 0xdeadbeef,
          .pathId = 0x0102,
          .packetNumber = 0x1122334455667788,
          .sendTsNs = 0x0a0b0c0d0e0f1011};
}

TEST(PacketHeaderTest, GoldenBytes) {
  Bytes out(kPacketHeaderLen + 4, 0xee);
  const auto written = writePacketHeader(out, sampleHeader());
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written.value, 28u);
  const Bytes expected = {'M',  'X',  2,    0,    0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x00,
                          0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x0a, 0x0b,
                          0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0xee, 0xee, 0xee, 0xee};
  EXPECT_EQ(out, expected);  // and nothing written past the header
}

TEST(PacketHeaderTest, LayoutMatchesSharedStruct) {
  static_assert(kPacketHeaderLen == 28);
  static_assert(kWireVersion == 2);
  static_assert(offsetof(mpxdp_hdr, send_ts_ns) + 8 == kPacketHeaderLen);
  static_assert(sizeof(mpxdp_invariants) == kInvariantsLen);
}

TEST(PacketHeaderTest, RoundTripKeepsEveryField) {
  for (const PacketHeader& h :
       {PacketHeader{}, sampleHeader(),
        PacketHeader{
            .flags = 0xff, .connId = ~0u, .pathId = 0xffff, .packetNumber = ~0ull, .sendTsNs = ~0ull}}) {
    Bytes out(kPacketHeaderLen);
    ASSERT_TRUE(writePacketHeader(out, h).ok());
    const auto parsed = parsePacketHeader(out);
    ASSERT_TRUE(parsed.ok()) << toString(parsed.error);
    EXPECT_EQ(parsed.value, h);
  }
}

TEST(PacketHeaderTest, WriteRefusesAShortBuffer) {
  Bytes out(kPacketHeaderLen - 1, 0xee);
  const auto written = writePacketHeader(out, sampleHeader());
  EXPECT_EQ(written.error, WireError::kBufferTooSmall);
  EXPECT_EQ(out, Bytes(kPacketHeaderLen - 1, 0xee));
}

TEST(PacketHeaderTest, ReservedBytesAreIgnoredFramesMayFollow) {
  Bytes out(kPacketHeaderLen + 10, 0);
  ASSERT_TRUE(writePacketHeader(out, sampleHeader()).ok());
  out[10] = 0xab;
  out[11] = 0xcd;
  const auto parsed = parsePacketHeader(out);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed.value, sampleHeader());
}

TEST(PacketHeaderTest, EveryTruncationIsAnError) {
  Bytes full(kPacketHeaderLen);
  ASSERT_TRUE(writePacketHeader(full, sampleHeader()).ok());
  for (std::size_t n = 0; n < kPacketHeaderLen; ++n) {
    const Exact cut(full, n);
    const auto parsed = parsePacketHeader(cut.span());
    EXPECT_EQ(parsed.error, WireError::kTruncated) << "length " << n;
  }
  EXPECT_TRUE(parsePacketHeader(Exact(full, kPacketHeaderLen).span()).ok());
}

TEST(PacketHeaderTest, RejectsBadMagicAndOtherVersions) {
  Bytes full(kPacketHeaderLen);
  ASSERT_TRUE(writePacketHeader(full, sampleHeader()).ok());
  Bytes badMagic = full;
  badMagic[1] = 'Y';
  EXPECT_EQ(parsePacketHeader(badMagic).error, WireError::kBadMagic);
  Bytes swapped = full;
  std::swap(swapped[0], swapped[1]);
  EXPECT_EQ(parsePacketHeader(swapped).error, WireError::kBadMagic);
  for (const std::uint8_t version : {0, 1, 3, 255}) {
    Bytes other = full;
    other[2] = version;
    EXPECT_EQ(parsePacketHeader(other).error, WireError::kBadVersion) << int{version};
  }
  // A version it does not speak is reported as such even when shorter than a v2 header.
  Bytes shortV3(full.begin(), full.begin() + 8);
  shortV3[2] = 3;
  EXPECT_EQ(parsePacketHeader(shortV3).error, WireError::kBadVersion);
}

TEST(InvariantsTest, ReadsAV3Packet) {
  // A future version: the invariants stay, everything after byte 8 may change.
  const Bytes v3 = {'M', 'X', 3, 0x80, 0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff};
  const auto inv = parseInvariants(v3);
  ASSERT_TRUE(inv.ok()) << toString(inv.error);
  EXPECT_EQ(inv.value.version, 3);
  EXPECT_EQ(inv.value.flags, 0x80);
  EXPECT_EQ(inv.value.connId, 0x01020304u);
  EXPECT_EQ(parsePacketHeader(v3).error, WireError::kBadVersion);
}

TEST(InvariantsTest, ReadsAV1Packet) {
  Bytes v1(MPXDP_HDR_LEN_V1, 0);
  v1[0] = 'M';
  v1[1] = 'X';
  v1[2] = MPXDP_WIRE_VERSION_V1;
  v1[7] = 9;
  const auto inv = parseInvariants(v1);
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv.value.version, 1);
  EXPECT_EQ(inv.value.connId, 9u);
  EXPECT_EQ(parsePacketHeader(v1).error, WireError::kBadVersion);
}

TEST(InvariantsTest, NeedsEightBytesAndTheMagic) {
  const Bytes full = {'M', 'X', 3, 0, 0, 0, 0, 1};
  for (std::size_t n = 0; n < kInvariantsLen; ++n) {
    EXPECT_EQ(parseInvariants(Exact(full, n).span()).error, WireError::kTruncated) << n;
  }
  EXPECT_TRUE(parseInvariants(Exact(full, 8).span()).ok());
  const Bytes bad = {'M', 'Y', 2, 0, 0, 0, 0, 1};
  EXPECT_EQ(parseInvariants(bad).error, WireError::kBadMagic);
}

TEST(VersionNegotiationTest, RoundTripAndExactBytes) {
  Bytes out(16, 0xee);
  const auto written = writeVersionNegotiation(out, 0xcafef00d);
  ASSERT_TRUE(written.ok());
  ASSERT_EQ(written.value, 10u);
  const Bytes expected = {'M', 'X', 0, 0, 0xca, 0xfe, 0xf0, 0x0d, 1, 2, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee};
  EXPECT_EQ(out, expected);

  const Exact packet(out, written.value);
  const auto list = parseVersionNegotiation(packet.span());
  ASSERT_TRUE(list.ok()) << toString(list.error);
  ASSERT_EQ(list.value.count, 1);
  EXPECT_EQ(list.value.versions[0], kWireVersion);
  const auto inv = parseInvariants(packet.span());
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv.value.connId, 0xcafef00du);
  EXPECT_EQ(inv.value.version, kVersionNegotiation);
  // Not a v2 packet: a receiver that only parses headers rejects it.
  EXPECT_EQ(parsePacketHeader(packet.span()).error, WireError::kBadVersion);
}

TEST(VersionNegotiationTest, WriteRefusesAShortBuffer) {
  Bytes out(9);
  EXPECT_EQ(writeVersionNegotiation(out, 1).error, WireError::kBufferTooSmall);
}

TEST(VersionNegotiationTest, ParsesSeveralVersions) {
  const Bytes packet = {'M', 'X', 0, 0, 0, 0, 0, 7, 3, 1, 2, 5};
  const auto list = parseVersionNegotiation(packet);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list.value.count, 3);
  EXPECT_EQ(list.value.versions[0], 1);
  EXPECT_EQ(list.value.versions[1], 2);
  EXPECT_EQ(list.value.versions[2], 5);
}

TEST(VersionNegotiationTest, RejectsMalformedLists) {
  const Bytes good = {'M', 'X', 0, 0, 0, 0, 0, 7, 2, 1, 2};
  for (std::size_t n = 0; n < good.size(); ++n) {
    EXPECT_EQ(parseVersionNegotiation(Exact(good, n).span()).error, WireError::kTruncated) << n;
  }
  EXPECT_TRUE(parseVersionNegotiation(Exact(good, good.size()).span()).ok());

  Bytes notVn = good;
  notVn[2] = 2;
  EXPECT_EQ(parseVersionNegotiation(notVn).error, WireError::kBadVersion);
  Bytes badMagic = good;
  badMagic[0] = 0;
  EXPECT_EQ(parseVersionNegotiation(badMagic).error, WireError::kBadMagic);
  Bytes empty = good;
  empty[8] = 0;
  EXPECT_EQ(parseVersionNegotiation(empty).error, WireError::kBadFrame);
  Bytes tooMany(9 + 17, 1);
  std::copy(good.begin(), good.begin() + 8, tooMany.begin());
  tooMany[8] = 17;
  EXPECT_EQ(parseVersionNegotiation(tooMany).error, WireError::kBadFrame);
  tooMany[8] = 16;
  EXPECT_TRUE(parseVersionNegotiation(tooMany).ok());
  Bytes lies = good;
  lies[8] = 5;  // claims 5 versions, carries 2
  EXPECT_EQ(parseVersionNegotiation(lies).error, WireError::kTruncated);
}

}  // namespace
}  // namespace mpxdp::wire
