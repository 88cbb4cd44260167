// Receive threads: over real UDP sockets on loopback (no privileges needed),
// and over a link whose reads the test holds, to see what the connection's
// thread may conclude while the receive thread is mid-read.
#include "rx_thread.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "event_fd.h"
#include "loopback_test_link.h"
#include "udp_packet_io.h"

namespace mpxdp::transport {
namespace {

using namespace std::chrono_literals;

using loopback::loopbackEnd;
using loopback::testPort;

// 128 receive buffers: a long run must recycle them.
constexpr std::uint32_t kFrames = 256;

std::shared_ptr<RxThread> startThread(const char* name) {
  auto thread = RxThread::start(std::make_shared<MonotonicClock>(), name);
  EXPECT_TRUE(thread.ok()) << thread.error().message();
  return thread.ok() ? *thread : nullptr;
}

// Sends packets numbered first..first+count-1 (the number, then a pattern).
void sendNumbered(PacketIo& link, std::uint32_t first, std::uint32_t count) {
  std::vector<TxBuffer> tx(count);
  std::size_t reserved = 0;
  while (reserved < count) {
    const std::size_t n = link.reserveTx(std::span<TxBuffer>(tx).subspan(reserved));
    ASSERT_GT(n, 0u);
    reserved += n;
  }
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint32_t seq = first + i;
    std::memcpy(tx[i].data, &seq, sizeof(seq));
    for (std::uint32_t b = 4; b < 200; ++b) tx[i].data[b] = static_cast<std::uint8_t>(seq + b);
    tx[i].length = 200;
  }
  auto sent = link.commitTx(tx);
  ASSERT_TRUE(sent.ok()) << sent.error().message();
  ASSERT_EQ(*sent, count);
  ASSERT_TRUE(link.flushTx().ok());
}

// Waits on the link's descriptors as a run loop does, and takes what is
// ready; checks each packet is the next number and intact, then releases it.
void receiveNumbered(PacketIo& link, std::uint32_t& next, std::uint32_t until) {
  std::vector<pollfd> fds;
  for (int fd : link.pollFds()) fds.push_back({fd, POLLIN, 0});
  std::vector<RxPacket> rx(16);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (next < until) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "stuck before packet " << next;
    ASSERT_GE(::poll(fds.data(), fds.size(), 100), 0);
    auto got = link.receive(rx);
    ASSERT_TRUE(got.ok()) << got.error().message();
    for (std::size_t i = 0; i < *got; ++i) {
      ASSERT_EQ(rx[i].length, 200u);
      std::uint32_t seq = 0;
      std::memcpy(&seq, rx[i].data, sizeof(seq));
      ASSERT_EQ(seq, next);
      for (std::uint32_t b = 4; b < 200; ++b) ASSERT_EQ(rx[i].data[b], static_cast<std::uint8_t>(seq + b));
      ++next;
    }
    link.release(std::span<const RxPacket>(rx.data(), *got));
  }
}

// 20,032 packets through 128 receive buffers: every one arrives intact and in
// order, so released buffers go back to the link and the eventfd wakes the
// reader each time the ring gets packets again.
TEST(RxThread, DeliversEveryPacketInOrderAndRecyclesTheBuffers) {
  auto thread = startThread("rx-test");
  ASSERT_TRUE(thread);
  auto sender = openUdpPacketIo(loopbackEnd(testPort(40), testPort(41), kFrames));
  ASSERT_TRUE(sender.ok()) << sender.error().message();
  auto link = openUdpPacketIo(loopbackEnd(testPort(41), testPort(40), kFrames));
  ASSERT_TRUE(link.ok()) << link.error().message();
  auto receiver = receiveOnThread(std::move(*link), thread);
  ASSERT_TRUE(receiver.ok()) << receiver.error().message();
  EXPECT_NE((*receiver)->describe().find("rx-thread"), std::string::npos) << (*receiver)->describe();
  ASSERT_EQ((*receiver)->pollFds().size(), 1u);

  std::uint32_t next = 0;
  for (std::uint32_t first = 0; first < 20000; first += 64) {
    sendNumbered(**sender, first, 64);
    receiveNumbered(**receiver, next, first + 64);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_EQ((*receiver)->stats().rxPackets, next);
}

// Two links on one thread: each gets its own packets.
TEST(RxThread, LinksSharingAThreadKeepTheirOwnPackets) {
  auto thread = startThread("rx-test2");
  ASSERT_TRUE(thread);
  std::vector<std::unique_ptr<PacketIo>> senders;
  std::vector<std::unique_ptr<PacketIo>> receivers;
  for (int l = 0; l < 2; ++l) {
    auto sender = openUdpPacketIo(loopbackEnd(testPort(50 + 2 * l), testPort(51 + 2 * l), kFrames));
    ASSERT_TRUE(sender.ok()) << sender.error().message();
    auto link = openUdpPacketIo(loopbackEnd(testPort(51 + 2 * l), testPort(50 + 2 * l), kFrames));
    ASSERT_TRUE(link.ok()) << link.error().message();
    auto receiver = receiveOnThread(std::move(*link), thread);
    ASSERT_TRUE(receiver.ok()) << receiver.error().message();
    senders.push_back(std::move(*sender));
    receivers.push_back(std::move(*receiver));
  }
  std::uint32_t next[2] = {0, 1000000};
  for (std::uint32_t round = 0; round < 50; ++round) {
    sendNumbered(*senders[0], round * 32, 32);
    sendNumbered(*senders[1], 1000000 + round * 32, 32);
    receiveNumbered(*receivers[1], next[1], 1000000 + (round + 1) * 32);
    receiveNumbered(*receivers[0], next[0], (round + 1) * 32);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // One goes, the other still works.
  receivers.pop_back();
  sendNumbered(*senders[0], next[0], 32);
  receiveNumbered(*receivers[0], next[0], next[0] + 32);
}

// A link whose receive() the test holds inside the call, hands out packets
// the test queued, and records on which thread buffers come back.
class HeldLink final : public PacketIo {
 public:
  HeldLink() : event_(makeEventFd()) {}
  ~HeldLink() override { ::close(event_); }

  void queue(std::uint32_t count) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (std::uint32_t i = 0; i < count; ++i) waiting_.push_back(next_++);
    signalEventFd(event_);
  }
  // The next receive() waits inside until let go.
  void hold() {
    std::lock_guard<std::mutex> lock(mutex_);
    held_ = true;
  }
  void letGo() {
    std::lock_guard<std::mutex> lock(mutex_);
    held_ = false;
    changed_.notify_all();
  }
  bool waitUntilInsideHeldRead() {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, 5s, [this] { return insideHeld_; });
  }
  void failWith(int code) {
    std::lock_guard<std::mutex> lock(mutex_);
    failure_ = code;
    signalEventFd(event_);
  }
  std::thread::id releasedOn() {
    std::lock_guard<std::mutex> lock(mutex_);
    return releasedOn_;
  }
  std::uint64_t released() {
    std::lock_guard<std::mutex> lock(mutex_);
    return released_;
  }

  std::size_t reserveTx(std::span<TxBuffer>) noexcept override { return 0; }
  Result<std::size_t> commitTx(std::span<const TxBuffer>) noexcept override { return std::size_t{0}; }
  Result<void> flushTx() noexcept override { return {}; }
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (held_) {
      insideHeld_ = true;
      changed_.notify_all();
      changed_.wait(lock, [this] { return !held_; });
      insideHeld_ = false;
    }
    if (failure_ != 0) return Error(failure_, "held link");
    drainEventFd(event_);
    std::size_t n = 0;
    while (n < out.size() && !waiting_.empty()) {
      out[n] = RxPacket{.data = payload_, .length = 4, .handle = waiting_.front(), .arrivalNs = 0};
      waiting_.pop_front();
      ++n;
    }
    if (!waiting_.empty()) {  // still readable
      signalEventFd(event_);
    }
    return n;
  }
  void release(std::span<const RxPacket> packets) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    released_ += packets.size();
    releasedOn_ = std::this_thread::get_id();
  }
  std::vector<int> pollFds() const override { return {event_}; }
  std::uint32_t maxPayload() const noexcept override { return 1400; }
  std::uint32_t frameOverheadBytes() const noexcept override { return 42; }
  Result<void> setPeerFrom(const RxPacket&) noexcept override { return {}; }
  bool hasPeer() const noexcept override { return true; }
  std::string peerDescription() const override { return "held"; }
  PacketIoStats stats() const noexcept override { return {}; }
  std::string describe() const override { return "held"; }
  std::uint32_t receiveBuffersPerQueue() const noexcept override { return buffers_; }
  std::uint32_t buffers_ = 1024;

 private:
  int event_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::uint64_t> waiting_;
  std::uint64_t next_ = 0;
  bool held_ = false;
  bool insideHeld_ = false;
  int failure_ = 0;
  std::uint64_t released_ = 0;
  std::thread::id releasedOn_;
  std::uint8_t payload_[4] = {};
};

// A HeldLink received on a thread of its own.
struct HeldOnThread {
  std::shared_ptr<RxThread> thread;
  HeldLink* held = nullptr;
  std::unique_ptr<PacketIo> link;
};
HeldOnThread heldOnThread(const char* name) {
  HeldOnThread out;
  out.thread = startThread(name);
  if (!out.thread) return out;
  auto owned = std::make_unique<HeldLink>();
  out.held = owned.get();
  auto wrapped = receiveOnThread(std::move(owned), out.thread);
  EXPECT_TRUE(wrapped.ok()) << wrapped.error().message();
  if (wrapped.ok()) out.link = std::move(*wrapped);
  return out;
}

// Takes everything ready within 5 s.
std::size_t takeAll(PacketIo& link, std::vector<RxPacket>& into, std::size_t expected) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::vector<RxPacket> rx(64);
  while (into.size() < expected && std::chrono::steady_clock::now() < deadline) {
    pollfd fd{link.pollFds()[0], POLLIN, 0};
    (void)::poll(&fd, 1, 50);
    auto got = link.receive(rx);
    if (!got.ok()) break;
    into.insert(into.end(), rx.begin(), rx.begin() + static_cast<std::ptrdiff_t>(*got));
  }
  return into.size();
}

// While the thread is inside a read, an empty ring does not mean the link was
// drained: the judgement time stays at when the thread last found it so.
// Once the thread sleeps with the link drained, it is the caller's time.
TEST(RxThread, AnEmptyRingIsNotADrainedLinkWhileTheThreadReads) {
  auto setup = heldOnThread("rx-test3");
  ASSERT_TRUE(setup.link);
  auto& thread = setup.thread;
  HeldLink& held = *setup.held;
  auto& receiver = setup.link;
  PacketIo& link = *receiver;

  held.queue(10);
  std::vector<RxPacket> got;
  ASSERT_EQ(takeAll(link, got, 10), 10u);
  // Drained and asleep: judged as of the caller's read.
  const auto sleepDeadline = std::chrono::steady_clock::now() + 5s;
  while (!thread->parked() && std::chrono::steady_clock::now() < sleepDeadline)
    std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(thread->parked());
  std::vector<RxPacket> none(8);
  ASSERT_EQ(*link.receive(none), 0u);
  const std::uint64_t readNs = thread->clock().nowNs();
  EXPECT_EQ(link.drainedAsOfNs(readNs), readNs);

  held.hold();
  const std::uint64_t beforeNs = thread->clock().nowNs();
  held.queue(5);  // wakes the thread, which stops inside its read
  ASSERT_TRUE(held.waitUntilInsideHeldRead());
  std::this_thread::sleep_for(2ms);
  ASSERT_EQ(*link.receive(none), 0u);
  const std::uint64_t laterNs = thread->clock().nowNs();
  EXPECT_LE(link.drainedAsOfNs(laterNs), beforeNs) << "the 5 packets are in the link, not handed out";
  held.letGo();
  got.clear();
  ASSERT_EQ(takeAll(link, got, 5), 5u);
  EXPECT_EQ(got.front().handle, 10u);
  link.release(got);
}

// Buffers come back to the link on the receive thread (one producer for an
// AF_XDP fill ring), however many the caller releases.
TEST(RxThread, ReleasedBuffersGoBackOnTheReceiveThread) {
  auto setup = heldOnThread("rx-test4");
  ASSERT_TRUE(setup.link);
  HeldLink& held = *setup.held;
  auto& receiver = setup.link;
  held.queue(300);
  std::vector<RxPacket> got;
  ASSERT_EQ(takeAll(*receiver, got, 300), 300u);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i].handle, i);
  receiver->release(got);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (held.released() < 300 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(held.released(), 300u);
  EXPECT_NE(held.releasedOn(), std::this_thread::get_id());
}

// A read that fails reaches the caller as that error, and wakes it.
TEST(RxThread, AFailedReadIsTheCallersError) {
  auto setup = heldOnThread("rx-test5");
  ASSERT_TRUE(setup.link);
  HeldLink& held = *setup.held;
  auto& receiver = setup.link;
  held.failWith(ENETDOWN);
  pollfd fd{receiver->pollFds()[0], POLLIN, 0};
  ASSERT_EQ(::poll(&fd, 1, 5000), 1);
  std::vector<RxPacket> rx(8);
  auto got = receiver->receive(rx);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ENETDOWN);
  EXPECT_NE(got.error().context().find("held link"), std::string::npos) << got.error().message();
}

// A link that cannot say how many buffers it lends cannot be sized for.
TEST(RxThread, RefusesALinkWithoutAFixedNumberOfBuffers) {
  auto thread = startThread("rx-test6");
  ASSERT_TRUE(thread);
  auto owned = std::make_unique<HeldLink>();
  owned->buffers_ = UINT32_MAX;
  auto receiver = receiveOnThread(std::move(owned), thread);
  ASSERT_FALSE(receiver.ok());
  EXPECT_EQ(receiver.error().code(), EINVAL);
  EXPECT_EQ(receiveOnThread(nullptr, thread).error().code(), EINVAL);
}

// Going away with packets in both rings and the thread asleep or busy.
TEST(RxThread, GoesAwayWithPacketsInFlight) {
  for (int i = 0; i < 20; ++i) {
    auto thread = startThread("rx-test7");
    ASSERT_TRUE(thread);
    auto owned = std::make_unique<HeldLink>();
    HeldLink& held = *owned;
    auto receiver = receiveOnThread(std::move(owned), thread);
    ASSERT_TRUE(receiver.ok());
    held.queue(100);
    std::vector<RxPacket> rx(10);
    (void)(*receiver)->receive(rx);
    (*receiver)->release(std::span<const RxPacket>(rx.data(), 5));
    if (i % 2 == 0) thread.reset();  // the link keeps the thread alive
    receiver = Error(0, "");
  }
}

}  // namespace
}  // namespace mpxdp::transport
