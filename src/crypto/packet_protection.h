// Packet protection (issue 11): every packet of a keyed connection is sealed
// with an AEAD. The 28-byte packet header is associated data (authenticated,
// in the clear: the receiver needs conn_id, path_id and packet_number before
// it can open the packet); the frames after it are encrypted; a 16-byte tag
// follows them. OpenSSL's libcrypto does the cryptography.
//
// Two kinds of protected packets (header flags, src/common/mpxdp_shared.h):
//  - handshake (MPXDP_HDR_FLAG_HANDSHAKE): HELLO packets and stateless replies.
//    Layout: header | sealed frames | tag | random (32). The key is
//    HKDF-SHA256(ikm = pre-shared key, salt = random, info = "mpxdp v2 handshake"),
//    always ChaCha20-Poly1305. The random is the sender's per-connection
//    random (a fresh one for each stateless reply), so a key is never used
//    under two connections and the receiver learns the peer's random here.
//  - session (MPXDP_HDR_FLAG_PROTECTED, key phase in MPXDP_HDR_FLAG_KEY_PHASE):
//    everything else. Layout: header | sealed frames | tag. Keys per
//    direction: HKDF-SHA256(ikm = pre-shared key, salt = client random ||
//    server random, info = "mpxdp v2 c2s" or "s2c" || conn_id (4 bytes BE)),
//    with the cipher the client chose (HELLO). Key update: the sender moves to
//    the next phase after rotateAfterPackets packets or rotateAfterNs;
//    next secret = HKDF(ikm = secret, salt = empty, info = "mpxdp v2 key update").
// Nonce (12 bytes, both kinds): path_id (2, BE) | 2 zero bytes | packet_number
// (8, BE): per-path packet numbers are never reused within a key.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/error.h"

namespace mpxdp::crypto {

inline constexpr std::size_t kKeyLen = 32;
inline constexpr std::size_t kTagLen = 16;
inline constexpr std::size_t kRandomLen = 32;
inline constexpr std::size_t kNonceLen = 12;
// Bytes a protected packet adds after the frames.
inline constexpr std::size_t kSessionOverhead = kTagLen;
inline constexpr std::size_t kHandshakeOverhead = kTagLen + kRandomLen;
// RFC 6479 style window per path: packet numbers this far below the highest
// one opened are refused as too old.
inline constexpr std::uint64_t kReplayWindowPackets = 8192;

using Key = std::array<std::uint8_t, kKeyLen>;
using Random = std::array<std::uint8_t, kRandomLen>;

enum class Cipher : std::uint8_t { kChaCha20Poly1305 = 1, kAes256Gcm = 2 };
const char* toString(Cipher cipher) noexcept;  // "chacha20-poly1305", "aes-256-gcm"
std::optional<Cipher> parseCipher(std::string_view name) noexcept;
// The faster one on this CPU (see BENCHMARKS.md): AES-256-GCM when the CPU has
// AES and carry-less multiply instructions, else ChaCha20-Poly1305.
Cipher defaultCipher() noexcept;

// ---- keys ----
// 32 random bytes, base64 (44 characters, no newline).
Result<std::string> generateKeyBase64();
// Base64 of exactly 32 bytes; surrounding whitespace is ignored.
Result<Key> parseKey(std::string_view base64);
// Reads a key file (one base64 key). Refused, as ssh does, when the file is
// readable or writable by group or others, or is not a regular file; the
// error names the file and says what to do (chmod 600).
Result<Key> loadKeyFile(const std::string& path);

// ---- one AEAD key ----
// Holds OpenSSL contexts set up once; seal/open only set the nonce: no
// allocation per packet. Not copyable.
class Aead {
 public:
  static Result<std::unique_ptr<Aead>> create(Cipher cipher, std::span<const std::uint8_t, kKeyLen> key);
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;
  Cipher cipher() const noexcept { return cipher_; }
  // Encrypts text in place and writes the tag. False only if libcrypto fails.
  bool seal(std::uint16_t pathId, std::uint64_t packetNumber, std::span<const std::uint8_t> aad,
            std::span<std::uint8_t> text, std::span<std::uint8_t, kTagLen> tag) noexcept;
  // Decrypts text in place when the tag is right; false otherwise, text then
  // holding the ciphertext again (so another key can be tried on it).
  bool open(std::uint16_t pathId, std::uint64_t packetNumber, std::span<const std::uint8_t> aad,
            std::span<std::uint8_t> text, std::span<const std::uint8_t, kTagLen> tag) noexcept;
  // The same with a raw nonce (seal/open build it from pathId and
  // packetNumber; these serve the published test vectors).
  bool sealWithNonce(std::span<const std::uint8_t, kNonceLen> nonce, std::span<const std::uint8_t> aad,
                     std::span<std::uint8_t> text, std::span<std::uint8_t, kTagLen> tag) noexcept;
  bool openWithNonce(std::span<const std::uint8_t, kNonceLen> nonce, std::span<const std::uint8_t> aad,
                     std::span<std::uint8_t> text, std::span<const std::uint8_t, kTagLen> tag) noexcept;

 private:
  struct Contexts;
  Aead(Cipher cipher, std::unique_ptr<Contexts> contexts);
  Cipher cipher_;
  std::unique_ptr<Contexts> contexts_;
};

// HKDF-SHA256 (RFC 5869) into out (at most 255 * 32 bytes).
Result<void> hkdfSha256(std::span<const std::uint8_t> ikm, std::span<const std::uint8_t> salt,
                        std::span<const std::uint8_t> info, std::span<std::uint8_t> out);

// ---- anti-replay ----
// Sliding window over one path's packet numbers (RFC 6479: a ring of 64-bit
// words, O(1)). check() is read-only: call it before opening (cheap refusal of
// a duplicate) and accept() only after the packet opened, so a forged packet
// never moves the window.
class ReplayWindow {
 public:
  enum class Verdict : std::uint8_t { kNew, kDuplicate, kTooOld };
  Verdict check(std::uint64_t packetNumber) const noexcept;
  void accept(std::uint64_t packetNumber) noexcept;
  std::uint64_t highest() const noexcept { return highest_; }

 private:
  static constexpr std::size_t kWords = kReplayWindowPackets / 64 + 1;  // one spare word, as RFC 6479
  std::array<std::uint64_t, kWords> bits_{};
  std::uint64_t highest_ = 0;
  bool any_ = false;
};

// ---- a connection's packet protection ----
enum class Side : std::uint8_t { kClient, kServer };

struct ProtectionOptions {
  Cipher cipher = Cipher::kChaCha20Poly1305;         // session cipher (the client's choice)
  std::uint64_t rotateAfterPackets = 1ULL << 23;     // per direction, all paths together; 0: no limit
  std::uint64_t rotateAfterNs = 120'000'000'000ULL;  // since the phase's first packet; 0: no limit
  // A phase lasts at least this long whatever the limits say: the key phase
  // is one bit, so packets two phases old (still in flight on a slow path)
  // could not be told from the next phase's. The receiver keeps the previous
  // key 3 s, longer than this.
  std::uint64_t minPhaseNs = 1'000'000'000ULL;
};

struct ProtectionStats {
  std::uint64_t authFailed = 0;  // did not open (wrong key, forged, corrupt, truncated)
  std::uint64_t replayed = 0;    // opened before, or below the replay window
  std::uint64_t keyUpdatesSent = 0;
  std::uint64_t keyUpdatesReceived = 0;
};

enum class OpenResult : std::uint8_t { kOk, kAuthFailed, kReplayed, kNotReady };

// What a handshake packet carried, once opened.
struct OpenedHandshake {
  std::size_t framesLength = 0;  // the frames at [kPacketHeaderLen, +framesLength) are plaintext now
  Random random{};               // the sender's random
};

// Opens a handshake packet with a pre-shared key, without connection state
// (the endpoint tries each configured key on a HELLO for an unknown
// connection). packet: the whole UDP payload, header included; decrypted in
// place. nullopt when it does not open (too short, wrong key, forged).
std::optional<OpenedHandshake> openHandshake(const Key& psk, std::span<std::uint8_t> packet) noexcept;
// Seals a handshake packet: header at [0, 28), frames at [28, 28 + framesLength),
// room for kHandshakeOverhead after them (packet.size() >= 28 + framesLength +
// kHandshakeOverhead). Returns the packet's new length, or 0 (no room, libcrypto failed).
std::size_t sealHandshake(const Key& psk, const Random& random, std::span<std::uint8_t> packet,
                          std::size_t framesLength) noexcept;
Random makeRandom() noexcept;

class PacketProtection {
 public:
  // ownRandom: this side's random for the connection (the client's is in its
  // HELLO packets; the server's in its answers).
  static Result<std::unique_ptr<PacketProtection>> create(const Key& psk, Side side, std::uint32_t connId,
                                                          std::size_t pathCount, const Random& ownRandom,
                                                          const ProtectionOptions& options);
  ~PacketProtection();

  // The peer's random from its handshake packet: derives the session keys
  // (once; a different random later is refused: false).
  bool setPeerRandom(const Random& peerRandom, Cipher cipher);
  bool ready() const noexcept;  // session keys derived
  Cipher cipher() const noexcept;
  const Random& ownRandom() const noexcept;

  // Handshake packets of this connection (see sealHandshake/openHandshake).
  std::size_t sealHandshakePacket(std::span<std::uint8_t> packet, std::size_t framesLength) noexcept;
  // A handshake packet for this connection (HELLO repeats, or the first one
  // the endpoint already opened is NOT passed here again): replay window of
  // its path first, then openHandshake; counts failures and replays.
  OpenResult openHandshakePacket(std::uint16_t pathId, std::uint64_t packetNumber,
                                 std::span<std::uint8_t> packet, OpenedHandshake& opened) noexcept;
  // The endpoint opened this connection's first packet (a HELLO) itself:
  // its number goes into the path's replay window.
  void acceptOpened(std::uint16_t pathId, std::uint64_t packetNumber) noexcept;

  // Session packets. packet: header at [0, 28) already written (its flags are
  // set here: MPXDP_HDR_FLAG_PROTECTED and the key phase), frames after it; room
  // for kSessionOverhead after them. Returns the new length, or 0 (not ready,
  // no room, header's path_id/packet_number not pathId/packetNumber, libcrypto
  // failed). nowNs drives key updates.
  std::size_t seal(std::uint16_t pathId, std::uint64_t packetNumber, std::span<std::uint8_t> packet,
                   std::size_t framesLength, std::uint64_t nowNs) noexcept;
  // Opens a session packet in place (the frames are then at [28, 28 +
  // *framesLength)); checks the replay window of its path first and moves it
  // only when the packet opened. Counts failures and replays. A header whose
  // path_id/packet_number are not pathId/packetNumber is kAuthFailed.
  OpenResult open(std::uint16_t pathId, std::uint64_t packetNumber, std::span<std::uint8_t> packet,
                  std::size_t& framesLength, std::uint64_t nowNs) noexcept;

  const ProtectionStats& stats() const noexcept;

 private:
  struct State;
  explicit PacketProtection(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace mpxdp::crypto
