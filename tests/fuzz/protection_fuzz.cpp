// Fuzz target: the decrypt-and-check path of keyed connections
// (src/crypto/packet_protection.h). A fresh client/server pair per input;
// the first byte picks one of three programs:
//  0. the rest is a packet from the wire: open() and the handshake openers
//     must refuse it (a forgery opens with probability 2^-128) and never read
//     or write outside it;
//  1. a genuine packet sealed by the client, then edited as the input says
//     (bit flips, truncation, header changes): it opens only when unchanged,
//     to the frames that were sealed, and only once;
//  2. a run of genuine packets on three paths opened in an order the input
//     chooses, with repeats: each opens exactly once unless it fell out of
//     its path's replay window, every repeat is a replay.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "fuzz_support.h"
#include "mpxdp_shared.h"
#include "packet.h"
#include "packet_protection.h"

namespace mpxdp::fuzz {
namespace {

using crypto::OpenResult;
using crypto::PacketProtection;

constexpr std::size_t kPaths = 3;
constexpr std::uint32_t kConnId = 0x5eed1234;
constexpr std::size_t kMaxFrames = 1500;

struct Pair {
  std::unique_ptr<PacketProtection> client;
  std::unique_ptr<PacketProtection> server;
  crypto::Key psk{};
};

// keyByte: program 0 uses a key nothing in this harness ever seals with.
// (libFuzzer sees the bytes compared in instrumented code: a packet sealed by
// program 1 and compared there would teach it a genuine tag for program 0.)
Pair makePair(crypto::Cipher cipher, std::uint8_t keyByte) {
  Pair pair;
  pair.psk.fill(keyByte);
  crypto::Random clientRandom{};
  crypto::Random serverRandom{};
  clientRandom.fill(1);
  serverRandom.fill(2);
  crypto::ProtectionOptions options;
  options.cipher = cipher;
  options.minPhaseNs = 0;
  auto client =
      PacketProtection::create(pair.psk, crypto::Side::kClient, kConnId, kPaths, clientRandom, options);
  auto server =
      PacketProtection::create(pair.psk, crypto::Side::kServer, kConnId, kPaths, serverRandom, options);
  FUZZ_CHECK(client.ok() && server.ok());
  pair.client = std::move(*client);
  pair.server = std::move(*server);
  FUZZ_CHECK(pair.client->setPeerRandom(serverRandom, cipher));
  FUZZ_CHECK(pair.server->setPeerRandom(clientRandom, cipher));
  return pair;
}

// A session packet from the client: header, frames, room for the tag.
std::vector<std::uint8_t> sealed(PacketProtection& sender, std::uint16_t path, std::uint64_t pn,
                                 std::span<const std::uint8_t> frames, std::uint64_t nowNs) {
  std::vector<std::uint8_t> packet(wire::kPacketHeaderLen + frames.size() + crypto::kSessionOverhead);
  wire::PacketHeader header;
  header.connId = kConnId;
  header.pathId = path;
  header.packetNumber = pn;
  header.sendTsNs = nowNs;
  FUZZ_CHECK(wire::writePacketHeader(packet, header).ok());
  std::copy(frames.begin(), frames.end(), packet.begin() + wire::kPacketHeaderLen);
  const std::size_t length = sender.seal(path, pn, packet, frames.size(), nowNs);
  FUZZ_CHECK(length == packet.size());
  return packet;
}

// What the receiver does: the header names the path and number.
OpenResult openAsReceived(PacketProtection& receiver, std::vector<std::uint8_t> packet,
                          std::size_t& framesLength, std::vector<std::uint8_t>* plaintext = nullptr) {
  const auto header = wire::parsePacketHeader(packet);
  if (!header.ok()) return OpenResult::kAuthFailed;
  const OpenResult result =
      receiver.open(header.value.pathId, header.value.packetNumber, packet, framesLength, 1'000'000'000);
  if (result == OpenResult::kOk && plaintext != nullptr) {
    plaintext->assign(packet.begin() + wire::kPacketHeaderLen,
                      packet.begin() + static_cast<std::ptrdiff_t>(wire::kPacketHeaderLen + framesLength));
  }
  return result;
}

void fromTheWire(Pair& pair, ByteReader& in) {
  const auto rest = in.bytes(4096);
  std::vector<std::uint8_t> packet(rest.begin(), rest.end());
  std::size_t framesLength = 0;
  FUZZ_CHECK(openAsReceived(*pair.server, packet, framesLength) != OpenResult::kOk);
  std::vector<std::uint8_t> copy = packet;
  FUZZ_CHECK(!crypto::openHandshake(pair.psk, copy).has_value());
  if (packet.size() >= wire::kPacketHeaderLen) {
    const auto header = wire::parsePacketHeader(packet);
    if (header.ok()) {
      crypto::OpenedHandshake opened;
      copy = packet;
      FUZZ_CHECK(pair.server->openHandshakePacket(header.value.pathId, header.value.packetNumber, copy,
                                                  opened) != OpenResult::kOk);
    }
  }
}

void editedGenuine(Pair& pair, ByteReader& in) {
  const auto path = static_cast<std::uint16_t>(in.u8() % kPaths);
  const std::uint64_t pn = in.u16();
  const auto frames = in.bytes(in.u16() % kMaxFrames);
  const std::vector<std::uint8_t> original = sealed(*pair.client, path, pn, frames, 1'000);
  std::vector<std::uint8_t> edited = original;
  const std::size_t edits = in.u8() % 4;
  for (std::size_t e = 0; e < edits && !edited.empty(); ++e) {
    const std::size_t at = in.u16() % edited.size();
    switch (in.u8() % 3) {
      case 0:
        edited[at] ^= static_cast<std::uint8_t>(1U << (in.u8() % 8));
        break;
      case 1:
        edited.resize(at);
        break;
      default:
        edited[at] = in.u8();
        break;
    }
  }
  std::size_t framesLength = 0;
  std::vector<std::uint8_t> plaintext;
  const OpenResult first = openAsReceived(*pair.server, edited, framesLength, &plaintext);
  if (edited == original) {
    FUZZ_CHECK(first == OpenResult::kOk);
    FUZZ_CHECK(plaintext.size() == frames.size() &&
               std::equal(frames.begin(), frames.end(), plaintext.begin()));
    // Once is all: the same packet again is a replay.
    FUZZ_CHECK(openAsReceived(*pair.server, original, framesLength) == OpenResult::kReplayed);
  } else {
    FUZZ_CHECK(first != OpenResult::kOk);
    // A forgery moves nothing: the genuine packet still opens, once.
    FUZZ_CHECK(openAsReceived(*pair.server, original, framesLength, &plaintext) == OpenResult::kOk);
    FUZZ_CHECK(plaintext.size() == frames.size() &&
               std::equal(frames.begin(), frames.end(), plaintext.begin()));
  }
}

void reorderedRun(Pair& pair, ByteReader& in) {
  const std::size_t count = 1 + in.u8() % 64;
  std::vector<std::vector<std::uint8_t>> packets;
  std::array<std::uint64_t, kPaths> next{};
  for (auto& n : next) n = in.u8() % 4 == 0 ? in.u32() : 0;  // sometimes far along already
  std::vector<std::pair<std::uint16_t, std::uint64_t>> numbers;
  for (std::size_t i = 0; i < count; ++i) {
    const auto path = static_cast<std::uint16_t>(in.u8() % kPaths);
    // Mostly consecutive, sometimes a jump past the replay window.
    next[path] += in.u8() % 16 == 0 ? crypto::kReplayWindowPackets + in.u8() : 1;
    const std::array<std::uint8_t, 3> frames{0x03, static_cast<std::uint8_t>(i), 0};
    packets.push_back(sealed(*pair.client, path, next[path], frames, 1'000 + i));
    numbers.emplace_back(path, next[path]);
  }
  std::array<std::uint64_t, kPaths> highest{};
  std::array<bool, kPaths> any{};
  std::vector<bool> opened(count, false);
  while (!in.empty()) {
    const std::size_t i = in.u8() % count;
    const auto [path, pn] = numbers[i];
    std::size_t framesLength = 0;
    const OpenResult result = openAsReceived(*pair.server, packets[i], framesLength);
    const bool tooOld = any[path] && pn + crypto::kReplayWindowPackets <= highest[path];
    if (opened[i] || tooOld) {
      FUZZ_CHECK(result == OpenResult::kReplayed);
    } else {
      FUZZ_CHECK(result == OpenResult::kOk);
      FUZZ_CHECK(framesLength == 3);
      opened[i] = true;
      highest[path] = any[path] ? std::max(highest[path], pn) : pn;
      any[path] = true;
    }
  }
}

}  // namespace
}  // namespace mpxdp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mpxdp::fuzz;
  ByteReader in(std::span<const std::uint8_t>(data, size));
  const std::uint8_t program = in.u8();
  Pair pair = makePair(
      (program & 0x80) != 0 ? mpxdp::crypto::Cipher::kAes256Gcm : mpxdp::crypto::Cipher::kChaCha20Poly1305,
      program % 3 == 0 ? 0x43 : 0x42);
  switch (program % 3) {
    case 0:
      fromTheWire(pair, in);
      break;
    case 1:
      editedGenuine(pair, in);
      break;
    default:
      reorderedRun(pair, in);
      break;
  }
  return 0;
}
