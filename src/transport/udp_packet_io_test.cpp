// UdpPacketIo over loopback (no privileges needed) and rtnetlink look-ups
// that work unprivileged.
#include "udp_packet_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loopback_test_link.h"
#include "mpxdp/clock.h"
#include "netlink_route.h"
#include "xdp_packet_io.h"

namespace mpxdp::transport {
namespace {

using loopback::loopbackEnd;
using loopback::testPort;

// Payload i: 4-byte sequence number then a pattern derived from it.
std::uint32_t payloadLength(std::uint32_t seq) { return 16 + (seq * 37) % 1400; }
void writePayload(std::uint8_t* data, std::uint32_t seq) {
  std::memcpy(data, &seq, sizeof(seq));
  for (std::uint32_t i = 4; i < payloadLength(seq); ++i) data[i] = static_cast<std::uint8_t>(seq * 7 + i);
}
bool payloadIntact(const RxPacket& packet, std::uint32_t* seq) {
  if (packet.length < 4) return false;
  std::memcpy(seq, packet.data, sizeof(*seq));
  if (packet.length != payloadLength(*seq)) return false;
  for (std::uint32_t i = 4; i < packet.length; ++i) {
    if (packet.data[i] != static_cast<std::uint8_t>(*seq * 7 + i)) return false;
  }
  return true;
}

// Fills `out` from `io` in at most 100 reads; the packets read so far.
Result<std::size_t> readUpTo(PacketIo& io, std::span<RxPacket> out) {
  std::size_t got = 0;
  for (int tries = 0; tries < 100 && got < out.size(); ++tries) {
    auto n = io.receive(out.subspan(got));
    if (!n.ok()) return n.error();
    got += *n;
  }
  return got;
}

// Sends one packet from `from` at a time, each read 5 ms later by `to`,
// until one carries a stamp at least 4 ms before its read; false after 1 s,
// or when a packet does not come (it must not turn up in a later read).
bool stampsTakeEffect(PacketIo& from, PacketIo& to) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    TxBuffer buffer;
    if (from.reserveTx(std::span<TxBuffer>(&buffer, 1)) != 1) return false;
    std::memset(buffer.data, 0x17, 100);
    buffer.length = 100;
    if (!from.commitTx(std::span<const TxBuffer>(&buffer, 1)).ok() || !from.flushTx().ok()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    RxPacket packet{};
    const auto got = readUpTo(to, std::span<RxPacket>(&packet, 1));
    const std::uint64_t readNs = MonotonicClock().nowNs();
    if (!got.ok() || *got != 1) return false;
    to.release(std::span<const RxPacket>(&packet, 1));
    if (packet.arrivalNs + 4'000'000 <= readNs) return true;
  }
  return false;
}

// Received packets carry the kernel's arrival time on CLOCK_MONOTONIC (as the
// AF_XDP link's XDP stamp), not the time they were read: read 30 ms after
// they came, with and without GRO, the stamps lie between the send and the
// read, at least 30 ms before the read.
TEST(UdpPacketIo, PacketsCarryTheKernelsArrivalTimeNotTheRead) {
  for (const bool gro : {true, false}) {
    SCOPED_TRACE(gro ? "gro" : "no gro");
    const std::uint16_t portA = testPort(gro ? 30 : 32);
    const std::uint16_t portB = testPort(gro ? 31 : 33);
    auto a = openUdpPacketIo(loopbackEnd(portA, portB));
    ASSERT_TRUE(a.ok()) << a.error().message();
    auto receiverConfig = loopbackEnd(portB, portA);
    receiverConfig.udpGro = gro;
    auto b = openUdpPacketIo(receiverConfig);
    ASSERT_TRUE(b.ok()) << b.error().message();
    EXPECT_NE((*b)->describe().find(" stamp-socket"), std::string::npos) << (*b)->describe();
    // The kernel turns receive stamps on for the host in deferred work once
    // the first socket asks: until then packets carry the time they are read.
    ASSERT_TRUE(stampsTakeEffect(**a, **b)) << "no packet within 1 s carried its arrival time";
    std::vector<TxBuffer> tx(8);
    ASSERT_EQ((*a)->reserveTx(tx), tx.size());
    for (auto& buffer : tx) {
      std::memset(buffer.data, 0x42, 1000);
      buffer.length = 1000;
    }
    const std::uint64_t sentNs = MonotonicClock().nowNs();
    ASSERT_TRUE((*a)->commitTx(tx).ok());
    ASSERT_TRUE((*a)->flushTx().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    std::vector<RxPacket> rx(8);
    const auto got = readUpTo(**b, rx);
    const std::uint64_t readNs = MonotonicClock().nowNs();
    ASSERT_TRUE(got.ok()) << got.error().message();
    ASSERT_EQ(*got, rx.size());
    for (const RxPacket& packet : rx) {
      EXPECT_GE(packet.arrivalNs, sentNs);
      EXPECT_LE(packet.arrivalNs + 30'000'000, readNs) << "stamped when read, not when it came";
    }
    (*b)->release(rx);
  }
}

// Runs of equal-size buffers go out as one UDP GSO message each; the
// receiver still gets one datagram per buffer, in order, each intact, with
// or without GSO (and a run ends at a shorter buffer, a longer one, or 64).
TEST(UdpPacketIo, GsoRunsArriveAsTheDatagramsTheyWere) {
  const std::vector<std::uint32_t> lengths = [] {
    std::vector<std::uint32_t> l(70, 1200);  // longer than one GSO message may carry
    l.push_back(500);
    l.insert(l.end(), 10, 1200);
    l.insert(l.end(), 3, 64);
    l.push_back(1300);
    l.push_back(0);  // an empty slot is given back unsent
    l.push_back(1300);
    return l;
  }();
  for (const bool gso : {true, false}) {
    SCOPED_TRACE(gso ? "gso" : "no gso");
    const std::uint16_t portA = testPort(gso ? 20 : 22);
    const std::uint16_t portB = testPort(gso ? 21 : 23);
    auto senderConfig = loopbackEnd(portA, portB);
    senderConfig.udpGso = gso;
    auto a = openUdpPacketIo(senderConfig);
    ASSERT_TRUE(a.ok()) << a.error().message();
    auto b = openUdpPacketIo(loopbackEnd(portB, portA));
    ASSERT_TRUE(b.ok()) << b.error().message();
    EXPECT_EQ((*a)->describe().find(" gso") != std::string::npos, gso) << (*a)->describe();
    std::vector<TxBuffer> tx(lengths.size());
    std::size_t reserved = 0;
    while (reserved < tx.size()) {
      const std::size_t n = (*a)->reserveTx(std::span<TxBuffer>(tx).subspan(reserved));
      ASSERT_GT(n, 0u);
      reserved += n;
    }
    std::uint32_t expected = 0;
    for (std::size_t i = 0; i < tx.size(); ++i) {
      tx[i].length = lengths[i];
      for (std::uint32_t j = 0; j < lengths[i]; ++j) tx[i].data[j] = static_cast<std::uint8_t>(i * 31 + j);
      if (lengths[i] != 0) ++expected;
    }
    auto committed = (*a)->commitTx(tx);
    ASSERT_TRUE(committed.ok()) << committed.error().message();
    EXPECT_EQ(*committed, expected);
    EXPECT_EQ((*a)->stats().txPackets, expected);

    std::vector<std::uint32_t> gotLengths;
    std::size_t index = 0;  // into lengths, skipping the empty slot
    RxPacket rx[32];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (gotLengths.size() < expected && std::chrono::steady_clock::now() < deadline) {
      auto n = (*b)->receive(rx);
      ASSERT_TRUE(n.ok()) << n.error().message();
      for (std::size_t k = 0; k < *n; ++k) {
        while (lengths[index] == 0) ++index;
        gotLengths.push_back(rx[k].length);
        bool intact = rx[k].length == lengths[index];
        for (std::uint32_t j = 0; intact && j < rx[k].length; ++j)
          intact = rx[k].data[j] == static_cast<std::uint8_t>(index * 31 + j);
        EXPECT_TRUE(intact) << "datagram " << gotLengths.size() - 1 << " (buffer " << index << ")";
        ++index;
      }
      (*b)->release(std::span<const RxPacket>(rx, *n));
    }
    EXPECT_EQ(gotLengths.size(), expected);
  }
}

// Sends buffers of the given lengths from `sender` in one commit (equal-size
// runs become GSO messages when the sender has GSO), byte i of buffer k
// being k * 31 + i.
void sendLengths(PacketIo& sender, const std::vector<std::uint32_t>& lengths) {
  std::vector<TxBuffer> tx(lengths.size());
  std::size_t reserved = 0;
  while (reserved < tx.size()) {
    const std::size_t n = sender.reserveTx(std::span<TxBuffer>(tx).subspan(reserved));
    ASSERT_GT(n, 0u);
    reserved += n;
  }
  for (std::size_t k = 0; k < tx.size(); ++k) {
    tx[k].length = lengths[k];
    for (std::uint32_t i = 0; i < lengths[k]; ++i) tx[k].data[i] = static_cast<std::uint8_t>(k * 31 + i);
  }
  auto committed = sender.commitTx(tx);
  ASSERT_TRUE(committed.ok()) << committed.error().message();
  ASSERT_EQ(*committed, lengths.size());
}

// Whether `packet` is buffer k of sendLengths, intact.
bool isBuffer(const RxPacket& packet, std::size_t k, const std::vector<std::uint32_t>& lengths) {
  if (packet.length != lengths[k]) return false;
  for (std::uint32_t i = 0; i < packet.length; ++i) {
    if (packet.data[i] != static_cast<std::uint8_t>(k * 31 + i)) return false;
  }
  return true;
}

// A GSO sender's runs reach a GRO receiver as coalesced datagrams, which it
// splits into the datagrams they were: each intact, in order, with its
// length, also a run's shorter last one and when `out` ends in the middle of
// a datagram; the same without GSO or without GRO.
TEST(UdpPacketIo, GroSplitsCoalescedDatagramsIntoTheirSegments) {
  const std::vector<std::uint32_t> lengths = [] {
    std::vector<std::uint32_t> l(44, 1400);  // one full GSO message
    l.insert(l.end(), 20, 1000);
    l.push_back(300);  // a short last segment
    l.insert(l.end(), 7, 64);
    l.push_back(1);
    for (std::uint32_t length : {1200u, 800u, 1300u, 1300u, 500u, 2000u}) l.push_back(length);
    l.insert(l.end(), 64, 100);   // the most segments one message carries
    l.insert(l.end(), 30, 2048);  // segments as large as the receive buffers
    l.push_back(2047);
    return l;
  }();
  struct Case {
    bool gso;
    bool gro;
    std::size_t rxBatch;  // receive() asks for this many at a time
  };
  int port = 30;
  for (const Case c : {Case{true, true, 32}, Case{true, true, 5}, Case{true, true, 1}, Case{true, false, 32},
                       Case{false, true, 32}}) {
    SCOPED_TRACE(std::string(c.gso ? "gso" : "no gso") + (c.gro ? " gro" : " no gro") + " batch " +
                 std::to_string(c.rxBatch));
    const std::uint16_t portA = testPort(port++);
    const std::uint16_t portB = testPort(port++);
    auto senderConfig = loopbackEnd(portA, portB);
    senderConfig.udpGso = c.gso;
    auto receiverConfig = loopbackEnd(portB, portA);
    receiverConfig.udpGro = c.gro;
    auto a = openUdpPacketIo(senderConfig);
    ASSERT_TRUE(a.ok()) << a.error().message();
    auto b = openUdpPacketIo(receiverConfig);
    ASSERT_TRUE(b.ok()) << b.error().message();
    EXPECT_EQ((*b)->describe().find(" gro") != std::string::npos, c.gro) << (*b)->describe();
    sendLengths(**a, lengths);

    std::size_t next = 0;
    std::vector<RxPacket> rx(c.rxBatch);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (next < lengths.size() && std::chrono::steady_clock::now() < deadline) {
      auto n = (*b)->receive(rx);
      ASSERT_TRUE(n.ok()) << n.error().message();
      for (std::size_t k = 0; k < *n && next < lengths.size(); ++k, ++next) {
        EXPECT_TRUE(isBuffer(rx[k], next, lengths))
            << "datagram " << next << ": " << rx[k].length << " bytes, sent " << lengths[next];
      }
      (*b)->release(std::span<const RxPacket>(rx.data(), *n));
      if (*n == 0) usleep(100);
    }
    EXPECT_EQ(next, lengths.size());
    EXPECT_EQ((*b)->stats().rxPackets, lengths.size());
    EXPECT_EQ((*b)->stats().rxMalformed, 0u);
  }
}

// With few receive buffers, the segments of a coalesced datagram wait for
// buffers to come back (none is lost), and setPeerFrom works on a copied one.
TEST(UdpPacketIo, CoalescedSegmentsWaitForFreeBuffers) {
  const std::uint16_t portA = testPort(40);
  const std::uint16_t portB = testPort(41);
  auto receiverConfig = loopbackEnd(portB, portA);
  receiverConfig.peerIp.reset();
  receiverConfig.frameCount = 16;  // 8 receive buffers
  auto a = openUdpPacketIo(loopbackEnd(portA, portB));
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto b = openUdpPacketIo(receiverConfig);
  ASSERT_TRUE(b.ok()) << b.error().message();
  ASSERT_EQ((*b)->receiveBuffersPerQueue(), 8u);
  std::vector<std::uint32_t> lengths(40, 1000);
  lengths.push_back(200);
  sendLengths(**a, lengths);

  std::vector<RxPacket> held;
  RxPacket rx[16];
  std::size_t next = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (next < lengths.size() && std::chrono::steady_clock::now() < deadline) {
    auto n = (*b)->receive(rx);
    ASSERT_TRUE(n.ok()) << n.error().message();
    for (std::size_t k = 0; k < *n; ++k, ++next) {
      EXPECT_TRUE(isBuffer(rx[k], next, lengths)) << "datagram " << next;
      held.push_back(rx[k]);
    }
    if (held.size() == 8 || *n == 0) {
      // All buffers are held: nothing more arrives until they come back.
      auto none = (*b)->receive(rx);
      ASSERT_TRUE(none.ok());
      EXPECT_EQ(*none, 0u);
      if (next > 1 && !(*b)->hasPeer()) {
        ASSERT_TRUE((*b)->setPeerFrom(held.back()).ok());
      }
      (*b)->release(held);
      held.clear();
      if (*n == 0) usleep(100);
    }
  }
  EXPECT_EQ(next, lengths.size());
  EXPECT_EQ((*b)->peerDescription(), "127.0.0.1:" + std::to_string(portA));
  (*b)->release(held);
}

TEST(UdpPacketIo, LoopbackCarriesTenThousandPacketsIntact) {
  const std::uint16_t portA = testPort(0);
  const std::uint16_t portB = testPort(1);
  auto a = openUdpPacketIo(loopbackEnd(portA, portB));
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto b = openUdpPacketIo(loopbackEnd(portB, portA));
  ASSERT_TRUE(b.ok()) << b.error().message();
  PacketIo& sender = **a;
  PacketIo& receiver = **b;
  EXPECT_GE(sender.maxPayload(), 1416u);
  ASSERT_EQ(receiver.pollFds().size(), 1u);
  EXPECT_GE(receiver.pollFds()[0], 0);
  EXPECT_NE(sender.describe().find("udp:"), std::string::npos);

  constexpr std::uint32_t kTotal = 10000;
  constexpr std::size_t kBatch = 64;
  std::vector<bool> seen(kTotal, false);
  std::uint32_t nextSeq = 0;
  std::uint32_t received = 0;
  std::uint32_t corrupt = 0;
  TxBuffer tx[kBatch];
  RxPacket rx[kBatch];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (received < kTotal && std::chrono::steady_clock::now() < deadline) {
    if (nextSeq < kTotal) {
      const std::size_t n =
          sender.reserveTx(std::span<TxBuffer>(tx, std::min<std::size_t>(kBatch, kTotal - nextSeq)));
      ASSERT_GT(n, 0u);
      for (std::size_t i = 0; i < n; ++i) {
        writePayload(tx[i].data, nextSeq + static_cast<std::uint32_t>(i));
        tx[i].length = payloadLength(nextSeq + static_cast<std::uint32_t>(i));
      }
      auto sent = sender.commitTx(std::span<const TxBuffer>(tx, n));
      ASSERT_TRUE(sent.ok()) << sent.error().message();
      ASSERT_EQ(*sent, n);
      nextSeq += static_cast<std::uint32_t>(n);
    }
    // Drain what the batch brought before sending more.
    for (int idle = 0; idle < 1000 && received < nextSeq;) {
      auto got = receiver.receive(rx);
      ASSERT_TRUE(got.ok()) << got.error().message();
      if (*got == 0) {
        ++idle;
        usleep(100);
        continue;
      }
      for (std::size_t i = 0; i < *got; ++i) {
        std::uint32_t seq = 0;
        if (!payloadIntact(rx[i], &seq) || seq >= kTotal || seen[seq]) {
          ++corrupt;
          continue;
        }
        seen[seq] = true;
        ++received;
      }
      receiver.release(std::span<const RxPacket>(rx, *got));
    }
  }
  EXPECT_EQ(received, kTotal);
  EXPECT_EQ(corrupt, 0u);
  EXPECT_EQ(sender.stats().txPackets, kTotal);
  EXPECT_EQ(receiver.stats().rxPackets, kTotal);
  EXPECT_EQ(receiver.stats().rxMalformed, 0u);
}

// Whether this process may raise socket options that need CAP_NET_ADMIN.
bool hasCapNetAdmin() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) return ((std::stoull(line.substr(7), nullptr, 16) >> 12) & 1) != 0;
  }
  return false;
}

// Busy polling needs CAP_NET_ADMIN: with it the link says busy-poll and
// carries packets; without it the open fails with EPERM and names the need.
TEST(UdpPacketIo, BusyPollingIsSetAndDescribedOrRefusedWithoutCapNetAdmin) {
  LinkEndpointConfig configA = loopbackEnd(testPort(42), testPort(43));
  LinkEndpointConfig configB = loopbackEnd(testPort(43), testPort(42));
  configA.busyPollUsecs = 50;
  configB.busyPollUsecs = 50;
  auto a = openUdpPacketIo(configA);
  if (!hasCapNetAdmin()) {
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.error().code(), EPERM);
    EXPECT_NE(a.error().message().find("CAP_NET_ADMIN"), std::string::npos) << a.error().message();
    return;
  }
  ASSERT_TRUE(a.ok()) << a.error().message();
  auto b = openUdpPacketIo(configB);
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_NE((*a)->describe().find(" busy-poll 50us"), std::string::npos) << (*a)->describe();
  auto plain = openUdpPacketIo(loopbackEnd(testPort(44), testPort(45)));
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  EXPECT_EQ((*plain)->describe().find("busy-poll"), std::string::npos) << (*plain)->describe();

  constexpr std::size_t kPackets = 8;
  TxBuffer tx[kPackets];
  ASSERT_EQ((*a)->reserveTx(tx), kPackets);
  for (std::uint32_t i = 0; i < kPackets; ++i) {
    writePayload(tx[i].data, i);
    tx[i].length = payloadLength(i);
  }
  auto sent = (*a)->commitTx(tx);
  ASSERT_TRUE(sent.ok()) << sent.error().message();
  RxPacket rx[kPackets];
  auto got = readUpTo(**b, rx);
  ASSERT_TRUE(got.ok()) << got.error().message();
  ASSERT_EQ(*got, kPackets);
  for (const RxPacket& packet : rx) {
    std::uint32_t seq = 0;
    EXPECT_TRUE(payloadIntact(packet, &seq));
  }
  (*b)->release(std::span<const RxPacket>(rx, *got));
}

TEST(UdpPacketIo, ReserveIsBoundedByThePoolAndUnsentBuffersComeBack) {
  auto config = loopbackEnd(testPort(2), testPort(3));
  config.frameCount = 16;  // 8 transmit buffers
  auto io = openUdpPacketIo(config);
  ASSERT_TRUE(io.ok()) << io.error().message();
  TxBuffer tx[16];
  EXPECT_EQ((*io)->reserveTx(tx), 8u);
  TxBuffer more[4];
  EXPECT_EQ((*io)->reserveTx(more), 0u);
  auto sent = (*io)->commitTx(std::span<const TxBuffer>(tx, 8));  // all length 0
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(*sent, 0u);
  EXPECT_EQ((*io)->reserveTx(tx), 8u);
  tx[0].length = (*io)->maxPayload() + 1;
  auto tooLong = (*io)->commitTx(std::span<const TxBuffer>(tx, 8));
  ASSERT_FALSE(tooLong.ok());
  EXPECT_EQ(tooLong.error().code(), EMSGSIZE);
  EXPECT_EQ((*io)->reserveTx(tx), 8u) << "buffers of a failed commit are taken back";
  ASSERT_TRUE((*io)->commitTx(std::span<const TxBuffer>(tx, 8)).ok());
}

TEST(UdpPacketIo, RefusesAPortInUse) {
  const std::uint16_t port = testPort(4);
  auto first = openUdpPacketIo(loopbackEnd(port, testPort(5)));
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto config = loopbackEnd(port, testPort(5));
  auto second = openUdpPacketIo(config);
  ASSERT_FALSE(second.ok()) << "a second link must not share (and steal from) a bound port";
  EXPECT_EQ(second.error().code(), EADDRINUSE);
  EXPECT_NE(second.error().message().find("bind"), std::string::npos) << second.error().message();
}

TEST(UdpPacketIo, WithoutAPeerIsReceiveOnlyOnTheInterfaceAddress) {
  LinkEndpointConfig config = loopbackEnd(testPort(6), testPort(7));
  config.peerIp.reset();
  config.localIp.reset();
  config.interface = "lo";
  auto rxOnly = openUdpPacketIo(config);
  ASSERT_TRUE(rxOnly.ok()) << rxOnly.error().message();
  PacketIo& receiver = **rxOnly;
  EXPECT_NE(receiver.describe().find("127.0.0.1:" + std::to_string(testPort(6))), std::string::npos)
      << receiver.describe();
  EXPECT_NE(receiver.describe().find("rx-only"), std::string::npos) << receiver.describe();
  EXPECT_GE(receiver.maxPayload(), 1416u);
  TxBuffer tx[4];
  EXPECT_EQ(receiver.reserveTx(tx), 0u);
  tx[0].length = 10;
  auto refused = receiver.commitTx(std::span<const TxBuffer>(tx, 1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), EOPNOTSUPP);
  EXPECT_TRUE(receiver.flushTx().ok());

  // A sender connected to the interface's address reaches it.
  auto senderIo = openUdpPacketIo(loopbackEnd(testPort(7), testPort(6)));
  ASSERT_TRUE(senderIo.ok()) << senderIo.error().message();
  ASSERT_EQ((*senderIo)->reserveTx(std::span<TxBuffer>(tx, 4)), 4u);
  for (std::uint32_t i = 0; i < 4; ++i) {
    writePayload(tx[i].data, i);
    tx[i].length = payloadLength(i);
  }
  auto sent = (*senderIo)->commitTx(std::span<const TxBuffer>(tx, 4));
  ASSERT_TRUE(sent.ok()) << sent.error().message();
  EXPECT_EQ(*sent, 4u);
  RxPacket rx[8];
  std::size_t received = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (received < 4 && std::chrono::steady_clock::now() < deadline) {
    auto got = receiver.receive(std::span<RxPacket>(rx + received, 8 - received));
    ASSERT_TRUE(got.ok()) << got.error().message();
    received += *got;
    if (*got == 0) usleep(100);
  }
  ASSERT_EQ(received, 4u);
  for (std::size_t i = 0; i < received; ++i) {
    std::uint32_t seq = 0;
    EXPECT_TRUE(payloadIntact(rx[i], &seq));
  }
  receiver.release(std::span<const RxPacket>(rx, received));
}

// Loopback: a receive-only link learns the sender (on another port) from its
// first datagram, then answers it; ports 8 and 9 of the test range.
TEST(UdpPacketIo, ReceiveOnlyLinkLearnsItsPeerAndAnswers) {
  LinkEndpointConfig config = loopbackEnd(testPort(8), testPort(9));
  config.peerIp.reset();
  auto rxOnly = openUdpPacketIo(config);
  ASSERT_TRUE(rxOnly.ok()) << rxOnly.error().message();
  PacketIo& receiver = **rxOnly;
  EXPECT_FALSE(receiver.hasPeer());
  EXPECT_EQ(receiver.peerDescription(), "none");
  EXPECT_EQ(receiver.frameOverheadBytes(), 42u) << "Ethernet 14 + IPv4 20 + UDP 8";
  RxPacket bogus{nullptr, 0, 1u << 30};
  auto refused = receiver.setPeerFrom(bogus);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), EINVAL);

  auto senderIo = openUdpPacketIo(loopbackEnd(testPort(9), testPort(8)));
  ASSERT_TRUE(senderIo.ok()) << senderIo.error().message();
  PacketIo& sender = **senderIo;
  EXPECT_TRUE(sender.hasPeer());
  EXPECT_EQ(sender.peerDescription(), "127.0.0.1:" + std::to_string(testPort(8)));
  TxBuffer tx[4];
  ASSERT_EQ(sender.reserveTx(std::span<TxBuffer>(tx, 1)), 1u);
  writePayload(tx[0].data, 7);
  tx[0].length = payloadLength(7);
  ASSERT_TRUE(sender.commitTx(std::span<const TxBuffer>(tx, 1)).ok());

  RxPacket rx[4];
  std::size_t got = 0;
  for (int i = 0; i < 2000 && got == 0; ++i) {
    auto n = receiver.receive(rx);
    ASSERT_TRUE(n.ok()) << n.error().message();
    got = *n;
    if (got == 0) usleep(500);
  }
  ASSERT_EQ(got, 1u);
  auto learned = receiver.setPeerFrom(rx[0]);
  ASSERT_TRUE(learned.ok()) << learned.error().message();
  receiver.release(std::span<const RxPacket>(rx, got));
  EXPECT_TRUE(receiver.hasPeer());
  EXPECT_EQ(receiver.peerDescription(), "127.0.0.1:" + std::to_string(testPort(9)));
  EXPECT_EQ(receiver.describe().find("rx-only"), std::string::npos) << receiver.describe();

  ASSERT_EQ(receiver.reserveTx(std::span<TxBuffer>(tx, 4)), 4u);
  for (std::uint32_t i = 0; i < 4; ++i) {
    writePayload(tx[i].data, 100 + i);
    tx[i].length = payloadLength(100 + i);
  }
  auto sent = receiver.commitTx(std::span<const TxBuffer>(tx, 4));
  ASSERT_TRUE(sent.ok()) << sent.error().message();
  EXPECT_EQ(*sent, 4u);
  std::size_t answers = 0;
  for (int i = 0; i < 2000 && answers < 4; ++i) {
    auto n = sender.receive(rx);
    ASSERT_TRUE(n.ok()) << n.error().message();
    for (std::size_t k = 0; k < *n; ++k) {
      std::uint32_t seq = 0;
      EXPECT_TRUE(payloadIntact(rx[k], &seq));
      EXPECT_EQ(seq, 100 + answers);
      ++answers;
    }
    sender.release(std::span<const RxPacket>(rx, *n));
    if (*n == 0) usleep(500);
  }
  EXPECT_EQ(answers, 4u);
}

// Waits up to a second for one packet on `io` (not released).
std::optional<RxPacket> receiveOne(PacketIo& io) {
  RxPacket rx;
  for (int i = 0; i < 2000; ++i) {
    auto n = io.receive(std::span<RxPacket>(&rx, 1));
    if (!n.ok()) return std::nullopt;
    if (*n == 1) return rx;
    usleep(500);
  }
  return std::nullopt;
}

// One payload from `from` (seq), received by `to`: the packet, not yet released.
std::optional<RxPacket> sendAndReceive(PacketIo& from, PacketIo& to, std::uint32_t seq) {
  TxBuffer tx;
  if (from.reserveTx(std::span<TxBuffer>(&tx, 1)) != 1) return std::nullopt;
  writePayload(tx.data, seq);
  tx.length = payloadLength(seq);
  if (!from.commitTx(std::span<const TxBuffer>(&tx, 1)).ok()) return std::nullopt;
  return receiveOne(to);
}

// Sends one payload to an acquired peer (0: the link's own).
bool sendTo(PacketIo& io, std::uint16_t peer, std::uint32_t seq) {
  TxBuffer tx;
  if (io.reserveTx(std::span<TxBuffer>(&tx, 1)) != 1) return false;
  writePayload(tx.data, seq);
  tx.length = payloadLength(seq);
  auto sent = io.commitTxTo(peer, std::span<const TxBuffer>(&tx, 1));
  return sent.ok() && *sent == 1;
}

// A server link answering several clients (manyPeers): each gets a peer
// number of its own, shared by packets from the same source and given back
// by releasePeer; answers go to the right client.
TEST(UdpPacketIo, ManyPeersAnswersEachClientWhereItsPacketsComeFrom) {
  const std::uint16_t serverPort = testPort(12);
  LinkEndpointConfig serverConfig = loopbackEnd(serverPort, testPort(13));  // its own peer: client A
  serverConfig.manyPeers = true;
  auto serverIo = openUdpPacketIo(serverConfig);
  ASSERT_TRUE(serverIo.ok()) << serverIo.error().message();
  auto aIo = openUdpPacketIo(loopbackEnd(testPort(13), serverPort));
  ASSERT_TRUE(aIo.ok()) << aIo.error().message();
  auto bIo = openUdpPacketIo(loopbackEnd(testPort(14), serverPort));
  ASSERT_TRUE(bIo.ok()) << bIo.error().message();
  PacketIo& server = **serverIo;
  PacketIo& a = **aIo;
  PacketIo& b = **bIo;

  // Unconnected, the server hears both clients.
  auto fromA = sendAndReceive(a, server, 1);
  ASSERT_TRUE(fromA);
  auto fromB = sendAndReceive(b, server, 2);
  ASSERT_TRUE(fromB);
  auto peerA = server.acquirePeer(*fromA);
  auto peerB = server.acquirePeer(*fromB);
  auto peerB2 = server.acquirePeer(*fromB);
  ASSERT_TRUE(peerA.ok() && peerB.ok() && peerB2.ok());
  EXPECT_EQ(*peerA, 0) << "A is the link's own peer";
  EXPECT_NE(*peerB, 0);
  EXPECT_EQ(*peerB2, *peerB) << "one source, one peer number";
  server.release(std::span<const RxPacket>(&*fromA, 1));
  server.release(std::span<const RxPacket>(&*fromB, 1));

  ASSERT_TRUE(sendTo(server, *peerB, 20));
  ASSERT_TRUE(sendTo(server, 0, 10));
  for (auto [io, seq] : {std::pair<PacketIo*, std::uint32_t>{&b, 20}, {&a, 10}}) {
    auto answer = receiveOne(*io);
    ASSERT_TRUE(answer);
    std::uint32_t got = 0;
    EXPECT_TRUE(payloadIntact(*answer, &got));
    EXPECT_EQ(got, seq);
    io->release(std::span<const RxPacket>(&*answer, 1));
  }
  // Held twice, released twice: then the number is no one's.
  server.releasePeer(*peerB);
  EXPECT_TRUE(sendTo(server, *peerB, 21));
  server.releasePeer(*peerB);
  TxBuffer tx;
  ASSERT_EQ(server.reserveTx(std::span<TxBuffer>(&tx, 1)), 1u);
  tx.length = 16;
  auto refused = server.commitTxTo(*peerB, std::span<const TxBuffer>(&tx, 1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), EINVAL);
  // The buffer came back: the pool is whole again.
  TxBuffer all[512];
  const std::size_t lent = server.reserveTx(std::span<TxBuffer>(all, 512));
  EXPECT_EQ(lent, 256u);
  for (std::size_t i = 0; i < lent; ++i) all[i].length = 0;
  ASSERT_TRUE(server.commitTx(std::span<const TxBuffer>(all, lent)).ok());
}

TEST(UdpPacketIo, WithoutPeerOrAddressOrInterfaceIsAClearError) {
  LinkEndpointConfig config = loopbackEnd(testPort(8), testPort(9));
  config.peerIp.reset();
  config.localIp.reset();
  auto io = openUdpPacketIo(config);
  ASSERT_FALSE(io.ok());
  EXPECT_EQ(io.error().code(), EINVAL);
}

TEST(NetlinkRoute, LoopbackRouteLeavesThroughLo) {
  auto route = lookupRoute(*IpAddress::parse("127.0.0.1"));
  ASSERT_TRUE(route.ok()) << route.error().message();
  auto lo = interfaceInfo("lo");
  ASSERT_TRUE(lo.ok()) << lo.error().message();
  EXPECT_EQ(route->oifIndex, lo->ifindex);
  EXPECT_FALSE(route->gateway.has_value());
  EXPECT_EQ(route->nextHop(), *IpAddress::parse("127.0.0.1"));
  EXPECT_EQ(lo->mtu, 65536u);
}

TEST(NetlinkRoute, UnknownInterfaceIsAClearError) {
  auto info = interfaceInfo("mpxdp-nope0");
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message().find("mpxdp-nope0"), std::string::npos);
}

TEST(XdpPacketIoConfig, RejectsBadConfigurationBeforeTouchingTheKernel) {
  LinkEndpointConfig config;
  config.peerIp = *IpAddress::parse("198.18.200.2");
  auto noInterface = openXdpPacketIo(config, nullptr);
  ASSERT_FALSE(noInterface.ok());
  EXPECT_EQ(noInterface.error().code(), EINVAL);
  config.interface = "lo";
  config.frameCount = 1000;
  auto badCount = openXdpPacketIo(config, nullptr);
  ASSERT_FALSE(badCount.ok());
  EXPECT_NE(badCount.error().message().find("power of two"), std::string::npos);
}

}  // namespace
}  // namespace mpxdp::transport
