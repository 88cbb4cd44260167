#include "codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace mpxdp::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---- Independent reference helpers: plain RFC 1071, one 16-bit word at a time. ----

std::uint64_t refSum(const std::uint8_t* data, std::size_t len) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) {
    sum += (std::uint64_t{data[i]} << 8) | data[i + 1];
  }
  if (len % 2 == 1) {
    sum += std::uint64_t{data[len - 1]} << 8;
  }
  return sum;
}

std::uint16_t refFold(std::uint64_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::uint16_t get16(const Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}

void put16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

std::size_t ipOffsetOf(const Bytes& frame) { return get16(frame, 12) == 0x8100 ? 18 : 14; }
bool isV6Frame(const Bytes& frame) { return get16(frame, ipOffsetOf(frame) - 2) == 0x86dd; }
std::size_t udpOffsetOf(const Bytes& frame) {
  const std::size_t ip = ipOffsetOf(frame);
  return isV6Frame(frame) ? ip + 40 : ip + (frame[ip] & 0x0f) * 4;
}

void refFixIpv4Checksum(Bytes& frame) {
  const std::size_t ip = ipOffsetOf(frame);
  const std::size_t ihl = (frame[ip] & 0x0f) * 4;
  put16(frame, ip + 10, 0);
  put16(frame, ip + 10, refFold(refSum(&frame[ip], ihl)));
}

std::uint64_t refUdpSum(const Bytes& frame) {
  const std::size_t ip = ipOffsetOf(frame);
  const bool v6 = isV6Frame(frame);
  const std::size_t udp = udpOffsetOf(frame);
  const std::uint16_t udpLen = get16(frame, udp + 4);
  const std::uint64_t pseudo = v6 ? refSum(&frame[ip + 8], 32) : refSum(&frame[ip + 12], 8);
  return pseudo + 17 + udpLen + refSum(&frame[udp], udpLen);
}

void refFixUdpChecksum(Bytes& frame) {
  const std::size_t udp = udpOffsetOf(frame);
  put16(frame, udp + 6, 0);
  std::uint16_t checksum = refFold(refUdpSum(frame));
  put16(frame, udp + 6, checksum == 0 ? 0xffff : checksum);
}

// Parses from scratch what decodeOuter accepted and checks every checksum with the reference.
testing::AssertionResult referenceAgrees(const Bytes& frame, const ParsedOuter& parsed) {
  const std::size_t ip = ipOffsetOf(frame);
  const bool v6 = isV6Frame(frame);
  if (!v6 && refFold(refSum(&frame[ip], (frame[ip] & 0x0f) * 4)) != 0) {
    return testing::AssertionFailure() << "accepted a wrong IPv4 header checksum";
  }
  const std::size_t udp = udpOffsetOf(frame);
  const std::uint16_t udpLen = get16(frame, udp + 4);
  if (parsed.udpPayloadOffset != udp + 8 || parsed.udpPayloadLen != udpLen - 8u) {
    return testing::AssertionFailure() << "UDP payload offset/length disagree with the reference parse";
  }
  if (get16(frame, udp + 6) == 0) {
    if (v6) {
      return testing::AssertionFailure() << "accepted a zero UDP checksum over IPv6";
    }
    return testing::AssertionSuccess();
  }
  if (refFold(refUdpSum(frame)) != 0) {
    return testing::AssertionFailure() << "accepted a wrong UDP checksum";
  }
  return testing::AssertionSuccess();
}

// ---- Frame builders ----

OuterAddressing makeAddressing(bool v6, bool vlan) {
  OuterAddressing a;
  a.srcMac = MacAddress{{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}};
  a.dstMac = MacAddress{{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}};
  if (v6) {
    a.srcIp = *IpAddress::parse("2001:db8::1");
    a.dstIp = *IpAddress::parse("2001:db8:1::fe");
  } else {
    a.srcIp = IpAddress::v4(0xc0000201);  // 192.0.2.1
    a.dstIp = IpAddress::v4(0xc00002fe);  // 192.0.2.254
  }
  a.srcPort = 47001;
  a.dstPort = MPXDP_DEFAULT_PORT;
  if (vlan) {
    a.vlanId = 0x0abc;
  }
  a.ttl = 17;
  a.dscp = 46;
  return a;
}

MpHeader sampleHeader(std::uint16_t payloadLen) {
  MpHeader h;
  h.flags = MPXDP_FLAG_END;
  h.connId = 0xdeadbeef;
  h.pathId = 2;
  h.payloadLen = payloadLen;
  h.pathSeq = 0x01020304;
  h.globalSeq = 0x1122334455667788ull;
  h.sendTsNs = 0x8877665544332211ull;
  return h;
}

Bytes randomBytes(std::mt19937_64& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) {
    x = static_cast<std::uint8_t>(rng());
  }
  return b;
}

Bytes buildFrame(const OuterAddressing& a, const MpHeader& h, const Bytes& data, bool udpChecksum) {
  const std::size_t outer = outerHeaderLength(a);
  Bytes frame(outer + kMpHeaderLen + data.size());
  EXPECT_TRUE(encodeMpHeader(std::span(frame).subspan(outer), h).ok());
  std::copy(data.begin(), data.end(), frame.begin() + static_cast<std::ptrdiff_t>(outer + kMpHeaderLen));
  const auto written = encodeOuter(frame, a, kMpHeaderLen + data.size(), udpChecksum);
  EXPECT_TRUE(written.ok()) << toString(written.error);
  return frame;
}

Bytes defaultFrame(bool v6, bool vlan, bool udpChecksum, std::size_t dataLen = 100) {
  std::mt19937_64 rng(dataLen);
  return buildFrame(makeAddressing(v6, vlan), sampleHeader(static_cast<std::uint16_t>(dataLen)),
                    randomBytes(rng, dataLen), udpChecksum);
}

// Decodes an exact-size heap copy so that AddressSanitizer sees any read past the end.
WireError decodeCopy(const Bytes& frame, std::size_t len) {
  std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[len == 0 ? 1 : len]);
  if (len > 0) {
    std::memcpy(copy.get(), frame.data(), len);
  }
  return decodeFrame({copy.get(), len}).error;
}

struct Combo {
  bool v6;
  bool vlan;
  bool udpChecksum;
};

std::vector<Combo> allCombos() {
  std::vector<Combo> combos;
  for (bool v6 : {false, true}) {
    for (bool vlan : {false, true}) {
      for (bool csum : {false, true}) {
        combos.push_back({v6, vlan, csum});
      }
    }
  }
  return combos;
}

std::string describe(const Combo& c) {
  return std::string(c.v6 ? "IPv6" : "IPv4") + (c.vlan ? " VLAN" : "") + (c.udpChecksum ? " udp-csum" : "");
}

// ---- Checksums ----

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: the sum of these bytes is ddf2, so the checksum is 220d.
  const std::uint8_t bytes[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(checksumFold(checksumPartial(bytes, 0)), 0x220d);
  EXPECT_EQ(refFold(refSum(bytes, sizeof(bytes))), 0x220d);
}

TEST(Checksum, KnownIpv4Header) {
  // 192.168.0.1 -> 192.168.0.199, total length 0x73, DF, TTL 64, UDP: checksum b861.
  std::uint8_t header[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                           0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(checksumFold(checksumPartial(header, 0)), 0xb861);
  header[10] = 0xb8;
  header[11] = 0x61;
  EXPECT_EQ(checksumFold(checksumPartial(header, 0)), 0);
}

TEST(Checksum, KnownUdpFrame) {
  // Hand-computed: 192.168.0.1:47000 -> 192.168.0.199:47001, payload "hello".
  // UDP sum: c0a8+0001+c0a8+00c7+0011+000d (pseudo) + b798+b799+000d+0000+6865+6c6c+6f00
  //        = 0x43545 -> 0x3549 -> checksum 0xcab6.
  // IPv4 header 4500 0021 0000 4000 4011 ____ c0a8 0001 c0a8 00c7 -> checksum 0xb8b3.
  OuterAddressing a;
  a.srcMac = MacAddress{{1, 2, 3, 4, 5, 6}};
  a.dstMac = MacAddress{{7, 8, 9, 10, 11, 12}};
  a.srcIp = IpAddress::v4(0xc0a80001);
  a.dstIp = IpAddress::v4(0xc0a800c7);
  a.srcPort = 47000;
  a.dstPort = 47001;
  a.ttl = 64;
  Bytes frame(kOuterIpv4Len + 5);
  std::memcpy(&frame[kOuterIpv4Len], "hello", 5);
  const auto written = encodeOuter(frame, a, 5, true);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written.value, kOuterIpv4Len);
  const Bytes expected = {7,    8,    9,    10,   11,   12,   1,    2,    3,    4,    5,    6,
                          0x08, 0x00, 0x45, 0x00, 0x00, 0x21, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                          0xb8, 0xb3, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7, 0xb7, 0x98,
                          0xb7, 0x99, 0x00, 0x0d, 0xca, 0xb6, 'h',  'e',  'l',  'l',  'o'};
  EXPECT_EQ(frame, expected);
  // The template must agree.
  const auto tmpl = OuterTemplate::make(a);
  ASSERT_TRUE(tmpl.ok());
  Bytes fromTemplate(frame.size(), 0xee);
  std::memcpy(&fromTemplate[kOuterIpv4Len], "hello", 5);
  ASSERT_TRUE(tmpl.value.write(fromTemplate, 5, true).ok());
  EXPECT_EQ(fromTemplate, expected);
}

TEST(Checksum, MatchesReferenceOnRandomUnalignedData) {
  std::mt19937_64 rng(1071);
  Bytes buffer = randomBytes(rng, 4096);
  for (int i = 0; i < 20000; ++i) {
    const std::size_t start = rng() % 64;
    const std::size_t len = rng() % 2000;
    const std::uint32_t seed = static_cast<std::uint32_t>(rng());
    const std::uint64_t expected = refSum(&buffer[start], len) + seed;
    const std::uint32_t got = checksumPartial({&buffer[start], len}, seed);
    ASSERT_EQ(checksumFold(got), refFold(expected)) << "start " << start << " len " << len;
    const std::uint32_t portable = checksumPartialPortable({&buffer[start], len}, seed);
    ASSERT_EQ(checksumFold(portable), refFold(expected)) << "portable, start " << start << " len " << len;
  }
}

// Long inputs: the vector sum's 32-bit lanes must move into 64 bits before
// they overflow (all ones is the worst case), and odd block counts end well.
TEST(Checksum, LongInputsMatchTheReference) {
  std::mt19937_64 rng(9);
  for (const std::size_t len :
       {std::size_t{1} << 20, (std::size_t{3} << 20) + 32 * 7 + 5, std::size_t{96}, std::size_t{160}}) {
    for (const std::uint8_t fill : {std::uint8_t{0xff}, std::uint8_t{0}}) {
      Bytes data(len, fill);
      if (fill == 0) data = randomBytes(rng, len);
      const std::uint64_t expected = refSum(data.data(), data.size());
      EXPECT_EQ(checksumFold(checksumPartial(data, 0)), refFold(expected)) << "len " << len;
      EXPECT_EQ(checksumFold(checksumPartialPortable(data, 0)), refFold(expected)) << "len " << len;
    }
  }
}

TEST(Checksum, ChainsOverEvenChunks) {
  std::mt19937_64 rng(7);
  const Bytes data = randomBytes(rng, 1001);
  std::uint32_t sum = 0;
  std::size_t at = 0;
  for (std::size_t chunk : {2u, 10u, 64u, 6u, 300u}) {
    sum = checksumPartial({&data[at], chunk}, sum);
    at += chunk;
  }
  sum = checksumPartial({&data[at], data.size() - at}, sum);  // odd tail last
  EXPECT_EQ(checksumFold(sum), refFold(refSum(data.data(), data.size())));
}

TEST(Checksum, AllOnesAndZeros) {
  const Bytes ones(1500, 0xff);
  const Bytes zeros(1500, 0x00);
  EXPECT_EQ(checksumFold(checksumPartial(ones, 0)), refFold(refSum(ones.data(), ones.size())));
  EXPECT_EQ(checksumFold(checksumPartial(zeros, 0)), 0xffff);
  EXPECT_EQ(checksumFold(checksumPartial(zeros, 0xffffffffu)), refFold(0xffffffffull));
}

// ---- Multipath header ----

TEST(MpHeader, LayoutMatchesSharedStruct) {
  Bytes out(kMpHeaderLen + 3, 0xaa);
  const MpHeader h = sampleHeader(3);
  ASSERT_EQ(encodeMpHeader(out, h).value, kMpHeaderLen);
  constexpr std::uint8_t kV1 = MPXDP_WIRE_VERSION_V1;
  const Bytes expected = {'M',  'X',  kV1,  MPXDP_FLAG_END, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x02, 0x00,
                          0x03, 0x01, 0x02, 0x03,           0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
                          0x77, 0x88, 0x88, 0x77,           0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
  EXPECT_EQ(Bytes(out.begin(), out.begin() + kMpHeaderLen), expected);
  EXPECT_EQ(out[kMpHeaderLen], 0xaa) << "wrote past the header";
  static_assert(offsetof(mpxdp_hdr_v1, send_ts_ns) + 8 == kMpHeaderLen);
}

TEST(MpHeader, RandomRoundTrips) {
  std::mt19937_64 rng(42);
  Bytes buffer(kMpHeaderLen + 70000 + 1);
  for (int i = 0; i < 20000; ++i) {
    MpHeader h;
    h.flags = static_cast<std::uint8_t>(rng());
    h.connId = static_cast<std::uint32_t>(rng());
    h.pathId = static_cast<std::uint16_t>(rng());
    h.payloadLen = static_cast<std::uint16_t>(rng());
    h.pathSeq = static_cast<std::uint32_t>(rng());
    h.globalSeq = rng();
    h.sendTsNs = rng();
    const std::size_t misalign = rng() % 8;  // unaligned on purpose
    std::span<std::uint8_t> at(buffer.data() + misalign, kMpHeaderLen + h.payloadLen);
    ASSERT_TRUE(encodeMpHeader(at, h).ok());
    const auto decoded = decodeMpHeader(at);
    ASSERT_TRUE(decoded.ok()) << toString(decoded.error);
    ASSERT_EQ(decoded.value, h);
  }
}

TEST(MpHeader, EncodeNeedsRoom) {
  Bytes out(kMpHeaderLen - 1);
  EXPECT_EQ(encodeMpHeader(out, sampleHeader(0)).error, WireError::kBufferTooSmall);
  EXPECT_EQ(encodeMpHeader({}, sampleHeader(0)).error, WireError::kBufferTooSmall);
}

TEST(MpHeader, DecodeRejectsMalformed) {
  Bytes good(kMpHeaderLen + 10);
  ASSERT_TRUE(encodeMpHeader(good, sampleHeader(10)).ok());
  ASSERT_TRUE(decodeMpHeader(good).ok());
  for (std::size_t len = 0; len < kMpHeaderLen; ++len) {
    std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[len + 1]);
    std::memcpy(copy.get(), good.data(), len);
    EXPECT_EQ(decodeMpHeader({copy.get(), len}).error, WireError::kTruncated) << len;
  }
  Bytes badMagic = good;
  badMagic[1] = 'Y';
  EXPECT_EQ(decodeMpHeader(badMagic).error, WireError::kBadMagic);
  Bytes badVersion = good;
  badVersion[2] = MPXDP_WIRE_VERSION_V1 + 1;
  EXPECT_EQ(decodeMpHeader(badVersion).error, WireError::kBadVersion);
  badVersion[2] = 0;
  EXPECT_EQ(decodeMpHeader(badVersion).error, WireError::kBadVersion);
  // payload_len says more, or less, than follows.
  EXPECT_EQ(decodeMpHeader(std::span(good).first(kMpHeaderLen + 9)).error, WireError::kBadPayloadLength);
  Bytes longer = good;
  longer.push_back(0);
  EXPECT_EQ(decodeMpHeader(longer).error, WireError::kBadPayloadLength);
}

// ---- Full frames ----

TEST(Frame, RoundTripAllCombos) {
  std::mt19937_64 rng(99);
  for (const Combo& c : allCombos()) {
    SCOPED_TRACE(describe(c));
    const OuterAddressing a = makeAddressing(c.v6, c.vlan);
    for (std::size_t dataLen : {0u, 1u, 2u, 3u, 63u, 1024u, 1440u, 8000u}) {
      MpHeader h = sampleHeader(static_cast<std::uint16_t>(dataLen));
      h.globalSeq = rng();
      const Bytes data = randomBytes(rng, dataLen);
      const Bytes frame = buildFrame(a, h, data, c.udpChecksum);
      EXPECT_EQ(frame.size(), outerHeaderLength(a) + kMpHeaderLen + dataLen);
      const auto parsed = decodeFrame(frame);
      ASSERT_TRUE(parsed.ok()) << toString(parsed.error) << " dataLen " << dataLen;
      EXPECT_EQ(parsed.value.header, h);
      EXPECT_EQ(parsed.value.outer.srcIp, a.srcIp);
      EXPECT_EQ(parsed.value.outer.dstIp, a.dstIp);
      EXPECT_EQ(parsed.value.outer.srcPort, a.srcPort);
      EXPECT_EQ(parsed.value.outer.dstPort, a.dstPort);
      EXPECT_EQ(parsed.value.outer.vlanId, a.vlanId);
      EXPECT_EQ(parsed.value.outer.udpPayloadOffset, outerHeaderLength(a));
      EXPECT_EQ(parsed.value.outer.udpPayloadLen, kMpHeaderLen + dataLen);
      EXPECT_EQ(parsed.value.payloadOffset, outerHeaderLength(a) + kMpHeaderLen);
      EXPECT_TRUE(std::equal(data.begin(), data.end(), frame.begin() + parsed.value.payloadOffset));
      EXPECT_TRUE(referenceAgrees(frame, parsed.value.outer));
      const std::size_t udp = udpOffsetOf(frame);
      if (c.udpChecksum || c.v6) {
        EXPECT_NE(get16(frame, udp + 6), 0);
      } else {
        EXPECT_EQ(get16(frame, udp + 6), 0);
      }
    }
  }
}

TEST(Frame, HeaderFieldsOnTheWire) {
  const Bytes v4 = defaultFrame(false, true, false);
  EXPECT_EQ(get16(v4, 12), 0x8100);
  EXPECT_EQ(get16(v4, 14), 0x0abc);
  EXPECT_EQ(get16(v4, 16), 0x0800);
  EXPECT_EQ(v4[18], 0x45);
  EXPECT_EQ(v4[19], 46 << 2);        // DSCP EF, ECN 0
  EXPECT_EQ(get16(v4, 24), 0x4000);  // DF, offset 0
  EXPECT_EQ(v4[26], 17);             // TTL
  EXPECT_EQ(v4[27], 17);             // UDP
  EXPECT_EQ(get16(v4, 18 + 2), 20 + 8 + 32 + 100);
  const Bytes v6 = defaultFrame(true, false, false);
  EXPECT_EQ(get16(v6, 12), 0x86dd);
  EXPECT_EQ(v6[14] >> 4, 6);
  EXPECT_EQ(((get16(v6, 14) >> 4) & 0xff), 46 << 2);  // traffic class
  EXPECT_EQ(get16(v6, 14 + 4), 8 + 32 + 100);
  EXPECT_EQ(v6[14 + 6], 17);
  EXPECT_EQ(v6[14 + 7], 17);  // hop limit
}

TEST(Frame, TemplateIsByteIdenticalToEncodeOuter) {
  std::mt19937_64 rng(2024);
  const Bytes payload = randomBytes(rng, 66000);
  for (const Combo& c : allCombos()) {
    SCOPED_TRACE(describe(c));
    OuterAddressing a = makeAddressing(c.v6, c.vlan);
    a.srcPort = static_cast<std::uint16_t>(rng());
    a.ttl = static_cast<std::uint8_t>(rng());
    const auto tmpl = OuterTemplate::make(a);
    ASSERT_TRUE(tmpl.ok());
    ASSERT_EQ(tmpl.value.headerLength(), outerHeaderLength(a));
    const std::size_t outer = outerHeaderLength(a);
    const std::size_t maxLen = c.v6 ? kMaxUdpPayloadLenV6 : kMaxUdpPayloadLenV4;
    std::vector<std::size_t> lengths;
    for (std::size_t len = 0; len <= 2100; ++len) {
      lengths.push_back(len);
    }
    for (std::size_t len : {4095u, 4096u, 9000u, 32768u, 65000u}) {
      lengths.push_back(len);
    }
    lengths.push_back(maxLen - 1);
    lengths.push_back(maxLen);
    Bytes viaEncode(outer + maxLen);
    Bytes viaTemplate(outer + maxLen);
    for (std::size_t len : lengths) {
      std::memset(viaEncode.data(), 0x11, outer);  // headers must be fully overwritten
      std::memset(viaTemplate.data(), 0x77, outer);
      std::memcpy(viaEncode.data() + outer, payload.data(), len);
      std::memcpy(viaTemplate.data() + outer, payload.data(), len);
      const std::span<std::uint8_t> e(viaEncode.data(), outer + len);
      const std::span<std::uint8_t> t(viaTemplate.data(), outer + len);
      const auto r1 = encodeOuter(e, a, len, c.udpChecksum);
      const auto r2 = tmpl.value.write(t, len, c.udpChecksum);
      ASSERT_TRUE(r1.ok() && r2.ok()) << len;
      ASSERT_EQ(r1.value, r2.value);
      ASSERT_TRUE(std::equal(e.begin(), e.end(), t.begin())) << "length " << len;
      const auto parsed = decodeOuter(t);
      ASSERT_TRUE(parsed.ok()) << toString(parsed.error) << " length " << len;
      ASSERT_EQ(parsed.value.udpPayloadLen, len);
    }
  }
}

TEST(Frame, EncodeRejectsBadAddressingAndSizes) {
  OuterAddressing mixed = makeAddressing(false, false);
  mixed.dstIp = *IpAddress::parse("2001:db8::2");
  Bytes frame(2000);
  EXPECT_EQ(encodeOuter(frame, mixed, 100, false).error, WireError::kBadAddressing);
  EXPECT_EQ(OuterTemplate::make(mixed).error, WireError::kBadAddressing);
  OuterAddressing badVlan = makeAddressing(false, true);
  badVlan.vlanId = 4095;
  EXPECT_EQ(encodeOuter(frame, badVlan, 100, false).error, WireError::kBadAddressing);
  EXPECT_EQ(OuterTemplate::make(badVlan).error, WireError::kBadAddressing);
  OuterAddressing badDscp = makeAddressing(true, false);
  badDscp.dscp = 64;
  EXPECT_EQ(encodeOuter(frame, badDscp, 100, false).error, WireError::kBadAddressing);

  for (bool v6 : {false, true}) {
    const OuterAddressing a = makeAddressing(v6, true);
    const auto tmpl = OuterTemplate::make(a);
    ASSERT_TRUE(tmpl.ok());
    const std::size_t outer = outerHeaderLength(a);
    Bytes small(outer + 99);
    EXPECT_EQ(encodeOuter(small, a, 100, true).error, WireError::kBufferTooSmall);
    EXPECT_EQ(tmpl.value.write(small, 100, true).error, WireError::kBufferTooSmall);
    Bytes tiny(outer - 1);
    EXPECT_EQ(encodeOuter(tiny, a, 0, true).error, WireError::kBufferTooSmall);
    EXPECT_EQ(tmpl.value.write(tiny, 0, true).error, WireError::kBufferTooSmall);
    const std::size_t tooLarge = (v6 ? kMaxUdpPayloadLenV6 : kMaxUdpPayloadLenV4) + 1;
    Bytes huge(outer + tooLarge);
    EXPECT_EQ(encodeOuter(huge, a, tooLarge, true).error, WireError::kPayloadTooLarge);
    EXPECT_EQ(tmpl.value.write(huge, tooLarge, true).error, WireError::kPayloadTooLarge);
  }
}

TEST(Frame, TruncatedAtEveryByte) {
  for (const Combo& c : allCombos()) {
    SCOPED_TRACE(describe(c));
    const Bytes frame = defaultFrame(c.v6, c.vlan, c.udpChecksum, 40);
    const std::size_t udpPayload = udpOffsetOf(frame) + 8;
    ASSERT_EQ(decodeCopy(frame, frame.size()), WireError::kNone);
    for (std::size_t len = 0; len < frame.size(); ++len) {
      // Cut inside a header: truncated; cut inside the UDP payload: the IP length claims more.
      const WireError expected = len < udpPayload ? WireError::kTruncated : WireError::kBadIpTotalLength;
      ASSERT_EQ(decodeCopy(frame, len), expected) << "prefix " << len;
    }
  }
}

TEST(Frame, TruncatedMultipathHeaderInsideValidUdp) {
  // The outer packet is complete and valid but its UDP payload is shorter than the MP header.
  for (const Combo& c : allCombos()) {
    SCOPED_TRACE(describe(c));
    const OuterAddressing a = makeAddressing(c.v6, c.vlan);
    for (std::size_t len = 0; len < kMpHeaderLen; ++len) {
      Bytes frame(outerHeaderLength(a) + len);
      Bytes mp(kMpHeaderLen);
      ASSERT_TRUE(encodeMpHeader(mp, sampleHeader(0)).ok());
      std::copy(mp.begin(), mp.begin() + static_cast<std::ptrdiff_t>(len),
                frame.begin() + static_cast<std::ptrdiff_t>(outerHeaderLength(a)));
      ASSERT_TRUE(encodeOuter(frame, a, len, c.udpChecksum).ok());
      ASSERT_TRUE(decodeOuter(frame).ok());
      EXPECT_EQ(decodeCopy(frame, frame.size()), WireError::kTruncated) << len;
    }
  }
}

TEST(Frame, EthernetPaddingIsIgnored) {
  for (const Combo& c : allCombos()) {
    SCOPED_TRACE(describe(c));
    Bytes frame = defaultFrame(c.v6, c.vlan, c.udpChecksum, 5);
    const std::size_t size = frame.size();
    frame.resize(size + 13, 0x5a);
    const auto parsed = decodeFrame(frame);
    ASSERT_TRUE(parsed.ok()) << toString(parsed.error);
    EXPECT_EQ(parsed.value.outer.udpPayloadLen, kMpHeaderLen + 5);
    EXPECT_EQ(parsed.value.header.payloadLen, 5);
  }
  // A tiny outer packet padded to the 60-byte Ethernet minimum.
  const OuterAddressing a = makeAddressing(false, false);
  Bytes small(60, 0);
  ASSERT_TRUE(encodeOuter(small, a, 4, true).ok());
  const auto parsed = decodeOuter(small);
  ASSERT_TRUE(parsed.ok()) << toString(parsed.error);
  EXPECT_EQ(parsed.value.udpPayloadLen, 4u);
}

// A payload opened in place (keyed) no longer matches its UDP checksum; its
// addresses are still read without it, and the IPv4 header is still checked.
TEST(Frame, AddressesWithoutTheUdpChecksum) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    Bytes frame = defaultFrame(v6, false, true);
    frame.back() ^= 0x5a;
    EXPECT_EQ(decodeOuter(frame).error, WireError::kBadUdpChecksum);
    const auto parsed = decodeOuter(frame, false);
    ASSERT_TRUE(parsed.ok()) << toString(parsed.error);
    const OuterAddressing a = makeAddressing(v6, false);
    EXPECT_EQ(parsed.value.srcIp, a.srcIp);
    EXPECT_EQ(parsed.value.dstIp, a.dstIp);
    EXPECT_EQ(parsed.value.srcPort, a.srcPort);
    EXPECT_EQ(parsed.value.dstPort, a.dstPort);
    if (!v6) {
      frame[ipOffsetOf(frame) + 8] ^= 0x01;  // TTL: the IPv4 header checksum fails
      EXPECT_EQ(decodeOuter(frame, false).error, WireError::kBadIpChecksum);
    }
  }
}

TEST(Frame, Ipv4OptionsAccepted) {
  for (bool vlan : {false, true}) {
    Bytes frame = defaultFrame(false, vlan, true, 64);
    const std::size_t ip = ipOffsetOf(frame);
    const std::uint8_t options[] = {0x01, 0x01, 0x01, 0x00, 0x01, 0x01, 0x01, 0x00};  // NOPs + EOL
    frame.insert(frame.begin() + static_cast<std::ptrdiff_t>(ip + 20), std::begin(options),
                 std::end(options));
    frame[ip] = 0x47;
    put16(frame, ip + 2, static_cast<std::uint16_t>(get16(frame, ip + 2) + sizeof(options)));
    refFixIpv4Checksum(frame);  // UDP checksum does not cover IP options
    const auto parsed = decodeFrame(frame);
    ASSERT_TRUE(parsed.ok()) << toString(parsed.error);
    EXPECT_EQ(parsed.value.outer.udpPayloadOffset, ip + 28 + 8);
    EXPECT_EQ(parsed.value.header, sampleHeader(64));
    EXPECT_TRUE(referenceAgrees(frame, parsed.value.outer));
    const std::size_t udpPayload = ip + 28 + 8;
    for (std::size_t len = 0; len < frame.size(); ++len) {
      const WireError expected = len < udpPayload ? WireError::kTruncated : WireError::kBadIpTotalLength;
      ASSERT_EQ(decodeCopy(frame, len), expected) << "prefix " << len;
    }
  }
}

// Applies mutate to a valid frame, optionally repairs the checksums, and returns decodeFrame's verdict.
template <typename Mutate>
WireError decodeMutated(Bytes frame, Mutate mutate, bool fixIp, bool fixUdp) {
  mutate(frame);
  if (fixIp && !isV6Frame(frame)) {
    refFixIpv4Checksum(frame);
  }
  if (fixUdp) {
    refFixUdpChecksum(frame);
  }
  return decodeCopy(frame, frame.size());
}

TEST(Frame, Ipv4Malformations) {
  for (bool vlan : {false, true}) {
    SCOPED_TRACE(vlan ? "VLAN" : "untagged");
    const Bytes good = defaultFrame(false, vlan, true);
    const std::size_t ip = ipOffsetOf(good);
    const std::size_t udp = ip + 20;
    const std::size_t mp = udp + 8;
    ASSERT_EQ(decodeCopy(good, good.size()), WireError::kNone);

    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip - 2, 0x0806); }, false, false),
              WireError::kNotIp);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip - 2, 0x8100); }, false, false),
              WireError::kNotIp);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip] = 0x65; }, true, false),
              WireError::kBadIpVersion);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip] = 0x44; }, false, false),
              WireError::kBadIpHeaderLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip] = 0x40; }, false, false),
              WireError::kBadIpHeaderLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 10] ^= 0x01; }, false, false),
              WireError::kBadIpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 8] -= 1; }, false, false),
              WireError::kBadIpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 6] |= 0x20; }, true, false),
              WireError::kIpFragment);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 6, 0x0001); }, true, false),
              WireError::kIpFragment);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 6, 0x4000 | 0x1fff); }, true, false),
              WireError::kIpFragment);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 9] = 6; }, true, false),
              WireError::kNotUdp);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 9] = 1; }, true, false),
              WireError::kNotUdp);
    // Total length: too small for IP + UDP, and longer than the frame.
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 2, 27); }, true, false),
              WireError::kBadIpTotalLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 2, 0); }, true, false),
              WireError::kBadIpTotalLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 2, static_cast<std::uint16_t>(f.size() - ip + 1)); },
                  true, false),
              WireError::kBadIpTotalLength);
    // Total length shorter than the UDP length (the rest would look like padding).
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 2, static_cast<std::uint16_t>(get16(f, ip + 2) - 1)); },
                  true, false),
              WireError::kBadUdpLength);
    // UDP length: below 8, shorter and longer than the IP payload.
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, udp + 4, 7); }, false, false),
              WireError::kBadUdpLength);
    EXPECT_EQ(
        decodeMutated(
            good, [&](Bytes& f) { put16(f, udp + 4, static_cast<std::uint16_t>(get16(f, udp + 4) - 1)); },
            false, false),
        WireError::kBadUdpLength);
    EXPECT_EQ(
        decodeMutated(
            good, [&](Bytes& f) { put16(f, udp + 4, static_cast<std::uint16_t>(get16(f, udp + 4) + 1)); },
            false, false),
        WireError::kBadUdpLength);
    // UDP checksum: wrong field, corrupted payload, corrupted port, corrupted address (pseudo-header).
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[udp + 7] ^= 0x80; }, false, false),
              WireError::kBadUdpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f.back() ^= 0x01; }, false, false),
              WireError::kBadUdpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[udp] ^= 0x01; }, false, false),
              WireError::kBadUdpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 15] ^= 0x01; }, true, false),
              WireError::kBadUdpChecksum);
    // A zero UDP checksum is "none" over IPv4.
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, udp + 6, 0); }, false, false),
              WireError::kNone);
    // Multipath header errors inside a valid UDP datagram.
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp] = 0; }, false, true),
              WireError::kBadMagic);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp + 2] = 2; }, false, true),
              WireError::kBadVersion);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp + 11] += 1; }, false, true),
              WireError::kBadPayloadLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp + 11] -= 1; }, false, true),
              WireError::kBadPayloadLength);
    // Repairing the checksum after an innocuous change must be accepted (the helpers are right).
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f.back() ^= 0x01; }, false, true),
              WireError::kNone);
  }
}

TEST(Frame, Ipv6Malformations) {
  for (bool vlan : {false, true}) {
    SCOPED_TRACE(vlan ? "VLAN" : "untagged");
    const Bytes good = defaultFrame(true, vlan, true);
    const std::size_t ip = ipOffsetOf(good);
    const std::size_t udp = ip + 40;
    const std::size_t mp = udp + 8;
    ASSERT_EQ(decodeCopy(good, good.size()), WireError::kNone);

    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip - 2, 0x86de); }, false, false),
              WireError::kNotIp);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip] = 0x40 | (f[ip] & 0x0f); }, false, false),
              WireError::kBadIpVersion);
    // IPv6 header in an IPv4 EtherType, and the other way around.
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip - 2, 0x0800); }, false, false),
              WireError::kBadIpVersion);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 6] = 44; }, false, false),
              WireError::kIpFragment);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 6] = 0; }, false, false),
              WireError::kNotUdp);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 6] = 6; }, false, false),
              WireError::kNotUdp);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 4, 7); }, false, false),
              WireError::kBadIpTotalLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, ip + 4, static_cast<std::uint16_t>(f.size() - udp + 1)); },
                  false, false),
              WireError::kBadIpTotalLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, udp + 4, 7); }, false, false),
              WireError::kBadUdpLength);
    EXPECT_EQ(
        decodeMutated(
            good, [&](Bytes& f) { put16(f, udp + 4, static_cast<std::uint16_t>(get16(f, udp + 4) - 2)); },
            false, false),
        WireError::kBadUdpLength);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { put16(f, udp + 6, 0); }, false, false),
              WireError::kBadUdpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[udp + 6] ^= 0x10; }, false, false),
              WireError::kBadUdpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 39] ^= 0x01; }, false, false),
              WireError::kBadUdpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp + 20] ^= 0x01; }, false, false),
              WireError::kBadUdpChecksum);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp + 1] = 'Y'; }, false, true),
              WireError::kBadMagic);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp + 2] = 0; }, false, true),
              WireError::kBadVersion);
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[mp + 10] = 0xff; }, false, true),
              WireError::kBadPayloadLength);
    // Flow label and traffic class are not checked.
    EXPECT_EQ(decodeMutated(
                  good, [&](Bytes& f) { f[ip + 3] = 0x42; }, false, false),
              WireError::kNone);
  }
}

TEST(Frame, ErrorsHaveNames) {
  for (int e = 0; e <= static_cast<int>(WireError::kBadAddressing); ++e) {
    const std::string name = toString(static_cast<WireError>(e));
    EXPECT_FALSE(name.empty());
    EXPECT_NE(name, "unknown wire error") << e;
  }
}

// ---- Fuzz ----

TEST(Fuzz, RandomBytesNeverCrashNorPassBadChecksums) {
  std::mt19937_64 rng(0x5eed);
  int accepted = 0;
  for (int i = 0; i < 200000; ++i) {
    const std::size_t len = rng() % 160;
    Bytes frame = randomBytes(rng, len);
    // Steer a share of inputs past the EtherType switch so the deeper layers get exercised.
    if (len >= 16 && rng() % 2 == 0) {
      const std::uint16_t types[] = {0x0800, 0x86dd, 0x8100};
      put16(frame, 12, types[rng() % 3]);
      if (len >= 20 && get16(frame, 12) == 0x8100) {
        put16(frame, 16, types[rng() % 2]);
      }
      const std::size_t ip = ipOffsetOf(frame);
      if (len > ip) {
        frame[ip] = isV6Frame(frame) ? static_cast<std::uint8_t>(0x60 | (frame[ip] & 0x0f)) : 0x45;
      }
    }
    std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[len + 1]);
    if (len > 0) {
      std::memcpy(copy.get(), frame.data(), len);
    }
    const auto parsed = decodeOuter({copy.get(), len});
    if (parsed.ok()) {
      ++accepted;
      ASSERT_TRUE(referenceAgrees(frame, parsed.value)) << "iteration " << i;
    }
    (void)decodeFrame({copy.get(), len});
  }
  RecordProperty("accepted", accepted);
}

TEST(Fuzz, MutatedValidFramesNeverPassBadChecksums) {
  std::mt19937_64 rng(0xf00d);
  std::vector<Bytes> seeds;
  for (const Combo& c : allCombos()) {
    seeds.push_back(defaultFrame(c.v6, c.vlan, c.udpChecksum, 7));
    seeds.push_back(defaultFrame(c.v6, c.vlan, c.udpChecksum, 300));
  }
  int accepted = 0;
  int rejected = 0;
  for (int i = 0; i < 200000; ++i) {
    Bytes frame = seeds[rng() % seeds.size()];
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations && !frame.empty(); ++m) {
      switch (rng() % 4) {
        case 0:  // flip one bit anywhere
          frame[rng() % frame.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 1:  // random byte in the headers
          frame[rng() % std::min<std::size_t>(frame.size(), 110)] = static_cast<std::uint8_t>(rng());
          break;
        case 2:  // cut or pad the frame
          frame.resize(rng() % (frame.size() + 20), static_cast<std::uint8_t>(rng()));
          break;
        default:  // random byte anywhere
          frame[rng() % frame.size()] = static_cast<std::uint8_t>(rng());
          break;
      }
    }
    std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[frame.size() + 1]);
    if (!frame.empty()) {
      std::memcpy(copy.get(), frame.data(), frame.size());
    }
    const std::span<const std::uint8_t> view(copy.get(), frame.size());
    const auto parsed = decodeOuter(view);
    if (parsed.ok()) {
      ++accepted;
      ASSERT_TRUE(referenceAgrees(frame, parsed.value)) << "iteration " << i;
      const auto full = decodeFrame(view);
      if (full.ok()) {
        ASSERT_EQ(full.value.header.payloadLen + kMpHeaderLen, parsed.value.udpPayloadLen);
      }
    } else {
      ++rejected;
    }
  }
  // Both outcomes must actually occur, or the loop tests nothing.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 100000);
}

}  // namespace
}  // namespace mpxdp::wire
