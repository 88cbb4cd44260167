// Wire format v1: pure encode/decode functions for the outer Ethernet/IP/UDP
// headers and the multipath header. Nothing here allocates, does I/O or reads
// outside the given span. See docs/wire-format.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "mpxdp/address.h"
#include "mpxdp_shared.h"

namespace mpxdp::wire {

inline constexpr std::size_t kEthHeaderLen = 14;
inline constexpr std::size_t kVlanTagLen = 4;
inline constexpr std::size_t kIpv4HeaderLen = 20;  // without options
inline constexpr std::size_t kIpv6HeaderLen = 40;
inline constexpr std::size_t kUdpHeaderLen = 8;
inline constexpr std::size_t kMpHeaderLen = MPXDP_HDR_LEN;
// Ethernet + IPv4 + UDP, no VLAN tag.
inline constexpr std::size_t kOuterIpv4Len = kEthHeaderLen + kIpv4HeaderLen + kUdpHeaderLen;
// Largest outer header this codec writes (VLAN + IPv6): frames reserve this headroom.
inline constexpr std::size_t kMaxOuterLen = kEthHeaderLen + kVlanTagLen + kIpv6HeaderLen + kUdpHeaderLen;

enum class WireError : std::uint8_t {
  kNone = 0,
  kBufferTooSmall,     // encode: output span too short
  kPayloadTooLarge,    // encode: lengths do not fit the header fields
  kTruncated,          // decode: frame ends inside a header
  kNotIp,              // EtherType is neither IPv4 nor IPv6
  kBadIpVersion,       // version nibble does not match the EtherType
  kBadIpHeaderLength,  // IPv4 IHL < 5 or past the frame
  kBadIpTotalLength,   // IP length field disagrees with the frame
  kBadIpChecksum,
  kIpFragment,  // a fragment: not reassembled, not ours
  kNotUdp,
  kBadUdpLength,
  kBadUdpChecksum,
  kBadMagic,
  kBadVersion,
  kBadPayloadLength,  // multipath payload_len disagrees with the UDP length
};

const char* toString(WireError error) noexcept;

template <typename T>
struct WireResult {
  T value{};
  WireError error = WireError::kNone;
  bool ok() const noexcept { return error == WireError::kNone; }
};

// Multipath header fields in host byte order (magic and version implied).
struct MpHeader {
  std::uint8_t flags = 0;
  std::uint32_t connId = 0;
  std::uint16_t pathId = 0;
  std::uint16_t payloadLen = 0;
  std::uint32_t pathSeq = 0;
  std::uint64_t globalSeq = 0;
  std::uint64_t sendTsNs = 0;
  bool operator==(const MpHeader&) const = default;
};

// Writes the 32-byte header at out[0..32). Returns kMpHeaderLen, or an error.
WireResult<std::size_t> encodeMpHeader(std::span<std::uint8_t> out, const MpHeader& header) noexcept;
// Decodes the header at the start of a UDP payload; checks magic, version
// and that payloadLen bytes follow the header.
WireResult<MpHeader> decodeMpHeader(std::span<const std::uint8_t> udpPayload) noexcept;

// Addressing of one direction of a link.
struct OuterAddressing {
  MacAddress srcMac;
  MacAddress dstMac;
  IpAddress srcIp;
  IpAddress dstIp;  // same family as srcIp
  std::uint16_t srcPort = 0;
  std::uint16_t dstPort = 0;
  std::optional<std::uint16_t> vlanId;  // 802.1Q tag when set
  std::uint8_t ttl = 64;
  std::uint8_t dscp = 0;
};

std::size_t outerHeaderLength(const OuterAddressing& addressing) noexcept;

// Writes the outer headers at frame[0..outerHeaderLength) for a UDP payload
// of udpPayloadLen bytes that already sits right after them. IPv4 header
// checksum is always set; the UDP checksum is computed when computeUdpChecksum
// (always for IPv6) and is 0 otherwise. Returns the outer header length.
WireResult<std::size_t> encodeOuter(std::span<std::uint8_t> frame, const OuterAddressing& addressing,
                                    std::size_t udpPayloadLen, bool computeUdpChecksum) noexcept;

// Outer headers precomputed once per link; write() copies them in front of a
// payload and patches only lengths and checksums (the hot-path encoder).
class OuterTemplate {
 public:
  static WireResult<OuterTemplate> make(const OuterAddressing& addressing) noexcept;
  std::size_t headerLength() const noexcept { return length_; }
  // Same contract as encodeOuter with the template's addressing.
  WireResult<std::size_t> write(std::span<std::uint8_t> frame, std::size_t udpPayloadLen,
                                bool computeUdpChecksum) const noexcept;

 private:
  std::uint8_t bytes_[kMaxOuterLen] = {};
  std::size_t length_ = 0;
  std::size_t ipOffset_ = 0;
  bool v6_ = false;
  std::uint32_t ipChecksumPartial_ = 0;  // IPv4 header sum without the length field
  std::uint32_t udpPseudoPartial_ = 0;   // pseudo-header sum without the length
};

struct ParsedOuter {
  std::size_t udpPayloadOffset = 0;
  std::size_t udpPayloadLen = 0;
  IpAddress srcIp;
  IpAddress dstIp;
  std::uint16_t srcPort = 0;
  std::uint16_t dstPort = 0;
  std::optional<std::uint16_t> vlanId;
};

// Parses Ethernet (one optional VLAN tag), IPv4 (with options) or IPv6 (no
// extension headers) and UDP. Verifies the IPv4 header checksum and a
// non-zero UDP checksum. Frames may carry trailing padding.
WireResult<ParsedOuter> decodeOuter(std::span<const std::uint8_t> frame) noexcept;

// RFC 1071 ones'-complement sum helpers.
std::uint32_t checksumPartial(std::span<const std::uint8_t> data, std::uint32_t sum) noexcept;
std::uint16_t checksumFold(std::uint32_t sum) noexcept;

}  // namespace mpxdp::wire
