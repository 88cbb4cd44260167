#include "seeds.h"

#include <array>
#include <cstring>
#include <optional>
#include <string_view>

#include "codec.h"
#include "frames.h"
#include "mpxdp_shared.h"
#include "packet.h"
#include "reorder_program.h"

namespace mpxdp::fuzz {
namespace {

// ---- wire_codec_fuzz: Ethernet frames ----

wire::OuterAddressing addressing(bool v6, std::optional<std::uint16_t> vlan) {
  wire::OuterAddressing a;
  a.srcMac.bytes = {0x02, 0, 0, 0, 0, 0x01};
  a.dstMac.bytes = {0x02, 0, 0, 0, 0, 0x02};
  if (v6) {
    a.srcIp = *IpAddress::parse("fd00::1");
    a.dstIp = *IpAddress::parse("fd00::2");
  } else {
    a.srcIp = IpAddress::v4(0xc6120101);  // 198.18.1.1
    a.dstIp = IpAddress::v4(0xc6120102);
  }
  a.srcPort = 47000;
  a.dstPort = 47001;
  a.vlanId = vlan;
  a.dscp = 10;
  return a;
}

Bytes v1Payload(std::size_t dataLen) {
  Bytes out(wire::kMpHeaderLen + dataLen);
  wire::MpHeader h;
  h.connId = 0x1234;
  h.pathId = 1;
  h.payloadLen = static_cast<std::uint16_t>(dataLen);
  h.pathSeq = 77;
  h.globalSeq = 1000;
  h.sendTsNs = 123456789;
  wire::encodeMpHeader(out, h);
  for (std::size_t i = 0; i < dataLen; ++i) out[wire::kMpHeaderLen + i] = static_cast<std::uint8_t>(i);
  return out;
}

Bytes frame(const wire::OuterAddressing& a, const Bytes& udpPayload, bool udpChecksum,
            std::size_t padding = 0) {
  const std::size_t header = wire::outerHeaderLength(a);
  Bytes out(header + udpPayload.size() + padding);
  std::memcpy(out.data() + header, udpPayload.data(), udpPayload.size());
  wire::encodeOuter(out, a, udpPayload.size(), udpChecksum);
  return out;
}

// An IPv4 frame with 4 bytes of options (NOPs) in its IP header.
Bytes withIpOptions(const Bytes& plain) {
  constexpr std::size_t kIp = wire::kEthHeaderLen;
  Bytes out(plain.begin(), plain.begin() + kIp + wire::kIpv4HeaderLen);
  out.insert(out.end(), 4, 0x01);
  out.insert(out.end(), plain.begin() + kIp + wire::kIpv4HeaderLen, plain.end());
  std::uint8_t* ip = out.data() + kIp;
  ip[0] = 0x46;
  const std::size_t total = ((ip[2] << 8) | ip[3]) + 4;
  ip[2] = static_cast<std::uint8_t>(total >> 8);
  ip[3] = static_cast<std::uint8_t>(total);
  ip[10] = ip[11] = 0;
  const std::uint16_t checksum = wire::checksumFold(wire::checksumPartial({ip, 24}, 0));
  ip[10] = static_cast<std::uint8_t>(checksum >> 8);
  ip[11] = static_cast<std::uint8_t>(checksum);
  return out;
}

// ---- frames_fuzz: UDP payloads (v2 packets) ----

class PacketBuilder {
 public:
  PacketBuilder() : bytes_(wire::kPacketHeaderLen) {
    wire::PacketHeader h;
    h.connId = 0xabcdef;
    h.pathId = 2;
    h.packetNumber = 4242;
    h.sendTsNs = 987654321;
    wire::writePacketHeader(bytes_, h);
  }
  PacketBuilder& add(const wire::Frame& f) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + wire::frameSize(f));
    wire::writeFrame(std::span(bytes_).subspan(at), f);
    return *this;
  }
  // The frames alone, without the packet header.
  Bytes body() const { return {bytes_.begin() + wire::kPacketHeaderLen, bytes_.end()}; }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

wire::AckFrame ack() {
  wire::AckFrame a;
  a.pathId = 1;
  a.ackDelayUs = 250;
  a.largestRecvTsNs = 5'000'000;
  a.bytesReceived = 1 << 20;
  a.rangeCount = 3;
  a.ranges[0] = {95, 100};
  a.ranges[1] = {90, 90};
  a.ranges[2] = {0, 3};
  return a;
}

std::vector<Bytes> framesSeeds() {
  static const std::array<std::uint8_t, 64> kData = {1, 2, 3, 4, 5, 6, 7, 8};
  wire::ReportFrame report;
  report.durationNs = 10'000'000'000;
  report.packets = 1000;
  report.bytes = 1'024'000;
  report.lost = 3;
  report.pathCount = 3;
  for (std::size_t i = 0; i < 3; ++i) report.paths[i] = {300 + i, 307'200 + i, i};
  wire::HelloFrame hello;
  hello.pathCount = 3;
  hello.mode = wire::kModeClientSends | wire::kModeReliable;
  hello.maxPayload = 1432;
  hello.rateBps = 1'000'000'000;
  hello.durationMs = 5000;
  hello.name = "eth1";
  wire::CloseFrame close;
  close.streamComplete = true;
  close.errorCode = static_cast<std::uint16_t>(wire::CloseError::kPeerGone);
  close.finalSeq = 123456;
  close.reason = "no answer from the peer";

  std::vector<Bytes> seeds;
  seeds.push_back(PacketBuilder().add(wire::DataFrame{1000, kData}).bytes());
  seeds.push_back(PacketBuilder().add(ack()).add(wire::PaddingFrame{10}).bytes());
  seeds.push_back(PacketBuilder()
                      .add(wire::PingFrame{7})
                      .add(wire::PongFrame{1, 6, 123456, 2000})
                      .add(wire::PathStatusFrame{wire::PathStatus::kStandby, 2, 9})
                      .add(wire::MaxSeqFrame{65536})
                      .bytes());
  seeds.push_back(PacketBuilder().add(close).bytes());
  seeds.push_back(PacketBuilder().add(hello).bytes());
  seeds.push_back(PacketBuilder().add(report).bytes());
  seeds.push_back(PacketBuilder().add(wire::DataFrame{5, kData}).add(ack()).body());  // frames alone
  Bytes negotiation(16);
  negotiation.resize(wire::writeVersionNegotiation(negotiation, 0xabcdef).value);
  seeds.push_back(negotiation);
  return seeds;
}

std::vector<Bytes> wireCodecSeeds() {
  std::vector<Bytes> seeds;
  const Bytes plain = frame(addressing(false, std::nullopt), v1Payload(64), true);
  seeds.push_back(plain);
  seeds.push_back(frame(addressing(false, 100), v1Payload(0), false));
  seeds.push_back(frame(addressing(true, std::nullopt), v1Payload(16), true));
  seeds.push_back(frame(addressing(true, 4094), PacketBuilder().add(wire::DataFrame{}).bytes(), true));
  seeds.push_back(withIpOptions(plain));
  seeds.push_back(frame(addressing(false, std::nullopt), Bytes(8, 0x5a), true, 10));  // Ethernet padding
  return seeds;
}

// ---- reorderer_fuzz: programs (reorder_program.h) ----

using reorder_program::Kind;
using reorder_program::ReorderProgramWriter;
using Config = ReorderProgramWriter::Config;

// In order over two paths, polled now and then.
Bytes inOrder(Config c) {
  ReorderProgramWriter w(c);
  for (int i = 0; i < 40; ++i) {
    w.push(1, static_cast<std::uint8_t>(i % 2));
    if (i % 8 == 7) w.time(3).poll();
  }
  return w.bytes();
}

// A hole that times out, then its packet arrives late; reordering within a few.
Bytes holeThenLate(Config c) {
  ReorderProgramWriter w(c);
  w.push(1, 0).push(2, 1, 1).push(1, 0).push(-1, 1).push(3, 0).push(-2, 1);
  for (int i = 0; i < 6; ++i) w.push(1, static_cast<std::uint8_t>(i % 2));
  w.time(20).poll(1).poll().push(-12, 0).time(29).poll();
  return w.bytes();
}

// Duplicates and replays.
Bytes duplicates(Config c) {
  ReorderProgramWriter w(c);
  for (int i = 0; i < 10; ++i) w.push(1, 0);
  w.push(0, 1).push(-3, 1).replay(2).replay(9).time(5).poll(1).replay(0);
  return w.bytes();
}

// The sender jumps far ahead: two pieces of evidence on each of two paths.
Bytes jump(Config c) {
  ReorderProgramWriter w(c);
  for (int i = 0; i < 8; ++i) w.push(1, static_cast<std::uint8_t>(i % 2));
  w.jump(100000, 0).push(1, 1).push(1, 0).push(1, 1).time(2).poll();
  w.push(1, 0).push(1, 1).jump(-1000000, 1).jump(1 << 20, 0);
  return w.bytes();
}

// Fast loss: a packet missing on path 0 (its number skipped) while both paths
// go on; control packets fill the number gaps of path 1.
Bytes fastLoss(Config c) {
  ReorderProgramWriter w(c);
  for (int i = 0; i < 6; ++i) w.push(1, static_cast<std::uint8_t>(i % 2));
  w.push(2, 0, 1);
  w.observe(1).push(1, 1, 1);
  for (int i = 0; i < 8; ++i) w.push(1, static_cast<std::uint8_t>(i % 2));
  w.time(1).poll();
  return w.bytes();
}

std::vector<Bytes> reordererSeeds() {
  std::vector<Bytes> seeds;
  for (const Kind kind : {Kind::kWindow, Kind::kSort, Kind::kOff, Kind::kWindowReliable}) {
    Config c;
    c.kind = kind;
    seeds.push_back(inOrder(c));
    seeds.push_back(holeThenLate(c));
    seeds.push_back(duplicates(c));
    seeds.push_back(jump(c));
    seeds.push_back(fastLoss(c));
    // The sequence circle wraps: the stream starts 20 below 2^64, known start.
    Config wrap = c;
    wrap.start = ~std::uint64_t{0} - 20;
    wrap.initialSeq = true;
    wrap.fixedTimeout = true;
    wrap.pathCount = 3;
    seeds.push_back(holeThenLate(wrap));
  }
  return seeds;
}

// protection_fuzz: the first byte picks the program (0 wire bytes, 1 an edited
// genuine packet, 2 a reordered run; bit 7: AES-256-GCM), the rest drives it.
std::vector<Bytes> protectionSeeds() {
  std::vector<Bytes> seeds;
  for (const std::uint8_t cipher : {0x00, 0x80}) {
    // 0: a keyed-looking session packet: a header with the PROTECTED flag and 40 bytes.
    Bytes wireBytes = {static_cast<std::uint8_t>(cipher | 0),
                       0x4d,
                       0x58,
                       0x02,
                       MPXDP_HDR_FLAG_PROTECTED,
                       0x5e,
                       0xed,
                       0x12,
                       0x34,
                       0x00,
                       0x01,
                       0x00,
                       0x00};
    wireBytes.resize(13 + 16 + 40, 0xa5);
    seeds.push_back(wireBytes);
    // 1: path 1, pn 7, 24 bytes of frames, unedited; and with one bit flipped at byte 30.
    Bytes genuine = {static_cast<std::uint8_t>(cipher | 1), 1, 0x00, 0x07, 0x00, 24};
    genuine.resize(genuine.size() + 24, 0x11);
    Bytes untouched = genuine;
    untouched.push_back(0);  // no edits
    seeds.push_back(untouched);
    Bytes flipped = genuine;
    flipped.insert(flipped.end(), {1, 0x00, 30, 0, 3});
    seeds.push_back(flipped);
    // 2: 16 packets on the three paths, then opened in a scrambled order with repeats.
    Bytes run = {static_cast<std::uint8_t>(cipher | 2), 15, 1, 1, 1};  // 16 packets, no path far along
    for (std::uint8_t i = 0; i < 16; ++i) run.insert(run.end(), {static_cast<std::uint8_t>(i % 3), 1});
    for (std::uint8_t i = 0; i < 40; ++i) run.push_back(static_cast<std::uint8_t>((i * 7) % 16));
    seeds.push_back(run);
  }
  return seeds;
}

// Add a row for each fuzz target.
const SeedSet kSeedSets[] = {
    {"protection_fuzz", protectionSeeds},
    {"wire_codec_fuzz", wireCodecSeeds},
    {"frames_fuzz", framesSeeds},
    {"reorderer_fuzz", reordererSeeds},
};

}  // namespace

std::span<const SeedSet> seedSets() { return kSeedSets; }

const SeedSet* findSeedSet(std::string_view target) {
  for (const SeedSet& set : kSeedSets) {
    if (set.target == target) return &set;
  }
  return nullptr;
}

}  // namespace mpxdp::fuzz
