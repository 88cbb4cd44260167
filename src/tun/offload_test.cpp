#include "offload.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <random>
#include <vector>

namespace mpxdp::tun {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kFin = 0x01;
constexpr std::uint8_t kSyn = 0x02;
constexpr std::uint8_t kPsh = 0x08;
constexpr std::uint8_t kAck = 0x10;
constexpr std::uint8_t kCwr = 0x80;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;

// --- an independent, straightforward RFC 1071 implementation -------------

std::uint32_t refSum(const std::uint8_t* p, std::size_t n, std::uint64_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += static_cast<std::uint32_t>((p[i] << 8) | p[i + 1]);
  if (n % 2 == 1) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint32_t>(sum);
}

std::uint16_t rd16(const Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
std::uint32_t rd32(const Bytes& b, std::size_t at) {
  return (static_cast<std::uint32_t>(rd16(b, at)) << 16) | rd16(b, at + 2);
}
void wr16(Bytes& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}
void wr32(Bytes& b, std::size_t at, std::uint32_t v) {
  wr16(b, at, v >> 16);
  wr16(b, at + 2, v);
}

bool isV6(const Bytes& p) { return (p[0] >> 4) == 6; }
std::size_t ipHeaderBytes(const Bytes& p) { return isV6(p) ? 40 : (p[0] & 0x0f) * 4U; }
std::uint8_t protocolOf(const Bytes& p) { return isV6(p) ? p[6] : p[9]; }
std::size_t l4HeaderBytes(const Bytes& p) {
  return protocolOf(p) == kTcp ? (p[ipHeaderBytes(p) + 12] >> 4) * 4U : 8;
}
std::size_t checksumAt(const Bytes& p) { return ipHeaderBytes(p) + (protocolOf(p) == kTcp ? 16 : 6); }

// Pseudo-header sum for an L4 length.
std::uint32_t refPseudo(const Bytes& p, std::uint32_t l4Bytes, std::uint8_t protocol) {
  const std::uint32_t addresses = isV6(p) ? refSum(p.data() + 8, 32) : refSum(p.data() + 12, 8);
  return refSum(nullptr, 0, std::uint64_t{addresses} + protocol + (l4Bytes >> 16) + (l4Bytes & 0xffff));
}

bool ipv4HeaderValid(const Bytes& p) { return refSum(p.data(), ipHeaderBytes(p)) == 0xffff; }

bool l4ChecksumValid(const Bytes& p) {
  const std::size_t ip = ipHeaderBytes(p);
  const auto l4 = static_cast<std::uint32_t>(p.size() - ip);
  return refSum(p.data() + ip, l4, refPseudo(p, l4, protocolOf(p))) == 0xffff;
}

void setIpv4Checksum(Bytes& p) {
  wr16(p, 10, 0);
  wr16(p, 10, ~refSum(p.data(), ipHeaderBytes(p)) & 0xffff);
}

void setFullChecksum(Bytes& p) {
  const std::size_t ip = ipHeaderBytes(p);
  const auto l4 = static_cast<std::uint32_t>(p.size() - ip);
  wr16(p, checksumAt(p), 0);
  std::uint32_t c = ~refSum(p.data() + ip, l4, refPseudo(p, l4, protocolOf(p))) & 0xffff;
  if (c == 0 && protocolOf(p) == kUdp) c = 0xffff;
  wr16(p, checksumAt(p), c);
}

// What the kernel leaves for CHECKSUM_PARTIAL: the pseudo-header sum.
void setPartialChecksum(Bytes& p) {
  const auto l4 = static_cast<std::uint32_t>(p.size() - ipHeaderBytes(p));
  wr16(p, checksumAt(p), refPseudo(p, l4, protocolOf(p)));
}

// --- packet builders --------------------------------------------------------

struct Spec {
  bool v6 = false;
  std::uint8_t protocol = kTcp;
  std::size_t payload = 1000;
  std::uint8_t flags = kAck;
  bool timestamps = true;
  std::uint32_t seq = 0xfffff000;  // wraps while splitting
  std::uint32_t ack = 0x55667788;
  std::uint16_t id = 0xfffe;  // wraps while splitting
  std::uint16_t sport = 40000;
  std::uint16_t dport = 5201;
  std::uint8_t payloadSeed = 3;
};

Bytes makePacket(const Spec& s) {
  const std::size_t ip = s.v6 ? 40 : 20;
  const std::size_t l4 = s.protocol == kTcp ? (s.timestamps ? 32 : 20) : 8;
  Bytes p(ip + l4 + s.payload, 0);
  if (s.v6) {
    p[0] = 0x60;
    p[1] = 0x01;  // traffic class / flow label
    p[2] = 0x23;
    p[3] = 0x45;
    wr16(p, 4, static_cast<std::uint32_t>(p.size() - 40));
    p[6] = s.protocol;
    p[7] = 64;
    p[8] = 0x20;
    p[9] = 0x01;
    p[10] = 0x0d;
    p[11] = 0xb8;
    p[23] = 1;
    p[24] = 0x20;
    p[25] = 0x01;
    p[26] = 0x0d;
    p[27] = 0xb8;
    p[39] = 2;
  } else {
    p[0] = 0x45;
    p[1] = 0x02;
    wr16(p, 2, static_cast<std::uint32_t>(p.size()));
    wr16(p, 4, s.id);
    wr16(p, 6, 0x4000);  // DF
    p[8] = 64;
    p[9] = s.protocol;
    wr32(p, 12, 0x0a000001);
    wr32(p, 16, 0x0a000002);
    setIpv4Checksum(p);
  }
  wr16(p, ip, s.sport);
  wr16(p, ip + 2, s.dport);
  if (s.protocol == kTcp) {
    wr32(p, ip + 4, s.seq);
    wr32(p, ip + 8, s.ack);
    p[ip + 12] = static_cast<std::uint8_t>((l4 / 4) << 4);
    p[ip + 13] = s.flags;
    wr16(p, ip + 14, 512);
    if (s.timestamps) {
      p[ip + 20] = 1;
      p[ip + 21] = 1;
      p[ip + 22] = 8;
      p[ip + 23] = 10;
      wr32(p, ip + 24, 0x01020304);
      wr32(p, ip + 28, 0x0a0b0c0d);
    }
  } else {
    wr16(p, ip + 4, static_cast<std::uint32_t>(p.size() - ip));
  }
  for (std::size_t i = 0; i < s.payload; ++i)
    p[ip + l4 + i] = static_cast<std::uint8_t>(i * 7 + s.payloadSeed);
  setFullChecksum(p);
  return p;
}

VirtioHeader gsoHeader(const Bytes& p, std::uint16_t gsoSize) {
  VirtioHeader h;
  h.flags = VirtioHeader::kNeedsChecksum;
  if (protocolOf(p) == kUdp) {
    h.gsoType = VirtioHeader::kGsoUdpL4;
  } else {
    h.gsoType = isV6(p) ? VirtioHeader::kGsoTcpV6 : VirtioHeader::kGsoTcpV4;
  }
  h.headerLength = static_cast<std::uint16_t>(ipHeaderBytes(p) + l4HeaderBytes(p));
  h.gsoSize = gsoSize;
  h.checksumStart = static_cast<std::uint16_t>(ipHeaderBytes(p));
  h.checksumOffset = protocolOf(p) == kTcp ? 16 : 6;
  return h;
}

// A super-packet as the kernel hands it to a TUN with offloads.
Bytes makeSuper(Spec s) {
  Bytes p = makePacket(s);
  setPartialChecksum(p);
  return p;
}

std::vector<Bytes> split(const VirtioHeader& h, const Bytes& p, std::uint32_t maxPacket) {
  GsoSplitter splitter;
  const Result<void> r = splitter.begin(h, p, maxPacket);
  EXPECT_TRUE(r.ok()) << r.error().message();
  std::vector<Bytes> out;
  if (!r.ok()) return out;
  const std::size_t expected = splitter.remainingSegments();
  Bytes buf(maxPacket);
  for (std::size_t n = splitter.next(buf); n != 0; n = splitter.next(buf)) {
    EXPECT_LE(n, maxPacket);
    out.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  EXPECT_EQ(out.size(), expected);
  EXPECT_EQ(splitter.remainingSegments(), 0U);
  return out;
}

int beginError(const VirtioHeader& h, const Bytes& p, std::uint32_t maxPacket) {
  GsoSplitter splitter;
  const Result<void> r = splitter.begin(h, p, maxPacket);
  return r.ok() ? 0 : r.error().code();
}

// --- virtio header and checksum --------------------------------------------

TEST(VirtioHeader, LittleEndianLayoutRoundTrips) {
  VirtioHeader h;
  h.flags = VirtioHeader::kNeedsChecksum;
  h.gsoType = VirtioHeader::kGsoTcpV6 | VirtioHeader::kGsoEcn;
  h.headerLength = 0x0102;
  h.gsoSize = 0x0304;
  h.checksumStart = 0x0506;
  h.checksumOffset = 0x0708;
  std::array<std::uint8_t, kVirtioHeaderBytes> raw{};
  writeVirtioHeader(h, raw);
  const std::array<std::uint8_t, kVirtioHeaderBytes> expected = {1, 0x84, 2, 1, 4, 3, 6, 5, 8, 7};
  EXPECT_EQ(raw, expected);
  const VirtioHeader back = parseVirtioHeader(raw);
  EXPECT_EQ(back.flags, h.flags);
  EXPECT_EQ(back.gsoType, h.gsoType);
  EXPECT_EQ(back.headerLength, h.headerLength);
  EXPECT_EQ(back.gsoSize, h.gsoSize);
  EXPECT_EQ(back.checksumStart, h.checksumStart);
  EXPECT_EQ(back.checksumOffset, h.checksumOffset);
}

TEST(Checksum, MatchesReferenceForEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  Bytes data(600);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  for (std::size_t start = 0; start < 9; ++start) {
    for (std::size_t n = 0; start + n <= data.size(); ++n) {
      const std::uint32_t initial = (n % 3 == 0) ? 0 : static_cast<std::uint32_t>(rng()) & 0x3ffff;
      const std::uint16_t got = checksumAdd({data.data() + start, n}, initial);
      const std::uint32_t want = refSum(data.data() + start, n, initial);
      // 0 and 0xffff are the same one's complement number.
      ASSERT_EQ(got % 0xffff, want % 0xffff) << "start " << start << " n " << n;
    }
  }
}

TEST(Checksum, AllOnesAndLongBuffers) {
  for (const std::size_t n : {65534U, 65535U}) {
    const Bytes ones(n, 0xff);
    EXPECT_EQ(checksumAdd(ones) % 0xffff, refSum(ones.data(), n) % 0xffff);
  }
  EXPECT_EQ(checksumAdd(Bytes(65534, 0xff)) % 0xffff, 0U);
  Bytes big(65535);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(0xf0 + i % 16);
  EXPECT_EQ(checksumAdd(big) % 0xffff, refSum(big.data(), big.size()) % 0xffff);
}

TEST(Checksum, Benchmark1GiB) {
  Bytes buf(65536);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::uint8_t>(i * 31);
  constexpr int kRounds = 16384;  // 1 GiB
  std::uint32_t acc = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) acc = checksumAdd({buf.data() + (i & 7), buf.size() - 8}, acc);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("checksumAdd: 1 GiB in %.3f s = %.2f GB/s (sum %04x)\n", s, kRounds * 65528.0 / s / 1e9, acc);
  volatile std::uint32_t ref = 0;
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds / 16; ++i) ref = refSum(buf.data() + (i & 7), buf.size() - 8, ref);
  const double r = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  std::printf("reference 16-bit loop: %.2f GB/s\n", kRounds / 16.0 * 65528.0 / r / 1e9);
  SUCCEED();
}

// --- GSO split ---------------------------------------------------------------

// Checks each segment of a split TCP super-packet against the original.
void checkTcpSegments(const Bytes& super, const std::vector<Bytes>& segs, std::size_t segPayload) {
  const std::size_t ip = ipHeaderBytes(super);
  const std::size_t headers = ip + l4HeaderBytes(super);
  const std::size_t payload = super.size() - headers;
  ASSERT_EQ(segs.size(), (payload + segPayload - 1) / segPayload);
  Bytes joined;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const Bytes& s = segs[i];
    const bool first = i == 0;
    const bool last = i + 1 == segs.size();
    const std::size_t want = std::min(segPayload, payload - i * segPayload);
    ASSERT_EQ(s.size(), headers + want) << i;
    if (isV6(s)) {
      EXPECT_EQ(rd16(s, 4), s.size() - 40);
      EXPECT_TRUE(std::equal(s.begin(), s.begin() + 4, super.begin()));
      EXPECT_TRUE(std::equal(s.begin() + 6, s.begin() + 40, super.begin() + 6));
    } else {
      EXPECT_EQ(rd16(s, 2), s.size());
      EXPECT_EQ(rd16(s, 4), static_cast<std::uint16_t>(rd16(super, 4) + i));
      EXPECT_TRUE(ipv4HeaderValid(s)) << i;
      EXPECT_EQ(rd16(s, 6), rd16(super, 6));
      EXPECT_EQ(s[1], super[1]);
      EXPECT_EQ(s[8], super[8]);
    }
    EXPECT_EQ(rd32(s, ip + 4), static_cast<std::uint32_t>(rd32(super, ip + 4) + i * segPayload)) << i;
    EXPECT_EQ(rd32(s, ip + 8), rd32(super, ip + 8));
    std::uint8_t flags = super[ip + 13];
    if (!last) flags &= static_cast<std::uint8_t>(~(kFin | kPsh));
    if (!first) flags &= static_cast<std::uint8_t>(~kCwr);
    EXPECT_EQ(s[ip + 13], flags) << i;
    // Ports, offset, window, urgent pointer and options as the original.
    EXPECT_TRUE(std::equal(s.begin() + ip, s.begin() + ip + 4, super.begin() + ip));
    EXPECT_TRUE(std::equal(s.begin() + ip + 14, s.begin() + ip + 16, super.begin() + ip + 14));
    EXPECT_TRUE(std::equal(s.begin() + ip + 18, s.begin() + headers, super.begin() + ip + 18));
    EXPECT_TRUE(l4ChecksumValid(s)) << i;
    joined.insert(joined.end(), s.begin() + headers, s.end());
  }
  EXPECT_TRUE(std::equal(joined.begin(), joined.end(), super.begin() + headers, super.end()));
  EXPECT_EQ(joined.size(), payload);
}

TEST(GsoSplitter, TcpV4WithTimestampsAndFlags) {
  Spec s;
  s.payload = 4000;
  s.flags = kAck | kPsh | kFin | kCwr;
  const Bytes super = makeSuper(s);
  const auto segs = split(gsoHeader(super, 1448), super, 1500);
  EXPECT_EQ(segs.size(), 3U);
  checkTcpSegments(super, segs, 1448);
}

TEST(GsoSplitter, TcpV6WithTimestampsAndFlags) {
  Spec s;
  s.v6 = true;
  s.payload = 5000;
  s.flags = kAck | kPsh | kFin | kCwr;
  const Bytes super = makeSuper(s);
  VirtioHeader h = gsoHeader(super, 1428);
  h.gsoType |= VirtioHeader::kGsoEcn;
  const auto segs = split(h, super, 1500);
  EXPECT_EQ(segs.size(), 4U);
  checkTcpSegments(super, segs, 1428);
}

TEST(GsoSplitter, IgnoresWhateverIsInTheChecksumFieldAndHdrLen) {
  Spec s;
  s.payload = 3000;
  Bytes super = makePacket(s);
  wr16(super, checksumAt(super), 0xbeef);
  VirtioHeader h = gsoHeader(super, 1000);
  h.headerLength = 7;  // unreliable from the kernel
  checkTcpSegments(super, split(h, super, 1500), 1000);
}

TEST(GsoSplitter, SegmentsShrinkToMaxPacketBytes) {
  for (const bool v6 : {false, true}) {
    Spec s;
    s.v6 = v6;
    s.payload = 9000;
    s.flags = kAck | kPsh;
    const Bytes super = makeSuper(s);
    const std::size_t headers = (v6 ? 40 : 20) + 32;
    const auto segs = split(gsoHeader(super, 1448), super, 600);
    checkTcpSegments(super, segs, 600 - headers);
    for (const auto& seg : segs) EXPECT_LE(seg.size(), 600U);
  }
}

TEST(GsoSplitter, OneSegmentWhenPayloadFits) {
  Spec s;
  s.payload = 500;
  s.flags = kAck | kPsh | kFin;
  const Bytes super = makeSuper(s);
  const auto segs = split(gsoHeader(super, 1448), super, 1500);
  ASSERT_EQ(segs.size(), 1U);
  checkTcpSegments(super, segs, 1448);
  Bytes expected = makePacket(s);  // full checksums, as sent
  EXPECT_EQ(segs[0], expected);
}

void checkUdpSegments(const Bytes& super, const std::vector<Bytes>& segs, std::size_t segPayload) {
  const std::size_t ip = ipHeaderBytes(super);
  const std::size_t headers = ip + 8;
  const std::size_t payload = super.size() - headers;
  ASSERT_EQ(segs.size(), (payload + segPayload - 1) / segPayload);
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const Bytes& s = segs[i];
    const std::size_t want = std::min(segPayload, payload - i * segPayload);
    ASSERT_EQ(s.size(), headers + want);
    EXPECT_EQ(rd16(s, ip + 4), 8 + want);
    if (isV6(s)) {
      EXPECT_EQ(rd16(s, 4), s.size() - 40);
    } else {
      EXPECT_EQ(rd16(s, 2), s.size());
      EXPECT_EQ(rd16(s, 4), static_cast<std::uint16_t>(rd16(super, 4) + i));
      EXPECT_TRUE(ipv4HeaderValid(s));
    }
    EXPECT_NE(rd16(s, ip + 6), 0);
    EXPECT_TRUE(l4ChecksumValid(s)) << i;
    EXPECT_TRUE(std::equal(s.begin() + headers, s.end(), super.begin() + headers + i * segPayload));
  }
}

TEST(GsoSplitter, UdpGsoV4AndV6) {
  for (const bool v6 : {false, true}) {
    Spec s;
    s.v6 = v6;
    s.protocol = kUdp;
    s.payload = 1200 * 5 + 77;
    const Bytes super = makeSuper(s);
    const auto segs = split(gsoHeader(super, 1200), super, 1500);
    checkUdpSegments(super, segs, 1200);
  }
}

TEST(GsoSplitter, UdpZeroChecksumIsSentAsAllOnes) {
  Spec s;
  s.protocol = kUdp;
  s.payload = 200;  // two datagrams of 100
  Bytes super = makeSuper(s);
  // Make the second datagram's checksum come out as 0: its last two payload
  // bytes bring the sum to 0xffff.
  const std::size_t ip = 20;
  Bytes second(super.begin(), super.begin() + ip + 8);
  second.insert(second.end(), super.begin() + ip + 8 + 100, super.end());
  wr16(second, 2, static_cast<std::uint32_t>(second.size()));
  wr16(second, ip + 4, 108);
  wr16(second, ip + 6, 0);
  wr16(second, second.size() - 2, 0);
  const std::uint32_t sum = refSum(second.data() + ip, 108, refPseudo(second, 108, kUdp));
  wr16(super, super.size() - 2, ~sum & 0xffff);
  const auto segs = split(gsoHeader(super, 100), super, 1500);
  ASSERT_EQ(segs.size(), 2U);
  EXPECT_EQ(rd16(segs[1], ip + 6), 0xffff);
  checkUdpSegments(super, segs, 100);
}

TEST(GsoSplitter, UdpDatagramsAreNotCutShorter) {
  Spec s;
  s.protocol = kUdp;
  s.payload = 3000;
  const Bytes super = makeSuper(s);
  EXPECT_EQ(beginError(gsoHeader(super, 1400), super, 1400), EMSGSIZE);
  EXPECT_EQ(beginError(gsoHeader(super, 1400), super, 1428), 0);
}

TEST(GsoSplitter, NoGsoCompletesPartialChecksum) {
  for (const bool v6 : {false, true}) {
    for (const std::uint8_t protocol : {kTcp, kUdp}) {
      Spec s;
      s.v6 = v6;
      s.protocol = protocol;
      s.payload = 333;  // odd
      const Bytes sent = makePacket(s);
      Bytes partial = sent;
      setPartialChecksum(partial);
      VirtioHeader h = gsoHeader(partial, 0);
      h.gsoType = VirtioHeader::kGsoNone;
      const auto segs = split(h, partial, 1500);
      ASSERT_EQ(segs.size(), 1U);
      EXPECT_TRUE(l4ChecksumValid(segs[0]));
      EXPECT_EQ(segs[0], sent);
    }
  }
}

TEST(GsoSplitter, NoGsoWithoutFlagsPassesAsIs) {
  Spec s;
  s.payload = 100;
  Bytes p = makePacket(s);
  wr16(p, checksumAt(p), 0x1234);  // even a wrong checksum stays
  const auto segs = split(VirtioHeader{}, p, 1500);
  ASSERT_EQ(segs.size(), 1U);
  EXPECT_EQ(segs[0], p);
  // Not even IP: still passed (the TUN decides what it is).
  const Bytes junk = {0x00, 0x01, 0x02};
  EXPECT_EQ(split(VirtioHeader{}, junk, 1500).at(0), junk);
}

TEST(GsoSplitter, NoGsoTooBigIsEmsgsize) {
  Spec s;
  s.payload = 1500;
  const Bytes p = makePacket(s);
  EXPECT_EQ(beginError(VirtioHeader{}, p, 1500), EMSGSIZE);
  EXPECT_EQ(beginError(VirtioHeader{}, p, static_cast<std::uint32_t>(p.size())), 0);
}

TEST(GsoSplitter, HeadersThatDoNotFitAreEmsgsize) {
  Spec s;
  s.payload = 3000;
  const Bytes super = makeSuper(s);
  EXPECT_EQ(beginError(gsoHeader(super, 1448), super, 52), EMSGSIZE);
  EXPECT_EQ(beginError(gsoHeader(super, 1448), super, 40), EMSGSIZE);
  // One payload byte per segment still works.
  const auto segs = split(gsoHeader(super, 1448), super, 53);
  EXPECT_EQ(segs.size(), 3000U);
}

TEST(GsoSplitter, InvalidCombinations) {
  Spec s;
  s.payload = 3000;
  const Bytes v4 = makeSuper(s);
  s.v6 = true;
  const Bytes v6 = makeSuper(s);
  s.protocol = kUdp;
  const Bytes udp6 = makeSuper(s);

  VirtioHeader h = gsoHeader(v4, 1000);
  h.gsoType = VirtioHeader::kGsoTcpV6;
  EXPECT_EQ(beginError(h, v4, 1500), EINVAL);
  h = gsoHeader(v6, 1000);
  h.gsoType = VirtioHeader::kGsoTcpV4;
  EXPECT_EQ(beginError(h, v6, 1500), EINVAL);
  h.gsoType = VirtioHeader::kGsoUdpL4;
  EXPECT_EQ(beginError(h, v6, 1500), EINVAL);
  h = gsoHeader(udp6, 1000);
  h.gsoType = VirtioHeader::kGsoTcpV6;
  EXPECT_EQ(beginError(h, udp6, 1500), EINVAL);
  h = gsoHeader(v4, 1000);
  h.gsoType = 3;  // UDP fragmentation offload: not offered
  EXPECT_EQ(beginError(h, v4, 1500), EINVAL);
  h = gsoHeader(v4, 0);
  EXPECT_EQ(beginError(h, v4, 1500), EINVAL);

  // IPv4 length beyond the packet, bad IHL, bad TCP data offset, fragment.
  Bytes bad = v4;
  wr16(bad, 2, static_cast<std::uint32_t>(bad.size() + 1));
  EXPECT_EQ(beginError(gsoHeader(v4, 1000), bad, 1500), EINVAL);
  bad = v4;
  bad[0] = 0x44;
  EXPECT_EQ(beginError(gsoHeader(v4, 1000), bad, 1500), EINVAL);
  bad = v4;
  bad[20 + 12] = 0x40;
  EXPECT_EQ(beginError(gsoHeader(v4, 1000), bad, 1500), EINVAL);
  bad = v4;
  bad[20 + 12] = 0xf0;  // 60 bytes: fits, but the options are payload garbage: still parses
  EXPECT_EQ(beginError(gsoHeader(v4, 1000), bad, 1500), 0);
  bad = v4;
  wr16(bad, 6, 0x2000);  // MF
  EXPECT_EQ(beginError(gsoHeader(v4, 1000), bad, 1500), EINVAL);
  bad = v4;
  bad[0] = 0x55;  // version 5
  EXPECT_EQ(beginError(gsoHeader(v4, 1000), bad, 1500), EINVAL);
  // IPv6 payload length beyond the packet; a GSO packet behind an extension header.
  bad = v6;
  wr16(bad, 4, static_cast<std::uint32_t>(bad.size()));
  EXPECT_EQ(beginError(gsoHeader(v6, 1000), bad, 1500), EINVAL);
  bad = v6;
  bad[6] = 60;  // destination options
  EXPECT_EQ(beginError(gsoHeader(v6, 1000), bad, 1500), EINVAL);
  // Headers only, no payload.
  Spec empty;
  empty.payload = 0;
  const Bytes headersOnly = makeSuper(empty);
  EXPECT_EQ(beginError(gsoHeader(headersOnly, 1000), headersOnly, 1500), EINVAL);

  // Non-GSO: checksum position beyond the packet; empty packet.
  Spec small;
  small.payload = 10;
  const Bytes p = makePacket(small);
  h = VirtioHeader{};
  h.flags = VirtioHeader::kNeedsChecksum;
  h.checksumStart = static_cast<std::uint16_t>(p.size() - 2);
  h.checksumOffset = 0;
  EXPECT_EQ(beginError(h, p, 1500), 0);
  h.checksumOffset = 1;
  EXPECT_EQ(beginError(h, p, 1500), EINVAL);
  h.checksumStart = 0xffff;
  h.checksumOffset = 0xffff;
  EXPECT_EQ(beginError(h, p, 1500), EINVAL);
  EXPECT_EQ(beginError(VirtioHeader{}, Bytes{}, 1500), EINVAL);
}

// A failed begin leaves nothing to write, even after a successful one.
TEST(GsoSplitter, FailedBeginResets) {
  Spec s;
  s.payload = 3000;
  const Bytes super = makeSuper(s);
  GsoSplitter splitter;
  ASSERT_TRUE(splitter.begin(gsoHeader(super, 1000), super, 1500).ok());
  EXPECT_EQ(splitter.remainingSegments(), 3U);
  VirtioHeader h = gsoHeader(super, 1000);
  h.gsoType = VirtioHeader::kGsoTcpV6;
  EXPECT_FALSE(splitter.begin(h, super, 1500).ok());
  EXPECT_EQ(splitter.remainingSegments(), 0U);
  Bytes out(1500);
  EXPECT_EQ(splitter.next(out), 0U);
}

// Every truncation of valid packets, each in a buffer of exactly its size (so
// ASan catches a read beyond it), with and without the IP length fixed up to
// match: an error, or segments whose checksums verify.
TEST(GsoSplitter, EveryTruncationIsSafe) {
  std::vector<Bytes> packets;
  for (const bool v6 : {false, true}) {
    for (const std::uint8_t protocol : {kTcp, kUdp}) {
      Spec s;
      s.v6 = v6;
      s.protocol = protocol;
      s.payload = 300;
      packets.push_back(makeSuper(s));
    }
  }
  std::size_t splits = 0;
  for (const Bytes& full : packets) {
    const VirtioHeader gso = gsoHeader(full, 100);
    VirtioHeader partial = gso;
    partial.gsoType = VirtioHeader::kGsoNone;
    for (std::size_t len = 0; len < full.size(); ++len) {
      for (const bool fixLength : {false, true}) {
        Bytes t(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
        if (fixLength && len >= 6) {
          if (isV6(full)) {
            wr16(t, 4, static_cast<std::uint32_t>(len >= 40 ? len - 40 : 0));
          } else {
            wr16(t, 2, static_cast<std::uint32_t>(len));
          }
        }
        for (const VirtioHeader& h : {gso, partial}) {
          for (const std::uint32_t maxPacket : {1500U, 120U, 61U}) {
            GsoSplitter splitter;
            if (!splitter.begin(h, t, maxPacket).ok()) continue;
            Bytes out(maxPacket);
            for (std::size_t n = splitter.next(out); n != 0; n = splitter.next(out)) {
              ASSERT_LE(n, maxPacket);
              ++splits;
              if (h.gsoType != VirtioHeader::kGsoNone) {
                Bytes seg(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
                ASSERT_TRUE(l4ChecksumValid(seg)) << len;
                if (!isV6(seg)) {
                  ASSERT_TRUE(ipv4HeaderValid(seg));
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(splits, 1000U);
}

// --- TCP coalescing -----------------------------------------------------------

// Keeps every packet it adds alive: the coalescer points into them until take().
struct Coalescer {
  TcpCoalescer c;
  std::deque<Bytes> kept;
  bool add(Bytes packet) {
    kept.push_back(std::move(packet));
    return c.add(kept.back());
  }
};

// The gather list as the kernel's writev would see it.
Bytes taken(TcpCoalescer& c) {
  Bytes out;
  for (const auto part : c.take()) out.insert(out.end(), part.begin(), part.end());
  return out;
}

void roundTrip(bool v6) {
  Spec s;
  s.v6 = v6;
  s.payload = 10000;
  s.flags = kAck | kPsh;
  const Bytes super = makeSuper(s);
  const std::size_t ip = ipHeaderBytes(super);
  const std::size_t headers = ip + 32;
  const auto gsoSize = static_cast<std::uint16_t>(1500 - headers);
  const auto segs = split(gsoHeader(super, gsoSize), super, 1500);
  ASSERT_EQ(segs.size(), (10000 + gsoSize - 1) / gsoSize);

  Coalescer k;
  for (const Bytes& seg : segs) ASSERT_TRUE(k.add(seg));
  EXPECT_EQ(k.c.segments(), segs.size());
  const Bytes out = taken(k.c);
  EXPECT_TRUE(k.c.empty());
  ASSERT_EQ(out.size(), kVirtioHeaderBytes + super.size());
  const VirtioHeader h = parseVirtioHeader(std::span<const std::uint8_t, kVirtioHeaderBytes>(out.data(), 10));
  EXPECT_EQ(h.flags, VirtioHeader::kNeedsChecksum);
  EXPECT_EQ(h.gsoType, v6 ? VirtioHeader::kGsoTcpV6 : VirtioHeader::kGsoTcpV4);
  EXPECT_EQ(h.gsoSize, gsoSize);
  EXPECT_EQ(h.headerLength, headers);
  EXPECT_EQ(h.checksumStart, ip);
  EXPECT_EQ(h.checksumOffset, 16);
  const Bytes packet(out.begin() + kVirtioHeaderBytes, out.end());
  // The super-packet as the kernel made it: same bytes, partial checksum
  // (the IPv4 id is the first segment's, which is the original's).
  EXPECT_EQ(packet, super);
  if (!v6) {
    EXPECT_TRUE(ipv4HeaderValid(packet));
  }
  EXPECT_EQ(rd16(packet, ip + 16), refPseudo(packet, static_cast<std::uint32_t>(packet.size() - ip), kTcp));
  // Completing the checksum as the kernel would gives a valid packet.
  Bytes complete = packet;
  wr16(complete, ip + 16, ~refSum(complete.data() + ip, complete.size() - ip) & 0xffff);
  EXPECT_TRUE(l4ChecksumValid(complete));
  // And splitting it again gives the same segments.
  EXPECT_EQ(split(h, packet, 1500), segs);
}

TEST(TcpCoalescer, RoundTripV4) { roundTrip(false); }
TEST(TcpCoalescer, RoundTripV6) { roundTrip(true); }

TEST(TcpCoalescer, SingleSegmentKeepsItsChecksumAndDataValid) {
  Spec s;
  const Bytes p = makePacket(s);
  Coalescer k;
  EXPECT_TRUE(k.c.empty());
  EXPECT_TRUE(k.c.take().empty());
  ASSERT_TRUE(k.add(p));
  EXPECT_FALSE(k.c.empty());
  EXPECT_EQ(k.c.segments(), 1U);
  const Bytes out = taken(k.c);
  ASSERT_EQ(out.size(), 10 + p.size());
  const auto single = TcpCoalescer::singleHeader();
  EXPECT_TRUE(std::equal(single.begin(), single.end(), out.begin()));
  EXPECT_TRUE(std::equal(p.begin(), p.end(), out.begin() + 10));
  const VirtioHeader h = parseVirtioHeader(single);
  EXPECT_EQ(h.flags, VirtioHeader::kDataValid);
  EXPECT_EQ(h.gsoType, 0);
  EXPECT_EQ(h.headerLength, 0);
  EXPECT_EQ(h.gsoSize, 0);
  EXPECT_EQ(h.checksumStart, 0);
  EXPECT_EQ(h.checksumOffset, 0);
}

// Two segments: the first as given, the second from `second` (seq follows).
Spec nextOf(Spec s) {
  s.seq += static_cast<std::uint32_t>(s.payload);
  s.id = static_cast<std::uint16_t>(s.id + 1);
  return s;
}

bool merges(const Spec& first, const Bytes& second) {
  Coalescer k;
  EXPECT_TRUE(k.add(makePacket(first)));
  const bool merged = k.add(second);
  EXPECT_EQ(k.c.segments(), merged ? 2U : 1U);
  return merged;
}

TEST(TcpCoalescer, MergesTheNextSegment) {
  for (const bool v6 : {false, true}) {
    Spec a;
    a.v6 = v6;
    EXPECT_TRUE(merges(a, makePacket(nextOf(a))));
    Spec b = nextOf(a);
    b.flags = kAck | kPsh;
    EXPECT_TRUE(merges(a, makePacket(b)));
    b = nextOf(a);
    b.payload = 1;
    EXPECT_TRUE(merges(a, makePacket(b)));
  }
}

TEST(TcpCoalescer, RefusesWhatDoesNotContinue) {
  for (const bool v6 : {false, true}) {
    Spec a;
    a.v6 = v6;
    Spec b = nextOf(a);
    b.seq += 1;
    EXPECT_FALSE(merges(a, makePacket(b))) << "gap";
    b = nextOf(a);
    b.seq -= static_cast<std::uint32_t>(a.payload);
    EXPECT_FALSE(merges(a, makePacket(b))) << "retransmission";
    b = nextOf(a);
    b.sport = 40001;
    EXPECT_FALSE(merges(a, makePacket(b))) << "other flow";
    b = nextOf(a);
    b.dport = 5202;
    EXPECT_FALSE(merges(a, makePacket(b))) << "other flow";
    b = nextOf(a);
    b.ack += 1;
    EXPECT_FALSE(merges(a, makePacket(b))) << "ack";
    b = nextOf(a);
    b.payload = a.payload + 1;
    EXPECT_FALSE(merges(a, makePacket(b))) << "longer";
    b = nextOf(a);
    b.payload = 0;
    EXPECT_FALSE(merges(a, makePacket(b))) << "no payload";
    b = nextOf(a);
    b.timestamps = false;
    EXPECT_FALSE(merges(a, makePacket(b))) << "options";
    for (const std::uint8_t flags :
         {std::uint8_t{kAck | kFin}, std::uint8_t{kAck | kCwr}, kSyn, std::uint8_t{kAck | 0x04},
          std::uint8_t{kAck | 0x20}, std::uint8_t{kAck | 0x40}}) {
      b = nextOf(a);
      b.flags = flags;
      EXPECT_FALSE(merges(a, makePacket(b))) << "flags " << int{flags};
    }
    // Fields changed in place (checksums need not be right: not checked).
    Bytes p = makePacket(nextOf(a));
    const std::size_t ip = v6 ? 40 : 20;
    wr16(p, ip + 14, 511);
    EXPECT_FALSE(merges(a, p)) << "window";
    p = makePacket(nextOf(a));
    p[ip + 27] ^= 1;
    EXPECT_FALSE(merges(a, p)) << "timestamp value";
    p = makePacket(nextOf(a));
    p[v6 ? 7 : 8] = 63;
    EXPECT_FALSE(merges(a, p)) << "ttl";
    p = makePacket(nextOf(a));
    p[1] ^= 0x01;
    EXPECT_FALSE(merges(a, p)) << "tos / traffic class";
    p = makePacket(nextOf(a));
    p[v6 ? 39 : 19] = 3;
    EXPECT_FALSE(merges(a, p)) << "destination";
    if (v6) {
      p = makePacket(nextOf(a));
      p[3] ^= 1;
      EXPECT_FALSE(merges(a, p)) << "flow label";
    } else {
      p = makePacket(nextOf(a));
      wr16(p, 6, 0);
      EXPECT_FALSE(merges(a, p)) << "DF";
    }
    // The other family.
    Spec other = nextOf(a);
    other.v6 = !v6;
    EXPECT_FALSE(merges(a, makePacket(other))) << "family";
  }
}

TEST(TcpCoalescer, NothingAfterAShortOrPushSegment) {
  Spec a;
  Spec b = nextOf(a);
  b.payload = 500;
  Spec c = nextOf(b);
  Coalescer k;
  ASSERT_TRUE(k.add(makePacket(a)));
  ASSERT_TRUE(k.add(makePacket(b)));
  EXPECT_FALSE(k.add(makePacket(c)));
  c.payload = 500;
  EXPECT_FALSE(k.add(makePacket(c)));

  Coalescer k2;
  b = nextOf(a);
  b.flags = kAck | kPsh;
  c = nextOf(b);
  ASSERT_TRUE(k2.add(makePacket(a)));
  ASSERT_TRUE(k2.add(makePacket(b)));
  EXPECT_FALSE(k2.add(makePacket(c)));
  // The PSH moves to the super-packet's header.
  const Bytes out = taken(k2.c);
  EXPECT_EQ(out[10 + 20 + 13], kAck | kPsh);
}

TEST(TcpCoalescer, WhatCannotStartIsPassedAlone) {
  Coalescer k;
  Spec s;
  s.flags = kAck | kPsh;
  EXPECT_FALSE(k.add(makePacket(s))) << "PSH";
  s.flags = kSyn;
  EXPECT_FALSE(k.add(makePacket(s))) << "SYN";
  s.flags = kAck;
  s.payload = 0;
  EXPECT_FALSE(k.add(makePacket(s))) << "pure ACK";
  Spec udp;
  udp.protocol = kUdp;
  EXPECT_FALSE(k.add(makePacket(udp))) << "UDP";
  Bytes frag = makePacket(Spec{});
  wr16(frag, 6, 0x2000);
  EXPECT_FALSE(k.add(frag)) << "fragment";
  EXPECT_FALSE(k.add(Bytes{0x45, 0})) << "truncated";
  EXPECT_TRUE(k.c.empty());
  // And a packet that is not TCP after one that is leaves the pending one.
  ASSERT_TRUE(k.add(makePacket(Spec{})));
  EXPECT_FALSE(k.add(makePacket(udp)));
  EXPECT_EQ(k.c.segments(), 1U);
}

TEST(TcpCoalescer, StopsAt65535Bytes) {
  for (const bool v6 : {false, true}) {
    Spec s;
    s.v6 = v6;
    s.payload = 1100;  // 59 segments: the byte limit comes before the segment limit
    Coalescer k;
    std::size_t total = 0;
    std::uint32_t added = 0;
    for (;;) {
      if (!k.add(makePacket(s))) break;
      total = (added == 0 ? (v6 ? 72U : 52U) : total) + 1100;
      ++added;
      s = nextOf(s);
    }
    EXPECT_LE(total, kMaxSuperPacket);
    EXPECT_GT(total + 1100, kMaxSuperPacket);
    EXPECT_EQ(k.c.segments(), added);
    const Bytes out = taken(k.c);
    EXPECT_EQ(out.size(), 10 + total);
    // The refused one starts the next.
    EXPECT_TRUE(k.add(makePacket(s)));
  }
}

TEST(TcpCoalescer, StopsAtMaxSegments) {
  Spec s;
  s.payload = 100;
  Coalescer k;
  std::uint32_t added = 0;
  while (k.add(makePacket(s))) {
    ++added;
    s = nextOf(s);
  }
  EXPECT_EQ(added, TcpCoalescer::kMaxSegments);
  EXPECT_EQ(k.c.take().size(), TcpCoalescer::kMaxSegments + 1);  // headers, then one part per segment
  EXPECT_TRUE(k.add(makePacket(s)));
}

TEST(TcpCoalescer, EveryTruncationIsSafe) {
  Spec a;
  const Bytes first = makePacket(a);
  const Bytes second = makePacket(nextOf(a));
  for (std::size_t len = 0; len <= second.size(); ++len) {
    Bytes t(second.begin(), second.begin() + static_cast<std::ptrdiff_t>(len));
    if (len >= 4) wr16(t, 2, static_cast<std::uint32_t>(len));
    Coalescer k;
    ASSERT_TRUE(k.add(first));
    const bool merged = k.add(t);
    EXPECT_EQ(merged, len > 52) << len;  // any payload at all continues the sequence
    Coalescer k2;
    (void)k2.c.add(t);
  }
}

// --- ICMP packet too big -----------------------------------------------------

IpAddress v4(std::uint32_t a) { return IpAddress::v4(a); }
IpAddress v6(std::uint8_t last) {
  IpAddress a;
  a.family = IpAddress::Family::kV6;
  a.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
  return a;
}

TEST(PacketTooBig, IcmpV4FragmentationNeeded) {
  Spec s;
  s.payload = 1400;
  const Bytes p = makePacket(s);
  Bytes out(1500);
  const std::size_t n = buildPacketTooBig(p, 1380, v4(0x0a000063), out);
  ASSERT_EQ(n, 576U);
  out.resize(n);
  EXPECT_EQ(out[0], 0x45);
  EXPECT_EQ(rd16(out, 2), 576);
  EXPECT_EQ(out[8], 64);
  EXPECT_EQ(out[9], 1);
  EXPECT_TRUE(ipv4HeaderValid(out));
  EXPECT_EQ(rd32(out, 12), 0x0a000063U);
  EXPECT_EQ(rd32(out, 16), 0x0a000001U);
  EXPECT_EQ(out[20], 3);
  EXPECT_EQ(out[21], 4);
  EXPECT_EQ(rd16(out, 24), 0);
  EXPECT_EQ(rd16(out, 26), 1380);
  EXPECT_EQ(refSum(out.data() + 20, n - 20), 0xffffU);
  EXPECT_TRUE(std::equal(out.begin() + 28, out.end(), p.begin()));

  // A short packet is quoted whole.
  Spec small;
  small.payload = 10;
  const Bytes q = makePacket(small);
  Bytes out2(1500);
  const std::size_t m = buildPacketTooBig(q, 1380, v4(0x0a000063), out2);
  ASSERT_EQ(m, 28 + q.size());
  EXPECT_EQ(refSum(out2.data() + 20, m - 20), 0xffffU);
  EXPECT_TRUE(std::equal(q.begin(), q.end(), out2.begin() + 28));
}

TEST(PacketTooBig, IcmpV6PacketTooBig) {
  Spec s;
  s.v6 = true;
  s.payload = 1400;
  const Bytes p = makePacket(s);
  Bytes out(1500);
  const std::size_t n = buildPacketTooBig(p, 1280, v6(0x63), out);
  ASSERT_EQ(n, 1280U);
  out.resize(n);
  EXPECT_EQ(out[0], 0x60);
  EXPECT_EQ(rd16(out, 4), 1240);
  EXPECT_EQ(out[6], 58);
  EXPECT_EQ(out[7], 64);
  EXPECT_EQ(out[23], 0x63);
  EXPECT_TRUE(std::equal(out.begin() + 24, out.begin() + 40, p.begin() + 8));
  EXPECT_EQ(out[40], 2);
  EXPECT_EQ(out[41], 0);
  EXPECT_EQ(rd32(out, 44), 1280U);
  EXPECT_EQ(refSum(out.data() + 40, n - 40, refPseudo(out, static_cast<std::uint32_t>(n - 40), 58)), 0xffffU);
  EXPECT_TRUE(std::equal(out.begin() + 48, out.end(), p.begin()));
}

TEST(PacketTooBig, NotAnswered) {
  Bytes out(1500);
  Spec s;
  Bytes p = makePacket(s);
  EXPECT_EQ(buildPacketTooBig(p, 1380, v6(1), out), 0U) << "family";
  Bytes noDf = p;
  wr16(noDf, 6, 0);
  EXPECT_EQ(buildPacketTooBig(noDf, 1380, v4(1), out), 0U) << "no DF";
  Bytes multicast = p;
  multicast[16] = 239;
  EXPECT_EQ(buildPacketTooBig(multicast, 1380, v4(1), out), 0U) << "multicast";
  Bytes broadcast = p;
  wr32(broadcast, 16, 0xffffffff);
  EXPECT_EQ(buildPacketTooBig(broadcast, 1380, v4(1), out), 0U) << "broadcast";
  EXPECT_EQ(buildPacketTooBig(Bytes{0x00, 0x01}, 1380, v4(1), out), 0U) << "not IP";
  EXPECT_EQ(buildPacketTooBig(Bytes{}, 1380, v4(1), out), 0U) << "empty";
  Bytes tooSmall(100);
  EXPECT_EQ(buildPacketTooBig(p, 1380, v4(1), tooSmall), 0U) << "no room";
  for (const std::uint8_t type : {3, 4, 5, 11, 12}) {
    Bytes icmp = p;
    icmp[9] = 1;
    icmp[20] = type;
    EXPECT_EQ(buildPacketTooBig(icmp, 1380, v4(1), out), 0U) << "ICMP error " << int{type};
  }
  Bytes echo = p;
  echo[9] = 1;
  echo[20] = 8;
  EXPECT_NE(buildPacketTooBig(echo, 1380, v4(1), out), 0U) << "echo request";

  Spec s6;
  s6.v6 = true;
  const Bytes q = makePacket(s6);
  EXPECT_EQ(buildPacketTooBig(q, 1280, v4(1), out), 0U) << "family";
  Bytes m6 = q;
  m6[24] = 0xff;
  EXPECT_EQ(buildPacketTooBig(m6, 1280, v6(1), out), 0U) << "multicast";
  for (const std::uint8_t type : {1, 2, 3, 4, 127}) {
    Bytes icmp = q;
    icmp[6] = 58;
    icmp[40] = type;
    EXPECT_EQ(buildPacketTooBig(icmp, 1280, v6(1), out), 0U) << "ICMPv6 error " << int{type};
  }
  // Behind a destination options header too.
  Bytes behind = q;
  behind[6] = 60;
  behind[40] = 58;
  behind[41] = 0;
  behind[48] = 1;
  EXPECT_EQ(buildPacketTooBig(behind, 1280, v6(1), out), 0U) << "ICMPv6 error behind options";
  behind[48] = 128;
  EXPECT_NE(buildPacketTooBig(behind, 1280, v6(1), out), 0U) << "echo behind options";
  Bytes echo6 = q;
  echo6[6] = 58;
  echo6[40] = 128;
  EXPECT_NE(buildPacketTooBig(echo6, 1280, v6(1), out), 0U) << "echo request";
}

TEST(PacketTooBig, EveryTruncationIsSafe) {
  Spec s;
  s.payload = 100;
  Spec s6 = s;
  s6.v6 = true;
  Bytes out(1500);
  for (const Bytes& full : {makePacket(s), makePacket(s6)}) {
    const IpAddress source = isV6(full) ? v6(1) : v4(1);
    for (std::size_t len = 0; len <= full.size(); ++len) {
      const Bytes t(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
      const std::size_t n = buildPacketTooBig(t, 1280, source, out);
      const std::size_t minimum = isV6(full) ? 40 : 20;
      EXPECT_EQ(n != 0, len >= minimum) << len;
      if (n != 0) {
        EXPECT_EQ(n, len + (isV6(full) ? 48 : 28));
      }
    }
  }
}

// The same packet seen the other way: addresses and ports swapped.
Bytes reversed(Bytes p) {
  const std::size_t ip = ipHeaderBytes(p);
  const std::size_t addressAt = isV6(p) ? 8 : 12;
  const std::size_t addressBytes = isV6(p) ? 16 : 4;
  std::swap_ranges(p.begin() + static_cast<std::ptrdiff_t>(addressAt),
                   p.begin() + static_cast<std::ptrdiff_t>(addressAt + addressBytes),
                   p.begin() + static_cast<std::ptrdiff_t>(addressAt + addressBytes));
  std::swap_ranges(p.begin() + static_cast<std::ptrdiff_t>(ip),
                   p.begin() + static_cast<std::ptrdiff_t>(ip + 2),
                   p.begin() + static_cast<std::ptrdiff_t>(ip + 2));
  return p;
}

TEST(SymmetricFlowHash, BothDirectionsOfAFlowAgree) {
  for (const bool v6 : {false, true}) {
    for (const std::uint8_t protocol : {kTcp, kUdp}) {
      Spec spec;
      spec.v6 = v6;
      spec.protocol = protocol;
      const Bytes p = makePacket(spec);
      EXPECT_NE(symmetricFlowHash(p), 0U);
      EXPECT_EQ(symmetricFlowHash(p), symmetricFlowHash(reversed(p)))
          << "v6 " << v6 << " protocol " << +protocol;
    }
  }
}

TEST(SymmetricFlowHash, FlowsThatDifferOnlyInAPortSpreadOverQueues) {
  // 64 TCP flows between the same two hosts, as iperf3 -P 64 would open.
  std::array<int, 4> perQueue{};
  for (std::uint16_t port = 40000; port < 40064; ++port) {
    Spec spec;
    spec.sport = port;
    ++perQueue[symmetricFlowHash(makePacket(spec)) % perQueue.size()];
  }
  for (const int n : perQueue) EXPECT_GE(n, 6) << "flows per queue are too uneven";
}

TEST(SymmetricFlowHash, OnlyTheHeadersAreRead) {
  // A coalesced packet's first part is its headers alone: its IP length says more.
  const Bytes whole = makePacket(Spec{});
  const Bytes headers(whole.begin(), whole.begin() + 20 + 32);
  EXPECT_EQ(symmetricFlowHash(headers), symmetricFlowHash(whole));
}

TEST(SymmetricFlowHash, FragmentsOfADatagramStayTogether) {
  Spec spec;
  spec.protocol = kUdp;
  Bytes first = makePacket(spec);
  wr16(first, 6, 0x2000);  // MF: the first fragment, with ports
  Bytes later = first;
  wr16(later, 6, 0x0010);  // offset 128, no ports (its bytes there are payload)
  wr16(later, 20, 1234);
  EXPECT_EQ(symmetricFlowHash(first), symmetricFlowHash(later));
}

TEST(SymmetricFlowHash, NotAnIpPacket) {
  EXPECT_EQ(symmetricFlowHash({}), 0U);
  const Bytes arp(28, 0);
  EXPECT_EQ(symmetricFlowHash(arp), 0U);
  Bytes shortV4 = makePacket(Spec{});
  shortV4.resize(12);
  EXPECT_EQ(symmetricFlowHash(shortV4), 0U);
}

}  // namespace
}  // namespace mpxdp::tun
