// One AEAD key: two OpenSSL cipher contexts (encrypt, decrypt) keyed once;
// each packet only sets the nonce, so sealing and opening allocate nothing.
#include <openssl/evp.h>

#include <climits>
#include <cstring>

#include "crypto_internal.h"
#include "packet_protection.h"

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace mpxdp::crypto {

const char* toString(Cipher cipher) noexcept {
  switch (cipher) {
    case Cipher::kChaCha20Poly1305:
      return "chacha20-poly1305";
    case Cipher::kAes256Gcm:
      return "aes-256-gcm";
  }
  return "unknown";
}

std::optional<Cipher> parseCipher(std::string_view name) noexcept {
  if (name == "chacha20-poly1305") {
    return Cipher::kChaCha20Poly1305;
  }
  if (name == "aes-256-gcm") {
    return Cipher::kAes256Gcm;
  }
  return std::nullopt;
}

Cipher defaultCipher() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  // AES-NI for the rounds and PCLMULQDQ for GHASH: without them AES-GCM is
  // several times slower than ChaCha20-Poly1305.
  if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul")) {
    return Cipher::kAes256Gcm;
  }
#elif defined(__aarch64__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  if ((hwcap & HWCAP_AES) != 0 && (hwcap & HWCAP_PMULL) != 0) {
    return Cipher::kAes256Gcm;
  }
#endif
  return Cipher::kChaCha20Poly1305;
}

struct Aead::Contexts {
  EVP_CIPHER_CTX* encrypt = nullptr;
  EVP_CIPHER_CTX* decrypt = nullptr;
  Contexts() = default;
  Contexts(const Contexts&) = delete;
  Contexts& operator=(const Contexts&) = delete;
  ~Contexts() {
    // Frees and cleanses the key schedules.
    EVP_CIPHER_CTX_free(encrypt);
    EVP_CIPHER_CTX_free(decrypt);
  }
};

Aead::Aead(Cipher cipher, std::unique_ptr<Contexts> contexts)
    : cipher_(cipher), contexts_(std::move(contexts)) {}

Aead::~Aead() = default;

Result<std::unique_ptr<Aead>> Aead::create(Cipher cipher, std::span<const std::uint8_t, kKeyLen> key) {
  const EVP_CIPHER* evp = nullptr;
  switch (cipher) {
    case Cipher::kChaCha20Poly1305:
      evp = EVP_chacha20_poly1305();
      break;
    case Cipher::kAes256Gcm:
      evp = EVP_aes_256_gcm();
      break;
  }
  if (evp == nullptr) {
    return Error(EINVAL, "unknown cipher");
  }
  auto contexts = std::make_unique<Contexts>();
  contexts->encrypt = EVP_CIPHER_CTX_new();
  contexts->decrypt = EVP_CIPHER_CTX_new();
  if (contexts->encrypt == nullptr || contexts->decrypt == nullptr) {
    return Error(ENOMEM, "EVP_CIPHER_CTX_new");
  }
  // Both ciphers take a 12-byte nonce by default; the nonce comes per packet.
  if (EVP_EncryptInit_ex(contexts->encrypt, evp, nullptr, key.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(contexts->decrypt, evp, nullptr, key.data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_get_iv_length(contexts->encrypt) != static_cast<int>(kNonceLen)) {
    return Error(EIO, std::string("libcrypto refused a ") + toString(cipher) + " key");
  }
  return std::unique_ptr<Aead>(new Aead(cipher, std::move(contexts)));
}

bool Aead::seal(std::uint16_t pathId, std::uint64_t packetNumber, std::span<const std::uint8_t> aad,
                std::span<std::uint8_t> text, std::span<std::uint8_t, kTagLen> tag) noexcept {
  const auto nonce = detail::makeNonce(pathId, packetNumber);
  return sealWithNonce(nonce, aad, text, tag);
}

bool Aead::open(std::uint16_t pathId, std::uint64_t packetNumber, std::span<const std::uint8_t> aad,
                std::span<std::uint8_t> text, std::span<const std::uint8_t, kTagLen> tag) noexcept {
  const auto nonce = detail::makeNonce(pathId, packetNumber);
  return openWithNonce(nonce, aad, text, tag);
}

bool Aead::sealWithNonce(std::span<const std::uint8_t, kNonceLen> nonce, std::span<const std::uint8_t> aad,
                         std::span<std::uint8_t> text, std::span<std::uint8_t, kTagLen> tag) noexcept {
  if (aad.size() > INT_MAX || text.size() > INT_MAX) {
    return false;
  }
  EVP_CIPHER_CTX* ctx = contexts_->encrypt;
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) != 1) {
    return false;
  }
  if (!aad.empty() && EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return false;
  }
  if (!text.empty() &&
      (EVP_EncryptUpdate(ctx, text.data(), &len, text.data(), static_cast<int>(text.size())) != 1 ||
       static_cast<std::size_t>(len) != text.size())) {
    return false;
  }
  // Stream ciphers: Final writes nothing.
  std::uint8_t none[16];
  if (EVP_EncryptFinal_ex(ctx, none, &len) != 1 || len != 0) {
    return false;
  }
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagLen), tag.data()) == 1;
}

bool Aead::openWithNonce(std::span<const std::uint8_t, kNonceLen> nonce, std::span<const std::uint8_t> aad,
                         std::span<std::uint8_t> text, std::span<const std::uint8_t, kTagLen> tag) noexcept {
  if (aad.size() > INT_MAX || text.size() > INT_MAX) {
    return false;
  }
  EVP_CIPHER_CTX* ctx = contexts_->decrypt;
  int len = 0;
  if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data()) != 1) {
    return false;
  }
  if (!aad.empty() && EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return false;
  }
  if (!text.empty() &&
      (EVP_DecryptUpdate(ctx, text.data(), &len, text.data(), static_cast<int>(text.size())) != 1 ||
       static_cast<std::size_t>(len) != text.size())) {
    return false;
  }
  // The ctrl takes a non-const pointer (it copies the tag).
  std::uint8_t expected[kTagLen];
  std::memcpy(expected, tag.data(), kTagLen);
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagLen), expected) != 1) {
    return false;
  }
  std::uint8_t none[16];
  if (EVP_DecryptFinal_ex(ctx, none, &len) == 1) {
    return true;
  }
  // Wrong tag: encrypting the output again under the same key and nonce gives
  // the ciphertext back (both ciphers are stream ciphers), so the caller may
  // try another key on the same bytes.
  if (!text.empty()) {
    std::uint8_t scratchTag[kTagLen];
    (void)sealWithNonce(nonce, {}, text, scratchTag);
  }
  return false;
}

}  // namespace mpxdp::crypto
