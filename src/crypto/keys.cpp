// Pre-shared keys (generation, base64, key files), HKDF-SHA256 and randoms.
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include "packet_protection.h"
#include "unique_fd.h"

namespace mpxdp::crypto {
namespace {

constexpr std::size_t kKeyBase64Len = 44;  // 4 * ceil(32 / 3), one '=' of padding
// A key file holds one key and maybe a comment or blank lines; anything
// larger is not a key file.
constexpr std::size_t kMaxKeyFileLen = 4096;

bool isSpace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && isSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

std::string encodeKey(const Key& key) {
  // EVP_EncodeBlock writes 44 characters and a NUL.
  char text[kKeyBase64Len + 1];
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text), key.data(), static_cast<int>(key.size()));
  std::string out(text, static_cast<std::size_t>(n));
  OPENSSL_cleanse(text, sizeof(text));
  return out;
}

std::string octalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

Result<void> hkdfSha256(std::span<const std::uint8_t> ikm, std::span<const std::uint8_t> salt,
                        std::span<const std::uint8_t> info, std::span<std::uint8_t> out) {
  if (out.empty() || out.size() > 255 * 32) {
    return Error(EINVAL, "HKDF-SHA256 output length must be 1 to 8160 bytes");
  }
  if (ikm.empty()) {
    return Error(EINVAL, "HKDF-SHA256 needs input key material");
  }
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) {
    return Error(ENOSYS, "libcrypto has no HKDF");
  }
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) {
    return Error(ENOMEM, "EVP_KDF_CTX_new");
  }
  // OSSL_PARAM wants non-const pointers; libcrypto only reads them. An empty
  // salt is left out: RFC 5869 then uses HashLen zero bytes, which is the
  // same HMAC key as an empty one.
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  OSSL_PARAM* p = params;
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(ikm.data()),
                                           ikm.size());
  if (!salt.empty()) {
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()),
                                             salt.size());
  }
  if (!info.empty()) {
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<std::uint8_t*>(info.data()),
                                             info.size());
  }
  *p = OSSL_PARAM_construct_end();
  const int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) {
    return Error(EIO, "HKDF-SHA256 failed in libcrypto");
  }
  return {};
}

Random makeRandom() noexcept {
  Random random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) == 1) {
    return random;
  }
  // libcrypto's generator failed (it should not): the kernel's directly.
  std::size_t done = 0;
  while (done < random.size()) {
    const ssize_t n = getrandom(random.data() + done, random.size() - done, 0);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;
    }
  }
  return random;
}

Result<std::string> generateKeyBase64() {
  Key key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    return Error(EIO, "no random bytes from libcrypto");
  }
  std::string text = encodeKey(key);
  OPENSSL_cleanse(key.data(), key.size());
  return text;
}

Result<Key> parseKey(std::string_view base64) {
  const std::string_view text = trim(base64);
  if (text.empty()) {
    return Error(EINVAL, "key is empty");
  }
  if (text.size() != kKeyBase64Len) {
    return Error(EINVAL, "key is not base64 of 32 bytes (44 characters)");
  }
  // EVP_DecodeBlock counts the padding as output bytes (33 for 44 characters)
  // and accepts non-canonical encodings: the re-encoding must match exactly.
  unsigned char decoded[kKeyBase64Len];
  const int n = EVP_DecodeBlock(decoded, reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  Key key{};
  bool ok = n == static_cast<int>(kKeyLen) + 1;
  if (ok) {
    std::copy(decoded, decoded + kKeyLen, key.begin());
    std::string again = encodeKey(key);
    ok = again == text;
    OPENSSL_cleanse(again.data(), again.size());
  }
  OPENSSL_cleanse(decoded, sizeof(decoded));
  if (!ok) {
    OPENSSL_cleanse(key.data(), key.size());
    return Error(EINVAL, "key is not base64 of 32 bytes (44 characters)");
  }
  return key;
}

Result<Key> loadKeyFile(const std::string& path) {
  // O_NONBLOCK: a FIFO must not hang us before fstat refuses it.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    return Error::fromErrno("key file " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Error::fromErrno("key file " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(EINVAL, "key file " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    const char* what = (st.st_mode & 044) != 0 ? "readable" : "writable";
    return Error(EPERM, "key file " + path + " is " + what + " by others (mode " + octalMode(st.st_mode) +
                            "): chmod 600 " + path);
  }
  char buffer[kMaxKeyFileLen + 1];
  std::size_t length = 0;
  while (length < sizeof(buffer)) {
    const ssize_t n = ::read(fd.get(), buffer + length, sizeof(buffer) - length);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      OPENSSL_cleanse(buffer, length);
      return Error::fromErrno("key file " + path);
    }
    if (n == 0) {
      break;
    }
    length += static_cast<std::size_t>(n);
  }
  Result<Key> key = length > kMaxKeyFileLen
                        ? Result<Key>(Error(EINVAL, "key file " + path + " is too large for a key"))
                        : parseKey(std::string_view(buffer, length));
  OPENSSL_cleanse(buffer, length);
  if (!key.ok()) {
    return key.error().wrap("key file " + path);
  }
  return key;
}

}  // namespace mpxdp::crypto
