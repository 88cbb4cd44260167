// Aead and HKDF against published test vectors, and the failure cases.
#include <gtest/gtest.h>

#include <string>

#include "packet_protection.h"
#include "test_util.h"

namespace mpxdp::crypto {
namespace {

using testing::Bytes;
using testing::fromHex;

std::unique_ptr<Aead> makeAead(Cipher cipher, const Bytes& key) {
  EXPECT_EQ(key.size(), kKeyLen);
  auto aead = Aead::create(cipher, std::span<const std::uint8_t, kKeyLen>(key.data(), kKeyLen));
  EXPECT_TRUE(aead.ok());
  return aead.ok() ? std::move(aead.value()) : nullptr;
}

// RFC 8439 section 2.8.2.
const std::string kSunscreen =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen "
    "would "
    "be it.";
const Bytes kChaChaKey = fromHex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
const Bytes kChaChaAad = fromHex("50515253c0c1c2c3c4c5c6c7");
const Bytes kChaChaCiphertext = fromHex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116");
const Bytes kChaChaTag = fromHex("1ae10b594f09e26a7e902ecbd0600691");

TEST(AeadTest, ChaCha20Poly1305Rfc8439Vector) {
  auto aead = makeAead(Cipher::kChaCha20Poly1305, kChaChaKey);
  ASSERT_TRUE(aead);
  EXPECT_EQ(aead->cipher(), Cipher::kChaCha20Poly1305);
  // The RFC's nonce 07000000 4041424344454647 is path 0x0700, packet number 0x4041424344454647.
  Bytes text(kSunscreen.begin(), kSunscreen.end());
  std::array<std::uint8_t, kTagLen> tag{};
  ASSERT_TRUE(aead->seal(0x0700, 0x4041424344454647ULL, kChaChaAad, text, tag));
  EXPECT_EQ(text, kChaChaCiphertext);
  EXPECT_EQ(Bytes(tag.begin(), tag.end()), kChaChaTag);

  ASSERT_TRUE(aead->open(0x0700, 0x4041424344454647ULL, kChaChaAad, text, tag));
  EXPECT_EQ(std::string(text.begin(), text.end()), kSunscreen);
}

TEST(AeadTest, ChaCha20Poly1305RawNonce) {
  auto aead = makeAead(Cipher::kChaCha20Poly1305, kChaChaKey);
  ASSERT_TRUE(aead);
  const Bytes nonce = fromHex("070000004041424344454647");
  Bytes text = kChaChaCiphertext;
  std::array<std::uint8_t, kTagLen> tag{};
  std::copy(kChaChaTag.begin(), kChaChaTag.end(), tag.begin());
  ASSERT_TRUE(aead->openWithNonce(std::span<const std::uint8_t, kNonceLen>(nonce.data(), kNonceLen),
                                  kChaChaAad, text, tag));
  EXPECT_EQ(std::string(text.begin(), text.end()), kSunscreen);
}

// "The Galois/Counter Mode of Operation (GCM)", McGrew and Viega, test case 16 (AES-256, AAD, 60 bytes).
TEST(AeadTest, Aes256GcmTestCase16) {
  auto aead = makeAead(Cipher::kAes256Gcm,
                       fromHex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"));
  ASSERT_TRUE(aead);
  const Bytes nonce = fromHex("cafebabefacedbaddecaf888");
  const Bytes aad = fromHex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const Bytes plain = fromHex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  const Bytes expected = fromHex(
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662");
  const Bytes expectedTag = fromHex("76fc6ece0f4e1768cddf8853bb2d551b");
  const std::span<const std::uint8_t, kNonceLen> n(nonce.data(), kNonceLen);

  Bytes text = plain;
  std::array<std::uint8_t, kTagLen> tag{};
  ASSERT_TRUE(aead->sealWithNonce(n, aad, text, tag));
  EXPECT_EQ(text, expected);
  EXPECT_EQ(Bytes(tag.begin(), tag.end()), expectedTag);
  ASSERT_TRUE(aead->openWithNonce(n, aad, text, tag));
  EXPECT_EQ(text, plain);
}

// Test case 14 (AES-256, zero key, zero nonce: path 0, packet number 0) through the packet API.
TEST(AeadTest, Aes256GcmTestCase14) {
  auto aead = makeAead(Cipher::kAes256Gcm, Bytes(kKeyLen, 0));
  ASSERT_TRUE(aead);
  Bytes text(16, 0);
  std::array<std::uint8_t, kTagLen> tag{};
  ASSERT_TRUE(aead->seal(0, 0, {}, text, tag));
  EXPECT_EQ(text, fromHex("cea7403d4d606b6e074ec5d3baf39d18"));
  EXPECT_EQ(Bytes(tag.begin(), tag.end()), fromHex("d0d1c8a799996bf0265b98b5d48ab919"));
}

TEST(HkdfTest, Rfc5869TestCase1) {
  const Bytes ikm(22, 0x0b);
  const Bytes salt = fromHex("000102030405060708090a0b0c");
  const Bytes info = fromHex("f0f1f2f3f4f5f6f7f8f9");
  Bytes okm(42);
  ASSERT_TRUE(hkdfSha256(ikm, salt, info, okm).ok());
  EXPECT_EQ(okm,
            fromHex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"));
}

// Test case 3: empty salt and info (the key update uses an empty salt).
TEST(HkdfTest, Rfc5869TestCase3EmptySaltAndInfo) {
  const Bytes ikm(22, 0x0b);
  Bytes okm(42);
  ASSERT_TRUE(hkdfSha256(ikm, {}, {}, okm).ok());
  EXPECT_EQ(okm,
            fromHex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"));
}

TEST(HkdfTest, RefusesBadLengths) {
  const Bytes ikm(32, 1);
  Bytes none;
  EXPECT_FALSE(hkdfSha256(ikm, {}, {}, none).ok());
  Bytes tooLong(255 * 32 + 1);
  EXPECT_FALSE(hkdfSha256(ikm, {}, {}, tooLong).ok());
  Bytes out(32);
  EXPECT_FALSE(hkdfSha256({}, {}, {}, out).ok());
}

TEST(CipherTest, Names) {
  for (const Cipher c : {Cipher::kChaCha20Poly1305, Cipher::kAes256Gcm}) {
    EXPECT_EQ(parseCipher(toString(c)), c);
  }
  EXPECT_STREQ(toString(Cipher::kAes256Gcm), "aes-256-gcm");
  EXPECT_STREQ(toString(Cipher::kChaCha20Poly1305), "chacha20-poly1305");
  EXPECT_FALSE(parseCipher("aes-128-gcm").has_value());
  EXPECT_FALSE(parseCipher("").has_value());
  const Cipher d = defaultCipher();
  EXPECT_TRUE(d == Cipher::kAes256Gcm || d == Cipher::kChaCha20Poly1305);
}

class AeadCipherTest : public ::testing::TestWithParam<Cipher> {};

TEST_P(AeadCipherTest, RoundTripAndEveryFlippedBitFails) {
  Bytes key(kKeyLen);
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i * 13 + 5);
  auto aead = makeAead(GetParam(), key);
  ASSERT_TRUE(aead);
  Bytes aad(28);
  for (std::size_t i = 0; i < aad.size(); ++i) aad[i] = static_cast<std::uint8_t>(i);
  Bytes plain(100);
  for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<std::uint8_t>(i * 3);

  Bytes sealed = plain;
  std::array<std::uint8_t, kTagLen> tag{};
  ASSERT_TRUE(aead->seal(3, 77, aad, sealed, tag));
  EXPECT_NE(sealed, plain);

  {
    Bytes text = sealed;
    ASSERT_TRUE(aead->open(3, 77, aad, text, tag));
    EXPECT_EQ(text, plain);
  }
  // Wrong nonce (path or packet number).
  for (const auto& [path, pn] : {std::pair<std::uint16_t, std::uint64_t>{4, 77}, {3, 78}}) {
    Bytes text = sealed;
    EXPECT_FALSE(aead->open(path, pn, aad, text, tag));
  }
  // Every single flipped bit of the associated data, the text and the tag.
  for (std::size_t bit = 0; bit < aad.size() * 8; ++bit) {
    Bytes a = aad;
    a[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    Bytes text = sealed;
    EXPECT_FALSE(aead->open(3, 77, a, text, tag)) << "aad bit " << bit;
  }
  for (std::size_t bit = 0; bit < sealed.size() * 8; ++bit) {
    Bytes text = sealed;
    text[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(aead->open(3, 77, aad, text, tag)) << "text bit " << bit;
  }
  for (std::size_t bit = 0; bit < kTagLen * 8; ++bit) {
    auto t = tag;
    t[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    Bytes text = sealed;
    EXPECT_FALSE(aead->open(3, 77, aad, text, t)) << "tag bit " << bit;
  }
}

TEST_P(AeadCipherTest, WrongKeyFailsAndLeavesTheCiphertext) {
  auto right = makeAead(GetParam(), Bytes(kKeyLen, 1));
  auto wrong = makeAead(GetParam(), Bytes(kKeyLen, 2));
  ASSERT_TRUE(right && wrong);
  const Bytes aad(28, 9);
  const Bytes plain(1400, 0x5a);
  Bytes text = plain;
  std::array<std::uint8_t, kTagLen> tag{};
  ASSERT_TRUE(right->seal(0, 1, aad, text, tag));
  const Bytes sealed = text;
  EXPECT_FALSE(wrong->open(0, 1, aad, text, tag));
  // The failed attempt restored the ciphertext: the right key still opens it.
  EXPECT_EQ(text, sealed);
  ASSERT_TRUE(right->open(0, 1, aad, text, tag));
  EXPECT_EQ(text, plain);
}

TEST_P(AeadCipherTest, EmptyText) {
  auto aead = makeAead(GetParam(), Bytes(kKeyLen, 7));
  ASSERT_TRUE(aead);
  const Bytes aad(28, 1);
  std::array<std::uint8_t, kTagLen> tag{};
  ASSERT_TRUE(aead->seal(1, 2, aad, {}, tag));
  EXPECT_TRUE(aead->open(1, 2, aad, {}, tag));
  tag[0] ^= 1;
  EXPECT_FALSE(aead->open(1, 2, aad, {}, tag));
}

INSTANTIATE_TEST_SUITE_P(Ciphers, AeadCipherTest,
                         ::testing::Values(Cipher::kChaCha20Poly1305, Cipher::kAes256Gcm),
                         [](const ::testing::TestParamInfo<Cipher>& info) {
                           return info.param == Cipher::kAes256Gcm ? std::string("Aes256Gcm")
                                                                   : std::string("ChaCha20Poly1305");
                         });

}  // namespace
}  // namespace mpxdp::crypto
