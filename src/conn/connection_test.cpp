// Loopback connections over in-memory links driven by a ManualClock.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "mpxdp/connection.h"
#include "testing_transport.h"
#include "wire/codec.h"

// Counts every allocation in this test binary, to prove the per-packet path
// allocates nothing. (GCC cannot see that new and delete below pair up.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<std::uint64_t> gAllocations{0};
}  // namespace

void* operator new(std::size_t size) {
  gAllocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace mpxdp {
namespace {

using conn::testing::MemoryLinkOptions;
using conn::testing::MemoryWire;

constexpr std::uint64_t kUs = 1'000;
constexpr std::uint64_t kMs = 1'000'000;

std::uint32_t payloadSize(std::uint64_t i) { return 64 + static_cast<std::uint32_t>((i * 37) % 900); }

void fillPayload(std::uint64_t i, std::span<std::uint8_t> out) {
  for (std::size_t j = 0; j < out.size(); ++j) out[j] = static_cast<std::uint8_t>(i * 131 + j * 7);
  std::memcpy(out.data(), &i, sizeof i);
}

bool payloadIntact(std::uint64_t i, std::span<const std::uint8_t> payload) {
  if (payload.size() != payloadSize(i)) return false;
  std::uint64_t tag = 0;
  std::memcpy(&tag, payload.data(), sizeof tag);
  if (tag != i) return false;
  for (std::size_t j = sizeof tag; j < payload.size(); ++j) {
    if (payload[j] != static_cast<std::uint8_t>(i * 131 + j * 7)) return false;
  }
  return true;
}

bool isEndMarker(std::span<const std::uint8_t> payload) {
  return payload.size() >= 4 && (payload[3] & MPXDP_FLAG_END) != 0;
}

class Loopback {
 public:
  Loopback(const ConnectionConfig& config, std::vector<MemoryLinkOptions> links,
           std::vector<std::uint64_t> ratesBps = {})
      : clock_(std::make_shared<ManualClock>(1'000 * kMs)) {
    std::vector<Link> txLinks;
    std::vector<Link> rxLinks;
    for (std::size_t i = 0; i < links.size(); ++i) {
      auto link = conn::testing::makeMemoryLink(std::move(links[i]), clock_);
      PathConfig path;
      path.rateBps = i < ratesBps.size() ? ratesBps[i] : 0;
      txLinks.push_back(Link{std::move(link.txEnd), path});
      rxLinks.push_back(Link{std::move(link.rxEnd), path});
      wires_.push_back(std::move(link.wire));
    }
    auto sender = Sender::create(config, std::move(txLinks), clock_);
    EXPECT_TRUE(sender.ok()) << (sender.ok() ? "" : sender.error().message());
    if (sender.ok()) sender_ = std::move(*sender);
    auto receiver = Receiver::create(config, std::move(rxLinks), clock_);
    EXPECT_TRUE(receiver.ok()) << (receiver.ok() ? "" : receiver.error().message());
    if (receiver.ok()) receiver_ = std::move(*receiver);
    for (auto& buffer : buffers_) buffer.resize(2048);
    delivered_.reserve(1 << 16);
  }

  bool ready() const { return sender_ && receiver_; }
  ManualClock& clock() { return *clock_; }
  Sender& sender() { return *sender_; }
  Receiver& receiver() { return *receiver_; }
  MemoryWire& wire(std::size_t i) { return *wires_[i]; }
  const std::vector<std::uint64_t>& delivered() const { return delivered_; }
  std::uint64_t corrupt() const { return corrupt_; }

  // Polls the receiver until it has nothing more; checks and releases.
  void drain() {
    std::array<Delivered, 48> out;
    for (int guard = 0; guard < 100000; ++guard) {
      auto n = receiver_->poll(out);
      ASSERT_TRUE(n.ok()) << n.error().message();
      if (*n == 0) return;
      for (std::size_t i = 0; i < *n; ++i) {
        const Delivered& d = out[i];
        if (!payloadIntact(d.globalSeq, std::span<const std::uint8_t>(d.data, d.length))) ++corrupt_;
        if (delivered_.size() < delivered_.capacity()) delivered_.push_back(d.globalSeq);
      }
      receiver_->release(std::span<const Delivered>(out.data(), *n));
    }
  }

  // Sends payloads [next, next + count) through the copying sendMany,
  // advancing simulated time by stepNs between batches.
  void sendCopying(std::uint64_t count, std::uint64_t stepNs = 10 * kUs) {
    std::array<std::span<const std::uint8_t>, 32> spans;
    const std::uint64_t end = next_ + count;
    for (int guard = 0; next_ < end && guard < 1'000'000; ++guard) {
      const std::size_t k = std::min<std::uint64_t>(spans.size(), end - next_);
      for (std::size_t j = 0; j < k; ++j) {
        const std::uint32_t size = payloadSize(next_ + j);
        fillPayload(next_ + j, std::span<std::uint8_t>(buffers_[j].data(), size));
        spans[j] = std::span<const std::uint8_t>(buffers_[j].data(), size);
      }
      auto sent = sender_->sendMany(std::span<const std::span<const std::uint8_t>>(spans.data(), k));
      ASSERT_TRUE(sent.ok()) << sent.error().message();
      next_ += *sent;
      clock_->advance(stepNs);
      drain();
    }
    ASSERT_EQ(next_, end);
  }

  // Sends payloads [next, next + count) through reserve/commit.
  void sendZeroCopy(std::uint64_t count, std::uint64_t stepNs = 10 * kUs) {
    std::array<SendSlot, 32> slots;
    const std::uint64_t end = next_ + count;
    for (int guard = 0; next_ < end && guard < 1'000'000; ++guard) {
      const std::size_t want = std::min<std::uint64_t>(slots.size(), end - next_);
      const std::size_t n = sender_->reserve(std::span<SendSlot>(slots.data(), want));
      for (std::size_t j = 0; j < n; ++j) {
        const std::uint32_t size = payloadSize(next_ + j);
        fillPayload(next_ + j, std::span<std::uint8_t>(slots[j].data, size));
        slots[j].length = size;
      }
      auto committed = sender_->commit(std::span<const SendSlot>(slots.data(), n));
      ASSERT_TRUE(committed.ok()) << committed.error().message();
      ASSERT_EQ(*committed, n);
      next_ += n;
      clock_->advance(stepNs);
      drain();
    }
    ASSERT_EQ(next_, end);
  }

  // finish(), then keeps polling until the receiver is finished or limitNs passed.
  bool finishAndDrain(std::uint64_t limitNs, std::uint64_t stepNs = 100 * kUs) {
    auto finished = sender_->finish();
    EXPECT_TRUE(finished.ok()) << finished.error().message();
    return drainUntilFinished(limitNs, stepNs);
  }

  bool drainUntilFinished(std::uint64_t limitNs, std::uint64_t stepNs = 100 * kUs) {
    const std::uint64_t deadline = clock_->nowNs() + limitNs;
    drain();
    while (!receiver_->finished() && clock_->nowNs() < deadline) {
      clock_->advance(stepNs);
      drain();
    }
    drain();
    return receiver_->finished();
  }

  std::uint64_t sent() const { return next_; }

 private:
  std::shared_ptr<ManualClock> clock_;
  std::vector<std::shared_ptr<MemoryWire>> wires_;
  std::unique_ptr<Sender> sender_;
  std::unique_ptr<Receiver> receiver_;
  std::array<std::vector<std::uint8_t>, 32> buffers_;
  std::vector<std::uint64_t> delivered_;
  std::uint64_t corrupt_ = 0;
  std::uint64_t next_ = 0;
};

std::vector<MemoryLinkOptions> threeLinks(std::uint64_t d0, std::uint64_t d1, std::uint64_t d2) {
  std::vector<MemoryLinkOptions> links(3);
  links[0].delayNs = d0;
  links[1].delayNs = d1;
  links[2].delayNs = d2;
  return links;
}

ConnectionConfig configWith(reorder::ReorderKind kind) {
  ConnectionConfig config;
  config.connId = 0xC0FFEE;
  config.reorder.kind = kind;
  // The adaptive hole timeout knows no delay spread before the slowest path is
  // heard from (it is just the margin then); these links differ by up to 2 ms.
  config.reorder.timeoutMarginNs = 3 * kMs;
  return config;
}

bool strictlyIncreasing(const std::vector<std::uint64_t>& seqs) {
  return std::adjacent_find(seqs.begin(), seqs.end(), std::greater_equal<>()) == seqs.end();
}

TEST(Connection, ThreeLinksWithDifferentDelaysDeliverInOrderWithWindow) {
  Loopback lo(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 500 * kUs, 2 * kMs));
  ASSERT_TRUE(lo.ready());
  constexpr std::uint64_t kCount = 3000;
  lo.sendCopying(kCount);
  ASSERT_TRUE(lo.finishAndDrain(50 * kMs));

  ASSERT_EQ(lo.delivered().size(), kCount);
  EXPECT_TRUE(strictlyIncreasing(lo.delivered()));
  EXPECT_EQ(lo.delivered().front(), 0u);
  EXPECT_EQ(lo.delivered().back(), kCount - 1);
  EXPECT_EQ(lo.corrupt(), 0u);

  const ConnectionStats rx = lo.receiver().stats();
  const ConnectionStats tx = lo.sender().stats();
  EXPECT_EQ(tx.packetsSent, kCount);
  EXPECT_EQ(rx.packetsDelivered, kCount);
  EXPECT_EQ(rx.bytesDelivered, tx.bytesSent);
  EXPECT_GT(rx.outOfOrderArrived, 0u);
  EXPECT_EQ(rx.outOfOrderDelivered, 0u);
  EXPECT_EQ(rx.lost, 0u);
  EXPECT_EQ(rx.malformed, 0u);
  EXPECT_EQ(rx.hold.samples, kCount);
  EXPECT_GT(rx.hold.p99Ns, 0u);
  EXPECT_LE(rx.hold.p50Ns, rx.hold.p90Ns);
  EXPECT_LE(rx.hold.p90Ns, rx.hold.p99Ns);
  EXPECT_LE(rx.hold.p99Ns, rx.hold.maxNs);
  const std::uint64_t delays[] = {100 * kUs, 500 * kUs, 2 * kMs};
  for (std::size_t p = 0; p < 3; ++p) {
    EXPECT_GT(tx.paths[p].packetsSent, kCount / 4) << p;  // round robin spreads the load
    EXPECT_EQ(rx.paths[p].packetsReceived, tx.paths[p].packetsSent) << p;
    EXPECT_EQ(rx.paths[p].bytesReceived, tx.paths[p].bytesSent) << p;
    EXPECT_EQ(rx.paths[p].lostSeen, 0u) << p;
    EXPECT_EQ(tx.paths[p].endMarkers, 3u) << p;
    EXPECT_GE(rx.paths[p].endMarkers, 1u) << p;
    ASSERT_TRUE(rx.paths[p].owdValid);
    EXPECT_GE(rx.paths[p].owdMinNs, static_cast<std::int64_t>(delays[p])) << p;
    EXPECT_LE(rx.paths[p].owdMinNs, static_cast<std::int64_t>(delays[p] + 10 * kUs)) << p;
  }
  const ConnectionState state = lo.receiver().state();
  EXPECT_EQ(state.phase, ConnectionPhase::kFinished);
  EXPECT_TRUE(state.endSeen);
  EXPECT_EQ(state.finalSeq, kCount);
  EXPECT_FALSE(state.endedByIdleTimeout);
  EXPECT_EQ(state.heldPackets, 0u);
  lo.clock().advance(10 * kMs);  // the repeated END markers arrive after the end
  lo.drain();
  for (std::size_t p = 0; p < 3; ++p) EXPECT_EQ(lo.wire(p).framesOutstanding(), 0u) << p;
  EXPECT_EQ(lo.receiver().stats().paths[0].endMarkers, 3u);
}

TEST(Connection, DefaultReorderOptionsDeliverInOrderOverSimilarLinks) {
  ConnectionConfig config;
  config.connId = 7;
  Loopback lo(config, threeLinks(100 * kUs, 250 * kUs, 400 * kUs));
  ASSERT_TRUE(lo.ready());
  lo.sendZeroCopy(5000, 20 * kUs);
  ASSERT_TRUE(lo.finishAndDrain(50 * kMs));
  ASSERT_EQ(lo.delivered().size(), 5000u);
  EXPECT_TRUE(strictlyIncreasing(lo.delivered()));
  EXPECT_EQ(lo.corrupt(), 0u);
  EXPECT_GT(lo.receiver().stats().outOfOrderArrived, 0u);
  EXPECT_EQ(lo.receiver().stats().lost, 0u);
}

TEST(Connection, ReorderOffDeliversOutOfOrder) {
  Loopback lo(configWith(reorder::ReorderKind::kOff), threeLinks(100 * kUs, 500 * kUs, 2 * kMs));
  ASSERT_TRUE(lo.ready());
  constexpr std::uint64_t kCount = 3000;
  lo.sendCopying(kCount);
  ASSERT_TRUE(lo.finishAndDrain(50 * kMs));
  const ConnectionStats rx = lo.receiver().stats();
  EXPECT_EQ(rx.packetsDelivered, kCount);
  EXPECT_GT(rx.outOfOrderArrived, 0u);
  EXPECT_GT(rx.outOfOrderDelivered, 0u);
  EXPECT_FALSE(strictlyIncreasing(lo.delivered()));
  std::vector<std::uint64_t> sorted = lo.delivered();
  std::sort(sorted.begin(), sorted.end());
  ASSERT_EQ(sorted.size(), kCount);
  for (std::uint64_t i = 0; i < kCount; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(lo.corrupt(), 0u);
}

TEST(Connection, OutOfOrderWithinAPathIsCountedPerPath) {
  // Links reorder against each other (different delays) but only link 1
  // reorders within itself: every 100th packet it carries is held 50 us more.
  auto links = threeLinks(100 * kUs, 200 * kUs, 300 * kUs);
  links[1].extraDelayNs = [](std::uint64_t index) { return index % 100 == 50 ? 50 * kUs : 0; };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  // Fast loss assumes each path is FIFO: it would declare the held packets lost.
  config.reorder.fastLoss = false;
  Loopback lo(config, std::move(links));
  ASSERT_TRUE(lo.ready());
  lo.sendCopying(3000, 2 * kUs);
  ASSERT_TRUE(lo.finishAndDrain(50 * kMs));
  const ConnectionStats rx = lo.receiver().stats();
  EXPECT_EQ(rx.packetsDelivered, 3000u);
  EXPECT_GT(rx.outOfOrderArrived, 0u);
  EXPECT_EQ(rx.paths[0].outOfOrderInPath, 0u);
  EXPECT_EQ(rx.paths[2].outOfOrderInPath, 0u);
  EXPECT_EQ(rx.paths[1].outOfOrderInPath, 10u) << "one per held packet (1000 packets on the link)";
  EXPECT_EQ(rx.paths[1].lostSeen, 0u) << "the overtaking packets' gap is refilled";
}

TEST(Connection, DroppedPacketsAreDeclaredLostExactlyOnce) {
  auto links = threeLinks(100 * kUs, 300 * kUs, 1 * kMs);
  links[1].drop = [](std::uint64_t index, std::span<const std::uint8_t> payload) {
    return !isEndMarker(payload) && index % 7 == 3;
  };
  Loopback lo(configWith(reorder::ReorderKind::kWindow), std::move(links));
  ASSERT_TRUE(lo.ready());
  constexpr std::uint64_t kCount = 2100;
  lo.sendCopying(kCount);
  ASSERT_TRUE(lo.finishAndDrain(100 * kMs));

  const std::uint64_t dropped = lo.wire(1).packetsDropped();
  ASSERT_GT(dropped, 50u);
  const ConnectionStats rx = lo.receiver().stats();
  EXPECT_EQ(rx.lost, dropped);
  EXPECT_EQ(rx.packetsDelivered + rx.lost, kCount);
  EXPECT_EQ(lo.delivered().size(), kCount - dropped);
  EXPECT_TRUE(strictlyIncreasing(lo.delivered()));
  EXPECT_EQ(lo.corrupt(), 0u);
  EXPECT_EQ(rx.paths[0].lostSeen, 0u);
  EXPECT_EQ(rx.paths[1].lostSeen, dropped);
  EXPECT_EQ(rx.paths[2].lostSeen, 0u);
  EXPECT_EQ(lo.receiver().state().nextGlobalSeq, kCount);
}

TEST(Connection, LostTailIsDeclaredAtEnd) {
  auto links = threeLinks(100 * kUs, 300 * kUs, 1 * kMs);
  constexpr std::uint64_t kCount = 300;  // 100 per link, round robin
  // The last two data packets on link 0 vanish; only the END markers tell.
  links[0].drop = [](std::uint64_t index, std::span<const std::uint8_t> payload) {
    return !isEndMarker(payload) && index >= kCount / 3 - 2;
  };
  Loopback lo(configWith(reorder::ReorderKind::kWindow), std::move(links));
  ASSERT_TRUE(lo.ready());
  lo.sendCopying(kCount);
  ASSERT_TRUE(lo.finishAndDrain(100 * kMs));
  const std::uint64_t dropped = lo.wire(0).packetsDropped();
  ASSERT_EQ(dropped, 2u);
  const ConnectionStats rx = lo.receiver().stats();
  EXPECT_EQ(rx.lost, dropped);
  EXPECT_EQ(rx.packetsDelivered, kCount - dropped);
  EXPECT_EQ(rx.paths[0].lostSeen, dropped);  // from the END marker's path sequence
  EXPECT_EQ(lo.receiver().state().nextGlobalSeq, kCount);
  EXPECT_FALSE(lo.receiver().state().endedByIdleTimeout);
}

TEST(Connection, LostEndMarkersEndTheStreamAtTheIdleTimeout) {
  auto links = threeLinks(100 * kUs, 500 * kUs, 2 * kMs);
  for (auto& link : links) {
    link.drop = [](std::uint64_t, std::span<const std::uint8_t> payload) { return isEndMarker(payload); };
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.idleTimeoutNs = 50 * kMs;
  Loopback lo(config, std::move(links));
  ASSERT_TRUE(lo.ready());
  constexpr std::uint64_t kCount = 900;
  lo.sendCopying(kCount);
  ASSERT_TRUE(lo.sender().finish().ok());
  EXPECT_EQ(lo.wire(0).packetsDropped(), 3u);

  EXPECT_FALSE(lo.drainUntilFinished(30 * kMs));  // data all in, but no END: keep waiting
  EXPECT_EQ(lo.delivered().size(), kCount);
  EXPECT_LT(lo.receiver().nextDeadlineNs(), lo.clock().nowNs() + 50 * kMs);
  ASSERT_TRUE(lo.drainUntilFinished(40 * kMs));
  const ConnectionState state = lo.receiver().state();
  EXPECT_TRUE(state.endedByIdleTimeout);
  EXPECT_FALSE(state.endSeen);
  EXPECT_EQ(lo.receiver().stats().lost, 0u);
}

TEST(Connection, EndMarkersLostOnOnePathStillFinishWithoutIdleTimeout) {
  auto links = threeLinks(100 * kUs, 500 * kUs, 2 * kMs);
  links[2].drop = [](std::uint64_t, std::span<const std::uint8_t> payload) { return isEndMarker(payload); };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.idleTimeoutNs = 10'000 * kMs;
  Loopback lo(config, std::move(links));
  ASSERT_TRUE(lo.ready());
  lo.sendCopying(600);
  ASSERT_TRUE(lo.finishAndDrain(20 * kMs));
  EXPECT_EQ(lo.delivered().size(), 600u);
  EXPECT_FALSE(lo.receiver().state().endedByIdleTimeout);
  EXPECT_EQ(lo.receiver().stats().paths[2].endMarkers, 0u);
}

TEST(Connection, PacingKeepsEveryLinkWithinItsRate) {
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.scheduler = sched::SchedulerKind::kWeightedRoundRobin;
  const std::vector<std::uint64_t> rates = {80'000'000, 40'000'000, 20'000'000};
  Loopback lo(config, threeLinks(100 * kUs, 200 * kUs, 300 * kUs), rates);
  ASSERT_TRUE(lo.ready());
  constexpr std::uint32_t kPayload = 1000;
  constexpr std::uint64_t kOuter = 14 + 20 + 8;  // what the link adds to the UDP payload
  std::array<SendSlot, 32> slots;
  const std::uint64_t start = lo.clock().nowNs();
  const std::uint64_t sleepsBefore = lo.clock().sleeps();
  bool sawBlocked = false;
  std::vector<std::uint8_t> payload(kPayload);
  while (lo.clock().nowNs() - start < 50 * kMs) {
    const std::size_t n = lo.sender().reserve(slots, kPayload);
    for (std::size_t i = 0; i < n; ++i) {
      std::memcpy(slots[i].data, payload.data(), kPayload);
      slots[i].length = kPayload;
    }
    auto committed = lo.sender().commit(std::span<const SendSlot>(slots.data(), n));
    ASSERT_TRUE(committed.ok());
    lo.drain();
    if (n == 0) {
      const std::uint64_t before = lo.clock().nowNs();
      const std::uint64_t when = lo.sender().nextSendTimeNs(kPayload);
      if (when > before) sawBlocked = true;
      ASSERT_TRUE(lo.sender().waitUntilSendable(kPayload).ok());
      EXPECT_GE(lo.clock().nowNs(), when);
      if (lo.clock().nowNs() == before) lo.clock().advance(kUs);
    }
  }
  EXPECT_TRUE(sawBlocked);
  EXPECT_GT(lo.clock().sleeps(), sleepsBefore);  // waited through the clock, not for real
  const double elapsedNs = static_cast<double>(lo.clock().nowNs() - start);
  for (std::size_t p = 0; p < rates.size(); ++p) {
    const MemoryWire& wire = lo.wire(p);
    const double frameBytes = static_cast<double>(wire.bytesCommitted() + wire.packetsCommitted() * kOuter);
    const double rateBytesPerNs = static_cast<double>(rates[p]) / 8e9;
    const double burst = rateBytesPerNs * static_cast<double>(config.pacingBurstNs) + kPayload + 74;
    EXPECT_LE(frameBytes, rateBytesPerNs * elapsedNs + burst) << "link " << p;
    EXPECT_GE(frameBytes, 0.8 * rateBytesPerNs * elapsedNs) << "link " << p;
  }
}

TEST(Connection, ZeroCopySlotsPointIntoLinkBuffersAndEmptySlotsGoBack) {
  Loopback lo(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 20 * kUs, 30 * kUs));
  ASSERT_TRUE(lo.ready());
  EXPECT_EQ(lo.sender().maxPayload(), 1500u - wire::kMpHeaderLen);
  std::array<SendSlot, 16> slots;
  ASSERT_EQ(lo.sender().reserve(slots), slots.size());
  std::uint64_t seq = 0;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    EXPECT_EQ(slots[i].data, slots[i].frame + wire::kMpHeaderLen);
    EXPECT_EQ(slots[i].capacity, 1500u - wire::kMpHeaderLen);
    if (i == 5) continue;  // left empty: given back unsent
    fillPayload(seq, std::span<std::uint8_t>(slots[i].data, payloadSize(seq)));
    slots[i].length = payloadSize(seq);
    ++seq;
  }
  auto committed = lo.sender().commit(slots);
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(*committed, slots.size() - 1);
  std::uint64_t inFlight = 0;
  for (std::size_t p = 0; p < 3; ++p) {
    EXPECT_EQ(lo.wire(p).framesOutstanding(), lo.wire(p).framesInFlight());
    inFlight += lo.wire(p).framesInFlight();
  }
  EXPECT_EQ(inFlight, slots.size() - 1);
  lo.clock().advance(100 * kUs);
  lo.drain();
  ASSERT_EQ(lo.delivered().size(), slots.size() - 1);
  EXPECT_TRUE(strictlyIncreasing(lo.delivered()));
  EXPECT_EQ(lo.corrupt(), 0u);

  // An oversized length is refused and the buffer still goes back.
  ASSERT_EQ(lo.sender().reserve(std::span<SendSlot>(slots.data(), 1)), 1u);
  slots[0].length = slots[0].capacity + 1;
  auto refused = lo.sender().commit(std::span<const SendSlot>(slots.data(), 1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), EMSGSIZE);
  for (std::size_t p = 0; p < 3; ++p) EXPECT_EQ(lo.wire(p).framesOutstanding(), 0u);
}

TEST(Connection, ZeroCopyAndCopyingPathsInterleave) {
  Loopback lo(configWith(reorder::ReorderKind::kWindow), threeLinks(50 * kUs, 250 * kUs, 800 * kUs));
  ASSERT_TRUE(lo.ready());
  lo.sendZeroCopy(500);
  lo.sendCopying(500);
  lo.sendZeroCopy(500);
  ASSERT_TRUE(lo.finishAndDrain(50 * kMs));
  ASSERT_EQ(lo.delivered().size(), 1500u);
  EXPECT_TRUE(strictlyIncreasing(lo.delivered()));
  EXPECT_EQ(lo.corrupt(), 0u);
}

TEST(Connection, CopyingSendAndRecv) {
  Loopback lo(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 20 * kUs, 30 * kUs));
  ASSERT_TRUE(lo.ready());
  std::vector<std::uint8_t> payload(payloadSize(0));
  fillPayload(0, payload);
  auto sent = lo.sender().send(payload);
  ASSERT_TRUE(sent.ok());
  EXPECT_TRUE(*sent);
  EXPECT_EQ(lo.sender().send({}).error().code(), EINVAL);
  std::vector<std::uint8_t> huge(lo.sender().maxPayload() + 1);
  EXPECT_EQ(lo.sender().send(huge).error().code(), EMSGSIZE);

  std::vector<std::uint8_t> buffer(2048);
  auto none = lo.receiver().recv(buffer);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);  // still on the wire
  lo.clock().advance(15 * kUs);
  auto tooSmall = lo.receiver().recv(std::span<std::uint8_t>(buffer.data(), 10));
  ASSERT_FALSE(tooSmall.ok());
  EXPECT_EQ(tooSmall.error().code(), EMSGSIZE);
  auto got = lo.receiver().recv(buffer);  // the payload stayed queued
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(*got, payload.size());
  EXPECT_TRUE(payloadIntact(0, std::span<const std::uint8_t>(buffer.data(), *got)));
  EXPECT_EQ(lo.wire(0).framesOutstanding(), 0u);
}

TEST(Connection, MalformedPacketsAreCountedAndReleased) {
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  Loopback lo(config, threeLinks(10 * kUs, 10 * kUs, 10 * kUs));
  ASSERT_TRUE(lo.ready());
  std::array<std::uint8_t, 64> garbage{};
  garbage.fill(0xAB);
  ASSERT_TRUE(lo.wire(0).inject(garbage));
  ASSERT_TRUE(lo.wire(1).inject(std::span<const std::uint8_t>(garbage.data(), 5)));  // truncated

  std::array<std::uint8_t, 64> packet{};
  wire::MpHeader header;
  header.connId = config.connId + 1;  // someone else's connection
  header.payloadLen = 32;
  ASSERT_TRUE(wire::encodeMpHeader(packet, header).ok());
  ASSERT_TRUE(lo.wire(2).inject(packet));
  header.connId = config.connId;
  header.pathId = 7;  // no such path
  ASSERT_TRUE(wire::encodeMpHeader(packet, header).ok());
  ASSERT_TRUE(lo.wire(2).inject(packet));

  lo.clock().advance(20 * kUs);
  lo.drain();
  const ConnectionStats rx = lo.receiver().stats();
  EXPECT_EQ(rx.malformed, 4u);
  EXPECT_EQ(rx.foreignConn, 1u);
  EXPECT_EQ(rx.packetsDelivered, 0u);
  for (std::size_t p = 0; p < 3; ++p) EXPECT_EQ(lo.wire(p).framesOutstanding(), 0u) << p;

  lo.sendCopying(100);  // the connection is unaffected
  lo.clock().advance(kMs);
  lo.drain();
  EXPECT_EQ(lo.delivered().size(), 100u);
  EXPECT_TRUE(strictlyIncreasing(lo.delivered()));
}

TEST(Connection, SteadyStateAllocatesNothingPerPacket) {
  Loopback lo(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 400 * kUs, 1 * kMs));
  ASSERT_TRUE(lo.ready());
  lo.sendZeroCopy(2000);  // warm up
  lo.sendCopying(2000);
  const std::uint64_t before = gAllocations.load();
  lo.sendZeroCopy(5000);
  lo.sendCopying(5000);
  const std::uint64_t during = gAllocations.load() - before;
  EXPECT_EQ(during, 0u);
  ASSERT_TRUE(lo.finishAndDrain(50 * kMs));
  EXPECT_EQ(lo.delivered().size(), 14000u);
  EXPECT_TRUE(strictlyIncreasing(lo.delivered()));
}

// Forwards to a link end; receive() first lets simulated time pass (a slow
// receive call), and reserveTx can be made to find no buffer.
class SlowOrFullLink final : public PacketIo {
 public:
  SlowOrFullLink(std::unique_ptr<PacketIo> inner, std::shared_ptr<ManualClock> clock, std::uint64_t receiveNs)
      : inner_(std::move(inner)), clock_(std::move(clock)), receiveNs_(receiveNs) {}
  std::size_t reserveTx(std::span<TxBuffer> out) noexcept override {
    return full ? 0 : inner_->reserveTx(out);
  }
  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    return inner_->commitTx(buffers);
  }
  Result<void> flushTx() noexcept override { return inner_->flushTx(); }
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    ++receiveCalls;
    clock_->advance(receiveNs_);
    return inner_->receive(out);
  }
  void release(std::span<const RxPacket> packets) noexcept override { inner_->release(packets); }
  std::vector<int> pollFds() const override { return inner_->pollFds(); }
  std::uint32_t maxPayload() const noexcept override { return inner_->maxPayload(); }
  std::uint32_t frameOverheadBytes() const noexcept override { return inner_->frameOverheadBytes(); }
  Result<void> setPeerFrom(const RxPacket& packet) noexcept override { return inner_->setPeerFrom(packet); }
  bool hasPeer() const noexcept override { return inner_->hasPeer(); }
  std::string peerDescription() const override { return inner_->peerDescription(); }
  PacketIoStats stats() const noexcept override { return inner_->stats(); }
  std::string describe() const override { return "slow-or-full " + inner_->describe(); }

  bool full = false;
  std::uint64_t receiveCalls = 0;

 private:
  std::unique_ptr<PacketIo> inner_;
  std::shared_ptr<ManualClock> clock_;
  std::uint64_t receiveNs_;
};

// Counts reads of a ManualClock.
class CountingClock final : public Clock {
 public:
  explicit CountingClock(std::shared_ptr<ManualClock> inner) : inner_(std::move(inner)) {}
  std::uint64_t nowNs() const noexcept override {
    ++reads;
    return inner_->nowNs();
  }
  void sleepUntil(std::uint64_t deadlineNs) noexcept override { inner_->sleepUntil(deadlineNs); }
  mutable std::uint64_t reads = 0;

 private:
  std::shared_ptr<ManualClock> inner_;
};

TEST(Connection, ArrivalTimesAreReadPerBatchAndNeverBeforeTheRealArrival) {
  auto clock = std::make_shared<ManualClock>(1'000 * kMs);
  auto counting = std::make_shared<CountingClock>(clock);
  const std::vector<std::uint64_t> delays = {100 * kUs, 200 * kUs, 300 * kUs};
  std::vector<Link> txLinks;
  std::vector<Link> rxLinks;
  std::vector<SlowOrFullLink*> rxEnds;
  for (const std::uint64_t delay : delays) {
    MemoryLinkOptions options;
    options.delayNs = delay;
    auto link = conn::testing::makeMemoryLink(options, clock);
    txLinks.push_back(Link{std::move(link.txEnd), {}});
    // Each receive call takes 250 us: links read later in a pump see packets
    // that arrived well after the pump started.
    auto slow = std::make_unique<SlowOrFullLink>(std::move(link.rxEnd), clock, 250 * kUs);
    rxEnds.push_back(slow.get());
    rxLinks.push_back(Link{std::move(slow), {}});
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  auto sender = Sender::create(config, std::move(txLinks), clock);
  ASSERT_TRUE(sender.ok()) << sender.error().message();
  auto receiver = Receiver::create(config, std::move(rxLinks), counting);
  ASSERT_TRUE(receiver.ok()) << receiver.error().message();

  std::array<Delivered, 256> out;
  std::vector<std::uint8_t> payload(100, 0x5a);
  std::uint64_t delivered = 0;
  for (int round = 0; round < 50; ++round) {
    std::array<std::span<const std::uint8_t>, 60> spans;
    spans.fill(std::span<const std::uint8_t>(payload));
    auto sent = (*sender)->sendMany(spans);
    ASSERT_TRUE(sent.ok());
    ASSERT_EQ(*sent, spans.size());
    clock->advance(10 * kUs);
    std::uint64_t callsBefore = 0;
    for (const SlowOrFullLink* end : rxEnds) callsBefore += end->receiveCalls;
    const std::uint64_t readsBefore = counting->reads;
    auto n = (*receiver)->poll(out);
    ASSERT_TRUE(n.ok()) << n.error().message();
    std::uint64_t calls = 0;
    for (const SlowOrFullLink* end : rxEnds) calls += end->receiveCalls;
    // One read per receive call at most, plus the pump's own: not one per packet.
    EXPECT_LE(counting->reads - readsBefore, calls - callsBefore + 2);
    delivered += *n;
    (*receiver)->release(std::span<const Delivered>(out.data(), *n));
  }
  for (int i = 0; i < 20; ++i) {
    clock->advance(1 * kMs);
    auto n = (*receiver)->poll(out);
    ASSERT_TRUE(n.ok());
    delivered += *n;
    (*receiver)->release(std::span<const Delivered>(out.data(), *n));
  }
  EXPECT_EQ(delivered, 50u * 60u);
  const ConnectionStats stats = (*receiver)->stats();
  for (std::size_t p = 0; p < delays.size(); ++p) {
    ASSERT_TRUE(stats.paths[p].owdValid) << p;
    // A packet is received no earlier than it arrives, so its one-way delay
    // is at least the link delay (a stale pump time made it negative).
    EXPECT_GE(stats.paths[p].owdMinNs, static_cast<std::int64_t>(delays[p])) << "path " << p;
  }
}

TEST(Connection, TokensOfSlotsWithoutATxBufferAreGivenBack) {
  auto clock = std::make_shared<ManualClock>(1'000 * kMs);
  auto link = conn::testing::makeMemoryLink(MemoryLinkOptions{}, clock);
  auto slowOrFull = std::make_unique<SlowOrFullLink>(std::move(link.txEnd), clock, 0);
  SlowOrFullLink& txEnd = *slowOrFull;
  std::vector<Link> links;
  links.push_back(Link{std::move(slowOrFull), PathConfig{100'000'000}});
  ConnectionConfig config;
  auto sender = Sender::create(config, std::move(links), clock);
  ASSERT_TRUE(sender.ok()) << sender.error().message();
  std::array<SendSlot, 64> slots;

  // The link has no TX buffer for a while; the sender keeps trying at one instant.
  txEnd.full = true;
  for (int i = 0; i < 100; ++i) EXPECT_EQ((*sender)->reserve(slots, 1000), 0u);
  txEnd.full = false;
  // 1 ms burst at 100 Mbit/s = 12500 bytes = 11 frames of 1000 + 74 bytes,
  // all still there: failed reservations cost no tokens.
  const std::size_t n = (*sender)->reserve(slots, 1000);
  EXPECT_EQ(n, 11u);
  auto committed = (*sender)->commit(std::span<const SendSlot>(slots.data(), n));  // all length 0: given back
  ASSERT_TRUE(committed.ok());
}

TEST(Connection, CreateRejectsBadLinks) {
  auto none = Sender::create(ConnectionConfig{}, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), EINVAL);

  auto clock = std::make_shared<ManualClock>();
  MemoryLinkOptions tiny;
  tiny.frameSize = 16;  // smaller than the multipath header
  auto link = conn::testing::makeMemoryLink(tiny, clock);
  std::vector<Link> links;
  links.push_back(Link{std::move(link.rxEnd), {}});
  auto receiver = Receiver::create(ConnectionConfig{}, std::move(links), clock);
  ASSERT_FALSE(receiver.ok());
  EXPECT_EQ(receiver.error().code(), EINVAL);

  std::vector<Link> nullLink(1);
  auto sender = Sender::create(ConnectionConfig{}, std::move(nullLink), clock);
  ASSERT_FALSE(sender.ok());
}

}  // namespace
}  // namespace mpxdp
