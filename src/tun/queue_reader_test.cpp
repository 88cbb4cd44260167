#include "queue_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace mpxdp::tun {
namespace {

using namespace std::chrono_literals;

// A non-blocking SOCK_SEQPACKET pair: one packet per read, as a TUN queue gives.
struct PacketPair {
  UniqueFd readEnd;
  UniqueFd writeEnd;
  PacketPair() {
    std::array<int, 2> fds{};
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()), 0);
    readEnd = UniqueFd(fds[0]);
    writeEnd = UniqueFd(fds[1]);
  }
  bool send(std::uint32_t index, std::size_t bytes) const {
    std::vector<std::uint8_t> packet(bytes);
    for (std::size_t i = 0; i < bytes; ++i) packet[i] = static_cast<std::uint8_t>(index * 31 + i);
    return ::write(writeEnd.get(), packet.data(), packet.size()) == static_cast<ssize_t>(bytes);
  }
};

bool isPacket(std::span<const std::uint8_t> got, std::uint32_t index, std::size_t bytes) {
  if (got.size() != bytes) return false;
  for (std::size_t i = 0; i < bytes; ++i) {
    if (got[i] != static_cast<std::uint8_t>(index * 31 + i)) return false;
  }
  return true;
}

// Waits on the reader as the tunnel does: sleep on readyFd only when the ring is empty.
std::span<const std::uint8_t> waitForPacket(QueueReader& reader, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto got = reader.front(); !got.empty()) return got;
    pollfd ready{reader.readyFd(), POLLIN, 0};
    if (::poll(&ready, 1, 100) > 0) reader.clearReady();
  }
  return {};
}

TEST(QueueReader, HandsOverEveryPacketIntactAndInOrder) {
  PacketPair pair;
  auto reader = QueueReader::start(pair.readEnd.get(), 4, 2048, "test queue");
  ASSERT_TRUE(reader) << reader.error().message();
  // More packets than slots, written while the consumer takes them: the
  // reader both fills the ring and waits for room.
  constexpr std::uint32_t kPackets = 5000;
  std::thread writer([&] {
    for (std::uint32_t i = 0; i < kPackets; ++i) {
      while (!pair.send(i, 64 + i % 1400)) std::this_thread::sleep_for(50us);  // socket buffer full
    }
  });
  for (std::uint32_t i = 0; i < kPackets; ++i) {
    auto got = waitForPacket(**reader, 5000ms);
    ASSERT_TRUE(isPacket(got, i, 64 + i % 1400)) << "packet " << i << " (" << got.size() << " bytes)";
    (*reader)->pop();
  }
  writer.join();
  EXPECT_EQ((*reader)->reads(), kPackets);
  EXPECT_FALSE((*reader)->failure());
}

TEST(QueueReader, AFullRingStopsTheReads) {
  PacketPair pair;
  auto reader = QueueReader::start(pair.readEnd.get(), 2, 2048, "test queue");
  ASSERT_TRUE(reader);
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(pair.send(i, 100));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ((*reader)->reads(), 2U) << "the reader went on reading into a full ring";
  // The rest waits in the queue (the socket here), not lost.
  for (std::uint32_t i = 0; i < 10; ++i) {
    auto got = waitForPacket(**reader, 2000ms);
    ASSERT_TRUE(isPacket(got, i, 100)) << "packet " << i;
    (*reader)->pop();
  }
  EXPECT_TRUE((*reader)->front().empty());
}

TEST(QueueReader, ReadyWhenAPacketComesToAnEmptyRing) {
  PacketPair pair;
  auto reader = QueueReader::start(pair.readEnd.get(), 8, 2048, "test queue");
  ASSERT_TRUE(reader);
  pollfd ready{(*reader)->readyFd(), POLLIN, 0};
  EXPECT_EQ(::poll(&ready, 1, 50), 0) << "ready with nothing read";
  ASSERT_TRUE(pair.send(7, 300));
  ASSERT_EQ(::poll(&ready, 1, 2000), 1);
  (*reader)->clearReady();
  EXPECT_TRUE(isPacket((*reader)->front(), 7, 300));
  (*reader)->pop();
  EXPECT_EQ(::poll(&ready, 1, 0), 0);
}

TEST(QueueReader, AFailedReadStopsTheThreadAndSaysWhy) {
  // A datagram larger than the slot: SOCK_SEQPACKET truncates silently, so
  // use a descriptor that can not be read instead: the write end of a pipe.
  std::array<int, 2> pipeFds{};
  ASSERT_EQ(pipe2(pipeFds.data(), O_NONBLOCK | O_CLOEXEC), 0);
  UniqueFd readEnd(pipeFds[0]);
  UniqueFd writeEnd(pipeFds[1]);
  auto reader = QueueReader::start(writeEnd.get(), 4, 2048, "queue 3 of mpx0");
  ASSERT_TRUE(reader);
  pollfd ready{(*reader)->readyFd(), POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 2000), 1);
  auto failure = (*reader)->failure();
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->code(), EBADF);
  EXPECT_NE(failure->message().find("queue 3 of mpx0"), std::string::npos) << failure->message();
}

TEST(QueueReader, TheEndOfTheFileIsAFailureNotAnEmptyPacket) {
  PacketPair pair;
  auto reader = QueueReader::start(pair.readEnd.get(), 4, 2048, "test queue");
  ASSERT_TRUE(reader);
  ASSERT_TRUE(pair.send(1, 100));
  pair.writeEnd.reset();
  // The packet before the end still comes through.
  ASSERT_TRUE(isPacket(waitForPacket(**reader, 2000ms), 1, 100));
  (*reader)->pop();
  // As the tunnel does: look at the reader, sleep on readyFd only when it has nothing to say.
  pollfd ready{(*reader)->readyFd(), POLLIN, 0};
  if (!(*reader)->failure()) ASSERT_EQ(::poll(&ready, 1, 2000), 1);
  auto failure = (*reader)->failure();
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->code(), EPIPE);
  EXPECT_TRUE((*reader)->front().empty());
  EXPECT_EQ((*reader)->reads(), 1U);
}

TEST(QueueReader, StopsWhileWaitingOnAnEmptyOrAFullRing) {
  for (const int packets : {0, 3}) {
    PacketPair pair;
    auto reader = QueueReader::start(pair.readEnd.get(), 2, 2048, "test queue");
    ASSERT_TRUE(reader);
    for (int i = 0; i < packets; ++i) ASSERT_TRUE(pair.send(static_cast<std::uint32_t>(i), 10));
    std::this_thread::sleep_for(20ms);
    const auto before = std::chrono::steady_clock::now();
    reader->reset();
    EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);
  }
}

TEST(QueueReader, RefusesNonsense) {
  EXPECT_EQ(QueueReader::start(-1, 4, 2048, "q").error().code(), EINVAL);
  EXPECT_EQ(QueueReader::start(0, 0, 2048, "q").error().code(), EINVAL);
  EXPECT_EQ(QueueReader::start(0, 4, 0, "q").error().code(), EINVAL);
}

}  // namespace
}  // namespace mpxdp::tun
