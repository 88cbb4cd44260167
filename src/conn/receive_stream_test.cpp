// ReceiveStream's judgement of late packets (ConnectionStats::lateQueued)
// over a PathSet whose reads the test states.
#include "receive_stream.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <string>

namespace mpxdp::conn {
namespace {

constexpr std::uint64_t kMs = 1'000'000;

class StatedPaths final : public PathSet {
 public:
  std::array<std::uint64_t, 2> foundEmpty{};

  std::size_t size() const noexcept override { return foundEmpty.size(); }
  PacketIo& io(std::size_t /*path*/) noexcept override { std::abort(); }  // a stream never sends
  std::uint64_t rateBps(std::size_t /*path*/) const noexcept override { return 0; }
  const std::string& name(std::size_t /*path*/) const noexcept override { return name_; }
  bool backup(std::size_t /*path*/) const noexcept override { return false; }
  void queueRelease(std::size_t /*path*/, const RxPacket& /*packet*/) noexcept override {}
  void flushReleases() noexcept override {}
  void learnPeer(std::size_t /*path*/, const RxPacket& /*packet*/) noexcept override {}
  std::uint64_t foundEmptyNs(std::size_t path) const noexcept override { return foundEmpty[path]; }
  Result<void> pump() noexcept override { return {}; }

 private:
  std::string name_ = "link";
};

ArrivingData packet(std::uint16_t path, std::uint64_t seq, std::uint64_t stampNs) {
  ArrivingData data;
  data.link = path;
  data.packet.arrivalNs = stampNs;
  data.packetNumber = seq;
  data.globalSeq = seq;
  data.sendTsNs = stampNs;
  return data;
}

// Seq 1 goes missing (0 and 2 come on path 0, 3 on path 1, at 1 ms), is
// judged lost at 200 ms (a hole with nothing arriving after it waits several
// timeouts), and then arrives on path 1 stamped at 2 ms.
ConnectionStats lateArrivalStampedBeforeItsJudgement(std::uint64_t path1FoundEmptyNs) {
  ConnectionConfig config;
  config.reorder.kind = reorder::ReorderKind::kWindow;
  config.reorder.adaptiveTimeout = false;
  config.reorder.fixedTimeoutNs = 5 * kMs;
  config.reorder.fastLoss = false;
  StatedPaths paths;
  auto stream = ReceiveStream::create(config, paths);
  EXPECT_TRUE(stream.ok());
  if (!stream.ok()) return {};
  ReceiveStream& s = **stream;
  s.onData(packet(0, 0, 1 * kMs), 1 * kMs, 1 * kMs);
  s.onData(packet(0, 2, 1 * kMs), 1 * kMs, 1 * kMs);
  s.onData(packet(1, 3, 1 * kMs), 1 * kMs, 1 * kMs);
  s.onDrained(200 * kMs, 200 * kMs);
  paths.foundEmpty[1] = path1FoundEmptyNs;
  s.onData(packet(1, 1, 2 * kMs), 201 * kMs, 200 * kMs);
  ConnectionStats stats;
  s.fillStats(stats);
  return stats;
}

// Path 1 was never found empty after the stamp: the packet was readable when
// its loss was judged, and the receiver should have read it first.
TEST(ReceiveStreamTest, ALatePacketItsPathHeldReadableIsQueued) {
  const ConnectionStats stats = lateArrivalStampedBeforeItsJudgement(0);
  EXPECT_EQ(stats.lost, 1u);
  EXPECT_EQ(stats.late, 1u);
  EXPECT_EQ(stats.lateQueued, 1u);
}

// A read of path 1 at 3 ms found its ring empty: the kernel had stamped the
// packet but not published it (on the test bed's veth one sat unpublished for
// 100 ms, until the link's next packet). Late, but not the receiver's doing.
TEST(ReceiveStreamTest, ALatePacketNotYetPublishedWhenItsPathWasReadIsNotQueued) {
  const ConnectionStats stats = lateArrivalStampedBeforeItsJudgement(3 * kMs);
  EXPECT_EQ(stats.lost, 1u);
  EXPECT_EQ(stats.late, 1u);
  EXPECT_EQ(stats.lateQueued, 0u);
}

}  // namespace
}  // namespace mpxdp::conn
