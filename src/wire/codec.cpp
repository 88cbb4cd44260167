// Wire format v1 codec. All packet memory is accessed with byte loads or
// memcpy, so frames may sit at any alignment.
#include "codec.h"

#include "byte_order.h"

#include <bit>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace mpxdp::wire {
namespace {

constexpr std::uint16_t kIpv4FlagMoreFragments = 0x2000;
constexpr std::uint16_t kIpv4FragmentOffsetMask = 0x1fff;
constexpr std::uint16_t kIpv4FlagDontFragment = 0x4000;
constexpr std::uint8_t kIpv6NextHeaderFragment = 44;
constexpr std::uint16_t kMaxVlanId = 4094;  // 4095 is reserved by 802.1Q
constexpr std::uint8_t kMaxDscp = 63;

// Offsets inside the headers (RFC 791, RFC 8200, RFC 768).
constexpr std::size_t kEthTypeOffset = 12;
constexpr std::size_t kIpv4TotalLenOffset = 2;
constexpr std::size_t kIpv4FragOffset = 6;
constexpr std::size_t kIpv4ProtoOffset = 9;
constexpr std::size_t kIpv4ChecksumOffset = 10;
constexpr std::size_t kIpv4SrcOffset = 12;
constexpr std::size_t kIpv4DstOffset = 16;
constexpr std::size_t kIpv6PayloadLenOffset = 4;
constexpr std::size_t kIpv6NextHeaderOffset = 6;
constexpr std::size_t kIpv6SrcOffset = 8;
constexpr std::size_t kIpv6DstOffset = 24;
constexpr std::size_t kUdpLenOffset = 4;
constexpr std::size_t kUdpChecksumOffset = 6;

using detail::load16;
using detail::load32;
using detail::load64;
using detail::store16;
using detail::store32;
using detail::store64;

template <typename T>
WireResult<T> fail(WireError error) noexcept {
  WireResult<T> result;
  result.error = error;
  return result;
}

bool isV4(const OuterAddressing& addressing) noexcept { return addressing.srcIp.isV4(); }

std::size_t ipHeaderLength(const OuterAddressing& addressing) noexcept {
  return isV4(addressing) ? kIpv4HeaderLen : kIpv6HeaderLen;
}

std::size_t maxUdpPayloadLen(bool v4) noexcept { return v4 ? kMaxUdpPayloadLenV4 : kMaxUdpPayloadLenV6; }

WireError validateAddressing(const OuterAddressing& addressing) noexcept {
  if (addressing.srcIp.family != addressing.dstIp.family) {
    return WireError::kBadAddressing;
  }
  if (addressing.vlanId && *addressing.vlanId > kMaxVlanId) {
    return WireError::kBadAddressing;
  }
  if (addressing.dscp > kMaxDscp) {
    return WireError::kBadAddressing;
  }
  return WireError::kNone;
}

// Writes Ethernet (+VLAN), IP and UDP headers with the given UDP length and
// both checksum fields zero. Returns the offset of the IP header.
std::size_t writeHeadersWithoutChecksums(std::uint8_t* out, const OuterAddressing& addressing,
                                         std::uint16_t udpLen) noexcept {
  std::memcpy(out, addressing.dstMac.bytes.data(), 6);
  std::memcpy(out + 6, addressing.srcMac.bytes.data(), 6);
  std::size_t offset = kEthTypeOffset;
  if (addressing.vlanId) {
    store16(out + offset, kEtherTypeVlan);
    store16(out + offset + 2, *addressing.vlanId);  // PCP 0, DEI 0
    offset += kVlanTagLen;
  }
  const bool v4 = isV4(addressing);
  store16(out + offset, v4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  offset += 2;
  const std::size_t ipOffset = offset;
  std::uint8_t* ip = out + ipOffset;
  const auto trafficClass = static_cast<std::uint8_t>(addressing.dscp << 2);  // ECN bits 0
  if (v4) {
    ip[0] = 0x45;
    ip[1] = trafficClass;
    store16(ip + kIpv4TotalLenOffset, static_cast<std::uint16_t>(kIpv4HeaderLen + udpLen));
    store16(ip + 4, 0);  // identification: unused with DF set (RFC 6864)
    store16(ip + kIpv4FragOffset, kIpv4FlagDontFragment);
    ip[8] = addressing.ttl;
    ip[kIpv4ProtoOffset] = kIpProtoUdp;
    store16(ip + kIpv4ChecksumOffset, 0);
    std::memcpy(ip + kIpv4SrcOffset, addressing.srcIp.bytes.data(), 4);
    std::memcpy(ip + kIpv4DstOffset, addressing.dstIp.bytes.data(), 4);
  } else {
    store32(ip, (std::uint32_t{6} << 28) | (std::uint32_t{trafficClass} << 20));  // flow label 0
    store16(ip + kIpv6PayloadLenOffset, udpLen);
    ip[kIpv6NextHeaderOffset] = kIpProtoUdp;
    ip[7] = addressing.ttl;  // hop limit
    std::memcpy(ip + kIpv6SrcOffset, addressing.srcIp.bytes.data(), 16);
    std::memcpy(ip + kIpv6DstOffset, addressing.dstIp.bytes.data(), 16);
  }
  std::uint8_t* udp = ip + ipHeaderLength(addressing);
  store16(udp, addressing.srcPort);
  store16(udp + 2, addressing.dstPort);
  store16(udp + kUdpLenOffset, udpLen);
  store16(udp + kUdpChecksumOffset, 0);
  return ipOffset;
}

// Sum of the pseudo-header (RFC 768 / RFC 8200 section 8.1) without its length field.
std::uint32_t pseudoHeaderSumWithoutLength(const std::uint8_t* ip, bool v4) noexcept {
  const std::size_t addrLen = v4 ? 4 : 16;
  const std::size_t srcOffset = v4 ? kIpv4SrcOffset : kIpv6SrcOffset;
  // Source and destination are adjacent in both families.
  return checksumPartial({ip + srcOffset, 2 * addrLen}, kIpProtoUdp);
}

std::uint16_t finishUdpChecksum(std::uint32_t sum) noexcept {
  const std::uint16_t checksum = checksumFold(sum);
  return checksum == 0 ? 0xffff : checksum;  // 0 means "no checksum" on the wire
}

}  // namespace

const char* toString(WireError error) noexcept {
  switch (error) {
    case WireError::kNone:
      return "ok";
    case WireError::kBufferTooSmall:
      return "buffer too small";
    case WireError::kPayloadTooLarge:
      return "payload too large";
    case WireError::kTruncated:
      return "truncated frame";
    case WireError::kNotIp:
      return "not IPv4 or IPv6";
    case WireError::kBadIpVersion:
      return "bad IP version";
    case WireError::kBadIpHeaderLength:
      return "bad IPv4 header length";
    case WireError::kBadIpTotalLength:
      return "bad IP total length";
    case WireError::kBadIpChecksum:
      return "bad IPv4 header checksum";
    case WireError::kIpFragment:
      return "IP fragment";
    case WireError::kNotUdp:
      return "not UDP";
    case WireError::kBadUdpLength:
      return "bad UDP length";
    case WireError::kBadUdpChecksum:
      return "bad UDP checksum";
    case WireError::kBadMagic:
      return "bad multipath magic";
    case WireError::kBadVersion:
      return "unsupported multipath version";
    case WireError::kBadPayloadLength:
      return "multipath payload length disagrees with UDP length";
    case WireError::kBadAddressing:
      return "bad addressing";
    case WireError::kUnknownFrame:
      return "unknown frame type";
    case WireError::kBadFrame:
      return "malformed frame";
  }
  return "unknown wire error";
}

namespace {

#if defined(__x86_64__)
// The sum of the native-order 16-bit words of blocks x 32 bytes at p (each
// 32-bit lane adds its two halves; lanes go into 64 bits before they could
// overflow). Ones'-complement sums do not depend on how the words are grouped
// (RFC 1071 2(B)), so this adds into the portable sum of 64-bit words.
__attribute__((target("avx2"))) std::uint64_t sumWordsAvx2(const std::uint8_t* p,
                                                           std::size_t blocks) noexcept {
  // A lane takes at most 2 x 0xffff per block: 16384 blocks stay below 2^32.
  constexpr std::size_t kBlocksPerFlush = 16384;
  const __m256i lowHalves = _mm256_set1_epi32(0xffff);
  std::uint64_t total = 0;
  while (blocks > 0) {
    const std::size_t run = blocks < kBlocksPerFlush ? blocks : kBlocksPerFlush;
    __m256i a = _mm256_setzero_si256();
    __m256i b = _mm256_setzero_si256();
    std::size_t i = 0;
    for (; i + 2 <= run; i += 2) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
      a = _mm256_add_epi32(a, _mm256_add_epi32(_mm256_and_si256(v, lowHalves), _mm256_srli_epi32(v, 16)));
      b = _mm256_add_epi32(b, _mm256_add_epi32(_mm256_and_si256(w, lowHalves), _mm256_srli_epi32(w, 16)));
      p += 64;
    }
    if (i < run) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      a = _mm256_add_epi32(a, _mm256_add_epi32(_mm256_and_si256(v, lowHalves), _mm256_srli_epi32(v, 16)));
      p += 32;
    }
    alignas(32) std::uint32_t lanes[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), b);
    for (const std::uint32_t lane : lanes) total += lane;
    blocks -= run;
  }
  return total;
}

bool hasAvx2() noexcept {
  static const bool has = __builtin_cpu_supports("avx2") != 0;
  return has;
}
#endif

}  // namespace

std::uint32_t checksumPartial(std::span<const std::uint8_t> data, std::uint32_t sum) noexcept {
#if defined(__x86_64__)
  // Below a few blocks the call and the lane sums cost more than they save.
  constexpr std::size_t kMinVectorBytes = 128;
  if (data.size() >= kMinVectorBytes && hasAvx2()) {
    const std::size_t blocks = data.size() / 32;
    const std::uint64_t vector = sumWordsAvx2(data.data(), blocks);
    // Fold the vector part to 16 bits (a value congruent mod 0xffff), in
    // host order as the portable sum's result is.
    std::uint64_t folded = (vector & 0xffffffff) + (vector >> 32);
    folded = (folded & 0xffff) + (folded >> 16);
    folded = (folded & 0xffff) + (folded >> 16);
    folded = (folded & 0xffff) + (folded >> 16);
    auto host = static_cast<std::uint16_t>(folded);
    if constexpr (std::endian::native == std::endian::little) {
      host = static_cast<std::uint16_t>((host >> 8) | (host << 8));
    }
    std::uint64_t seeded = std::uint64_t{sum} + host;
    seeded = (seeded & 0xffffffff) + (seeded >> 32);
    return checksumPartialPortable(data.subspan(blocks * 32), static_cast<std::uint32_t>(seeded));
  }
#endif
  return checksumPartialPortable(data, sum);
}

std::uint32_t checksumPartialPortable(std::span<const std::uint8_t> data, std::uint32_t sum) noexcept {
  // Sum native-order 64-bit words into two 128-bit accumulators (no carry
  // chain between the adds: a 64 KiB chunk cannot overflow them), fold to 16
  // bits and swap to big-endian word order at the end (RFC 1071 section 2(B)).
  __extension__ using Uint128 = unsigned __int128;
  const std::uint8_t* p = data.data();
  std::size_t n = data.size();
  Uint128 a = 0;
  Uint128 b = 0;
  while (n >= 32) {
    std::uint64_t w[4];
    std::memcpy(w, p, sizeof(w));
    a += w[0];
    b += w[1];
    a += w[2];
    b += w[3];
    p += 32;
    n -= 32;
  }
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    a += w;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint8_t tail[8] = {};  // zero padding keeps the word alignment of the chunk
    std::memcpy(tail, p, n);
    std::uint64_t w;
    std::memcpy(&w, tail, 8);
    a += w;
  }
  a += b;
  const auto lo = static_cast<std::uint64_t>(a);
  const auto hi = static_cast<std::uint64_t>(a >> 64);
  std::uint64_t acc = lo + hi;
  acc += acc < hi ? 1 : 0;
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  auto folded = static_cast<std::uint16_t>(acc);
  if constexpr (std::endian::native == std::endian::little) {
    folded = static_cast<std::uint16_t>((folded >> 8) | (folded << 8));
  }
  std::uint64_t total = std::uint64_t{sum} + folded;
  total = (total & 0xffffffff) + (total >> 32);
  return static_cast<std::uint32_t>(total);
}

std::uint16_t checksumFold(std::uint32_t sum) noexcept {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

WireResult<std::size_t> encodeMpHeader(std::span<std::uint8_t> out, const MpHeader& header) noexcept {
  if (out.size() < kMpHeaderLen) {
    return fail<std::size_t>(WireError::kBufferTooSmall);
  }
  std::uint8_t* p = out.data();
  store16(p + offsetof(mpxdp_hdr_v1, magic), MPXDP_MAGIC);
  p[offsetof(mpxdp_hdr_v1, version)] = MPXDP_WIRE_VERSION_V1;
  p[offsetof(mpxdp_hdr_v1, flags)] = header.flags;
  store32(p + offsetof(mpxdp_hdr_v1, conn_id), header.connId);
  store16(p + offsetof(mpxdp_hdr_v1, path_id), header.pathId);
  store16(p + offsetof(mpxdp_hdr_v1, payload_len), header.payloadLen);
  store32(p + offsetof(mpxdp_hdr_v1, path_seq), header.pathSeq);
  store64(p + offsetof(mpxdp_hdr_v1, global_seq), header.globalSeq);
  store64(p + offsetof(mpxdp_hdr_v1, send_ts_ns), header.sendTsNs);
  return {kMpHeaderLen, WireError::kNone};
}

WireResult<MpHeader> decodeMpHeader(std::span<const std::uint8_t> udpPayload) noexcept {
  if (udpPayload.size() < kMpHeaderLen) {
    return fail<MpHeader>(WireError::kTruncated);
  }
  const std::uint8_t* p = udpPayload.data();
  if (load16(p + offsetof(mpxdp_hdr_v1, magic)) != MPXDP_MAGIC) {
    return fail<MpHeader>(WireError::kBadMagic);
  }
  if (p[offsetof(mpxdp_hdr_v1, version)] != MPXDP_WIRE_VERSION_V1) {
    return fail<MpHeader>(WireError::kBadVersion);
  }
  MpHeader header;
  header.flags = p[offsetof(mpxdp_hdr_v1, flags)];
  header.connId = load32(p + offsetof(mpxdp_hdr_v1, conn_id));
  header.pathId = load16(p + offsetof(mpxdp_hdr_v1, path_id));
  header.payloadLen = load16(p + offsetof(mpxdp_hdr_v1, payload_len));
  header.pathSeq = load32(p + offsetof(mpxdp_hdr_v1, path_seq));
  header.globalSeq = load64(p + offsetof(mpxdp_hdr_v1, global_seq));
  header.sendTsNs = load64(p + offsetof(mpxdp_hdr_v1, send_ts_ns));
  if (udpPayload.size() - kMpHeaderLen != header.payloadLen) {
    return fail<MpHeader>(WireError::kBadPayloadLength);
  }
  return {header, WireError::kNone};
}

std::size_t outerHeaderLength(const OuterAddressing& addressing) noexcept {
  return kEthHeaderLen + (addressing.vlanId ? kVlanTagLen : 0) + ipHeaderLength(addressing) + kUdpHeaderLen;
}

WireResult<std::size_t> encodeOuter(std::span<std::uint8_t> frame, const OuterAddressing& addressing,
                                    std::size_t udpPayloadLen, bool computeUdpChecksum) noexcept {
  if (const WireError error = validateAddressing(addressing); error != WireError::kNone) {
    return fail<std::size_t>(error);
  }
  const bool v4 = isV4(addressing);
  if (udpPayloadLen > maxUdpPayloadLen(v4)) {
    return fail<std::size_t>(WireError::kPayloadTooLarge);
  }
  const std::size_t headerLen = outerHeaderLength(addressing);
  if (frame.size() < headerLen || frame.size() - headerLen < udpPayloadLen) {
    return fail<std::size_t>(WireError::kBufferTooSmall);
  }
  const auto udpLen = static_cast<std::uint16_t>(kUdpHeaderLen + udpPayloadLen);
  std::uint8_t* out = frame.data();
  const std::size_t ipOffset = writeHeadersWithoutChecksums(out, addressing, udpLen);
  std::uint8_t* ip = out + ipOffset;
  if (v4) {
    store16(ip + kIpv4ChecksumOffset, checksumFold(checksumPartial({ip, kIpv4HeaderLen}, 0)));
  }
  if (computeUdpChecksum || !v4) {
    std::uint8_t* udp = ip + ipHeaderLength(addressing);
    std::uint32_t sum = pseudoHeaderSumWithoutLength(ip, v4);
    sum = checksumPartial({udp, udpLen}, sum + udpLen);
    store16(udp + kUdpChecksumOffset, finishUdpChecksum(sum));
  }
  return {headerLen, WireError::kNone};
}

WireResult<OuterTemplate> OuterTemplate::make(const OuterAddressing& addressing) noexcept {
  if (const WireError error = validateAddressing(addressing); error != WireError::kNone) {
    return fail<OuterTemplate>(error);
  }
  OuterTemplate tmpl;
  tmpl.v6_ = !isV4(addressing);
  tmpl.length_ = outerHeaderLength(addressing);
  tmpl.ipOffset_ = writeHeadersWithoutChecksums(tmpl.bytes_, addressing, 0);
  const std::uint8_t* ip = tmpl.bytes_ + tmpl.ipOffset_;
  if (!tmpl.v6_) {
    // Total length is written as 20 + 0 in the template: take the 20 out, write() adds the real value.
    tmpl.ipChecksumPartial_ = checksumPartial({ip, kIpv4HeaderLen}, 0) + (0xffff - kIpv4HeaderLen);
  }
  // Pseudo-header without length, plus the UDP ports (length and checksum fields are zero here).
  const std::uint8_t* udp = ip + (tmpl.v6_ ? kIpv6HeaderLen : kIpv4HeaderLen);
  tmpl.udpPseudoPartial_ = checksumPartial({udp, kUdpHeaderLen}, pseudoHeaderSumWithoutLength(ip, !tmpl.v6_));
  return {tmpl, WireError::kNone};
}

WireResult<std::size_t> OuterTemplate::write(std::span<std::uint8_t> frame, std::size_t udpPayloadLen,
                                             bool computeUdpChecksum) const noexcept {
  if (udpPayloadLen > maxUdpPayloadLen(!v6_)) {
    return fail<std::size_t>(WireError::kPayloadTooLarge);
  }
  if (frame.size() < length_ || frame.size() - length_ < udpPayloadLen) {
    return fail<std::size_t>(WireError::kBufferTooSmall);
  }
  std::uint8_t* out = frame.data();
  std::memcpy(out, bytes_, length_);
  std::uint8_t* ip = out + ipOffset_;
  const auto udpLen = static_cast<std::uint16_t>(kUdpHeaderLen + udpPayloadLen);
  std::uint8_t* udp;
  if (v6_) {
    store16(ip + kIpv6PayloadLenOffset, udpLen);
    udp = ip + kIpv6HeaderLen;
  } else {
    const auto totalLen = static_cast<std::uint16_t>(kIpv4HeaderLen + udpLen);
    store16(ip + kIpv4TotalLenOffset, totalLen);
    store16(ip + kIpv4ChecksumOffset, checksumFold(ipChecksumPartial_ + totalLen));
    udp = ip + kIpv4HeaderLen;
  }
  store16(udp + kUdpLenOffset, udpLen);
  if (computeUdpChecksum || v6_) {
    // The length appears twice: in the pseudo-header and in the UDP header.
    std::uint32_t sum = udpPseudoPartial_ + 2u * udpLen;
    sum = checksumPartial({udp + kUdpHeaderLen, udpPayloadLen}, sum);
    store16(udp + kUdpChecksumOffset, finishUdpChecksum(sum));
  }
  return {length_, WireError::kNone};
}

WireResult<ParsedOuter> decodeOuter(std::span<const std::uint8_t> frame, bool checkUdpChecksum) noexcept {
  const std::uint8_t* p = frame.data();
  const std::size_t size = frame.size();
  ParsedOuter parsed;
  if (size < kEthHeaderLen) {
    return fail<ParsedOuter>(WireError::kTruncated);
  }
  std::size_t offset = kEthTypeOffset;
  std::uint16_t etherType = load16(p + offset);
  if (etherType == kEtherTypeVlan) {
    if (size < kEthHeaderLen + kVlanTagLen) {
      return fail<ParsedOuter>(WireError::kTruncated);
    }
    parsed.vlanId = static_cast<std::uint16_t>(load16(p + offset + 2) & 0x0fff);
    offset += kVlanTagLen;
    etherType = load16(p + offset);
  }
  offset += 2;
  const std::size_t ipOffset = offset;
  const std::uint8_t* ip = p + ipOffset;
  std::size_t ipHeaderLen;
  std::size_t ipPayloadLen;  // as the IP header claims it
  if (etherType == kEtherTypeIpv4) {
    if (size - ipOffset < kIpv4HeaderLen) {
      return fail<ParsedOuter>(WireError::kTruncated);
    }
    if ((ip[0] >> 4) != 4) {
      return fail<ParsedOuter>(WireError::kBadIpVersion);
    }
    ipHeaderLen = std::size_t{ip[0] & 0x0fu} * 4;
    if (ipHeaderLen < kIpv4HeaderLen) {
      return fail<ParsedOuter>(WireError::kBadIpHeaderLength);
    }
    if (size - ipOffset < ipHeaderLen) {
      return fail<ParsedOuter>(WireError::kTruncated);
    }
    if (checksumFold(checksumPartial({ip, ipHeaderLen}, 0)) != 0) {
      return fail<ParsedOuter>(WireError::kBadIpChecksum);
    }
    const std::uint16_t frag = load16(ip + kIpv4FragOffset);
    if ((frag & kIpv4FlagMoreFragments) != 0 || (frag & kIpv4FragmentOffsetMask) != 0) {
      return fail<ParsedOuter>(WireError::kIpFragment);
    }
    if (ip[kIpv4ProtoOffset] != kIpProtoUdp) {
      return fail<ParsedOuter>(WireError::kNotUdp);
    }
    const std::size_t totalLen = load16(ip + kIpv4TotalLenOffset);
    if (totalLen < ipHeaderLen + kUdpHeaderLen) {
      return fail<ParsedOuter>(WireError::kBadIpTotalLength);
    }
    ipPayloadLen = totalLen - ipHeaderLen;
    parsed.srcIp.family = IpAddress::Family::kV4;
    parsed.dstIp.family = IpAddress::Family::kV4;
    std::memcpy(parsed.srcIp.bytes.data(), ip + kIpv4SrcOffset, 4);
    std::memcpy(parsed.dstIp.bytes.data(), ip + kIpv4DstOffset, 4);
  } else if (etherType == kEtherTypeIpv6) {
    if (size - ipOffset < kIpv6HeaderLen) {
      return fail<ParsedOuter>(WireError::kTruncated);
    }
    if ((ip[0] >> 4) != 6) {
      return fail<ParsedOuter>(WireError::kBadIpVersion);
    }
    ipHeaderLen = kIpv6HeaderLen;
    const std::uint8_t nextHeader = ip[kIpv6NextHeaderOffset];
    if (nextHeader == kIpv6NextHeaderFragment) {
      return fail<ParsedOuter>(WireError::kIpFragment);
    }
    if (nextHeader != kIpProtoUdp) {
      return fail<ParsedOuter>(WireError::kNotUdp);  // includes any extension header
    }
    ipPayloadLen = load16(ip + kIpv6PayloadLenOffset);
    if (ipPayloadLen < kUdpHeaderLen) {
      return fail<ParsedOuter>(WireError::kBadIpTotalLength);
    }
    parsed.srcIp.family = IpAddress::Family::kV6;
    parsed.dstIp.family = IpAddress::Family::kV6;
    std::memcpy(parsed.srcIp.bytes.data(), ip + kIpv6SrcOffset, 16);
    std::memcpy(parsed.dstIp.bytes.data(), ip + kIpv6DstOffset, 16);
  } else {
    return fail<ParsedOuter>(WireError::kNotIp);
  }

  const std::size_t udpOffset = ipOffset + ipHeaderLen;
  if (size - udpOffset < kUdpHeaderLen) {
    return fail<ParsedOuter>(WireError::kTruncated);
  }
  // Anything after the IP packet is Ethernet padding; the packet itself must fit.
  if (size - udpOffset < ipPayloadLen) {
    return fail<ParsedOuter>(WireError::kBadIpTotalLength);
  }
  const std::uint8_t* udp = p + udpOffset;
  const std::uint16_t udpLen = load16(udp + kUdpLenOffset);
  if (udpLen < kUdpHeaderLen || udpLen != ipPayloadLen) {
    return fail<ParsedOuter>(WireError::kBadUdpLength);
  }
  const bool v4 = etherType == kEtherTypeIpv4;
  const std::uint16_t udpChecksum = load16(udp + kUdpChecksumOffset);
  if (udpChecksum == 0) {
    if (!v4) {
      return fail<ParsedOuter>(WireError::kBadUdpChecksum);  // mandatory over IPv6 (RFC 8200 8.1)
    }
  } else if (checkUdpChecksum) {
    std::uint32_t sum = pseudoHeaderSumWithoutLength(ip, v4) + udpLen;
    sum = checksumPartial({udp, udpLen}, sum);
    if (checksumFold(sum) != 0) {
      return fail<ParsedOuter>(WireError::kBadUdpChecksum);
    }
  }
  parsed.srcPort = load16(udp);
  parsed.dstPort = load16(udp + 2);
  parsed.udpPayloadOffset = udpOffset + kUdpHeaderLen;
  parsed.udpPayloadLen = udpLen - kUdpHeaderLen;
  return {parsed, WireError::kNone};
}

WireResult<ParsedFrame> decodeFrame(std::span<const std::uint8_t> frame) noexcept {
  const WireResult<ParsedOuter> outer = decodeOuter(frame);
  if (!outer.ok()) {
    return fail<ParsedFrame>(outer.error);
  }
  const WireResult<MpHeader> header =
      decodeMpHeader(frame.subspan(outer.value.udpPayloadOffset, outer.value.udpPayloadLen));
  if (!header.ok()) {
    return fail<ParsedFrame>(header.error);
  }
  ParsedFrame parsed;
  parsed.outer = outer.value;
  parsed.header = header.value;
  parsed.payloadOffset = outer.value.udpPayloadOffset + kMpHeaderLen;
  return {parsed, WireError::kNone};
}

}  // namespace mpxdp::wire
