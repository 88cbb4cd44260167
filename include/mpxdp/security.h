// Packet protection (authenticated encryption and anti-replay) of a
// connection: every packet is sealed with an AEAD under keys derived from a
// pre-shared key and both ends' fresh randoms; replays are dropped by a
// sliding window per path. docs/security.md has the design.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/error.h"
#include "mpxdp/export.h"

namespace mpxdp {

inline constexpr std::size_t kPreSharedKeyLen = 32;
// Bytes a keyed connection's data packet carries beyond an unkeyed one's.
inline constexpr std::size_t kAeadTagLen = 16;
using PreSharedKey = std::array<std::uint8_t, kPreSharedKeyLen>;

enum class CipherKind : std::uint8_t { kChaCha20Poly1305 = 1, kAes256Gcm = 2 };

struct SecurityOptions {
  // Empty: packets are neither authenticated nor encrypted. A client uses
  // keys[0]; a server accepts a peer that holds any of them (several peers,
  // each with its own key) and refuses everything else without an answer.
  std::vector<PreSharedKey> keys;
  // The client's choice of session cipher (the server follows it); unset:
  // the faster one on this CPU (defaultCipher()).
  std::optional<CipherKind> cipher;
  // Key update: a direction moves to its next key after this many packets or
  // this much time, whichever comes first.
  std::uint64_t rotateAfterPackets = 1ULL << 23;
  std::uint64_t rotateAfterNs = 120'000'000'000ULL;
  // ... but not before the key is this old: the key phase is one bit, so two
  // updates must never be in flight at once (the slowest path's delay).
  std::uint64_t minKeyPhaseNs = 1'000'000'000ULL;
};

MPXDP_API const char* cipherName(CipherKind cipher) noexcept;  // "chacha20-poly1305", "aes-256-gcm"
MPXDP_API std::optional<CipherKind> parseCipherName(std::string_view name) noexcept;
MPXDP_API CipherKind defaultCipher() noexcept;
// A new random key, base64 (what `mpxdp genkey` prints).
MPXDP_API Result<std::string> generateKey();
// A key file holds one base64 key. Refused when group or others may read or
// write it (as ssh refuses loose private keys), or when it is not a regular file.
MPXDP_API Result<PreSharedKey> loadKeyFile(const std::string& path);

}  // namespace mpxdp
