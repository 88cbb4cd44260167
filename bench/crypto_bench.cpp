// Microbenchmarks of packet protection: one AEAD seal/open, the whole
// PacketProtection::seal/open (flags, replay window, key phase), and the
// rarer costs (HKDF, opening a HELLO without state). Frames of 64 and 1400
// bytes after the 28-byte header; arg "cipher": 1 ChaCha20-Poly1305, 2 AES-256-GCM.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "packet.h"
#include "packet_protection.h"

namespace mpxdp::crypto {
namespace {

constexpr std::uint32_t kConnId = 0x01020304;
constexpr std::size_t kHeaderLen = wire::kPacketHeaderLen;
// Packets opened per batch: open decrypts in place, so a batch is sealed
// again (timing paused) once it has been opened.
constexpr std::size_t kBatch = 512;

Cipher cipherArg(const benchmark::State& state) { return static_cast<Cipher>(state.range(0)); }
std::size_t framesArg(const benchmark::State& state) { return static_cast<std::size_t>(state.range(1)); }

Key benchKey(std::uint8_t seed) {
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(seed + i * 29);
  return key;
}

void writeHeader(std::span<std::uint8_t> packet, std::uint16_t pathId, std::uint64_t packetNumber) {
  const wire::PacketHeader h{.flags = 0,
                             .connId = kConnId,
                             .pathId = pathId,
                             .packetNumber = packetNumber,
                             .sendTsNs = packetNumber};
  if (!wire::writePacketHeader(packet, h).ok()) std::abort();  // benchmark setup only
}

std::vector<std::uint8_t> benchPacket(std::size_t frames, std::size_t room) {
  std::vector<std::uint8_t> packet(kHeaderLen + frames + room);
  for (std::size_t i = 0; i < packet.size(); ++i) packet[i] = static_cast<std::uint8_t>(i * 31 + 7);
  writeHeader(packet, 1, 0);
  return packet;
}

std::unique_ptr<Aead> benchAead(Cipher cipher) {
  auto aead = Aead::create(cipher, benchKey(1));
  if (!aead.ok()) std::abort();
  return std::move(aead.value());
}

void finish(benchmark::State& state) {
  state.SetLabel(toString(cipherArg(state)));
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(framesArg(state)));
}

void BM_AeadSeal(benchmark::State& state) {
  auto aead = benchAead(cipherArg(state));
  const std::size_t frames = framesArg(state);
  auto packet = benchPacket(frames, kTagLen);
  const auto aad = std::span(packet).first(kHeaderLen);
  const auto text = std::span(packet).subspan(kHeaderLen, frames);
  const auto tag = std::span(packet).subspan(kHeaderLen + frames).first<kTagLen>();
  std::uint64_t pn = 0;
  for (auto _ : state) {
    if (!aead->seal(1, pn++, aad, text, tag)) std::abort();
    benchmark::ClobberMemory();
  }
  finish(state);
}

void BM_AeadOpen(benchmark::State& state) {
  auto aead = benchAead(cipherArg(state));
  const std::size_t frames = framesArg(state);
  std::vector<std::vector<std::uint8_t>> packets(kBatch, benchPacket(frames, kTagLen));
  auto sealAll = [&] {
    for (std::size_t i = 0; i < kBatch; ++i) {
      auto p = std::span(packets[i]);
      if (!aead->seal(1, i, p.first(kHeaderLen), p.subspan(kHeaderLen, frames),
                      p.subspan(kHeaderLen + frames).first<kTagLen>())) {
        std::abort();
      }
    }
  };
  sealAll();
  std::size_t i = 0;
  for (auto _ : state) {
    auto p = std::span(packets[i]);
    if (!aead->open(1, i, p.first(kHeaderLen), p.subspan(kHeaderLen, frames),
                    p.subspan(kHeaderLen + frames).first<kTagLen>())) {
      std::abort();
    }
    if (++i == kBatch) {
      state.PauseTiming();
      sealAll();
      i = 0;
      state.ResumeTiming();
    }
  }
  finish(state);
}

struct Connection {
  std::unique_ptr<PacketProtection> client;
  std::unique_ptr<PacketProtection> server;
};

Connection benchConnection(Cipher cipher) {
  ProtectionOptions options;
  options.cipher = cipher;
  const Key psk = benchKey(9);
  Connection c;
  auto client = PacketProtection::create(psk, Side::kClient, kConnId, 4, makeRandom(), options);
  auto server = PacketProtection::create(psk, Side::kServer, kConnId, 4, makeRandom(), options);
  if (!client.ok() || !server.ok()) std::abort();
  c.client = std::move(client.value());
  c.server = std::move(server.value());
  if (!c.client->setPeerRandom(c.server->ownRandom(), cipher) ||
      !c.server->setPeerRandom(c.client->ownRandom(), cipher)) {
    std::abort();
  }
  return c;
}

void BM_ProtectionSeal(benchmark::State& state) {
  Connection c = benchConnection(cipherArg(state));
  const std::size_t frames = framesArg(state);
  auto packet = benchPacket(frames, kSessionOverhead);
  std::uint64_t pn = 0;
  for (auto _ : state) {
    writeHeader(packet, 1, pn);
    if (c.client->seal(1, pn, packet, frames, pn * 1000) == 0) std::abort();
    ++pn;
    benchmark::ClobberMemory();
  }
  finish(state);
}

void BM_ProtectionOpen(benchmark::State& state) {
  Connection c = benchConnection(cipherArg(state));
  const std::size_t frames = framesArg(state);
  std::vector<std::vector<std::uint8_t>> packets(kBatch, benchPacket(frames, kSessionOverhead));
  std::uint64_t nextPn = 0;
  auto sealBatch = [&] {
    for (auto& p : packets) {
      writeHeader(p, 1, nextPn);
      if (c.client->seal(1, nextPn, p, frames, nextPn * 1000) == 0) std::abort();
      ++nextPn;
    }
  };
  sealBatch();
  std::size_t i = 0;
  std::uint64_t pn = 0;
  std::size_t opened = 0;
  for (auto _ : state) {
    if (c.server->open(1, pn, packets[i], opened, pn * 1000) != OpenResult::kOk) std::abort();
    ++pn;
    if (++i == kBatch) {
      state.PauseTiming();
      sealBatch();
      i = 0;
      state.ResumeTiming();
    }
  }
  finish(state);
}

void BM_Hkdf(benchmark::State& state) {
  const Key ikm = benchKey(3);
  const std::array<std::uint8_t, 64> salt{};
  Key out{};
  for (auto _ : state) {
    if (!hkdfSha256(ikm, salt, std::span<const std::uint8_t>(), out).ok()) std::abort();
    benchmark::DoNotOptimize(out);
  }
}

// A HELLO of an unknown connection: the handshake key derived for the packet.
void BM_OpenHandshakeStateless(benchmark::State& state) {
  const Key psk = benchKey(5);
  const Random random = makeRandom();
  auto sealed = benchPacket(200, kHandshakeOverhead);
  if (sealHandshake(psk, random, sealed, 200) == 0) std::abort();
  auto packet = sealed;
  for (auto _ : state) {
    std::copy(sealed.begin(), sealed.end(), packet.begin());
    if (!openHandshake(psk, packet)) std::abort();
  }
}

void BM_ReplayWindowInOrder(benchmark::State& state) {
  ReplayWindow window;
  std::uint64_t pn = 0;
  for (auto _ : state) {
    if (window.check(pn) != ReplayWindow::Verdict::kNew) std::abort();
    window.accept(pn++);
  }
}

void cipherSizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"cipher", "frames"});
  for (const auto cipher : {Cipher::kChaCha20Poly1305, Cipher::kAes256Gcm}) {
    for (const int frames : {64, 1400}) b->Args({static_cast<int>(cipher), frames});
  }
}

BENCHMARK(BM_AeadSeal)->Apply(cipherSizes);
BENCHMARK(BM_AeadOpen)->Apply(cipherSizes);
BENCHMARK(BM_ProtectionSeal)->Apply(cipherSizes);
BENCHMARK(BM_ProtectionOpen)->Apply(cipherSizes);
BENCHMARK(BM_Hkdf);
BENCHMARK(BM_OpenHandshakeStateless);
BENCHMARK(BM_ReplayWindowInOrder);

}  // namespace
}  // namespace mpxdp::crypto

BENCHMARK_MAIN();
