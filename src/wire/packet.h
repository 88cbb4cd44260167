// Wire format v2 packet level: the 28-byte packet header, the 8-byte
// version-independent invariants and version negotiation packets. Pure
// functions: no allocation, no I/O, never a read or write outside the span.
// See docs/wire-format.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "codec.h"
#include "mpxdp_shared.h"

namespace mpxdp::wire {

inline constexpr std::uint8_t kWireVersion = MPXDP_WIRE_VERSION;                     // 2
inline constexpr std::uint8_t kVersionNegotiation = MPXDP_WIRE_VERSION_NEGOTIATION;  // 0
inline constexpr std::size_t kPacketHeaderLen = MPXDP_HDR_LEN;                       // 28
inline constexpr std::size_t kInvariantsLen = MPXDP_INVARIANTS_LEN;                  // 8
inline constexpr std::uint16_t kMagic = MPXDP_MAGIC;

// Packet header fields in host byte order (magic and version implied; the
// reserved field is written 0 and ignored).
struct PacketHeader {
  std::uint8_t flags = 0;
  std::uint32_t connId = 0;
  std::uint16_t pathId = 0;
  std::uint64_t packetNumber = 0;
  std::uint64_t sendTsNs = 0;
  bool operator==(const PacketHeader&) const = default;
};

// Writes the header at out[0..28). Returns kPacketHeaderLen, or kBufferTooSmall.
WireResult<std::size_t> writePacketHeader(std::span<std::uint8_t> out, const PacketHeader& h) noexcept;

// Parses the header at the start of a UDP payload; the frames start at
// kPacketHeaderLen. Checks in this order: 8 invariant bytes present
// (kTruncated), magic (kBadMagic), version == 2 (kBadVersion: the caller may
// answer with version negotiation, see parseInvariants), 28 bytes present
// (kTruncated). Flags are returned as sent.
WireResult<PacketHeader> parsePacketHeader(std::span<const std::uint8_t> udpPayload) noexcept;

// The version-independent first 8 bytes of an mpxdp packet of any version.
struct Invariants {
  std::uint8_t version = 0;
  std::uint8_t flags = 0;
  std::uint32_t connId = 0;
};

// Checks the magic and reads bytes 0..7 whatever the version (kTruncated, kBadMagic).
WireResult<Invariants> parseInvariants(std::span<const std::uint8_t> udpPayload) noexcept;

// Version negotiation packet: invariants with version 0 and flags 0, then
// count u8 and count version bytes. Lists the one version we speak {2}.
// Returns the bytes written (10), or kBufferTooSmall.
WireResult<std::size_t> writeVersionNegotiation(std::span<std::uint8_t> out, std::uint32_t connId) noexcept;

struct VersionList {
  std::uint8_t count = 0;
  std::array<std::uint8_t, 16> versions{};
};

// Parses a version negotiation packet: kTruncated, kBadMagic, kBadVersion
// (version byte not 0), kBadFrame (count 0 or more than 16). Bytes after the
// list are ignored.
WireResult<VersionList> parseVersionNegotiation(std::span<const std::uint8_t> udpPayload) noexcept;

}  // namespace mpxdp::wire
