// Wire format v2 packet header, invariants and version negotiation.
#include "packet.h"

#include <cstddef>

#include "byte_order.h"

namespace mpxdp::wire {

using detail::fail;
using detail::load16;
using detail::load32;
using detail::load64;
using detail::store16;
using detail::store32;
using detail::store64;

namespace {

constexpr std::size_t kVersionCountOffset = kInvariantsLen;

void writeInvariants(std::uint8_t* p, std::uint8_t version, std::uint8_t flags,
                     std::uint32_t connId) noexcept {
  store16(p + offsetof(mpxdp_invariants, magic), kMagic);
  p[offsetof(mpxdp_invariants, version)] = version;
  p[offsetof(mpxdp_invariants, flags)] = flags;
  store32(p + offsetof(mpxdp_invariants, conn_id), connId);
}

}  // namespace

WireResult<std::size_t> writePacketHeader(std::span<std::uint8_t> out, const PacketHeader& h) noexcept {
  if (out.size() < kPacketHeaderLen) {
    return fail<WireResult<std::size_t>>(WireError::kBufferTooSmall);
  }
  std::uint8_t* p = out.data();
  writeInvariants(p, kWireVersion, h.flags, h.connId);
  store16(p + offsetof(mpxdp_hdr, path_id), h.pathId);
  store16(p + offsetof(mpxdp_hdr, reserved), 0);
  store64(p + offsetof(mpxdp_hdr, packet_number), h.packetNumber);
  store64(p + offsetof(mpxdp_hdr, send_ts_ns), h.sendTsNs);
  return {kPacketHeaderLen, WireError::kNone};
}

WireResult<Invariants> parseInvariants(std::span<const std::uint8_t> udpPayload) noexcept {
  if (udpPayload.size() < kInvariantsLen) {
    return fail<WireResult<Invariants>>(WireError::kTruncated);
  }
  const std::uint8_t* p = udpPayload.data();
  if (load16(p + offsetof(mpxdp_invariants, magic)) != kMagic) {
    return fail<WireResult<Invariants>>(WireError::kBadMagic);
  }
  Invariants inv;
  inv.version = p[offsetof(mpxdp_invariants, version)];
  inv.flags = p[offsetof(mpxdp_invariants, flags)];
  inv.connId = load32(p + offsetof(mpxdp_invariants, conn_id));
  return {inv, WireError::kNone};
}

WireResult<PacketHeader> parsePacketHeader(std::span<const std::uint8_t> udpPayload) noexcept {
  const WireResult<Invariants> inv = parseInvariants(udpPayload);
  if (!inv.ok()) {
    return fail<WireResult<PacketHeader>>(inv.error);
  }
  if (inv.value.version != kWireVersion) {
    return fail<WireResult<PacketHeader>>(WireError::kBadVersion);
  }
  if (udpPayload.size() < kPacketHeaderLen) {
    return fail<WireResult<PacketHeader>>(WireError::kTruncated);
  }
  const std::uint8_t* p = udpPayload.data();
  PacketHeader h;
  h.flags = inv.value.flags;
  h.connId = inv.value.connId;
  h.pathId = load16(p + offsetof(mpxdp_hdr, path_id));
  h.packetNumber = load64(p + offsetof(mpxdp_hdr, packet_number));
  h.sendTsNs = load64(p + offsetof(mpxdp_hdr, send_ts_ns));
  return {h, WireError::kNone};
}

WireResult<std::size_t> writeVersionNegotiation(std::span<std::uint8_t> out, std::uint32_t connId) noexcept {
  constexpr std::size_t kLen = kInvariantsLen + 1 + 1;
  if (out.size() < kLen) {
    return fail<WireResult<std::size_t>>(WireError::kBufferTooSmall);
  }
  std::uint8_t* p = out.data();
  writeInvariants(p, kVersionNegotiation, 0, connId);
  p[kVersionCountOffset] = 1;
  p[kVersionCountOffset + 1] = kWireVersion;
  return {kLen, WireError::kNone};
}

WireResult<VersionList> parseVersionNegotiation(std::span<const std::uint8_t> udpPayload) noexcept {
  const WireResult<Invariants> inv = parseInvariants(udpPayload);
  if (!inv.ok()) {
    return fail<WireResult<VersionList>>(inv.error);
  }
  if (inv.value.version != kVersionNegotiation) {
    return fail<WireResult<VersionList>>(WireError::kBadVersion);
  }
  if (udpPayload.size() <= kVersionCountOffset) {
    return fail<WireResult<VersionList>>(WireError::kTruncated);
  }
  VersionList list;
  const std::uint8_t count = udpPayload[kVersionCountOffset];
  if (count == 0 || count > list.versions.size()) {
    return fail<WireResult<VersionList>>(WireError::kBadFrame);
  }
  if (udpPayload.size() - (kVersionCountOffset + 1) < count) {
    return fail<WireResult<VersionList>>(WireError::kTruncated);
  }
  list.count = count;
  for (std::size_t i = 0; i < count; ++i) {
    list.versions[i] = udpPayload[kVersionCountOffset + 1 + i];
  }
  return {list, WireError::kNone};
}

}  // namespace mpxdp::wire
