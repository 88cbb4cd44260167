// Internal to mpxdp_crypto: byte order of the header fields, the nonce, the
// derivation labels and the handshake packet helpers shared by
// handshake.cpp and packet_protection.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "mpxdp_shared.h"
#include "packet_protection.h"

namespace mpxdp::crypto::detail {

inline constexpr std::size_t kHeaderLen = MPXDP_HDR_LEN;  // 28
inline constexpr std::size_t kFlagsOffset = 3;
inline constexpr std::size_t kPathIdOffset = 8;
inline constexpr std::size_t kPacketNumberOffset = 12;

inline constexpr std::uint8_t kFlagProtected = MPXDP_HDR_FLAG_PROTECTED;
inline constexpr std::uint8_t kFlagHandshake = MPXDP_HDR_FLAG_HANDSHAKE;
inline constexpr std::uint8_t kFlagKeyPhase = MPXDP_HDR_FLAG_KEY_PHASE;

inline constexpr std::string_view kHandshakeLabel = "mpxdp v2 handshake";
inline constexpr std::string_view kClientToServerLabel = "mpxdp v2 c2s";
inline constexpr std::string_view kServerToClientLabel = "mpxdp v2 s2c";
inline constexpr std::string_view kKeyUpdateLabel = "mpxdp v2 key update";

inline std::uint16_t load16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

inline std::uint64_t load64(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v = (v << 8) | p[i];
  }
  return v;
}

inline void store16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

inline void store32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 3; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}

inline void store64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
}

// path_id (BE16) | 0x0000 | packet_number (BE64).
inline std::array<std::uint8_t, kNonceLen> makeNonce(std::uint16_t pathId,
                                                     std::uint64_t packetNumber) noexcept {
  std::array<std::uint8_t, kNonceLen> nonce{};
  store16(nonce.data(), pathId);
  store64(nonce.data() + 4, packetNumber);
  return nonce;
}

inline std::span<const std::uint8_t> labelBytes(std::string_view label) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(label.data()), label.size()};
}

// The handshake key of one random: HKDF(psk, salt = random, "mpxdp v2 handshake"), ChaCha20-Poly1305.
Result<std::unique_ptr<Aead>> handshakeAead(const Key& psk, const Random& random);
// Seal/open a handshake packet with an already derived handshake key (see
// sealHandshake/openHandshake in packet_protection.h).
std::size_t sealHandshakeWith(Aead& aead, const Random& random, std::span<std::uint8_t> packet,
                              std::size_t framesLength) noexcept;
// Checks the length and flags of a handshake packet; the sender's random at its end.
bool handshakeShapeOk(std::span<const std::uint8_t> packet) noexcept;
Random handshakeRandom(std::span<const std::uint8_t> packet) noexcept;
std::optional<OpenedHandshake> openHandshakeWith(Aead& aead, std::span<std::uint8_t> packet) noexcept;

}  // namespace mpxdp::crypto::detail
