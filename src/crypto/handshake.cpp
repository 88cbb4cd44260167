// Handshake packets: header | sealed frames | tag | random. The key comes
// from the pre-shared key and the sender's random, which travels in the clear
// (a different random gives a different key, so it is authenticated too).
#include <openssl/crypto.h>

#include <algorithm>

#include "crypto_internal.h"
#include "packet_protection.h"

namespace mpxdp::crypto {
namespace detail {

Result<std::unique_ptr<Aead>> handshakeAead(const Key& psk, const Random& random) {
  Key key{};
  auto derived = hkdfSha256(psk, random, labelBytes(kHandshakeLabel), key);
  if (!derived.ok()) {
    return derived.error();
  }
  auto aead = Aead::create(Cipher::kChaCha20Poly1305, key);
  OPENSSL_cleanse(key.data(), key.size());
  return aead;
}

std::size_t sealHandshakeWith(Aead& aead, const Random& random, std::span<std::uint8_t> packet,
                              std::size_t framesLength) noexcept {
  if (packet.size() < kHeaderLen + kHandshakeOverhead ||
      framesLength > packet.size() - kHeaderLen - kHandshakeOverhead) {
    return 0;
  }
  std::uint8_t& flags = packet[kFlagsOffset];
  flags = static_cast<std::uint8_t>((flags & ~(kFlagProtected | kFlagKeyPhase)) | kFlagHandshake);
  const std::uint16_t pathId = load16(packet.data() + kPathIdOffset);
  const std::uint64_t packetNumber = load64(packet.data() + kPacketNumberOffset);
  const auto frames = packet.subspan(kHeaderLen, framesLength);
  const auto tag = packet.subspan(kHeaderLen + framesLength).first<kTagLen>();
  if (!aead.seal(pathId, packetNumber, packet.first(kHeaderLen), frames, tag)) {
    return 0;
  }
  std::copy(random.begin(), random.end(),
            packet.begin() + static_cast<std::ptrdiff_t>(kHeaderLen + framesLength + kTagLen));
  return kHeaderLen + framesLength + kHandshakeOverhead;
}

bool handshakeShapeOk(std::span<const std::uint8_t> packet) noexcept {
  if (packet.size() < kHeaderLen + kHandshakeOverhead) {
    return false;
  }
  const std::uint8_t flags = packet[kFlagsOffset];
  return (flags & kFlagHandshake) != 0 && (flags & kFlagProtected) == 0;
}

Random handshakeRandom(std::span<const std::uint8_t> packet) noexcept {
  Random random{};
  const auto tail = packet.last<kRandomLen>();
  std::copy(tail.begin(), tail.end(), random.begin());
  return random;
}

std::optional<OpenedHandshake> openHandshakeWith(Aead& aead, std::span<std::uint8_t> packet) noexcept {
  if (!handshakeShapeOk(packet)) {
    return std::nullopt;
  }
  const std::size_t framesLength = packet.size() - kHeaderLen - kHandshakeOverhead;
  const std::uint16_t pathId = load16(packet.data() + kPathIdOffset);
  const std::uint64_t packetNumber = load64(packet.data() + kPacketNumberOffset);
  const auto frames = packet.subspan(kHeaderLen, framesLength);
  const std::span<const std::uint8_t, kTagLen> tag =
      packet.subspan(kHeaderLen + framesLength).first<kTagLen>();
  if (!aead.open(pathId, packetNumber, packet.first(kHeaderLen), frames, tag)) {
    return std::nullopt;
  }
  return OpenedHandshake{.framesLength = framesLength, .random = handshakeRandom(packet)};
}

}  // namespace detail

std::size_t sealHandshake(const Key& psk, const Random& random, std::span<std::uint8_t> packet,
                          std::size_t framesLength) noexcept {
  if (packet.size() < detail::kHeaderLen + kHandshakeOverhead ||
      framesLength > packet.size() - detail::kHeaderLen - kHandshakeOverhead) {
    return 0;
  }
  auto aead = detail::handshakeAead(psk, random);
  if (!aead.ok()) {
    return 0;
  }
  return detail::sealHandshakeWith(**aead, random, packet, framesLength);
}

std::optional<OpenedHandshake> openHandshake(const Key& psk, std::span<std::uint8_t> packet) noexcept {
  if (!detail::handshakeShapeOk(packet)) {
    return std::nullopt;
  }
  auto aead = detail::handshakeAead(psk, detail::handshakeRandom(packet));
  if (!aead.ok()) {
    return std::nullopt;
  }
  return detail::openHandshakeWith(**aead, packet);
}

}  // namespace mpxdp::crypto
