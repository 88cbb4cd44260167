// XdpPacketIo between two network namespaces joined by a veth pair, with the
// steering program on the receiving end; and interop with the kernel UDP path.
#include "xdp_packet_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "codec.h"
#include "mpxdp/clock.h"
#include "netlink_route.h"
#include "privilege.h"
#include "steering.h"
#include "tx_kicker.h"
#include "udp_packet_io.h"

namespace mpxdp::transport {
namespace {

using Clock = std::chrono::steady_clock;

int run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

// Two namespaces "<base>-a" and "<base>-b" joined by veth va <-> vb,
// 198.18.200.1/24 on va and .2/24 on vb. Removed on destruction.
class NetnsPair {
 public:
  NetnsPair() : base_("mpxdp-xsktest-" + std::to_string(getpid())) {
    run("ip netns del " + a());
    run("ip netns del " + b());
    const char* steps[] = {
        "ip netns add {a}",
        "ip netns add {b}",
        "ip link add va netns {a} type veth peer name vb netns {b}",
        "ip -n {a} addr add 198.18.200.1/24 dev va",
        "ip -n {b} addr add 198.18.200.2/24 dev vb",
        "ip -n {a} link set lo up",
        "ip -n {b} link set lo up",
        "ip -n {a} link set va up",
        "ip -n {b} link set vb up",
    };
    for (const char* step : steps) {
      std::string command = step;
      for (auto [key, value] : {std::pair<std::string, std::string>{"{a}", a()}, {"{b}", b()}}) {
        for (auto at = command.find(key); at != std::string::npos; at = command.find(key)) {
          command.replace(at, key.size(), value);
        }
      }
      if (run(command) != 0) {
        error_ = "test bed step failed: " + command;
        return;
      }
    }
  }
  ~NetnsPair() {
    run("ip netns del " + a());
    run("ip netns del " + b());
  }
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  const std::string& error() const { return error_; }
  std::string a() const { return base_ + "-a"; }
  std::string b() const { return base_ + "-b"; }

 private:
  std::string base_;
  std::string error_;
};

// Moves the calling thread into a namespace and back (netns is per thread).
class InNetns {
 public:
  explicit InNetns(const std::string& name) {
    original_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = original_ >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0;
    if (target >= 0) close(target);
  }
  ~InNetns() {
    if (original_ >= 0) {
      if (setns(original_, CLONE_NEWNET) != 0) std::perror("setns back");
      close(original_);
    }
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

const IpAddress kAddrA = *IpAddress::parse("198.18.200.1");
const IpAddress kAddrB = *IpAddress::parse("198.18.200.2");
constexpr std::uint16_t kMpPort = MPXDP_DEFAULT_PORT;
constexpr std::uint16_t kOtherPort = MPXDP_DEFAULT_PORT + 1;

LinkEndpointConfig endpoint(const std::string& interface, IpAddress peer, std::uint16_t localPort,
                            std::uint16_t peerPort) {
  LinkEndpointConfig config;
  config.interface = interface;
  config.peerIp = peer;
  config.localPort = localPort;
  config.peerPort = peerPort;
  config.xdpMode = xsk::XdpMode::kCopy;  // veth has no zero-copy
  return config;
}

// Payload seq: a valid multipath header (so the steering program takes it)
// then a pattern derived from seq.
std::uint32_t dataLength(std::uint64_t seq) { return static_cast<std::uint32_t>(8 + (seq * 53) % 1300); }
std::uint32_t writePayload(std::uint8_t* data, std::uint32_t capacity, std::uint64_t seq) {
  wire::MpHeader header;
  header.connId = 0xC0FFEE;
  header.payloadLen = static_cast<std::uint16_t>(dataLength(seq));
  header.pathSeq = static_cast<std::uint32_t>(seq);
  header.globalSeq = seq;
  const std::uint32_t total = static_cast<std::uint32_t>(wire::kMpHeaderLen) + dataLength(seq);
  if (total > capacity || !wire::encodeMpHeader(std::span<std::uint8_t>(data, capacity), header).ok())
    return 0;
  for (std::uint32_t i = 0; i < dataLength(seq); ++i) {
    data[wire::kMpHeaderLen + i] = static_cast<std::uint8_t>(seq * 13 + i);
  }
  return total;
}
bool payloadIntact(const RxPacket& packet, std::uint64_t* seq) {
  auto header = wire::decodeMpHeader(std::span<const std::uint8_t>(packet.data, packet.length));
  if (!header.ok() || header.value.connId != 0xC0FFEE) return false;
  *seq = header.value.globalSeq;
  if (header.value.payloadLen != dataLength(*seq)) return false;
  for (std::uint32_t i = 0; i < header.value.payloadLen; ++i) {
    if (packet.data[wire::kMpHeaderLen + i] != static_cast<std::uint8_t>(*seq * 13 + i)) return false;
  }
  return true;
}

struct TransferResult {
  std::uint64_t received = 0;
  std::uint64_t corrupt = 0;
  double seconds = 0;
  std::uint64_t stamped = 0;            // with the XDP program's arrival time
  std::uint64_t stampsImplausible = 0;  // stamped after the batch was read
};

// Sends total packets in batches, draining the receiver after each batch so
// that it is never overrun. Bounded by a deadline.
TransferResult transfer(PacketIo& sender, PacketIo& receiver, std::uint64_t total, std::size_t batch) {
  TransferResult result;
  std::vector<bool> seen(total, false);
  std::vector<TxBuffer> tx(batch);
  std::vector<RxPacket> rx(batch);
  std::uint64_t next = 0;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(30);
  while (result.received < total && Clock::now() < deadline) {
    if (next < total) {
      const std::size_t want = std::min<std::size_t>(batch, total - next);
      const std::size_t n = sender.reserveTx(std::span<TxBuffer>(tx.data(), want));
      for (std::size_t i = 0; i < n; ++i) tx[i].length = writePayload(tx[i].data, tx[i].capacity, next + i);
      auto sent = sender.commitTx(std::span<const TxBuffer>(tx.data(), n));
      if (!sent.ok()) {
        ADD_FAILURE() << sent.error().message();
        break;
      }
      next += *sent;
    }
    const auto drainUntil = Clock::now() + std::chrono::milliseconds(200);
    while (result.received + result.corrupt < next && Clock::now() < drainUntil) {
      auto got = receiver.receive(rx);
      if (!got.ok()) {
        ADD_FAILURE() << got.error().message();
        return result;
      }
      if (*got == 0) {
        (void)sender.flushTx();
        continue;
      }
      const std::uint64_t readNs = MonotonicClock().nowNs();
      for (std::size_t i = 0; i < *got; ++i) {
        if (rx[i].arrivalNs != 0) {
          ++result.stamped;
          if (rx[i].arrivalNs > readNs) ++result.stampsImplausible;
        }
        std::uint64_t seq = 0;
        if (!payloadIntact(rx[i], &seq) || seq >= total || seen[seq]) {
          ++result.corrupt;
          continue;
        }
        seen[seq] = true;
        ++result.received;
      }
      receiver.release(std::span<const RxPacket>(rx.data(), *got));
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

class XdpPacketIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MPXDP_REQUIRE_PRIVILEGED();
    beds_ = std::make_unique<NetnsPair>();
    ASSERT_TRUE(beds_->error().empty()) << beds_->error();
    auto steering = bpf::SteeringProgram::load(bpf::SteeringOptions{kMpPort});
    ASSERT_TRUE(steering.ok()) << steering.error().message();
    steering_ = std::move(*steering);
  }
  void TearDown() override {
    // Sockets first, then the program, then the namespaces.
    endpoints_.clear();
    steering_.reset();
    beds_.reset();
  }

  PacketIo* keep(std::unique_ptr<PacketIo> io) {
    endpoints_.push_back(std::move(io));
    return endpoints_.back().get();
  }

  // A kernel UDP sender in namespace A towards B. Kernel UDP over veth leaves
  // the checksum to an offload that never happens (CHECKSUM_PARTIAL); a real
  // NIC would fill it in, so the kernel is made to compute it and the AF_XDP
  // receiver sees a wire-valid packet. nullptr after a failed assertion.
  PacketIo* openKernelSenderInA() {
    InNetns inA(beds_->a());
    EXPECT_TRUE(inA.ok());
    EXPECT_EQ(run("ethtool -K va tx off"), 0);
    auto config = endpoint("va", kAddrB, kMpPort, kMpPort);
    config.localIp = kAddrA;
    auto io = openUdpPacketIo(config);
    EXPECT_TRUE(io.ok()) << io.error().message();
    return io.ok() ? keep(std::move(*io)) : nullptr;
  }

  // An AF_XDP receiver on vb behind the steering program; nullptr after a failed assertion.
  PacketIo* openXdpReceiverInB() {
    InNetns inB(beds_->b());
    EXPECT_TRUE(inB.ok());
    auto io = openXdpPacketIo(endpoint("vb", kAddrA, kMpPort, kMpPort), steering_.get());
    EXPECT_TRUE(io.ok()) << io.error().message();
    return io.ok() ? keep(std::move(*io)) : nullptr;
  }

  void kernelUdpIntoXdp(bool stamped);
  void transferWithArrivalStamp(bpf::ArrivalStamp stamp);

  std::unique_ptr<NetnsPair> beds_;
  std::unique_ptr<bpf::SteeringProgram> steering_;
  std::vector<std::unique_ptr<PacketIo>> endpoints_;
};

TEST_F(XdpPacketIoTest, XdpToXdpThroughTheSteeringProgram) {
  PacketIo* receiver = nullptr;
  MacAddress macB;
  {
    InNetns inB(beds_->b());
    ASSERT_TRUE(inB.ok());
    auto io = openXdpPacketIo(endpoint("vb", kAddrA, kMpPort, kMpPort), steering_.get());
    ASSERT_TRUE(io.ok()) << io.error().message();
    receiver = keep(std::move(*io));
    auto info = interfaceInfo("vb");
    ASSERT_TRUE(info.ok());
    macB = info->mac;
  }
  // B's own ARP request taught A its MAC; forget it so that A has to ask,
  // and B's answer has to come from the kernel behind the steering program.
  ASSERT_EQ(run("ip -n " + beds_->a() + " neigh flush dev va"), 0);
  auto passedBefore = steering_->counters();
  ASSERT_TRUE(passedBefore.ok());
  PacketIo* sender = nullptr;
  {
    InNetns inA(beds_->a());
    ASSERT_TRUE(inA.ok());
    auto io = openXdpPacketIo(endpoint("va", kAddrB, kMpPort, kMpPort), nullptr);
    ASSERT_TRUE(io.ok()) << io.error().message();
    sender = keep(std::move(*io));
    // Resolved by ARP, which crossed the steering program on vb.
    auto ifindex = interfaceInfo("va");
    ASSERT_TRUE(ifindex.ok());
    auto neighbour = lookupNeighbour(ifindex->ifindex, kAddrB);
    ASSERT_TRUE(neighbour.ok()) << neighbour.error().message();
    ASSERT_TRUE(neighbour->has_value());
    EXPECT_EQ(**neighbour, macB);
  }
  auto passedAfter = steering_->counters();
  ASSERT_TRUE(passedAfter.ok());
  EXPECT_GE(passedAfter->passed, passedBefore->passed + 1) << "A's ARP request crossed the program on vb";
  EXPECT_EQ(sender->describe(), "xdp:va rx q0 tx q0 copy");
  // The receiver's description says how its program stamps arrivals (the kernel decides).
  EXPECT_EQ(receiver->describe(),
            "xdp:vb rx q0 tx q0 copy " + std::string(bpf::describe(steering_->arrivalStamp())));
  EXPECT_EQ(sender->maxPayload(), 1500u - 28u);
  EXPECT_EQ(sender->frameOverheadBytes(), 14u + 20u + 8u);
  EXPECT_EQ(sender->pollFds().size(), 1u);
  EXPECT_TRUE(sender->hasPeer());
  EXPECT_EQ(sender->peerDescription(), kAddrB.toString() + ":" + std::to_string(kMpPort));

  constexpr std::uint64_t kTotal = 20000;
  const TransferResult result = transfer(*sender, *receiver, kTotal, 64);
  EXPECT_EQ(result.received, kTotal);
  EXPECT_EQ(result.corrupt, 0u);
  // veth keeps XDP metadata and copy mode copies it: every packet carries the
  // time the steering program saw it, never later than user space read it.
  EXPECT_EQ(result.stamped, kTotal);
  EXPECT_EQ(result.stampsImplausible, 0u);
  std::printf(
      "[ perf     ] AF_XDP copy mode, veth, batch 64, paced: %llu packets in %.3f s = %.0f packets/s\n",
      static_cast<unsigned long long>(result.received), result.seconds, result.received / result.seconds);

  const PacketIoStats tx = sender->stats();
  const PacketIoStats rx = receiver->stats();
  EXPECT_EQ(tx.txPackets, kTotal);
  EXPECT_EQ(tx.txInvalidDescs, 0u);
  EXPECT_EQ(rx.rxPackets, kTotal);
  EXPECT_EQ(rx.rxMalformed, 0u);
  EXPECT_EQ(rx.rxDropped, 0u);
  EXPECT_EQ(rx.rxInvalidDescs, 0u);
  EXPECT_EQ(rx.rxRingFull, 0u);
  auto counters = steering_->counters();
  ASSERT_TRUE(counters.ok()) << counters.error().message();
  EXPECT_GE(counters->redirected, kTotal);
  EXPECT_EQ(counters->malformed, 0u);
  EXPECT_EQ(counters->noSocket, 0u);

  // Misuse is an error, not a write into someone else's frame.
  TxBuffer lent[2];
  ASSERT_EQ(sender->reserveTx(lent), 2u);
  lent[1].handle = 12345;
  lent[1].length = 10;
  auto foreign = sender->commitTx(lent);
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code(), EINVAL);
  ASSERT_EQ(sender->reserveTx(lent), 2u);
  lent[0].length = sender->maxPayload() + 1;
  auto tooLong = sender->commitTx(lent);
  ASSERT_FALSE(tooLong.ok());
  EXPECT_EQ(tooLong.error().code(), EMSGSIZE);

  // Everything else still reaches the kernel while the program is attached.
  EXPECT_EQ(run("ip netns exec " + beds_->a() + " ping -c1 -W1 198.18.200.2"), 0);
  EXPECT_EQ(run("ip netns exec " + beds_->b() + " ping -c1 -W1 198.18.200.1"), 0);
}

// --threads 2: a TxKicker thread makes the kernel send. Everything still
// arrives intact, the filling thread never kicks, and closing a link while
// the thread runs (and then the thread) is safe.
TEST_F(XdpPacketIoTest, ATransmitThreadKicksForTheFillingThread) {
  PacketIo* receiver = openXdpReceiverInB();
  ASSERT_NE(receiver, nullptr);
  auto kicker = TxKicker::start();
  ASSERT_TRUE(kicker.ok()) << kicker.error().message();
  std::unique_ptr<PacketIo> sender;
  {
    InNetns inA(beds_->a());
    ASSERT_TRUE(inA.ok());
    auto config = endpoint("va", kAddrB, kMpPort, kMpPort);
    config.txKicker = *kicker;
    auto io = openXdpPacketIo(config, nullptr);
    ASSERT_TRUE(io.ok()) << io.error().message();
    sender = std::move(*io);
  }
  EXPECT_EQ(sender->describe(), "xdp:va rx q0 tx q0 copy tx-thread");
  constexpr std::uint64_t kTotal = 20000;
  const TransferResult result = transfer(*sender, *receiver, kTotal, 64);
  EXPECT_EQ(result.received, kTotal);
  EXPECT_EQ(result.corrupt, 0u);
  EXPECT_GT((*kicker)->kicks(), 0u);
  EXPECT_EQ(sender->stats().txPackets, kTotal);
  // Close the link with a kick requested and the thread perhaps inside it.
  TxBuffer lent[8];
  const std::size_t n = sender->reserveTx(lent);
  for (std::size_t i = 0; i < n; ++i) lent[i].length = writePayload(lent[i].data, lent[i].capacity, i);
  ASSERT_TRUE(sender->commitTx(std::span<const TxBuffer>(lent, n)).ok());
  sender.reset();
  kicker->reset();  // the last owner: stops and joins the thread
}

// Every packet arrives intact, stamped (or not) no later than it was read.
void XdpPacketIoTest::kernelUdpIntoXdp(bool stamped) {
  PacketIo* receiver = openXdpReceiverInB();
  ASSERT_NE(receiver, nullptr);
  PacketIo* sender = openKernelSenderInA();
  ASSERT_NE(sender, nullptr);
  constexpr std::uint64_t kTotal = 5000;
  const TransferResult result = transfer(*sender, *receiver, kTotal, 32);
  EXPECT_EQ(result.received, kTotal);
  EXPECT_EQ(result.corrupt, 0u);
  EXPECT_EQ(result.stamped, stamped ? kTotal : 0u);
  EXPECT_EQ(result.stampsImplausible, 0u);
  EXPECT_EQ(receiver->stats().rxMalformed, 0u);
  const std::string stampWord(bpf::describe(steering_->arrivalStamp()));
  EXPECT_NE(receiver->describe().find(" " + stampWord), std::string::npos) << receiver->describe();
}

TEST_F(XdpPacketIoTest, KernelUdpSenderIntoXdpReceiver) { kernelUdpIntoXdp(true); }

// Each way the steering program can stamp arrivals (a kernel may refuse the
// metadata helper, then the stamp goes in front of the frame) carries every
// packet intact, stamped no later than it was read (or unstamped with kNone).
void XdpPacketIoTest::transferWithArrivalStamp(bpf::ArrivalStamp stamp) {
  auto loaded = bpf::SteeringProgram::load(bpf::SteeringOptions{kMpPort, stamp});
  // Only the verifier's refusal (EINVAL, EACCES) is the kernel's; anything else is a failure.
  if (!loaded.ok() && stamp == bpf::ArrivalStamp::kMetadata &&
      (loaded.error().code() == EINVAL || loaded.error().code() == EACCES)) {
    GTEST_SKIP() << "this kernel refuses bpf_xdp_adjust_meta to XDP programs: " << loaded.error().message();
  }
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  steering_ = std::move(*loaded);
  ASSERT_EQ(steering_->arrivalStamp(), stamp);
  kernelUdpIntoXdp(stamp != bpf::ArrivalStamp::kNone);
  // What the program passes still reaches the kernel as it came.
  EXPECT_EQ(run("ip netns exec " + beds_->a() + " ping -c1 -W1 198.18.200.2"), 0);
}

TEST_F(XdpPacketIoTest, ArrivalStampInTheMetadata) { transferWithArrivalStamp(bpf::ArrivalStamp::kMetadata); }
TEST_F(XdpPacketIoTest, ArrivalStampInFrontOfTheFrame) {
  transferWithArrivalStamp(bpf::ArrivalStamp::kPrepended);
}
TEST_F(XdpPacketIoTest, NoArrivalStamp) { transferWithArrivalStamp(bpf::ArrivalStamp::kNone); }

TEST_F(XdpPacketIoTest, WithoutAPeerTheReceiverIsReceiveOnly) {
  PacketIo* receiver = nullptr;
  {
    InNetns inB(beds_->b());
    ASSERT_TRUE(inB.ok());
    auto config = endpoint("vb", kAddrA, kMpPort, kMpPort);
    config.peerIp.reset();
    auto io = openXdpPacketIo(config, steering_.get());
    ASSERT_TRUE(io.ok()) << io.error().message();
    receiver = keep(std::move(*io));
  }
  EXPECT_NE(receiver->describe().find("rx-only"), std::string::npos) << receiver->describe();
  EXPECT_EQ(receiver->maxPayload(), 1500u - 28u) << "from the MTU, as for a peered link";
  EXPECT_FALSE(receiver->hasPeer());
  EXPECT_EQ(receiver->peerDescription(), "none");
  EXPECT_EQ(receiver->frameOverheadBytes(), 42u);
  TxBuffer lent[4];
  EXPECT_EQ(receiver->reserveTx(lent), 0u);
  EXPECT_TRUE(receiver->flushTx().ok());
  PacketIo* peered = openKernelSenderInA();
  ASSERT_NE(peered, nullptr);
  constexpr std::uint64_t kTotal = 2000;
  const TransferResult result = transfer(*peered, *receiver, kTotal, 32);
  EXPECT_EQ(result.received, kTotal);
  EXPECT_EQ(result.corrupt, 0u);
}

TEST_F(XdpPacketIoTest, XdpSenderIntoKernelUdpReceiver) {
  PacketIo* receiver = nullptr;
  {
    InNetns inB(beds_->b());
    ASSERT_TRUE(inB.ok());
    // The program is attached but steers only kMpPort: kOtherPort goes up the stack.
    auto attached = steering_->attach(static_cast<int>(interfaceInfo("vb")->ifindex));
    ASSERT_TRUE(attached.ok()) << attached.error().message();
    auto config = endpoint("vb", kAddrA, kOtherPort, kOtherPort);
    config.localIp = kAddrB;
    auto io = openUdpPacketIo(config);
    ASSERT_TRUE(io.ok()) << io.error().message();
    receiver = keep(std::move(*io));
  }
  PacketIo* sender = nullptr;
  for (bool checksum : {true, false}) {
    SCOPED_TRACE(checksum ? "with UDP checksum" : "with UDP checksum 0");
    endpoints_.resize(1);  // drop the previous sender: one socket per queue
    {
      InNetns inA(beds_->a());
      ASSERT_TRUE(inA.ok());
      auto config = endpoint("va", kAddrB, kOtherPort, kOtherPort);
      config.udpChecksum = checksum;
      auto io = openXdpPacketIo(config, nullptr);
      ASSERT_TRUE(io.ok()) << io.error().message();
      sender = keep(std::move(*io));
    }
    const std::uint64_t before = receiver->stats().rxPackets;
    constexpr std::uint64_t kTotal = 5000;
    const TransferResult result = transfer(*sender, *receiver, kTotal, 32);
    EXPECT_EQ(result.received, kTotal) << "the kernel drops AF_XDP frames with a bad UDP checksum";
    EXPECT_EQ(result.corrupt, 0u);
    EXPECT_EQ(receiver->stats().rxPackets - before, kTotal);
  }
  auto counters = steering_->counters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ(counters->redirected, 0u);
  EXPECT_GE(counters->passed, 10000u);
}

TEST_F(XdpPacketIoTest, WrongInterfaceForThePeerIsAClearError) {
  InNetns inA(beds_->a());
  ASSERT_TRUE(inA.ok());
  auto io = openXdpPacketIo(endpoint("lo", kAddrB, kMpPort, kMpPort), nullptr);
  ASSERT_FALSE(io.ok());
  EXPECT_NE(io.error().message().find("leaves through va, not lo"), std::string::npos)
      << io.error().message();
}

TEST_F(XdpPacketIoTest, UnreachableNeighbourTimesOutWithAClearError) {
  InNetns inA(beds_->a());
  ASSERT_TRUE(inA.ok());
  auto config = endpoint("va", *IpAddress::parse("198.18.200.77"), kMpPort, kMpPort);
  config.neighbourTimeout = std::chrono::milliseconds(600);
  auto io = openXdpPacketIo(config, nullptr);
  ASSERT_FALSE(io.ok());
  EXPECT_NE(io.error().message().find("could not resolve MAC of 198.18.200.77 on va"), std::string::npos)
      << io.error().message();
}

}  // namespace
}  // namespace mpxdp::transport
