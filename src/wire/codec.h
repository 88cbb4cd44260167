// Pure encode/decode functions for the outer Ethernet/IP/UDP headers, the
// error type shared with the v2 codec (packet.h, frames.h), and the legacy v1
// multipath header (MpHeader, decodeFrame: used by the old sender/receiver
// until they go). Nothing here allocates, does I/O or reads outside the given
// span. See docs/wire-format.md.
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
inline constexpr std::size_t kMpHeaderLen = MPXDP_HDR_LEN_V1;  // v1 header (legacy)
// Ethernet + IPv4 + UDP, no VLAN tag.
inline constexpr std::size_t kOuterIpv4Len = kEthHeaderLen + kIpv4HeaderLen + kUdpHeaderLen;
// Largest outer header this codec writes (VLAN + IPv6): frames reserve this headroom.
inline constexpr std::size_t kMaxOuterLen = kEthHeaderLen + kVlanTagLen + kIpv6HeaderLen + kUdpHeaderLen;
// Largest UDP payload (multipath header + data) that fits the IPv4/IPv6 length fields.
inline constexpr std::size_t kMaxUdpPayloadLenV4 = 65535 - kIpv4HeaderLen - kUdpHeaderLen;
inline constexpr std::size_t kMaxUdpPayloadLenV6 = 65535 - kUdpHeaderLen;

inline constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr std::uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr std::uint16_t kEtherTypeVlan = 0x8100;
inline constexpr std::uint8_t kIpProtoUdp = 17;

enum class WireError : std::uint8_t {
  kNone = 0,
  kBufferTooSmall,     // encode: output span too short
  kPayloadTooLarge,    // encode: lengths do not fit the header fields
  kTruncated,          // decode: frame ends inside a header (Ethernet, VLAN, IP incl. options, UDP, MP)
  kNotIp,              // EtherType is neither IPv4 nor IPv6
  kBadIpVersion,       // version nibble does not match the EtherType
  kBadIpHeaderLength,  // IPv4 IHL < 5
  kBadIpTotalLength,   // IP length field too small for IP + UDP headers, or longer than the frame
  kBadIpChecksum,
  kIpFragment,  // a fragment (IPv4 MF/offset, IPv6 fragment header): not reassembled, not ours
  kNotUdp,
  kBadUdpLength,    // UDP length < 8 or != IP payload length
  kBadUdpChecksum,  // wrong, or zero over IPv6
  kBadMagic,
  kBadVersion,
  kBadPayloadLength,  // multipath payload_len disagrees with the UDP length
  kBadAddressing,     // encode: IP families differ, VLAN id > 4094 or DSCP > 63
  kUnknownFrame,      // v2 frame type this codec does not know
  kBadFrame,          // v2 frame field out of range (decode: malformed; encode: cannot be written)
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
// and that exactly payloadLen bytes follow the header (udpPayload.size() ==
// kMpHeaderLen + payloadLen). Flag bits are returned as sent, unknown ones included.
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
// non-zero UDP checksum (unless checkUdpChecksum is false: the addresses of a
// packet whose payload was since opened in place). Frames may carry trailing
// padding.
WireResult<ParsedOuter> decodeOuter(std::span<const std::uint8_t> frame,
                                    bool checkUdpChecksum = true) noexcept;

// A whole frame: outer headers, multipath header and the data after it.
struct ParsedFrame {
  ParsedOuter outer;
  MpHeader header;
  std::size_t payloadOffset = 0;  // of the data after the multipath header, within the frame
};

// decodeOuter followed by decodeMpHeader on the UDP payload.
WireResult<ParsedFrame> decodeFrame(std::span<const std::uint8_t> frame) noexcept;

// RFC 1071 ones'-complement sum helpers. checksumPartial adds data, read as
// big-endian 16-bit words (an odd last byte is padded with zero), to sum and
// returns a value congruent to the result modulo 0xffff (host order). Only the
// last chunk of a chained sum may have an odd length.
// On x86-64 CPUs with AVX2 it sums 32-byte blocks in vector registers
// (about twice as fast on 1 KB); checksumPartialPortable is the same without.
std::uint32_t checksumPartial(std::span<const std::uint8_t> data, std::uint32_t sum) noexcept;
std::uint32_t checksumPartialPortable(std::span<const std::uint8_t> data, std::uint32_t sum) noexcept;
// Folds the carries of sum into 16 bits and complements: the value to store in a
// checksum field (host order). A received header whose sum includes its own
// checksum field is valid when checksumFold(sum) == 0.
std::uint16_t checksumFold(std::uint32_t sum) noexcept;

}  // namespace mpxdp::wire
