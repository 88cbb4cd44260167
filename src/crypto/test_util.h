// Helpers shared by the crypto tests.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "packet.h"

namespace mpxdp::crypto::testing {

using Bytes = std::vector<std::uint8_t>;

// Hex digits to bytes; spaces and newlines between them are skipped.
inline Bytes fromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  int high = -1;
  for (const char c : hex) {
    const int v = nibble(c);
    if (v < 0) continue;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  return out;
}

// A v2 packet: header, framesLength bytes of frames (a pattern from seed),
// then `room` spare bytes for the tag (and random).
inline Bytes makePacket(std::uint32_t connId, std::uint16_t pathId, std::uint64_t packetNumber,
                        std::size_t framesLength, std::size_t room, std::uint8_t seed = 1) {
  Bytes packet(wire::kPacketHeaderLen + framesLength + room, 0);
  const wire::PacketHeader h{
      .flags = 0, .connId = connId, .pathId = pathId, .packetNumber = packetNumber, .sendTsNs = 123456789};
  (void)wire::writePacketHeader(packet, h);
  for (std::size_t i = 0; i < framesLength; ++i) {
    packet[wire::kPacketHeaderLen + i] = static_cast<std::uint8_t>(seed + i * 7);
  }
  return packet;
}

}  // namespace mpxdp::crypto::testing
