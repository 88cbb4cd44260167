// A connection's packet protection: session keys per direction with key
// phases, the handshake keys of both randoms, and a replay window per path.
// Sealing touches only the send state and opening only the receive state, so
// once ready one thread may seal while another opens.
#include "packet_protection.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <utility>

#include "crypto_internal.h"

namespace mpxdp::crypto {
namespace {

using detail::kFlagHandshake;
using detail::kFlagKeyPhase;
using detail::kFlagProtected;
using detail::kHeaderLen;

// How long after a key update the receiver still opens packets of the phase
// before (reordered or late on a slow path).
constexpr std::uint64_t kPreviousKeyLifetimeNs = 3'000'000'000ULL;

// One key phase of one direction: its secret (the AEAD key; the next phase's
// secret is derived from it) and its AEAD.
struct PhaseKey {
  Key secret{};
  std::unique_ptr<Aead> aead;

  PhaseKey() = default;
  PhaseKey(PhaseKey&&) noexcept = default;
  PhaseKey& operator=(PhaseKey&&) noexcept = default;
  PhaseKey(const PhaseKey&) = delete;
  PhaseKey& operator=(const PhaseKey&) = delete;
  ~PhaseKey() { OPENSSL_cleanse(secret.data(), secret.size()); }

  void clear() noexcept {
    OPENSSL_cleanse(secret.data(), secret.size());
    aead.reset();
  }
};

Result<void> makePhaseKey(Cipher cipher, const Key& secret, PhaseKey& out) {
  auto aead = Aead::create(cipher, secret);
  if (!aead.ok()) {
    return aead.error();
  }
  out.secret = secret;
  out.aead = std::move(aead.value());
  return {};
}

// next secret = HKDF(ikm = secret, salt = empty, info = "mpxdp v2 key update").
Result<void> makeNextPhaseKey(Cipher cipher, const PhaseKey& from, PhaseKey& out) {
  Key next{};
  auto derived = hkdfSha256(from.secret, {}, detail::labelBytes(detail::kKeyUpdateLabel), next);
  if (!derived.ok()) {
    return derived;
  }
  auto made = makePhaseKey(cipher, next, out);
  OPENSSL_cleanse(next.data(), next.size());
  return made;
}

std::uint64_t elapsedNs(std::uint64_t now, std::uint64_t since) noexcept {
  return now > since ? now - since : 0;
}

// The header must carry the path and packet number the nonce is made of: the
// receiver builds the nonce from the header.
bool headerMatches(std::span<const std::uint8_t> packet, std::uint16_t pathId,
                   std::uint64_t packetNumber) noexcept {
  return detail::load16(packet.data() + detail::kPathIdOffset) == pathId &&
         detail::load64(packet.data() + detail::kPacketNumberOffset) == packetNumber;
}

}  // namespace

struct PacketProtection::State {
  Key psk{};
  Side side = Side::kClient;
  std::uint32_t connId = 0;
  ProtectionOptions options;
  Random ownRandom{};
  Cipher cipher = Cipher::kChaCha20Poly1305;
  bool ready = false;
  Random peerRandom{};

  // Handshake keys: this side's (sealing) and the last peer random's (opening).
  std::unique_ptr<Aead> ownHandshake;
  std::unique_ptr<Aead> peerHandshake;
  Random peerHandshakeRandom{};

  // Send side: the current phase and the next one, derived ahead.
  PhaseKey sendCurrent;
  PhaseKey sendNext;
  bool sendPhase = false;
  std::uint64_t sendPacketsInPhase = 0;
  std::uint64_t sendPhaseStartNs = 0;
  bool sendPhaseStarted = false;

  // Receive side: the current phase, the one before it for a while after an
  // update, and the next one, derived ahead (no HKDF per packet).
  PhaseKey recvCurrent;
  PhaseKey recvPrevious;
  PhaseKey recvNext;
  bool recvPhase = false;
  std::uint64_t recvUpdatedAtNs = 0;

  std::vector<ReplayWindow> windows;
  ProtectionStats stats;

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() { OPENSSL_cleanse(psk.data(), psk.size()); }

  // The replay window's verdict before opening (counted when it refuses).
  bool admits(const ReplayWindow& window, std::uint64_t packetNumber) noexcept {
    if (window.check(packetNumber) == ReplayWindow::Verdict::kNew) return true;
    ++stats.replayed;
    return false;
  }
  void rotateSend() noexcept;
  void promoteReceive(std::uint64_t nowNs) noexcept;
  bool openSession(bool phase, std::uint16_t pathId, std::uint64_t packetNumber,
                   std::span<std::uint8_t> packet, std::uint64_t nowNs) noexcept;
};

void PacketProtection::State::rotateSend() noexcept {
  if (!sendNext.aead && !makeNextPhaseKey(cipher, sendCurrent, sendNext).ok()) {
    return;  // libcrypto failed: keep the current key rather than stop sending
  }
  std::swap(sendCurrent, sendNext);
  sendPhase = !sendPhase;
  sendPacketsInPhase = 0;
  sendPhaseStarted = false;
  ++stats.keyUpdatesSent;
  sendNext.clear();
  (void)makeNextPhaseKey(cipher, sendCurrent, sendNext);  // retried at the next update if it failed
}

void PacketProtection::State::promoteReceive(std::uint64_t nowNs) noexcept {
  // previous <- current <- next; the old previous's slot becomes the new next.
  std::swap(recvPrevious, recvCurrent);
  std::swap(recvCurrent, recvNext);
  recvNext.clear();
  (void)makeNextPhaseKey(cipher, recvCurrent, recvNext);
  recvPhase = !recvPhase;
  recvUpdatedAtNs = nowNs;
  ++stats.keyUpdatesReceived;
}

bool PacketProtection::State::openSession(bool phase, std::uint16_t pathId, std::uint64_t packetNumber,
                                          std::span<std::uint8_t> packet, std::uint64_t nowNs) noexcept {
  const std::size_t framesLength = packet.size() - kHeaderLen - kTagLen;
  const auto aad = packet.first(kHeaderLen);
  const auto frames = packet.subspan(kHeaderLen, framesLength);
  const std::span<const std::uint8_t, kTagLen> tag = packet.last<kTagLen>();
  if (phase == recvPhase) {
    return recvCurrent.aead->open(pathId, packetNumber, aad, frames, tag);
  }
  // The other phase bit: a late packet of the phase before, or the first
  // ones of the next phase. A failed open leaves the ciphertext in place.
  if (recvPrevious.aead) {
    if (elapsedNs(nowNs, recvUpdatedAtNs) < kPreviousKeyLifetimeNs) {
      if (recvPrevious.aead->open(pathId, packetNumber, aad, frames, tag)) {
        return true;
      }
    } else {
      recvPrevious.clear();
    }
  }
  if (!recvNext.aead && !makeNextPhaseKey(cipher, recvCurrent, recvNext).ok()) {
    return false;
  }
  if (!recvNext.aead->open(pathId, packetNumber, aad, frames, tag)) {
    return false;
  }
  promoteReceive(nowNs);
  return true;
}

PacketProtection::PacketProtection(std::unique_ptr<State> state) : state_(std::move(state)) {}

PacketProtection::~PacketProtection() = default;

Result<std::unique_ptr<PacketProtection>> PacketProtection::create(const Key& psk, Side side,
                                                                   std::uint32_t connId,
                                                                   std::size_t pathCount,
                                                                   const Random& ownRandom,
                                                                   const ProtectionOptions& options) {
  if (pathCount == 0 || pathCount > 65536) {
    return Error(EINVAL, "packet protection needs 1 to 65536 paths");
  }
  auto state = std::make_unique<State>();
  state->psk = psk;
  state->side = side;
  state->connId = connId;
  state->options = options;
  state->ownRandom = ownRandom;
  state->cipher = options.cipher;
  state->windows.resize(pathCount);
  auto handshake = detail::handshakeAead(psk, ownRandom);
  if (!handshake.ok()) {
    return handshake.error().wrap("handshake key");
  }
  state->ownHandshake = std::move(handshake.value());
  return std::unique_ptr<PacketProtection>(new PacketProtection(std::move(state)));
}

bool PacketProtection::setPeerRandom(const Random& peerRandom, Cipher cipher) {
  State& s = *state_;
  if (s.ready) {
    return peerRandom == s.peerRandom && cipher == s.cipher;
  }
  // A peer never has our random: this is our own packet reflected back.
  if (peerRandom == s.ownRandom) {
    return false;
  }
  const Random& client = s.side == Side::kClient ? s.ownRandom : peerRandom;
  const Random& server = s.side == Side::kClient ? peerRandom : s.ownRandom;
  std::array<std::uint8_t, 2 * kRandomLen> salt{};
  std::copy(client.begin(), client.end(), salt.begin());
  std::copy(server.begin(), server.end(), salt.begin() + kRandomLen);

  // info = label || conn_id (BE32).
  auto info = [&](std::string_view label) {
    std::array<std::uint8_t, detail::kClientToServerLabel.size() + 4> bytes{};
    std::copy(label.begin(), label.end(), bytes.begin());
    detail::store32(bytes.data() + label.size(), s.connId);
    return bytes;
  };
  static_assert(detail::kClientToServerLabel.size() == detail::kServerToClientLabel.size());
  Key c2s{};
  Key s2c{};
  bool ok = hkdfSha256(s.psk, salt, info(detail::kClientToServerLabel), c2s).ok() &&
            hkdfSha256(s.psk, salt, info(detail::kServerToClientLabel), s2c).ok();
  const Key& sendSecret = s.side == Side::kClient ? c2s : s2c;
  const Key& recvSecret = s.side == Side::kClient ? s2c : c2s;
  ok = ok && makePhaseKey(cipher, sendSecret, s.sendCurrent).ok() &&
       makePhaseKey(cipher, recvSecret, s.recvCurrent).ok() &&
       makeNextPhaseKey(cipher, s.sendCurrent, s.sendNext).ok() &&
       makeNextPhaseKey(cipher, s.recvCurrent, s.recvNext).ok();
  OPENSSL_cleanse(c2s.data(), c2s.size());
  OPENSSL_cleanse(s2c.data(), s2c.size());
  if (!ok) {
    s.sendCurrent.clear();
    s.sendNext.clear();
    s.recvCurrent.clear();
    s.recvNext.clear();
    return false;
  }
  s.cipher = cipher;
  s.peerRandom = peerRandom;
  s.ready = true;
  return true;
}

bool PacketProtection::ready() const noexcept { return state_->ready; }

Cipher PacketProtection::cipher() const noexcept { return state_->cipher; }

const Random& PacketProtection::ownRandom() const noexcept { return state_->ownRandom; }

const ProtectionStats& PacketProtection::stats() const noexcept { return state_->stats; }

std::size_t PacketProtection::sealHandshakePacket(std::span<std::uint8_t> packet,
                                                  std::size_t framesLength) noexcept {
  return detail::sealHandshakeWith(*state_->ownHandshake, state_->ownRandom, packet, framesLength);
}

OpenResult PacketProtection::openHandshakePacket(std::uint16_t pathId, std::uint64_t packetNumber,
                                                 std::span<std::uint8_t> packet,
                                                 OpenedHandshake& opened) noexcept {
  State& s = *state_;
  if (pathId >= s.windows.size() || !detail::handshakeShapeOk(packet) ||
      !headerMatches(packet, pathId, packetNumber)) {
    ++s.stats.authFailed;
    return OpenResult::kAuthFailed;
  }
  ReplayWindow& window = s.windows[pathId];
  if (!s.admits(window, packetNumber)) return OpenResult::kReplayed;
  // The peer's handshake key is kept for its repeats; a new random (a
  // stateless reply) derives another.
  const Random random = detail::handshakeRandom(packet);
  if (!s.peerHandshake || random != s.peerHandshakeRandom) {
    auto aead = detail::handshakeAead(s.psk, random);
    if (!aead.ok()) {
      ++s.stats.authFailed;
      return OpenResult::kAuthFailed;
    }
    s.peerHandshake = std::move(aead.value());
    s.peerHandshakeRandom = random;
  }
  auto result = detail::openHandshakeWith(*s.peerHandshake, packet);
  if (!result) {
    ++s.stats.authFailed;
    return OpenResult::kAuthFailed;
  }
  window.accept(packetNumber);
  opened = *result;
  return OpenResult::kOk;
}

void PacketProtection::acceptOpened(std::uint16_t pathId, std::uint64_t packetNumber) noexcept {
  if (pathId < state_->windows.size()) {
    state_->windows[pathId].accept(packetNumber);
  }
}

std::size_t PacketProtection::seal(std::uint16_t pathId, std::uint64_t packetNumber,
                                   std::span<std::uint8_t> packet, std::size_t framesLength,
                                   std::uint64_t nowNs) noexcept {
  State& s = *state_;
  if (!s.ready || packet.size() < kHeaderLen + kSessionOverhead ||
      framesLength > packet.size() - kHeaderLen - kSessionOverhead ||
      !headerMatches(packet, pathId, packetNumber)) {
    return 0;
  }
  // 0 turns a limit off.
  const ProtectionOptions& o = s.options;
  const std::uint64_t phaseNs = s.sendPhaseStarted ? elapsedNs(nowNs, s.sendPhaseStartNs) : 0;
  if (phaseNs >= o.minPhaseNs &&
      ((o.rotateAfterPackets != 0 && s.sendPacketsInPhase >= o.rotateAfterPackets) ||
       (o.rotateAfterNs != 0 && s.sendPhaseStarted && phaseNs >= o.rotateAfterNs))) {
    s.rotateSend();
  }
  if (!s.sendPhaseStarted) {
    s.sendPhaseStarted = true;
    s.sendPhaseStartNs = nowNs;
  }
  std::uint8_t& flags = packet[detail::kFlagsOffset];
  flags = static_cast<std::uint8_t>((flags & ~(kFlagHandshake | kFlagKeyPhase)) | kFlagProtected |
                                    (s.sendPhase ? kFlagKeyPhase : 0));
  const auto frames = packet.subspan(kHeaderLen, framesLength);
  const auto tag = packet.subspan(kHeaderLen + framesLength).first<kTagLen>();
  if (!s.sendCurrent.aead->seal(pathId, packetNumber, packet.first(kHeaderLen), frames, tag)) {
    return 0;
  }
  ++s.sendPacketsInPhase;
  return kHeaderLen + framesLength + kSessionOverhead;
}

OpenResult PacketProtection::open(std::uint16_t pathId, std::uint64_t packetNumber,
                                  std::span<std::uint8_t> packet, std::size_t& framesLength,
                                  std::uint64_t nowNs) noexcept {
  State& s = *state_;
  if (!s.ready) {
    return OpenResult::kNotReady;
  }
  if (packet.size() < kHeaderLen + kSessionOverhead || pathId >= s.windows.size() ||
      (packet[detail::kFlagsOffset] & (kFlagProtected | kFlagHandshake)) != kFlagProtected ||
      !headerMatches(packet, pathId, packetNumber)) {
    ++s.stats.authFailed;
    return OpenResult::kAuthFailed;
  }
  ReplayWindow& window = s.windows[pathId];
  if (!s.admits(window, packetNumber)) return OpenResult::kReplayed;
  const bool phase = (packet[detail::kFlagsOffset] & kFlagKeyPhase) != 0;
  if (!s.openSession(phase, pathId, packetNumber, packet, nowNs)) {
    ++s.stats.authFailed;
    return OpenResult::kAuthFailed;
  }
  window.accept(packetNumber);
  framesLength = packet.size() - kHeaderLen - kSessionOverhead;
  return OpenResult::kOk;
}

}  // namespace mpxdp::crypto
