// PacketProtection and the handshake packets: a client and a server through
// the handshake, session packets both ways, replays, forgeries, key updates.
#include "packet_protection.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "mpxdp_shared.h"
#include "test_util.h"

namespace mpxdp::crypto {
namespace {

using testing::Bytes;
using testing::makePacket;

constexpr std::uint32_t kConnId = 0x11223344;
constexpr std::size_t kHeader = wire::kPacketHeaderLen;
constexpr std::size_t kPaths = 3;

Key testKey(std::uint8_t seed) {
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(seed * 31 + i);
  return key;
}

std::uint16_t pathOf(const Bytes& p) { return static_cast<std::uint16_t>(p[8] << 8 | p[9]); }
std::uint64_t numberOf(const Bytes& p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[12 + i];
  return v;
}

// The frames makePacket writes for a given length and seed.
Bytes framesOf(std::size_t length, std::uint8_t seed) {
  const Bytes p = makePacket(kConnId, 0, 0, length, 0, seed);
  return Bytes(p.begin() + kHeader, p.end());
}

std::unique_ptr<PacketProtection> make(const Key& psk, Side side, const ProtectionOptions& options,
                                       const Random& random = makeRandom()) {
  auto p = PacketProtection::create(psk, side, kConnId, kPaths, random, options);
  EXPECT_TRUE(p.ok());
  return p.ok() ? std::move(p.value()) : nullptr;
}

struct Pair {
  std::unique_ptr<PacketProtection> client;
  std::unique_ptr<PacketProtection> server;
};

// The handshake: the client's HELLO (path 0, number 0) opened by the server
// without state, the server's answer (path 0, number 0) opened by the client.
Pair connect(const Key& psk, const ProtectionOptions& options) {
  Pair pair;
  pair.client = make(psk, Side::kClient, options);
  Bytes hello = makePacket(kConnId, 0, 0, 40, kHandshakeOverhead, 3);
  EXPECT_EQ(pair.client->sealHandshakePacket(hello, 40), hello.size());
  auto opened = openHandshake(psk, hello);
  EXPECT_TRUE(opened.has_value());
  if (!opened) return pair;
  EXPECT_EQ(opened->random, pair.client->ownRandom());

  pair.server = make(psk, Side::kServer, options);
  EXPECT_FALSE(pair.server->ready());
  EXPECT_TRUE(pair.server->setPeerRandom(opened->random, options.cipher));
  EXPECT_TRUE(pair.server->ready());
  pair.server->acceptOpened(0, 0);

  Bytes reply = makePacket(kConnId, 0, 0, 30, kHandshakeOverhead, 4);
  EXPECT_EQ(pair.server->sealHandshakePacket(reply, 30), reply.size());
  OpenedHandshake answer;
  EXPECT_EQ(pair.client->openHandshakePacket(0, 0, reply, answer), OpenResult::kOk);
  EXPECT_EQ(answer.random, pair.server->ownRandom());
  EXPECT_EQ(answer.framesLength, 30u);
  EXPECT_TRUE(pair.client->setPeerRandom(answer.random, options.cipher));
  return pair;
}

Bytes seal(PacketProtection& p, std::uint16_t path, std::uint64_t number, std::size_t frames = 100,
           std::uint64_t nowNs = 0) {
  Bytes packet =
      makePacket(kConnId, path, number, frames, kSessionOverhead, static_cast<std::uint8_t>(number));
  EXPECT_EQ(p.seal(path, number, packet, frames, nowNs), packet.size());
  return packet;
}

// Opens a copy with the path and number of its header; checks the frames when it opened.
OpenResult open(PacketProtection& p, Bytes packet, std::uint64_t nowNs = 0) {
  std::size_t frames = 0;
  const std::uint64_t number = numberOf(packet);
  const OpenResult r = p.open(pathOf(packet), number, packet, frames, nowNs);
  if (r == OpenResult::kOk) {
    EXPECT_EQ(frames, packet.size() - kHeader - kTagLen);
    EXPECT_EQ(Bytes(packet.begin() + kHeader, packet.begin() + static_cast<std::ptrdiff_t>(kHeader + frames)),
              framesOf(frames, static_cast<std::uint8_t>(number)));
  }
  return r;
}

// ---- handshake packets without connection state ----

TEST(HandshakeTest, SealOpenRoundTrip) {
  const Key psk = testKey(1);
  const Random random = makeRandom();
  Bytes packet = makePacket(kConnId, 2, 9, 50, kHandshakeOverhead, 5);
  packet[3] = MPXDP_HDR_FLAG_PROTECTED | MPXDP_HDR_FLAG_KEY_PHASE;  // cleared by sealing
  ASSERT_EQ(sealHandshake(psk, random, packet, 50), kHeader + 50 + kHandshakeOverhead);
  EXPECT_EQ(packet[3], MPXDP_HDR_FLAG_HANDSHAKE);
  EXPECT_NE(Bytes(packet.begin() + kHeader, packet.begin() + kHeader + 50), framesOf(50, 5));
  EXPECT_TRUE(std::equal(random.begin(), random.end(), packet.end() - kRandomLen));

  // The endpoint tries each configured key: a wrong one leaves the packet for the next.
  const Bytes sealed = packet;
  EXPECT_FALSE(openHandshake(testKey(2), packet).has_value());
  EXPECT_EQ(packet, sealed);
  auto opened = openHandshake(psk, packet);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->framesLength, 50u);
  EXPECT_EQ(opened->random, random);
  EXPECT_EQ(Bytes(packet.begin() + kHeader, packet.begin() + kHeader + 50), framesOf(50, 5));
}

TEST(HandshakeTest, RefusesTamperedTruncatedAndSessionPackets) {
  const Key psk = testKey(1);
  const Random random = makeRandom();
  Bytes sealed = makePacket(kConnId, 0, 1, 20, kHandshakeOverhead);
  ASSERT_NE(sealHandshake(psk, random, sealed, 20), 0u);
  for (std::size_t bit = 0; bit < sealed.size() * 8; ++bit) {
    Bytes p = sealed;
    p[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_FALSE(openHandshake(psk, p).has_value()) << "bit " << bit;  // the random included
  }
  for (std::size_t length = 0; length < sealed.size(); ++length) {
    Bytes p(sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_FALSE(openHandshake(psk, p).has_value()) << "length " << length;
  }
  Bytes noFrames = makePacket(kConnId, 0, 1, 0, kHandshakeOverhead);
  ASSERT_EQ(sealHandshake(psk, random, noFrames, 0), kHeader + kHandshakeOverhead);
  EXPECT_TRUE(openHandshake(psk, noFrames).has_value());
  // No room for the tag and random.
  Bytes small = makePacket(kConnId, 0, 1, 20, kHandshakeOverhead - 1);
  EXPECT_EQ(sealHandshake(psk, random, small, 20), 0u);
}

// ---- a connection ----

class ProtectionTest : public ::testing::TestWithParam<Cipher> {
 protected:
  ProtectionOptions options() const {
    ProtectionOptions o;
    o.cipher = GetParam();
    return o;
  }
};

TEST_P(ProtectionTest, SessionPacketsBothWays) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  EXPECT_EQ(pair.client->cipher(), GetParam());
  EXPECT_EQ(pair.server->cipher(), GetParam());
  for (std::uint64_t n = 1; n <= 50; ++n) {
    for (std::uint16_t path = 0; path < kPaths; ++path) {
      const Bytes up = seal(*pair.client, path, n, 10 * n);
      EXPECT_EQ(up[3], MPXDP_HDR_FLAG_PROTECTED);
      ASSERT_EQ(open(*pair.server, up), OpenResult::kOk) << n;
      const Bytes down = seal(*pair.server, path, n, 1400);
      ASSERT_EQ(open(*pair.client, down), OpenResult::kOk) << n;
      // A direction's key does not open the other direction's packets.
      Bytes reflected = seal(*pair.client, path, n + 1000, 30);
      EXPECT_EQ(open(*pair.client, reflected), OpenResult::kAuthFailed);
    }
  }
  EXPECT_EQ(pair.server->stats().authFailed, 0u);
  EXPECT_EQ(pair.server->stats().replayed, 0u);
  EXPECT_EQ(pair.client->stats().authFailed, kPaths * 50);
}

TEST_P(ProtectionTest, EmptyFrames) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  EXPECT_EQ(open(*pair.server, seal(*pair.client, 1, 1, 0)), OpenResult::kOk);
}

TEST_P(ProtectionTest, NotReadyBeforeThePeersRandom) {
  auto client = make(testKey(1), Side::kClient, options());
  ASSERT_TRUE(client);
  EXPECT_FALSE(client->ready());
  Bytes packet = makePacket(kConnId, 0, 1, 10, kSessionOverhead);
  EXPECT_EQ(client->seal(0, 1, packet, 10, 0), 0u);
  std::size_t frames = 0;
  EXPECT_EQ(client->open(0, 1, packet, frames, 0), OpenResult::kNotReady);
}

TEST_P(ProtectionTest, SetPeerRandomOnce) {
  auto server = make(testKey(1), Side::kServer, options());
  ASSERT_TRUE(server);
  EXPECT_FALSE(server->setPeerRandom(server->ownRandom(), GetParam()));  // our own, reflected
  EXPECT_FALSE(server->ready());
  const Random peer = makeRandom();
  EXPECT_TRUE(server->setPeerRandom(peer, GetParam()));
  EXPECT_TRUE(server->setPeerRandom(peer, GetParam()));
  EXPECT_FALSE(server->setPeerRandom(makeRandom(), GetParam()));
  const Cipher other = GetParam() == Cipher::kAes256Gcm ? Cipher::kChaCha20Poly1305 : Cipher::kAes256Gcm;
  EXPECT_FALSE(server->setPeerRandom(peer, other));
  EXPECT_EQ(server->cipher(), GetParam());
}

TEST_P(ProtectionTest, Replays) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  const Bytes p = seal(*pair.client, 1, 10000);
  EXPECT_EQ(open(*pair.server, p), OpenResult::kOk);
  EXPECT_EQ(open(*pair.server, p), OpenResult::kReplayed);
  // Out of order within the window: fine, once.
  const Bytes late = seal(*pair.client, 1, 10000 - kReplayWindowPackets + 1);
  EXPECT_EQ(open(*pair.server, late), OpenResult::kOk);
  EXPECT_EQ(open(*pair.server, late), OpenResult::kReplayed);
  // Below the window.
  EXPECT_EQ(open(*pair.server, seal(*pair.client, 1, 10000 - kReplayWindowPackets)), OpenResult::kReplayed);
  // The same number on another path is another packet.
  EXPECT_EQ(open(*pair.server, seal(*pair.client, 2, 10000)), OpenResult::kOk);
  // The HELLO the endpoint opened itself is in path 0's window.
  Bytes hello = makePacket(kConnId, 0, 0, 40, kHandshakeOverhead, 3);
  ASSERT_NE(pair.client->sealHandshakePacket(hello, 40), 0u);
  OpenedHandshake opened;
  EXPECT_EQ(pair.server->openHandshakePacket(0, 0, hello, opened), OpenResult::kReplayed);
  EXPECT_EQ(pair.server->stats().replayed, 4u);
  EXPECT_EQ(pair.server->stats().authFailed, 0u);
}

TEST_P(ProtectionTest, HandshakeRepeatsAndReplays) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  // A HELLO repeat on path 1 opens with the cached key of the client's random.
  Bytes hello = makePacket(kConnId, 1, 0, 40, kHandshakeOverhead, 3);
  ASSERT_NE(pair.client->sealHandshakePacket(hello, 40), 0u);
  const Bytes copy = hello;
  OpenedHandshake opened;
  ASSERT_EQ(pair.server->openHandshakePacket(1, 0, hello, opened), OpenResult::kOk);
  EXPECT_EQ(opened.random, pair.client->ownRandom());
  EXPECT_EQ(Bytes(hello.begin() + kHeader, hello.begin() + kHeader + 40), framesOf(40, 3));
  Bytes again = copy;
  EXPECT_EQ(pair.server->openHandshakePacket(1, 0, again, opened), OpenResult::kReplayed);
  // Another pre-shared key, a forged tag, a path out of range, a header that disagrees.
  Bytes foreign = makePacket(kConnId, 1, 5, 40, kHandshakeOverhead);
  ASSERT_NE(sealHandshake(testKey(2), pair.client->ownRandom(), foreign, 40), 0u);
  EXPECT_EQ(pair.server->openHandshakePacket(1, 5, foreign, opened), OpenResult::kAuthFailed);
  Bytes forged = makePacket(kConnId, 1, 6, 40, kHandshakeOverhead);
  ASSERT_NE(pair.client->sealHandshakePacket(forged, 40), 0u);
  forged[kHeader + 40] ^= 1;
  EXPECT_EQ(pair.server->openHandshakePacket(1, 6, forged, opened), OpenResult::kAuthFailed);
  Bytes far = makePacket(kConnId, 7, 0, 40, kHandshakeOverhead);
  ASSERT_NE(pair.client->sealHandshakePacket(far, 40), 0u);
  EXPECT_EQ(pair.server->openHandshakePacket(7, 0, far, opened), OpenResult::kAuthFailed);
  Bytes other = makePacket(kConnId, 1, 8, 40, kHandshakeOverhead);
  ASSERT_NE(pair.client->sealHandshakePacket(other, 40), 0u);
  EXPECT_EQ(pair.server->openHandshakePacket(1, 9, other, opened), OpenResult::kAuthFailed);
  EXPECT_EQ(pair.server->stats().authFailed, 4u);
  // The failures did not move path 1's window: number 6 still opens.
  Bytes six = makePacket(kConnId, 1, 6, 40, kHandshakeOverhead);
  ASSERT_NE(pair.client->sealHandshakePacket(six, 40), 0u);
  EXPECT_EQ(pair.server->openHandshakePacket(1, 6, six, opened), OpenResult::kOk);
  // A session packet is not a handshake packet, nor the reverse.
  Bytes session = seal(*pair.client, 1, 20);
  EXPECT_EQ(pair.server->openHandshakePacket(1, 20, session, opened), OpenResult::kAuthFailed);
  Bytes hs = makePacket(kConnId, 1, 21, 100, kHandshakeOverhead);
  ASSERT_NE(pair.client->sealHandshakePacket(hs, 100), 0u);
  std::size_t frames = 0;
  EXPECT_EQ(pair.server->open(1, 21, hs, frames, 0), OpenResult::kAuthFailed);
}

TEST_P(ProtectionTest, EveryFlippedBitFails) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  const Bytes p = seal(*pair.client, 1, 77, 20);
  for (std::size_t bit = 0; bit < p.size() * 8; ++bit) {
    Bytes flipped = p;
    flipped[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_EQ(open(*pair.server, flipped), OpenResult::kAuthFailed) << "bit " << bit;
  }
  EXPECT_EQ(pair.server->stats().authFailed, p.size() * 8);
  EXPECT_EQ(pair.server->stats().keyUpdatesReceived, 0u);  // a flipped phase bit promoted nothing
  EXPECT_EQ(open(*pair.server, p), OpenResult::kOk);
}

TEST_P(ProtectionTest, TruncatedAndMalformedFail) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  const Bytes p = seal(*pair.client, 0, 5, 30);
  for (std::size_t length = 0; length < p.size(); ++length) {
    Bytes cut(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(length));
    std::size_t frames = 0;
    EXPECT_EQ(pair.server->open(0, 5, cut, frames, 0), OpenResult::kAuthFailed) << length;
  }
  Bytes extended = p;
  extended.push_back(0);
  EXPECT_EQ(open(*pair.server, extended), OpenResult::kAuthFailed);
  std::size_t frames = 0;
  Bytes copy = p;
  EXPECT_EQ(pair.server->open(0, 6, copy, frames, 0), OpenResult::kAuthFailed);  // not the header's number
  copy = p;
  EXPECT_EQ(pair.server->open(1, 5, copy, frames, 0), OpenResult::kAuthFailed);  // not the header's path
  Bytes far = makePacket(kConnId, kPaths, 5, 30, kSessionOverhead);
  EXPECT_EQ(pair.client->seal(kPaths, 5, far, 30, 0), far.size());
  EXPECT_EQ(open(*pair.server, far), OpenResult::kAuthFailed);  // path out of range
  EXPECT_EQ(open(*pair.server, p), OpenResult::kOk);
}

TEST_P(ProtectionTest, SealChecksRoomAndHeader) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  Bytes small = makePacket(kConnId, 0, 1, 30, kSessionOverhead - 1);
  EXPECT_EQ(pair.client->seal(0, 1, small, 30, 0), 0u);
  Bytes mismatch = makePacket(kConnId, 0, 1, 30, kSessionOverhead);
  EXPECT_EQ(pair.client->seal(0, 2, mismatch, 30, 0), 0u);
  EXPECT_EQ(pair.client->seal(1, 1, mismatch, 30, 0), 0u);
  // Sealing a buffer larger than needed; a stale handshake flag is cleared.
  Bytes roomy = makePacket(kConnId, 0, 1, 30, kSessionOverhead + 100, 1);
  roomy[3] = MPXDP_HDR_FLAG_HANDSHAKE;
  const std::size_t length = pair.client->seal(0, 1, roomy, 30, 0);
  ASSERT_EQ(length, kHeader + 30 + kSessionOverhead);
  EXPECT_EQ(roomy[3], MPXDP_HDR_FLAG_PROTECTED);
  roomy.resize(length);
  EXPECT_EQ(open(*pair.server, roomy), OpenResult::kOk);
}

TEST_P(ProtectionTest, ForgedHighNumberDoesNotMoveTheWindow) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  const Bytes high = seal(*pair.client, 2, 1'000'000);
  Bytes forged = high;
  forged.back() ^= 0x80;
  EXPECT_EQ(open(*pair.server, forged), OpenResult::kAuthFailed);
  // Had the forgery moved the window, 1 would be too old now.
  EXPECT_EQ(open(*pair.server, seal(*pair.client, 2, 1)), OpenResult::kOk);
  EXPECT_EQ(open(*pair.server, high), OpenResult::kOk);
  EXPECT_EQ(open(*pair.server, seal(*pair.client, 2, 2)), OpenResult::kReplayed);
}

TEST_P(ProtectionTest, WrongKeyFails) {
  Pair pair = connect(testKey(1), options());
  ASSERT_TRUE(pair.client && pair.server);
  // A server with the same randoms but another pre-shared key.
  auto impostor = make(testKey(2), Side::kServer, options(), pair.server->ownRandom());
  ASSERT_TRUE(impostor);
  ASSERT_TRUE(impostor->setPeerRandom(pair.client->ownRandom(), GetParam()));
  const Bytes p = seal(*pair.client, 0, 1);
  EXPECT_EQ(open(*impostor, p), OpenResult::kAuthFailed);
  EXPECT_EQ(open(*pair.server, p), OpenResult::kOk);
  // The same key under the other cipher does not open it either.
  const Cipher other = GetParam() == Cipher::kAes256Gcm ? Cipher::kChaCha20Poly1305 : Cipher::kAes256Gcm;
  auto otherCipher = make(testKey(1), Side::kServer, options(), pair.server->ownRandom());
  ASSERT_TRUE(otherCipher->setPeerRandom(pair.client->ownRandom(), other));
  EXPECT_EQ(open(*otherCipher, seal(*pair.client, 0, 2)), OpenResult::kAuthFailed);
}

TEST_P(ProtectionTest, PacketOfAPreviousConnectionFails) {
  const Key psk = testKey(1);
  Pair old = connect(psk, options());
  Pair now = connect(psk, options());  // same key and connection id, new randoms
  ASSERT_TRUE(old.client && old.server && now.client && now.server);
  const Bytes stale = seal(*old.client, 0, 1);
  EXPECT_EQ(open(*now.server, stale), OpenResult::kAuthFailed);
  EXPECT_EQ(open(*now.client, seal(*old.server, 0, 1)), OpenResult::kAuthFailed);
  EXPECT_EQ(open(*old.server, stale), OpenResult::kOk);
  EXPECT_EQ(open(*now.server, seal(*now.client, 0, 1)), OpenResult::kOk);
}

// 1000 packets over 3 paths, a key update every 100, delivered with each run
// of 8 reversed: around each update, packets of the new phase arrive before
// the last ones of the old.
TEST_P(ProtectionTest, KeyUpdatesWithReordering) {
  ProtectionOptions o = options();
  o.rotateAfterPackets = 100;
  o.minPhaseNs = 0;  // the mechanics of updates, not their pace
  Pair pair = connect(testKey(1), o);
  ASSERT_TRUE(pair.client && pair.server);
  for (PacketProtection* sender : {pair.client.get(), pair.server.get()}) {
    PacketProtection* receiver = sender == pair.client.get() ? pair.server.get() : pair.client.get();
    std::vector<Bytes> packets;
    std::array<std::uint64_t, kPaths> next{1, 1, 1};
    for (int i = 0; i < 1000; ++i) {
      const auto path = static_cast<std::uint16_t>(i % kPaths);
      packets.push_back(seal(*sender, path, next[path]++, 200, 1000ULL * i));
      const bool phase = (i / 100) % 2 == 1;
      ASSERT_EQ((packets.back()[3] & MPXDP_HDR_FLAG_KEY_PHASE) != 0, phase) << i;
    }
    EXPECT_EQ(sender->stats().keyUpdatesSent, 9u);
    for (std::size_t start = 0; start < packets.size(); start += 8) {
      std::reverse(packets.begin() + static_cast<std::ptrdiff_t>(start),
                   packets.begin() + static_cast<std::ptrdiff_t>(std::min(start + 8, packets.size())));
    }
    for (std::size_t i = 0; i < packets.size(); ++i) {
      ASSERT_EQ(open(*receiver, packets[i], 1'000'000 + 1000ULL * i), OpenResult::kOk) << i;
    }
    EXPECT_EQ(receiver->stats().keyUpdatesReceived, 9u);
    EXPECT_EQ(receiver->stats().authFailed, 0u);
  }
}

TEST_P(ProtectionTest, KeyUpdateByTime) {
  ProtectionOptions o = options();
  o.rotateAfterNs = 1'000'000;  // 1 ms
  o.minPhaseNs = 0;
  Pair pair = connect(testKey(1), o);
  ASSERT_TRUE(pair.client && pair.server);
  // A packet every 100 us for 10 ms: an update every 10 packets.
  for (std::uint64_t n = 1; n <= 100; ++n) {
    const std::uint64_t now = 5'000'000'000ULL + 100'000 * n;
    ASSERT_EQ(open(*pair.server, seal(*pair.client, 0, n, 50, now), now), OpenResult::kOk) << n;
  }
  EXPECT_EQ(pair.client->stats().keyUpdatesSent, 9u);
  EXPECT_EQ(pair.server->stats().keyUpdatesReceived, 9u);
  EXPECT_EQ(pair.server->stats().keyUpdatesSent, 0u);
}

// The key phase is one bit: a phase lasts at least minPhaseNs whatever the
// packet limit says, so packets two phases old are never in flight.
TEST_P(ProtectionTest, APhaseLastsAtLeastItsMinimumTime) {
  ProtectionOptions o = options();
  o.rotateAfterPackets = 10;
  o.minPhaseNs = 50'000'000;  // 50 ms
  Pair pair = connect(testKey(1), o);
  ASSERT_TRUE(pair.client && pair.server);
  // 1000 packets 10 us apart: 10 ms, far more than 10 packets but within one phase.
  for (std::uint64_t n = 1; n <= 1000; ++n) {
    const std::uint64_t now = 5'000'000'000ULL + 10'000 * n;
    ASSERT_EQ(open(*pair.server, seal(*pair.client, 0, n, 50, now), now), OpenResult::kOk) << n;
  }
  EXPECT_EQ(pair.client->stats().keyUpdatesSent, 0u);
  // 50 ms later the limit applies again at once.
  const std::uint64_t later = 5'000'000'000ULL + 10'000 * 1000 + 50'000'000;
  ASSERT_EQ(open(*pair.server, seal(*pair.client, 0, 1001, 50, later), later), OpenResult::kOk);
  EXPECT_EQ(pair.client->stats().keyUpdatesSent, 1u);
  EXPECT_EQ(pair.server->stats().keyUpdatesReceived, 1u);
}

TEST_P(ProtectionTest, PreviousKeyIsDroppedAfterAWhile) {
  ProtectionOptions o = options();
  o.rotateAfterPackets = 10;
  o.minPhaseNs = 0;  // the mechanics of updates, not their pace
  for (const std::uint64_t lateBy : {1'000'000'000ULL, 4'000'000'000ULL}) {
    Pair pair = connect(testKey(1), o);
    ASSERT_TRUE(pair.client && pair.server);
    std::vector<Bytes> packets;
    for (std::uint64_t n = 1; n <= 20; ++n) packets.push_back(seal(*pair.client, 0, n));
    for (std::size_t i = 0; i < packets.size(); ++i) {
      if (i != 8) {
        ASSERT_EQ(open(*pair.server, packets[i], 0), OpenResult::kOk) << i;
      }
    }
    EXPECT_EQ(pair.server->stats().keyUpdatesReceived, 1u);
    // Number 9, of the phase before, comes late.
    const OpenResult expected = lateBy < 3'000'000'000ULL ? OpenResult::kOk : OpenResult::kAuthFailed;
    EXPECT_EQ(open(*pair.server, packets[8], lateBy), expected) << lateBy;
  }
}

TEST_P(ProtectionTest, TwoUpdatesInARow) {
  ProtectionOptions o = options();
  o.rotateAfterPackets = 10;
  o.minPhaseNs = 0;  // the mechanics of updates, not their pace
  Pair pair = connect(testKey(1), o);
  ASSERT_TRUE(pair.client && pair.server);
  std::vector<Bytes> packets;
  for (std::uint64_t n = 1; n <= 30; ++n) packets.push_back(seal(*pair.client, 0, n));
  // Phases 0 (1..10), 1 (11..20), 2 (21..30): 1..10, then 11, then 21, then 12..20 late.
  for (int i = 0; i < 11; ++i) ASSERT_EQ(open(*pair.server, packets[i]), OpenResult::kOk) << i;
  ASSERT_EQ(open(*pair.server, packets[20]), OpenResult::kOk);
  for (int i = 11; i < 20; ++i) ASSERT_EQ(open(*pair.server, packets[i]), OpenResult::kOk) << i;
  for (int i = 21; i < 30; ++i) ASSERT_EQ(open(*pair.server, packets[i]), OpenResult::kOk) << i;
  EXPECT_EQ(pair.server->stats().keyUpdatesReceived, 2u);
  EXPECT_EQ(pair.client->stats().keyUpdatesSent, 2u);
}

INSTANTIATE_TEST_SUITE_P(Ciphers, ProtectionTest,
                         ::testing::Values(Cipher::kChaCha20Poly1305, Cipher::kAes256Gcm),
                         [](const ::testing::TestParamInfo<Cipher>& info) {
                           return info.param == Cipher::kAes256Gcm ? std::string("Aes256Gcm")
                                                                   : std::string("ChaCha20Poly1305");
                         });

}  // namespace
}  // namespace mpxdp::crypto
