// Fuzz target: the outer-header codec (src/wire/codec.h). Every input is used
// three ways:
//  1. as an Ethernet frame for decodeOuter / decodeFrame, as it is and with
//     its checksums made right (so header fields are explored); what decodes is
//     encoded again (encodeOuter and OuterTemplate must write the same bytes,
//     the same UDP checksum, and decode to the same addressing), and a bit
//     flipped where a checksum or length covers it must be refused;
//  2. as the parameters of a frame to encode (addressing, payload, checksum
//     on/off), which must decode to what was encoded;
//  3. as data for checksumPartial, against a plain RFC 1071 sum.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "codec.h"
#include "fuzz_support.h"

namespace mpxdp::fuzz {
namespace {

using wire::WireError;

// RFC 1071 one's-complement sum, folded to 16 bits (the obvious way).
std::uint32_t referenceSum(std::span<const std::uint8_t> data) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i + 1 < data.size(); i += 2) sum += (std::uint32_t{data[i]} << 8) | data[i + 1];
  if (data.size() % 2 == 1) sum += std::uint32_t{data.back()} << 8;
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint32_t>(sum);
}

void checkChecksum(std::span<const std::uint8_t> in) {
  const std::uint32_t reference = referenceSum(in);
  FUZZ_CHECK(wire::checksumFold(wire::checksumPartial(in, 0)) == static_cast<std::uint16_t>(~reference));
  if (in.empty()) return;
  // Chained at an even split, from a non-zero start: congruent modulo 0xffff.
  const std::size_t split = std::min<std::size_t>(in.size() & ~std::size_t{1}, 2 * (in[0] % 64));
  const std::uint32_t start =
      in.size() >= 5
          ? (std::uint32_t{in[1]} << 24 | std::uint32_t{in[2]} << 16 | std::uint32_t{in[3]} << 8 | in[4])
          : 0;
  const std::uint32_t chained =
      wire::checksumPartial(in.subspan(split), wire::checksumPartial(in.first(split), start));
  FUZZ_CHECK(chained % 0xffff == (start % 0xffff + reference) % 0xffff);
}

bool sameAddressing(const wire::ParsedOuter& a, const wire::ParsedOuter& b) {
  return a.srcIp == b.srcIp && a.dstIp == b.dstIp && a.srcPort == b.srcPort && a.dstPort == b.dstPort &&
         a.vlanId == b.vlanId && a.udpPayloadLen == b.udpPayloadLen;
}

std::uint16_t load16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

// Where the IP header of a frame that decoded starts.
std::size_t ipOffsetOf(const wire::ParsedOuter& parsed) {
  return wire::kEthHeaderLen + (parsed.vlanId ? wire::kVlanTagLen : 0);
}

// A frame we just encoded, with one bit flipped at bitIndex (within the IP
// header, UDP header and payload): must decodeOuter refuse it? Only where a
// checksum or a length covers the bit.
bool flipMustFail(std::span<const std::uint8_t> frame, std::size_t ipOffset, bool v6, bool udpChecksum,
                  std::size_t bitIndex) {
  const std::size_t byte = ipOffset + bitIndex / 8;
  const auto bit = static_cast<std::uint8_t>(1U << (bitIndex % 8));
  const std::size_t ipLen = v6 ? wire::kIpv6HeaderLen : wire::kIpv4HeaderLen;
  const std::size_t udp = ipOffset + ipLen;
  if (byte < udp) {
    if (!v6) return true;  // the IPv4 header checksum covers all of it
    const std::size_t at = byte - ipOffset;
    // IPv6: version nibble, payload length, next header, addresses (pseudo-header).
    return (at == 0 && bit >= 0x10) || (at >= 4 && at <= 6) || at >= 8;
  }
  if (byte == udp + 4 || byte == udp + 5) return true;  // UDP length: must equal the IP payload length
  if (!udpChecksum) return false;
  if (!v6 && (byte == udp + 6 || byte == udp + 7)) {
    // Over IPv4 a checksum that flips to 0 means "none".
    const std::uint16_t flipped = load16(frame.data() + udp + 6) ^ (byte == udp + 6 ? bit << 8 : bit);
    return flipped != 0;
  }
  return true;
}

// Encodes addressing + payload both ways; they must agree. Returns the frame
// (payload, then `padding` trailing bytes) or an empty vector on an error,
// which must be `expected`.
std::vector<std::uint8_t> encodeBothWays(const wire::OuterAddressing& addressing,
                                         std::span<const std::uint8_t> payload, bool udpChecksum,
                                         std::size_t padding, WireError expected) {
  const std::size_t header = wire::outerHeaderLength(addressing);
  std::vector<std::uint8_t> direct(header + payload.size() + padding);
  if (!payload.empty()) std::memcpy(direct.data() + header, payload.data(), payload.size());
  std::vector<std::uint8_t> viaTemplate = direct;
  const auto encoded = wire::encodeOuter(direct, addressing, payload.size(), udpChecksum);
  const auto made = wire::OuterTemplate::make(addressing);
  FUZZ_CHECK(encoded.error == expected);
  FUZZ_CHECK(made.error == expected);
  if (expected != WireError::kNone) return {};
  FUZZ_CHECK(encoded.value == header);
  FUZZ_CHECK(made.value.headerLength() == header);
  const auto written = made.value.write(viaTemplate, payload.size(), udpChecksum);
  FUZZ_CHECK(written.ok() && written.value == header);
  FUZZ_CHECK(direct == viaTemplate);
  // One byte short of the payload: refused, nothing written out of bounds
  // (exact-size buffer, ASan watches).
  std::vector<std::uint8_t> shortFrame(header + payload.size() - 1);
  FUZZ_CHECK(wire::encodeOuter(shortFrame, addressing, payload.size(), udpChecksum).error ==
             WireError::kBufferTooSmall);
  FUZZ_CHECK(made.value.write(shortFrame, payload.size(), udpChecksum).error == WireError::kBufferTooSmall);
  return direct;
}

// Input as a received frame.
void checkDecode(std::span<const std::uint8_t> in) {
  const auto outer = wire::decodeOuter(in);
  const auto frame = wire::decodeFrame(in);
  if (!outer.ok()) {
    FUZZ_CHECK(!frame.ok() && frame.error == outer.error);
    return;
  }
  const wire::ParsedOuter& parsed = outer.value;
  FUZZ_CHECK(parsed.udpPayloadOffset <= in.size() &&
             parsed.udpPayloadLen <= in.size() - parsed.udpPayloadOffset);
  FUZZ_CHECK(parsed.srcIp.family == parsed.dstIp.family);
  const bool v6 = !parsed.srcIp.isV4();
  const std::size_t ipOffset = ipOffsetOf(parsed);
  const std::size_t udpOffset = parsed.udpPayloadOffset - wire::kUdpHeaderLen;
  FUZZ_CHECK(udpOffset >= ipOffset + (v6 ? wire::kIpv6HeaderLen : wire::kIpv4HeaderLen));
  FUZZ_CHECK(load16(in.data() + udpOffset + 4) == parsed.udpPayloadLen + wire::kUdpHeaderLen);

  // The legacy multipath header on top.
  const std::span<const std::uint8_t> udpPayload = in.subspan(parsed.udpPayloadOffset, parsed.udpPayloadLen);
  if (frame.ok()) {
    FUZZ_CHECK(sameAddressing(frame.value.outer, parsed) &&
               frame.value.outer.udpPayloadOffset == parsed.udpPayloadOffset);
    FUZZ_CHECK(frame.value.payloadOffset == parsed.udpPayloadOffset + wire::kMpHeaderLen);
    FUZZ_CHECK(std::size_t{frame.value.header.payloadLen} + wire::kMpHeaderLen == parsed.udpPayloadLen);
    std::uint8_t header[wire::kMpHeaderLen];
    FUZZ_CHECK(wire::encodeMpHeader(header, frame.value.header).ok());
    FUZZ_CHECK(std::memcmp(header, udpPayload.data(), sizeof(header)) == 0);
  } else {
    FUZZ_CHECK(frame.error == WireError::kTruncated || frame.error == WireError::kBadMagic ||
               frame.error == WireError::kBadVersion || frame.error == WireError::kBadPayloadLength);
  }

  // Encode the same addressing again, in front of the same payload.
  wire::OuterAddressing addressing;
  std::memcpy(addressing.dstMac.bytes.data(), in.data(), 6);
  std::memcpy(addressing.srcMac.bytes.data(), in.data() + 6, 6);
  addressing.srcIp = parsed.srcIp;
  addressing.dstIp = parsed.dstIp;
  addressing.srcPort = parsed.srcPort;
  addressing.dstPort = parsed.dstPort;
  addressing.vlanId = parsed.vlanId;
  const std::uint8_t* ip = in.data() + ipOffset;
  addressing.ttl = v6 ? ip[7] : ip[8];
  addressing.dscp = static_cast<std::uint8_t>((v6 ? ((ip[0] & 0x0f) << 4 | ip[1] >> 4) : ip[1]) >> 2);
  const bool badVlan = parsed.vlanId && *parsed.vlanId > 4094;
  const std::uint16_t checksum = load16(in.data() + udpOffset + 6);
  const bool udpChecksum = v6 || checksum != 0;
  const std::vector<std::uint8_t> again = encodeBothWays(
      addressing, udpPayload, udpChecksum, 0, badVlan ? WireError::kBadAddressing : WireError::kNone);
  if (badVlan) return;
  const auto reparsed = wire::decodeOuter(again);
  FUZZ_CHECK(reparsed.ok() && sameAddressing(reparsed.value, parsed));
  FUZZ_CHECK(reparsed.value.udpPayloadOffset == wire::outerHeaderLength(addressing));
  // Same pseudo-header, ports, length and payload: the checksum that verified
  // is the one we compute (0 has no other representation here).
  const std::size_t udpAgain = reparsed.value.udpPayloadOffset - wire::kUdpHeaderLen;
  FUZZ_CHECK(load16(again.data() + udpAgain + 6) == checksum);

  // One bit flipped in what a checksum or length protects: refused.
  const std::size_t bits = 8 * (again.size() - ipOffset);
  const std::size_t bitIndex = (std::size_t{in.back()} * 131 + in.size() * 7) % bits;
  std::vector<std::uint8_t> flipped = again;
  flipped[ipOffset + bitIndex / 8] ^= static_cast<std::uint8_t>(1U << (bitIndex % 8));
  if (flipMustFail(again, ipOffset, v6, udpChecksum, bitIndex)) {
    FUZZ_CHECK(!wire::decodeOuter(flipped).ok());
  }
}

// The input with its IPv4 header checksum and its UDP checksum recomputed (an
// IPv4 UDP checksum of 0 stays "none"): mutated headers then get past the
// checksums to the checks behind them. Empty when there is nothing to fix.
std::vector<std::uint8_t> withChecksumsFixed(std::span<const std::uint8_t> in) {
  if (in.size() < wire::kEthHeaderLen) return {};
  std::size_t ip = wire::kEthHeaderLen;
  std::uint16_t type = load16(in.data() + 12);
  if (type == wire::kEtherTypeVlan) {
    if (in.size() < wire::kEthHeaderLen + wire::kVlanTagLen) return {};
    type = load16(in.data() + 16);
    ip += wire::kVlanTagLen;
  }
  const bool v6 = type == wire::kEtherTypeIpv6;
  if (type != wire::kEtherTypeIpv4 && !v6) return {};
  std::vector<std::uint8_t> out(in.begin(), in.end());
  const auto store16 = [&out](std::size_t at, std::uint32_t v) {
    out[at] = static_cast<std::uint8_t>(v >> 8);
    out[at + 1] = static_cast<std::uint8_t>(v);
  };
  std::size_t udp = ip + wire::kIpv6HeaderLen;
  std::vector<std::uint8_t> pseudo;  // pseudo-header, then the UDP datagram
  if (v6) {
    if (in.size() < udp) return {};
    pseudo.assign(out.begin() + static_cast<std::ptrdiff_t>(ip + 8),
                  out.begin() + static_cast<std::ptrdiff_t>(udp));
  } else {
    const std::size_t ihl = std::size_t{4} * (in.size() > ip ? in[ip] & 0x0f : 0);
    if (ihl < wire::kIpv4HeaderLen || in.size() < ip + ihl) return {};
    store16(ip + 10, 0);
    store16(ip + 10, ~referenceSum({out.data() + ip, ihl}));
    udp = ip + ihl;
    pseudo.assign(out.begin() + static_cast<std::ptrdiff_t>(ip + 12),
                  out.begin() + static_cast<std::ptrdiff_t>(ip + 20));
  }
  if (in.size() < udp + wire::kUdpHeaderLen) return out;
  const std::size_t udpLen = load16(out.data() + udp + 4);
  if (udpLen < wire::kUdpHeaderLen || udpLen > in.size() - udp) return out;
  if (!v6 && load16(out.data() + udp + 6) == 0) return out;
  store16(udp + 6, 0);
  pseudo.insert(pseudo.end(), {0, wire::kIpProtoUdp, static_cast<std::uint8_t>(udpLen >> 8),
                               static_cast<std::uint8_t>(udpLen)});
  pseudo.insert(pseudo.end(), out.begin() + static_cast<std::ptrdiff_t>(udp),
                out.begin() + static_cast<std::ptrdiff_t>(udp + udpLen));
  const auto checksum = static_cast<std::uint16_t>(~referenceSum(pseudo));
  store16(udp + 6, checksum == 0 ? 0xffff : checksum);
  return out;
}

// Input as the description of a frame to encode.
void checkEncode(std::span<const std::uint8_t> in) {
  ByteReader r(in);
  const std::uint8_t shape = r.u8();
  const bool v6 = (shape & 1) != 0;
  wire::OuterAddressing addressing;
  addressing.srcIp.family = v6 ? IpAddress::Family::kV6 : IpAddress::Family::kV4;
  addressing.dstIp.family = addressing.srcIp.family;
  const std::size_t ipLen = v6 ? 16 : 4;
  for (std::size_t i = 0; i < ipLen; ++i) addressing.srcIp.bytes[i] = r.u8();
  for (std::size_t i = 0; i < ipLen; ++i) addressing.dstIp.bytes[i] = r.u8();
  for (auto& b : addressing.srcMac.bytes) b = r.u8();
  for (auto& b : addressing.dstMac.bytes) b = r.u8();
  addressing.srcPort = r.u16();
  addressing.dstPort = r.u16();
  if ((shape & 2) != 0) addressing.vlanId = static_cast<std::uint16_t>(r.u16() & 0x1fff);  // up to 8191
  addressing.ttl = r.u8();
  addressing.dscp = static_cast<std::uint8_t>(r.u8() & ((shape & 4) != 0 ? 0xff : 0x3f));
  const bool mixedFamilies = (shape & 0xf8) == 0xf8;
  if (mixedFamilies) addressing.dstIp.family = v6 ? IpAddress::Family::kV4 : IpAddress::Family::kV6;
  const bool udpChecksum = r.flag();
  const std::size_t padding = r.u8() % 64;
  const std::size_t payloadLen = r.u16() % 2048;
  std::vector<std::uint8_t> payload(payloadLen);
  const auto given = r.bytes(payloadLen);
  std::copy(given.begin(), given.end(), payload.begin());

  const bool valid =
      !mixedFamilies && (!addressing.vlanId || *addressing.vlanId <= 4094) && addressing.dscp <= 63;
  const std::vector<std::uint8_t> frame = encodeBothWays(
      addressing, payload, udpChecksum, padding, valid ? WireError::kNone : WireError::kBadAddressing);
  if (!valid) return;
  const auto parsed = wire::decodeOuter(frame);
  FUZZ_CHECK(parsed.ok());
  const std::size_t header = wire::outerHeaderLength(addressing);
  FUZZ_CHECK(parsed.value.udpPayloadOffset == header && parsed.value.udpPayloadLen == payloadLen);
  FUZZ_CHECK(parsed.value.srcIp == addressing.srcIp && parsed.value.dstIp == addressing.dstIp);
  FUZZ_CHECK(parsed.value.srcPort == addressing.srcPort && parsed.value.dstPort == addressing.dstPort);
  FUZZ_CHECK(parsed.value.vlanId == addressing.vlanId);
  FUZZ_CHECK(std::memcmp(frame.data(), addressing.dstMac.bytes.data(), 6) == 0);
  FUZZ_CHECK(std::memcmp(frame.data() + 6, addressing.srcMac.bytes.data(), 6) == 0);
  const std::uint8_t* ip = frame.data() + ipOffsetOf(parsed.value);
  FUZZ_CHECK((v6 ? ip[7] : ip[8]) == addressing.ttl);
  FUZZ_CHECK((v6 ? ((ip[0] & 0x0f) << 4 | ip[1] >> 4) : ip[1]) == addressing.dscp << 2);

  // A v1 multipath header in the payload: decodeFrame gives it back.
  if (payloadLen >= wire::kMpHeaderLen) {
    wire::MpHeader mp;
    mp.flags = r.u8();
    mp.connId = r.u32();
    mp.pathId = r.u16();
    mp.payloadLen = static_cast<std::uint16_t>(payloadLen - wire::kMpHeaderLen);
    mp.pathSeq = r.u32();
    mp.globalSeq = r.u64();
    mp.sendTsNs = r.u64();
    std::vector<std::uint8_t> withHeader = frame;
    FUZZ_CHECK(wire::encodeMpHeader(std::span(withHeader).subspan(header), mp).ok());
    // The UDP checksum covers the header: write the outer headers again.
    FUZZ_CHECK(wire::encodeOuter(withHeader, addressing, payloadLen, udpChecksum).ok());
    const auto decoded = wire::decodeFrame(withHeader);
    FUZZ_CHECK(decoded.ok() && decoded.value.header == mp);
    FUZZ_CHECK(decoded.value.payloadOffset == header + wire::kMpHeaderLen);
  }
}

}  // namespace
}  // namespace mpxdp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  mpxdp::fuzz::checkChecksum(in);
  mpxdp::fuzz::checkDecode(in);
  const std::vector<std::uint8_t> fixed = mpxdp::fuzz::withChecksumsFixed(in);
  if (!fixed.empty() && !std::equal(fixed.begin(), fixed.end(), in.begin())) mpxdp::fuzz::checkDecode(fixed);
  mpxdp::fuzz::checkEncode(in);
  return 0;
}
