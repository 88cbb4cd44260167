// The public face of src/crypto (include/mpxdp/security.h).
#include "mpxdp/security.h"

#include "packet_protection.h"

namespace mpxdp {

static_assert(static_cast<int>(CipherKind::kChaCha20Poly1305) ==
              static_cast<int>(crypto::Cipher::kChaCha20Poly1305));
static_assert(static_cast<int>(CipherKind::kAes256Gcm) == static_cast<int>(crypto::Cipher::kAes256Gcm));
static_assert(kPreSharedKeyLen == crypto::kKeyLen);
static_assert(kAeadTagLen == crypto::kSessionOverhead);

const char* cipherName(CipherKind cipher) noexcept {
  return crypto::toString(static_cast<crypto::Cipher>(cipher));
}

std::optional<CipherKind> parseCipherName(std::string_view name) noexcept {
  const auto cipher = crypto::parseCipher(name);
  if (!cipher) return std::nullopt;
  return static_cast<CipherKind>(*cipher);
}

CipherKind defaultCipher() noexcept { return static_cast<CipherKind>(crypto::defaultCipher()); }

Result<std::string> generateKey() { return crypto::generateKeyBase64(); }

Result<PreSharedKey> loadKeyFile(const std::string& path) { return crypto::loadKeyFile(path); }

}  // namespace mpxdp
