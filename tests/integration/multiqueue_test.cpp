// Issue 7 on the test bed: flows that the kernel spreads over several veth
// queues all reach the multi-queue AF_XDP receiver (none fall through to the
// kernel), and a receive-only link of either backend learns its peer from an
// arriving packet and answers over the same link.
#include <arpa/inet.h>
#include <fmt/core.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "codec.h"
#include "privilege.h"
#include "steering.h"
#include "testbed.h"
#include "udp_packet_io.h"
#include "xdp_packet_io.h"

namespace mpxdp {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kConnId = 0x6d71756e;
constexpr std::uint32_t kQueues = 4;
constexpr int kFlows = 64;            // kernel UDP sockets, one source port each
constexpr int kPacketsPerFlow = 200;  // 12,800 packets in all
constexpr std::uint32_t kPayload = 256;

// A UDP payload the steering program redirects: multipath header + pattern.
std::vector<std::uint8_t> mpPayload(std::uint64_t seq, std::uint16_t pathId = 0) {
  std::vector<std::uint8_t> bytes(wire::kMpHeaderLen + kPayload);
  wire::MpHeader header;
  header.connId = kConnId;
  header.pathId = pathId;
  header.globalSeq = seq;
  header.payloadLen = kPayload;
  (void)wire::encodeMpHeader(bytes, header);
  for (std::uint32_t i = 0; i < kPayload; ++i) {
    bytes[wire::kMpHeaderLen + i] = static_cast<std::uint8_t>(seq * 13 + i);
  }
  return bytes;
}

// Sends mpPayload(firstSeq + i, pathId) for every i below count in one commit;
// every one must go out.
void sendPayloads(PacketIo& io, std::size_t count, std::uint64_t firstSeq = 0, std::uint16_t pathId = 0) {
  std::vector<TxBuffer> out(count);
  ASSERT_EQ(io.reserveTx(out), count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto payload = mpPayload(firstSeq + i, pathId);
    std::memcpy(out[i].data, payload.data(), payload.size());
    out[i].length = static_cast<std::uint32_t>(payload.size());
  }
  auto sent = io.commitTx(out);
  ASSERT_TRUE(sent) << sent.error().message();
  ASSERT_EQ(*sent, count);
}

// The global sequence number of an intact mpPayload, or -1.
std::int64_t seqOf(const RxPacket& packet) {
  auto header = wire::decodeMpHeader({packet.data, packet.length});
  if (!header.ok() || header.value.connId != kConnId) return -1;
  const std::uint64_t seq = header.value.globalSeq;
  for (std::uint32_t i = 0; i < kPayload; ++i) {
    if (packet.data[wire::kMpHeaderLen + i] != static_cast<std::uint8_t>(seq * 13 + i)) return -1;
  }
  return static_cast<std::int64_t>(seq);
}

// Udp counters of the calling thread's namespace (/proc/thread-self follows setns).
struct UdpMib {
  std::uint64_t inDatagrams = 0;
  std::uint64_t noPorts = 0;
};
UdpMib readUdpMib() {
  std::ifstream snmp("/proc/thread-self/net/snmp");
  std::string header;
  std::string values;
  std::string line;
  while (std::getline(snmp, line)) {
    if (line.rfind("Udp:", 0) != 0) continue;
    if (header.empty()) {
      header = line;
    } else {
      values = line;
      break;
    }
  }
  std::istringstream names(header);
  std::istringstream numbers(values);
  std::string name;
  std::string number;
  UdpMib mib;
  while (names >> name && numbers >> number) {
    if (name == "InDatagrams") mib.inDatagrams = std::stoull(number);
    if (name == "NoPorts") mib.noPorts = std::stoull(number);
  }
  return mib;
}

// Kernel UDP over veth leaves the UDP checksum to an offload that never
// happens (CHECKSUM_PARTIAL); the AF_XDP receiver checks it like a wire
// frame. With TX checksumming off the kernel writes the full checksum.
void fullUdpChecksums(const std::string& namespaceName, const std::string& device) {
  ASSERT_EQ(
      std::system(
          fmt::format("ip netns exec {} ethtool -K {} tx off >/dev/null", namespaceName, device).c_str()),
      0);
}

// Each test its own bed: ctest may run two of them at once.
std::string bedName(const char* tag) { return "mq" + std::to_string(getpid()) + tag; }

transport::LinkEndpointConfig endpoint(const std::string& ifname, const std::string& local,
                                       std::uint16_t localPort) {
  transport::LinkEndpointConfig config;
  config.interface = ifname;
  config.localIp = IpAddress::parse(local);
  config.localPort = localPort;
  return config;
}

// Receives until `want` packets came or `timeout` passed; each is checked,
// counted and released.
struct Received {
  std::vector<std::int64_t> seqs;
  std::string error;
};
Received receiveSome(PacketIo& io, std::size_t want, std::chrono::milliseconds timeout,
                     const std::function<void(const RxPacket&)>& each = nullptr) {
  Received out;
  std::array<RxPacket, 64> batch;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.seqs.size() < want && std::chrono::steady_clock::now() < deadline) {
    auto n = io.receive(batch);
    if (!n.ok()) {
      out.error = n.error().message();
      return out;
    }
    for (std::size_t i = 0; i < *n; ++i) {
      out.seqs.push_back(seqOf(batch[i]));
      if (each) each(batch[i]);
    }
    io.release({batch.data(), *n});
    if (*n == 0) std::this_thread::sleep_for(100us);
  }
  return out;
}

TEST(MultiQueueTest, FlowsSpreadOverFourVethQueuesAllReachTheXdpReceiver) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create({bedName("q"), {0}, 1500, kQueues});
  ASSERT_TRUE(bed) << bed.error().message();
  const auto& info = bed->info();
  ASSERT_EQ(info.queues, kQueues);
  const auto& link = info.links[0];
  constexpr std::uint64_t kTotal = std::uint64_t{kFlows} * kPacketsPerFlow;
  fullUdpChecksums(info.senderNamespace, link.senderInterface);
  // A static neighbour: no datagram waits in the ARP queue (which holds only a few).
  ASSERT_EQ(
      std::system(fmt::format("ip -n {} neigh replace {} lladdr {} dev {} nud permanent",
                              info.senderNamespace, link.receiverIp, link.receiverMac, link.senderInterface)
                      .c_str()),
      0);

  std::atomic<bool> ready{false};
  std::atomic<bool> failed{false};
  std::atomic<bool> senderDone{false};
  std::string receiverError;
  std::string description;
  std::string stampWord;  // how the receiver's program stamps arrivals (the kernel decides)
  std::uint64_t unique = 0;
  std::uint64_t bad = 0;
  std::vector<transport::XdpQueueStats> perQueue;
  bpf::SteeringCounters counters;
  UdpMib mibBefore;
  UdpMib mibAfter;
  PacketIoStats stats;

  std::thread receiver([&] {
    auto fail = [&](const std::string& why) {
      receiverError = why;
      failed = true;
    };
    auto scope = testbed::NetnsScope::enter(info.receiverNamespace);
    if (!scope) return fail(scope.error().message());
    auto steering = bpf::SteeringProgram::load({});
    if (!steering) return fail(steering.error().message());
    // Receive-only, every queue (the default).
    auto io = transport::openXdpPacketIo(
        endpoint(link.receiverInterface, link.receiverIp, MPXDP_DEFAULT_PORT), steering->get());
    if (!io) return fail(io.error().message());
    description = (*io)->describe();
    stampWord = bpf::describe((*steering)->arrivalStamp());
    mibBefore = readUdpMib();
    ready = true;

    std::vector<bool> seen(kTotal, false);
    std::array<RxPacket, 64> batch;
    auto idleSince = std::chrono::steady_clock::now();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (unique < kTotal && std::chrono::steady_clock::now() < deadline) {
      auto n = (*io)->receive(batch);
      if (!n) return fail(n.error().message());
      for (std::size_t i = 0; i < *n; ++i) {
        const std::int64_t seq = seqOf(batch[i]);
        if (seq < 0 || static_cast<std::uint64_t>(seq) >= kTotal || seen[static_cast<std::size_t>(seq)]) {
          ++bad;
          continue;
        }
        seen[static_cast<std::size_t>(seq)] = true;
        ++unique;
      }
      (*io)->release({batch.data(), *n});
      if (*n > 0) {
        idleSince = std::chrono::steady_clock::now();
      } else if (senderDone && std::chrono::steady_clock::now() - idleSince > 2s) {
        break;
      }
    }
    perQueue = transport::xdpQueueStats(**io);
    stats = (*io)->stats();
    mibAfter = readUdpMib();
    auto read = (*steering)->counters();
    if (read) counters = *read;
  });

  // Many kernel UDP flows (one source port each): the veth picks a TX queue
  // per flow by hash, and the receiving veth's RX queue is that queue.
  std::string senderError;
  std::thread sender([&] {
    while (!ready && !failed) std::this_thread::sleep_for(1ms);
    if (failed) return;
    auto scope = testbed::NetnsScope::enter(info.senderNamespace);
    if (!scope) {
      senderError = scope.error().message();
      return;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(MPXDP_DEFAULT_PORT);
    inet_pton(AF_INET, link.receiverIp.c_str(), &to.sin_addr);
    std::vector<int> fds;
    for (int f = 0; f < kFlows; ++f) {
      const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
        senderError = std::string("UDP flow socket: ") + std::strerror(errno);
        break;
      }
      fds.push_back(fd);
    }
    for (int p = 0; p < kPacketsPerFlow && senderError.empty(); ++p) {
      for (int f = 0; f < kFlows; ++f) {
        const auto payload = mpPayload(std::uint64_t{static_cast<std::uint64_t>(p)} * kFlows + f);
        if (send(fds[static_cast<std::size_t>(f)], payload.data(), payload.size(), 0) < 0) {
          senderError = std::string("send: ") + std::strerror(errno);
          break;
        }
      }
      std::this_thread::sleep_for(1ms);  // ~64 packets per ms: well within one receiver core
    }
    for (int fd : fds) close(fd);
  });

  sender.join();
  senderDone = true;
  receiver.join();

  ASSERT_TRUE(senderError.empty()) << senderError;
  ASSERT_TRUE(receiverError.empty()) << receiverError;
  EXPECT_EQ(description, "xdp:r0 rx q0-3 tx q0 copy " + stampWord + " rx-only");
  EXPECT_EQ(unique, kTotal);
  EXPECT_EQ(bad, 0u);
  ASSERT_EQ(perQueue.size(), kQueues);
  std::uint64_t sum = 0;
  int queuesUsed = 0;
  std::string spread;
  for (const auto& q : perQueue) {
    sum += q.rxPackets;
    if (q.rxPackets > 0) ++queuesUsed;
    spread += " q" + std::to_string(q.queue) + "=" + std::to_string(q.rxPackets);
  }
  std::printf("[ spread   ]%s\n", spread.c_str());
  std::printf(
      "[ counters ] redirected %llu passed %llu noSocket %llu; rx %llu malformed %llu dropped %llu "
      "fillEmpty %llu ringFull %llu invalid %llu\n",
      static_cast<unsigned long long>(counters.redirected), static_cast<unsigned long long>(counters.passed),
      static_cast<unsigned long long>(counters.noSocket), static_cast<unsigned long long>(stats.rxPackets),
      static_cast<unsigned long long>(stats.rxMalformed), static_cast<unsigned long long>(stats.rxDropped),
      static_cast<unsigned long long>(stats.rxFillRingEmpty),
      static_cast<unsigned long long>(stats.rxRingFull),
      static_cast<unsigned long long>(stats.rxInvalidDescs));
  EXPECT_EQ(sum, kTotal);
  EXPECT_GE(queuesUsed, 2) << "flows did not spread over queues:" << spread;
  EXPECT_GT(kTotal - perQueue[0].rxPackets, 0u) << "nothing arrived on a queue other than 0:" << spread;
  // Nothing of ours went to the kernel: no queue lacked a socket, and the
  // receiver namespace's UDP stack saw none of these datagrams.
  EXPECT_EQ(counters.noSocket, 0u);
  EXPECT_EQ(counters.malformed, 0u);
  EXPECT_GE(counters.redirected, kTotal);
  EXPECT_EQ(mibAfter.noPorts - mibBefore.noPorts, 0u);
  EXPECT_EQ(mibAfter.inDatagrams - mibBefore.inDatagrams, 0u);
  EXPECT_EQ(stats.rxPackets, kTotal);
  EXPECT_EQ(stats.rxDropped, 0u);
}

// A receive-only AF_XDP link (2 queues) learns its peer, a kernel UDP socket
// on an unusual source port, from the first packet and answers it.
TEST(LearnedPeerTest, ReceiveOnlyXdpLinkAnswersTheUdpPeerItLearned) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create({bedName("x"), {0}, 1500, 2});
  ASSERT_TRUE(bed) << bed.error().message();
  const auto& info = bed->info();
  const auto& link = info.links[0];
  constexpr std::uint16_t kSenderPort = 47123;
  fullUdpChecksums(info.senderNamespace, link.senderInterface);

  std::unique_ptr<bpf::SteeringProgram> steering;
  std::unique_ptr<PacketIo> xdp;
  {
    auto scope = testbed::NetnsScope::enter(info.receiverNamespace);
    ASSERT_TRUE(scope) << scope.error().message();
    auto loaded = bpf::SteeringProgram::load({});
    ASSERT_TRUE(loaded) << loaded.error().message();
    steering = std::move(*loaded);
    auto io = transport::openXdpPacketIo(
        endpoint(link.receiverInterface, link.receiverIp, MPXDP_DEFAULT_PORT), steering.get());
    ASSERT_TRUE(io) << io.error().message();
    xdp = std::move(*io);
  }
  EXPECT_FALSE(xdp->hasPeer());
  EXPECT_EQ(xdp->peerDescription(), "none");
  std::array<TxBuffer, 4> lent;
  EXPECT_EQ(xdp->reserveTx(lent), 0u) << "no peer yet";

  std::unique_ptr<PacketIo> udp;
  {
    auto scope = testbed::NetnsScope::enter(info.senderNamespace);
    ASSERT_TRUE(scope) << scope.error().message();
    auto config = endpoint(link.senderInterface, link.senderIp, kSenderPort);
    config.peerIp = IpAddress::parse(link.receiverIp);
    config.peerPort = MPXDP_DEFAULT_PORT;
    auto io = transport::openUdpPacketIo(config);
    ASSERT_TRUE(io) << io.error().message();
    udp = std::move(*io);
  }
  EXPECT_EQ(udp->frameOverheadBytes(), 42u);

  // The UDP side sends a few packets; the XDP side learns from the first.
  constexpr std::size_t kHello = 8;
  ASSERT_NO_FATAL_FAILURE(sendPayloads(*udp, kHello));

  std::string learnError;
  auto hello = receiveSome(*xdp, kHello, 5s, [&](const RxPacket& packet) {
    if (xdp->hasPeer()) return;
    auto learned = xdp->setPeerFrom(packet);
    if (!learned) learnError = learned.error().message();
  });
  ASSERT_TRUE(hello.error.empty()) << hello.error;
  ASSERT_TRUE(learnError.empty()) << learnError;
  ASSERT_EQ(hello.seqs.size(), kHello);
  ASSERT_TRUE(xdp->hasPeer());
  EXPECT_EQ(xdp->peerDescription(), link.senderIp + ":" + std::to_string(kSenderPort));
  EXPECT_EQ(xdp->describe().find("rx-only"), std::string::npos) << xdp->describe();
  EXPECT_EQ(xdp->frameOverheadBytes(), 42u);

  // Reply over the same link.
  constexpr std::size_t kReplies = 32;
  ASSERT_NO_FATAL_FAILURE(sendPayloads(*xdp, kReplies, 1000, 1));
  for (int i = 0; i < 20; ++i) {
    (void)xdp->flushTx();
    std::this_thread::sleep_for(1ms);
  }
  auto back = receiveSome(*udp, kReplies, 5s);
  ASSERT_TRUE(back.error.empty()) << back.error;
  ASSERT_EQ(back.seqs.size(), kReplies);
  for (std::size_t i = 0; i < kReplies; ++i) EXPECT_EQ(back.seqs[i], static_cast<std::int64_t>(1000 + i));
  EXPECT_EQ(udp->stats().rxMalformed, 0u);
}

// A receive-only kernel UDP link learns its peer, an AF_XDP link, from the
// first datagram and answers it; the AF_XDP side receives the answer through
// its own steering program.
TEST(LearnedPeerTest, ReceiveOnlyUdpLinkAnswersTheXdpPeerItLearned) {
  MPXDP_REQUIRE_PRIVILEGED();
  auto bed = testbed::ScopedTestbed::create({bedName("u"), {0}, 1500, 2});
  ASSERT_TRUE(bed) << bed.error().message();
  const auto& info = bed->info();
  const auto& link = info.links[0];
  constexpr std::uint16_t kUdpPort = 47200;
  fullUdpChecksums(info.receiverNamespace, link.receiverInterface);

  std::unique_ptr<PacketIo> udp;
  {
    auto scope = testbed::NetnsScope::enter(info.receiverNamespace);
    ASSERT_TRUE(scope) << scope.error().message();
    auto io = transport::openUdpPacketIo(endpoint(link.receiverInterface, link.receiverIp, kUdpPort));
    ASSERT_TRUE(io) << io.error().message();
    udp = std::move(*io);
  }
  EXPECT_FALSE(udp->hasPeer());
  EXPECT_EQ(udp->peerDescription(), "none");
  std::array<TxBuffer, 4> lent;
  EXPECT_EQ(udp->reserveTx(lent), 0u) << "no peer yet";

  std::unique_ptr<bpf::SteeringProgram> steering;
  std::unique_ptr<PacketIo> xdp;
  {
    auto scope = testbed::NetnsScope::enter(info.senderNamespace);
    ASSERT_TRUE(scope) << scope.error().message();
    auto loaded = bpf::SteeringProgram::load({});
    ASSERT_TRUE(loaded) << loaded.error().message();
    steering = std::move(*loaded);
    auto config = endpoint(link.senderInterface, link.senderIp, MPXDP_DEFAULT_PORT);
    config.peerIp = IpAddress::parse(link.receiverIp);
    config.peerPort = kUdpPort;
    auto io = transport::openXdpPacketIo(config, steering.get());
    ASSERT_TRUE(io) << io.error().message();
    xdp = std::move(*io);
  }
  EXPECT_EQ(xdp->describe(),
            "xdp:s0 rx q0-1 tx q0 copy " + std::string(bpf::describe(steering->arrivalStamp())));
  EXPECT_EQ(xdp->pollFds().size(), 2u);

  constexpr std::size_t kHello = 8;
  ASSERT_NO_FATAL_FAILURE(sendPayloads(*xdp, kHello));
  for (int i = 0; i < 20; ++i) {
    (void)xdp->flushTx();
    std::this_thread::sleep_for(1ms);
  }

  std::string learnError;
  auto hello = receiveSome(*udp, kHello, 5s, [&](const RxPacket& packet) {
    if (udp->hasPeer()) return;
    auto learned = udp->setPeerFrom(packet);
    if (!learned) learnError = learned.error().message();
  });
  ASSERT_TRUE(hello.error.empty()) << hello.error;
  ASSERT_TRUE(learnError.empty()) << learnError;
  ASSERT_EQ(hello.seqs.size(), kHello);
  ASSERT_TRUE(udp->hasPeer());
  EXPECT_EQ(udp->peerDescription(), link.senderIp + ":" + std::to_string(MPXDP_DEFAULT_PORT));

  constexpr std::size_t kReplies = 32;
  ASSERT_NO_FATAL_FAILURE(sendPayloads(*udp, kReplies, 1000, 1));

  auto back = receiveSome(*xdp, kReplies, 5s);
  ASSERT_TRUE(back.error.empty()) << back.error;
  ASSERT_EQ(back.seqs.size(), kReplies);
  std::vector<bool> seen(kReplies, false);
  for (std::int64_t seq : back.seqs) {
    ASSERT_GE(seq, 1000);
    ASSERT_LT(seq, static_cast<std::int64_t>(1000 + kReplies));
    seen[static_cast<std::size_t>(seq - 1000)] = true;
  }
  for (std::size_t i = 0; i < kReplies; ++i) EXPECT_TRUE(seen[i]) << "reply " << i;
  auto counters = steering->counters();
  ASSERT_TRUE(counters) << counters.error().message();
  EXPECT_EQ(counters->noSocket, 0u);
}

}  // namespace
}  // namespace mpxdp
