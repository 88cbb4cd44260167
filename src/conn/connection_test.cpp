// Connections between two Endpoints over in-memory duplex links driven by a
// ManualClock: handshake, data in either or both directions, control frames,
// end of stream, failures.
#include <gtest/gtest.h>

#include <random>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mpxdp/endpoint.h"
#include "mpxdp/security.h"
#include "mpxdp_shared.h"
#include "reorder/reorderer.h"
#include "sched/scheduler.h"
#include "testing_duplex.h"
#include "wire/frames.h"
#include "wire/packet.h"

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

// The frames of a packet on the wire.
std::vector<wire::Frame> framesOf(std::span<const std::uint8_t> packet) {
  std::vector<wire::Frame> frames;
  if (!wire::parsePacketHeader(packet).ok()) return frames;
  std::size_t offset = wire::kPacketHeaderLen;
  while (offset < packet.size()) {
    auto parsed = wire::parseFrame(packet.subspan(offset));
    if (!parsed.ok()) break;
    frames.push_back(parsed.value.frame);
    offset += parsed.value.length;
  }
  return frames;
}

std::optional<std::uint64_t> dataSeq(std::span<const std::uint8_t> packet) {
  for (const auto& frame : framesOf(packet)) {
    if (const auto* data = std::get_if<wire::DataFrame>(&frame)) return data->globalSeq;
  }
  return std::nullopt;
}

template <typename T>
bool has(std::span<const std::uint8_t> packet) {
  for (const auto& frame : framesOf(packet)) {
    if (std::holds_alternative<T>(frame)) return true;
  }
  return false;
}

bool strictlyIncreasing(const std::vector<std::uint64_t>& seqs) {
  return std::adjacent_find(seqs.begin(), seqs.end(), std::greater_equal<>()) == seqs.end();
}

struct LinkSpec {
  MemoryLinkOptions toServer;
  MemoryLinkOptions toClient;
  // Memory links have no rate of their own: a cap of 10 Gbit/s starts each
  // path's controller there, as a configured link rate does.
  std::uint64_t rateBps = 10'000'000'000;
  // Wraps the client's end of the link (to make one call misbehave).
  std::function<std::unique_ptr<PacketIo>(std::unique_ptr<PacketIo>)> wrapClient;
};

// The clock of a host that shares none with its peer: an offset and a rate
// error against the simulated time (the wire's).
struct ClockSkew {
  std::int64_t offsetNs = 0;
  double ppm = 0;
  bool none() const { return offsetNs == 0 && ppm == 0; }
};

class SkewedClock final : public Clock {
 public:
  SkewedClock(std::shared_ptr<ManualClock> base, ClockSkew skew)
      : base_(std::move(base)), skew_(skew), startNs_(base_->nowNs()) {}
  std::uint64_t nowNs() const noexcept override { return toLocal(base_->nowNs()); }
  void sleepUntil(std::uint64_t deadlineNs) noexcept override {
    std::uint64_t baseNs = toBase(deadlineNs);
    while (toLocal(baseNs) < deadlineNs) ++baseNs;  // rounding
    base_->sleepUntil(baseNs);
  }
  std::uint64_t toLocal(std::uint64_t baseNs) const noexcept {
    const double drift = static_cast<double>(baseNs - startNs_) * skew_.ppm / 1e6;
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(baseNs) + skew_.offsetNs +
                                      static_cast<std::int64_t>(drift));
  }

 private:
  std::uint64_t toBase(std::uint64_t localNs) const noexcept {
    const double local = static_cast<double>(static_cast<std::int64_t>(localNs) - skew_.offsetNs -
                                             static_cast<std::int64_t>(startNs_));
    return startNs_ + static_cast<std::uint64_t>(std::max(0.0, local / (1.0 + skew_.ppm / 1e6)));
  }

  std::shared_ptr<ManualClock> base_;
  ClockSkew skew_;
  std::uint64_t startNs_;
};

std::vector<LinkSpec> threeLinks(std::uint64_t d0, std::uint64_t d1, std::uint64_t d2) {
  std::vector<LinkSpec> links(3);
  const std::uint64_t delays[] = {d0, d1, d2};
  for (std::size_t i = 0; i < 3; ++i) {
    links[i].toServer.delayNs = delays[i];
    links[i].toClient.delayNs = delays[i];
  }
  return links;
}

ConnectionConfig configWith(reorder::ReorderKind kind) {
  ConnectionConfig config;
  config.reorder.kind = kind;
  // The adaptive hole timeout knows no delay spread before the slowest path is
  // heard from (it is just the margin then); these links differ by up to 2 ms.
  config.reorder.timeoutMarginNs = 3 * kMs;
  return config;
}

// A client and a server endpoint over duplex in-memory links.
class Pair {
 public:
  Pair(const ConnectionConfig& config, std::vector<LinkSpec> links,
       DataDirection direction = DataDirection::kClientToServer, std::size_t serverPaths = 0,
       std::optional<std::size_t> serverBackupPath = std::nullopt, const SecurityOptions& clientSecurity = {},
       const SecurityOptions& serverSecurity = {}, ClockSkew serverSkew = {})
      : clock_(std::make_shared<ManualClock>(1'000 * kMs)) {
    std::vector<EndpointPath> clientPaths;
    std::vector<EndpointPath> serverPathList;
    std::shared_ptr<Clock> serverClock = clock_;
    if (!serverSkew.none()) {
      auto skewed = std::make_shared<SkewedClock>(clock_, serverSkew);
      for (auto& link : links)
        link.toServer.receiverTime = [skewed](std::uint64_t t) { return skewed->toLocal(t); };
      serverClock = std::move(skewed);
    }
    for (std::size_t i = 0; i < links.size(); ++i) {
      auto link =
          conn::testing::makeDuplexLink(std::move(links[i].toServer), std::move(links[i].toClient), clock_);
      auto clientEnd =
          links[i].wrapClient ? links[i].wrapClient(std::move(link.clientEnd)) : std::move(link.clientEnd);
      clientPaths.push_back(EndpointPath{std::move(clientEnd), links[i].rateBps, "c" + std::to_string(i)});
      if (serverPaths == 0 || i < serverPaths)
        serverPathList.push_back(EndpointPath{std::move(link.serverEnd), links[i].rateBps,
                                              "s" + std::to_string(i), serverBackupPath == i});
      toServer_.push_back(std::move(link.toServer));
      toClient_.push_back(std::move(link.toClient));
    }
    EndpointConfig clientConfig;
    clientConfig.connection = config;
    EndpointConfig serverConfig = clientConfig;
    serverConfig.acceptIncoming = true;
    clientConfig.security = clientSecurity;
    serverConfig.security = serverSecurity;
    auto client = Endpoint::create(clientConfig, std::move(clientPaths), clock_);
    auto server = Endpoint::create(serverConfig, std::move(serverPathList), serverClock);
    EXPECT_TRUE(client.ok() && server.ok());
    if (!client.ok() || !server.ok()) return;
    client_ = std::move(*client);
    server_ = std::move(*server);
    ConnectOptions options;
    options.direction = direction;
    auto connected = client_->connect(options);
    EXPECT_TRUE(connected.ok()) << connected.error().message();
    if (connected.ok()) clientConn_ = *connected;
    for (auto& buffer : buffers_) buffer.resize(2048);
    delivered_.reserve(1 << 16);
  }

  // Runs both endpoints until the handshake completed (or limitNs passed).
  bool handshake(std::uint64_t limitNs = 100 * kMs) {
    const std::uint64_t deadline = clock_->nowNs() + limitNs;
    while (clock_->nowNs() < deadline) {
      pollBoth();
      if (serverConn_ == nullptr) serverConn_ = server_->accept();
      if (serverConn_ != nullptr && clientConn_->established()) return true;
      clock_->advance(50 * kUs);
    }
    return false;
  }

  void pollBoth() {
    ASSERT_TRUE(client_->poll().ok());
    ASSERT_TRUE(server_->poll().ok());
  }

  ManualClock& clock() { return *clock_; }
  Endpoint& clientEndpoint() { return *client_; }
  Endpoint& serverEndpoint() { return *server_; }
  Connection& client() { return *clientConn_; }
  Connection& server() { return *serverConn_; }
  bool serverReady() const { return serverConn_ != nullptr; }
  MemoryWire& toServer(std::size_t i) { return *toServer_[i]; }
  MemoryWire& toClient(std::size_t i) { return *toClient_[i]; }
  const std::vector<std::uint64_t>& delivered() const { return delivered_; }
  std::uint64_t corrupt() const { return corrupt_; }

  // Polls `receiver` (and the other side, for its control frames) until it
  // has nothing more; checks and releases.
  void drain(Connection& receiver) {
    std::array<Delivered, 48> out;
    ASSERT_TRUE(client_->poll().ok());
    for (int guard = 0; guard < 100000; ++guard) {
      auto n = receiver.poll(out);
      ASSERT_TRUE(n.ok()) << n.error().message();
      if (*n == 0) break;
      for (std::size_t i = 0; i < *n; ++i) {
        const Delivered& d = out[i];
        if (!payloadIntact(d.globalSeq, std::span<const std::uint8_t>(d.data, d.length))) ++corrupt_;
        if (delivered_.size() < delivered_.capacity()) delivered_.push_back(d.globalSeq);
      }
      receiver.release(std::span<const Delivered>(out.data(), *n));
    }
    ASSERT_TRUE(server_->poll().ok());
  }
  void drain() { drain(server()); }
  // One pass of the server's loop: reads its links, releases what it delivered.
  void serverReadsOnce() {
    std::array<Delivered, 64> out;
    EXPECT_TRUE(serverEndpoint().poll().ok());
    auto got = server().poll(out);
    EXPECT_TRUE(got.ok());
    if (got.ok()) server().release({out.data(), *got});
  }

  // Sends payloads [next, next + count) from `sender` through sendMany,
  // advancing simulated time by stepNs between batches.
  void sendCopying(std::uint64_t count, std::uint64_t stepNs = 10 * kUs) {
    sendCopyingFrom(client(), server(), count, stepNs);
  }
  void sendCopyingFrom(Connection& sender, Connection& receiver, std::uint64_t count, std::uint64_t stepNs) {
    std::array<std::span<const std::uint8_t>, 32> spans;
    const std::uint64_t end = next_ + count;
    for (int guard = 0; next_ < end && guard < 1'000'000; ++guard) {
      const std::size_t k = std::min<std::uint64_t>(spans.size(), end - next_);
      for (std::size_t j = 0; j < k; ++j) {
        const std::uint32_t size = payloadSize(next_ + j);
        fillPayload(next_ + j, std::span<std::uint8_t>(buffers_[j].data(), size));
        spans[j] = std::span<const std::uint8_t>(buffers_[j].data(), size);
      }
      auto sent = sender.sendMany(std::span<const std::span<const std::uint8_t>>(spans.data(), k));
      ASSERT_TRUE(sent.ok()) << sent.error().message();
      next_ += *sent;
      clock_->advance(stepNs);
      drain(receiver);
    }
    ASSERT_EQ(next_, end);
  }

  void sendZeroCopy(std::uint64_t count, std::uint64_t stepNs = 10 * kUs) {
    std::array<SendSlot, 32> slots;
    const std::uint64_t end = next_ + count;
    for (int guard = 0; next_ < end && guard < 1'000'000; ++guard) {
      const std::size_t want = std::min<std::uint64_t>(slots.size(), end - next_);
      const std::size_t n = client().reserve(std::span<SendSlot>(slots.data(), want));
      for (std::size_t j = 0; j < n; ++j) {
        const std::uint32_t size = payloadSize(next_ + j);
        fillPayload(next_ + j, std::span<std::uint8_t>(slots[j].data, size));
        slots[j].length = size;
      }
      auto committed = client().commit(std::span<const SendSlot>(slots.data(), n));
      ASSERT_TRUE(committed.ok()) << committed.error().message();
      ASSERT_EQ(*committed, n);
      next_ += n;
      clock_->advance(stepNs);
      drain();
    }
    ASSERT_EQ(next_, end);
  }

  bool finishAndDrain(std::uint64_t limitNs, std::uint64_t stepNs = 100 * kUs) {
    auto finished = client().finish();
    EXPECT_TRUE(finished.ok()) << finished.error().message();
    return drainUntilFinished(limitNs, stepNs);
  }

  bool drainUntilFinished(std::uint64_t limitNs, std::uint64_t stepNs = 100 * kUs) {
    const std::uint64_t deadline = clock_->nowNs() + limitNs;
    drain();
    while (!server().state().receiveFinished && clock_->nowNs() < deadline) {
      clock_->advance(stepNs);
      drain();
    }
    drain();
    return server().state().receiveFinished;
  }

  // Runs both until both connections are done (or limitNs passed).
  bool runUntilDone(std::uint64_t limitNs, std::uint64_t stepNs = 100 * kUs) {
    const std::uint64_t deadline = clock_->nowNs() + limitNs;
    while (clock_->nowNs() < deadline && !(client().done() && server().done())) {
      clock_->advance(stepNs);
      drain(client());  // a receiving side is done once its payloads were taken
      drain();
    }
    return client().done() && server().done();
  }

  std::uint64_t sent() const { return next_; }
  void resetSequence() { next_ = 0; }

 private:
  std::shared_ptr<ManualClock> clock_;
  std::vector<std::shared_ptr<MemoryWire>> toServer_;
  std::vector<std::shared_ptr<MemoryWire>> toClient_;
  std::unique_ptr<Endpoint> client_;
  std::unique_ptr<Endpoint> server_;
  Connection* clientConn_ = nullptr;
  Connection* serverConn_ = nullptr;
  std::array<std::vector<std::uint8_t>, 32> buffers_;
  std::vector<std::uint64_t> delivered_;
  std::uint64_t corrupt_ = 0;
  std::uint64_t next_ = 0;
};

TEST(Connection, HandshakeAgreesOnPathsAndDirection) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 200 * kUs, 300 * kUs));
  EXPECT_FALSE(pair.client().established());
  EXPECT_EQ(pair.client().reserve(std::span<SendSlot>{}), 0u);
  ASSERT_TRUE(pair.handshake());
  for (int i = 0; i < 10; ++i) {  // the HELLOs of the slower paths are still on their way
    pair.clock().advance(100 * kUs);
    pair.pollBoth();
  }
  EXPECT_TRUE(pair.client().established());
  EXPECT_EQ(pair.client().state().phase, ConnectionPhase::kOpen);
  EXPECT_EQ(pair.server().state().role, ConnectionRole::kServer);
  EXPECT_EQ(pair.server().state().connId, pair.client().state().connId);
  EXPECT_TRUE(pair.client().state().sends);
  EXPECT_FALSE(pair.client().state().receives);
  EXPECT_TRUE(pair.server().state().receives);
  EXPECT_FALSE(pair.server().state().sends);
  EXPECT_EQ(pair.server().peerHello().pathNames, (std::vector<std::string>{"c0", "c1", "c2"}));
  EXPECT_EQ(pair.client().peerHello().pathCount, 3u);
}

TEST(Connection, ThreeLinksWithDifferentDelaysDeliverInOrderAndTheSenderGetsTheReport) {
  // Round robin, so that the delays reorder the packets (eaf would avoid it).
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.scheduler = sched::SchedulerKind::kRoundRobin;
  Pair pair(config, threeLinks(100 * kUs, 500 * kUs, 2 * kMs));
  ASSERT_TRUE(pair.handshake());
  constexpr std::uint64_t kCount = 3000;
  pair.sendCopying(kCount);
  ASSERT_TRUE(pair.finishAndDrain(50 * kMs));

  ASSERT_EQ(pair.delivered().size(), kCount);
  EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
  EXPECT_EQ(pair.delivered().front(), 0u);
  EXPECT_EQ(pair.corrupt(), 0u);
  const ConnectionStats rx = pair.server().stats();
  const ConnectionStats tx = pair.client().stats();
  EXPECT_EQ(tx.packetsSent, kCount);
  EXPECT_EQ(rx.packetsDelivered, kCount);
  EXPECT_EQ(rx.bytesDelivered, tx.bytesSent);
  EXPECT_GT(rx.outOfOrderArrived, 0u);
  EXPECT_EQ(rx.outOfOrderDelivered, 0u);
  EXPECT_EQ(rx.lost, 0u);
  EXPECT_EQ(rx.malformed, 0u);
  EXPECT_EQ(rx.hold.samples, kCount);
  const std::uint64_t delays[] = {100 * kUs, 500 * kUs, 2 * kMs};
  for (std::size_t p = 0; p < 3; ++p) {
    EXPECT_GT(tx.paths[p].packetsSent, kCount / 4) << p;
    EXPECT_EQ(rx.paths[p].packetsReceived, tx.paths[p].packetsSent) << p;
    EXPECT_EQ(rx.paths[p].lostSeen, 0u) << p;
    EXPECT_GE(rx.paths[p].closeFrames, 1u) << p;
    ASSERT_TRUE(rx.paths[p].owdValid);
    EXPECT_GE(rx.paths[p].owdMinNs, static_cast<std::int64_t>(delays[p])) << p;
    EXPECT_LE(rx.paths[p].owdMinNs, static_cast<std::int64_t>(delays[p] + 10 * kUs)) << p;
  }
  const ConnectionState state = pair.server().state();
  EXPECT_TRUE(state.endSeen);
  EXPECT_EQ(state.finalSeq, kCount);
  EXPECT_FALSE(state.endedByIdleTimeout);
  EXPECT_EQ(state.heldPackets, 0u);

  ASSERT_TRUE(pair.runUntilDone(100 * kMs));
  EXPECT_EQ(pair.client().state().phase, ConnectionPhase::kClosed);
  EXPECT_EQ(pair.server().state().phase, ConnectionPhase::kClosed);
  for (int i = 0; i < 100; ++i) {  // the slowest path's last ACKs are still on their way
    pair.clock().advance(100 * kUs);
    pair.pollBoth();
  }
  const ConnectionStats acked = pair.client().stats();
  for (std::size_t p = 0; p < 3; ++p) {
    EXPECT_GT(acked.paths[p].acksReceived, 0u) << p;
    // Every data packet's UDP payload (header + DATA frame + data) was counted by the peer.
    EXPECT_GE(acked.paths[p].peerBytesReceived, tx.paths[p].bytesSent + 40 * tx.paths[p].packetsSent) << p;
  }
  const auto report = pair.client().peerReport();
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->packets, kCount);
  EXPECT_EQ(report->bytes, tx.bytesSent);
  EXPECT_EQ(report->lost, 0u);
  ASSERT_EQ(report->paths.size(), 3u);
  for (std::size_t p = 0; p < 3; ++p) EXPECT_EQ(report->paths[p].packets, tx.paths[p].packetsSent);
}

// Two hosts that share no clock: the server's runs an hour ahead and 100 ppm
// fast, or 0.9 s behind and 100 ppm slow, with and without arrival stamps.
// Send stamps are on the sender's clock and arrivals on the receiver's, so
// only differences within one clock may count: the one-way delay carries the
// offset, the RTT and everything delivered do not.
TEST(Connection, HostsThatShareNoClockDeliverInOrderAndMeasureTheTrueRtt) {
  const std::uint64_t delays[] = {100 * kUs, 500 * kUs, 2 * kMs};
  for (const ClockSkew skew : {ClockSkew{}, ClockSkew{3'600'000 * static_cast<std::int64_t>(kMs), 100},
                               ClockSkew{-900 * static_cast<std::int64_t>(kMs), -100}}) {
    for (const bool stamp : {false, true}) {
      SCOPED_TRACE("server clock " + std::to_string(skew.offsetNs / 1'000'000) + " ms, " +
                   std::to_string(skew.ppm) + " ppm, arrival stamps " + (stamp ? "on" : "off"));
      ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
      config.scheduler = sched::SchedulerKind::kRoundRobin;  // the delays reorder the packets
      std::vector<LinkSpec> links = threeLinks(delays[0], delays[1], delays[2]);
      for (auto& link : links) link.toServer.stampArrival = link.toClient.stampArrival = stamp;
      Pair pair(config, std::move(links), DataDirection::kClientToServer, 0, std::nullopt, {}, {}, skew);
      ASSERT_TRUE(pair.handshake());
      constexpr std::uint64_t kCount = 3000;
      const std::uint64_t startNs = pair.clock().nowNs();
      pair.sendCopying(kCount);
      ASSERT_TRUE(pair.finishAndDrain(50 * kMs));
      const double elapsedNs =
          static_cast<double>(pair.clock().nowNs() - startNs) + 200e6;  // and the handshake
      ASSERT_EQ(pair.delivered().size(), kCount);
      EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
      EXPECT_EQ(pair.corrupt(), 0u);
      const ConnectionStats rx = pair.server().stats();
      EXPECT_GT(rx.outOfOrderArrived, 0u);
      EXPECT_EQ(rx.outOfOrderDelivered, 0u);
      EXPECT_EQ(rx.lost, 0u);
      EXPECT_EQ(rx.late, 0u);
      ASSERT_TRUE(pair.runUntilDone(100 * kMs));
      for (int i = 0; i < 100; ++i) {  // the slowest path's last ACKs are still on their way
        pair.clock().advance(100 * kUs);
        pair.pollBoth();
      }
      const ConnectionStats tx = pair.client().stats();
      const auto drift = static_cast<std::int64_t>(elapsedNs * std::abs(skew.ppm) / 1e6);
      for (std::size_t p = 0; p < 3; ++p) {
        // The receiver's one-way delay: the link's plus the offset (and what the rate error added).
        ASSERT_TRUE(rx.paths[p].owdValid) << p;
        const std::int64_t owd = static_cast<std::int64_t>(delays[p]) + skew.offsetNs;
        EXPECT_GE(rx.paths[p].owdMinNs, owd - drift) << p;
        EXPECT_LE(rx.paths[p].owdMinNs, owd + drift + static_cast<std::int64_t>(10 * kUs)) << p;
        // The sender's RTT: two link delays (and its polling step), on its own
        // clock; less the peer's hold time, which the peer measures on its own
        // (100 ppm of it: 4 ns on 4 ms).
        ASSERT_TRUE(tx.paths[p].rttValid) << p;
        EXPECT_GE(tx.paths[p].rttMinNs, 2 * delays[p] - kUs) << p;
        EXPECT_LE(tx.paths[p].rttMinNs, 2 * delays[p] + 100 * kUs) << p;
        EXPECT_LE(tx.paths[p].srttNs, 2 * delays[p] + kMs) << p;
      }
    }
  }
}

TEST(Connection, RttIsMeasuredPerPathWithPingPong) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 500 * kUs, 2 * kMs));
  ASSERT_TRUE(pair.handshake());
  for (int i = 0; i < 6000; ++i) {  // 300 ms: three PINGs per path
    pair.clock().advance(50 * kUs);
    pair.pollBoth();
  }
  const ConnectionStats tx = pair.client().stats();
  const std::uint64_t delays[] = {100 * kUs, 500 * kUs, 2 * kMs};
  for (std::size_t p = 0; p < 3; ++p) {
    ASSERT_TRUE(tx.paths[p].rttValid) << p;
    EXPECT_GE(tx.paths[p].rttMinNs, 2 * delays[p]) << p;
    EXPECT_LE(tx.paths[p].rttMinNs, 2 * delays[p] + 100 * kUs) << p;  // + the polling step
  }
}

// One second on three links of 0.5 ms each way, arrival stamps on or off:
// step(pair, t) runs every 50 µs; returns the client's paths at the end.
constexpr std::uint64_t kLagLinkDelay = 500 * kUs;
template <typename Step>
std::vector<PathStats> clientPathsAfterASecond(bool stamp, Step step) {
  std::vector<LinkSpec> links = threeLinks(kLagLinkDelay, kLagLinkDelay, kLagLinkDelay);
  for (auto& link : links) link.toServer.stampArrival = link.toClient.stampArrival = stamp;
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links));
  EXPECT_TRUE(pair.handshake());
  for (std::uint64_t t = 0; t < 1000 * kMs; t += 50 * kUs) {
    pair.clock().advance(50 * kUs);
    step(pair, t);
  }
  return pair.client().stats().paths;
}

// A receiver that reads its links late (a busy core, big batches) must not
// make the paths look slower: its answers count from when each packet
// reached the host when the transport stamps arrivals (AF_XDP does), and
// from the read only when it cannot. Idle paths: the RTT comes from PINGs,
// which reach the server at any time between its reads.
TEST(Connection, ArrivalStampsKeepTheReadersLagOutOfTheRtt) {
  constexpr std::uint64_t kDelay = kLagLinkDelay;
  constexpr std::uint64_t kServerReadEvery = 2 * kMs;
  const auto step = [&](Pair& pair, std::uint64_t t) {
    EXPECT_TRUE(pair.clientEndpoint().poll().ok());
    if (t % kServerReadEvery == 0) {
      EXPECT_TRUE(pair.serverEndpoint().poll().ok());
    }
  };
  const auto stamped = clientPathsAfterASecond(true, step);
  const auto unstamped = clientPathsAfterASecond(false, step);
  ASSERT_EQ(stamped.size(), 3u);
  ASSERT_EQ(unstamped.size(), 3u);
  for (std::size_t p = 0; p < 3; ++p) {
    ASSERT_TRUE(stamped[p].rttValid && unstamped[p].rttValid) << p;
    // Two link delays and the client's own polling step (1.12 ms when written).
    EXPECT_EQ(stamped[p].rttMinNs, 2 * kDelay) << p;
    EXPECT_LE(stamped[p].srttNs, 2 * kDelay + 250 * kUs) << p;
    // Read every 2 ms, a PING waits a millisecond on average (1.8 ms).
    EXPECT_GE(unstamped[p].srttNs, 2 * kDelay + 500 * kUs) << p;
  }
}

// The sender's own reads: an ACK or PONG that waited for its loop (receive
// coalescing, --rx-usecs; a busy core) counts from when it reached the host.
// The client sends and reads every 1.35 ms (out of step with the delays),
// the server reads every 50 µs.
TEST(Connection, ArrivalStampsKeepALateSendersLagOutOfTheRtt) {
  constexpr std::uint64_t kDelay = kLagLinkDelay;
  constexpr std::uint64_t kClientReadEvery = 1350 * kUs;
  std::vector<std::uint8_t> payload(200);
  const auto step = [&](Pair& pair, std::uint64_t t) {
    if (t % kClientReadEvery == 0) {
      EXPECT_TRUE(pair.client().send(payload).ok());
      EXPECT_TRUE(pair.clientEndpoint().poll().ok());
    }
    pair.serverReadsOnce();
  };
  const auto stamped = clientPathsAfterASecond(true, step);
  const auto unstamped = clientPathsAfterASecond(false, step);
  ASSERT_EQ(stamped.size(), 3u);
  ASSERT_EQ(unstamped.size(), 3u);
  EXPECT_GT(stamped[0].acksReceived, 500u);  // ACKs, not PONGs alone, gave samples
  for (std::size_t p = 0; p < 3; ++p) {
    ASSERT_TRUE(stamped[p].rttValid && unstamped[p].rttValid) << p;
    EXPECT_GE(stamped[p].srttNs, 2 * kDelay) << p;
    EXPECT_LE(stamped[p].srttNs, 2 * kDelay + 100 * kUs) << p;  // + the server's polling step
    // Read every 1.35 ms, an answer waits 0.7 ms on average.
    EXPECT_GE(unstamped[p].srttNs, 2 * kDelay + 400 * kUs) << p;
  }
}

// A transmit call that runs the link's path in the kernel (AF_XDP copy mode
// on veth: 8-10 us a frame on the shaped test bed) delays the paths served
// after it in the same loop. Their packets must carry the time they really
// left, or their RTTs and one-way delays grow with their place in the order
// (eaf then gave the last path, the fastest one on the test bed, less).
TEST(Connection, ASlowCommitOnOnePathDoesNotAgeThePacketsOfTheNext) {
  constexpr std::uint64_t kDelay = kLagLinkDelay;
  constexpr std::uint64_t kFrameCost = 25 * kUs;  // in the transmit call, per frame
  ManualClock* clock = nullptr;
  std::vector<LinkSpec> links = threeLinks(kDelay, kDelay, kDelay);
  for (auto& link : links) {
    link.toServer.stampArrival = link.toClient.stampArrival = true;
    link.toServer.onCommit = [&clock](std::size_t frames) {
      if (clock != nullptr) clock->advance(frames * kFrameCost);
    };
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.scheduler = SchedulerKind::kRoundRobin;  // four packets a path in each drain
  Pair pair(config, std::move(links));
  clock = &pair.clock();
  ASSERT_TRUE(pair.handshake());
  const std::vector<std::uint8_t> payload(200);
  // Enough for every path in one drain.
  const std::vector<std::span<const std::uint8_t>> batch(12, std::span<const std::uint8_t>(payload));
  for (std::uint64_t t = 0; t < 1000 * kMs; t += 50 * kUs) {
    pair.clock().advance(50 * kUs);
    if (t % kMs == 0) {
      EXPECT_TRUE(pair.client().sendMany(batch).ok());
      EXPECT_TRUE(pair.clientEndpoint().poll().ok());
    }
    pair.serverReadsOnce();
  }
  const auto paths = pair.client().stats().paths;
  ASSERT_EQ(paths.size(), 3u);
  for (std::size_t p = 0; p < 3; ++p) {
    ASSERT_TRUE(paths[p].rttValid) << p;
    EXPECT_GT(paths[p].packetsAcked, 1000u) << p;
    // Stamped when they left, every path measures its two link delays.
    // Stamped at the start of the loop, paths 1 and 2 measured more by what
    // was committed before them: PINGs 25 and 50 us (the minimum), data
    // 100 and 200 us (the smoothed RTT).
    EXPECT_EQ(paths[p].rttMinNs, 2 * kDelay) << p;
    EXPECT_LE(paths[p].srttNs, 2 * kDelay + kFrameCost) << p;
  }
}

TEST(Connection, BidirectionalDataFlowsBothWaysInOrder) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 300 * kUs, 600 * kUs),
            DataDirection::kBoth);
  ASSERT_TRUE(pair.handshake());
  EXPECT_TRUE(pair.client().state().sends && pair.client().state().receives);
  EXPECT_TRUE(pair.server().state().sends && pair.server().state().receives);
  // Interleave: 2000 each way.
  std::vector<std::uint64_t> toServer;
  std::vector<std::uint64_t> toClient;
  std::vector<std::uint8_t> payload(500);
  std::array<Delivered, 64> out;
  std::uint64_t up = 0;
  std::uint64_t down = 0;
  std::uint64_t acksRiding = 0;
  for (int step = 0;
       step < 4000 && (up < 2000 || down < 2000 || toServer.size() < 2000 || toClient.size() < 2000);
       ++step) {
    for (int k = 0; k < 4 && up < 2000; ++k) {
      std::memcpy(payload.data(), &up, sizeof up);
      auto sent = pair.client().send(payload);
      ASSERT_TRUE(sent.ok());
      if (*sent) ++up;
    }
    for (int k = 0; k < 4 && down < 2000; ++k) {
      std::memcpy(payload.data(), &down, sizeof down);
      auto sent = pair.server().send(payload);
      ASSERT_TRUE(sent.ok());
      if (*sent) ++down;
    }
    pair.clock().advance(20 * kUs);
    for (auto [conn, seqs] : {std::pair{&pair.server(), &toServer}, std::pair{&pair.client(), &toClient}}) {
      auto n = conn->poll(out);
      ASSERT_TRUE(n.ok());
      for (std::size_t i = 0; i < *n; ++i) {
        std::uint64_t tag = 0;
        std::memcpy(&tag, out[i].data, sizeof tag);
        EXPECT_EQ(tag, out[i].globalSeq);
        seqs->push_back(out[i].globalSeq);
      }
      conn->release(std::span<const Delivered>(out.data(), *n));
    }
  }
  ASSERT_EQ(toServer.size(), 2000u);
  ASSERT_EQ(toClient.size(), 2000u);
  EXPECT_TRUE(strictlyIncreasing(toServer));
  EXPECT_TRUE(strictlyIncreasing(toClient));
  for (std::size_t p = 0; p < 3; ++p) acksRiding += pair.client().stats().paths[p].acksReceived;
  EXPECT_GT(acksRiding, 0u);
  ASSERT_TRUE(pair.client().finish().ok());
  ASSERT_TRUE(pair.server().finish().ok());
  ASSERT_TRUE(pair.runUntilDone(200 * kMs));
  EXPECT_EQ(pair.client().state().phase, ConnectionPhase::kClosed);
  EXPECT_EQ(pair.server().state().phase, ConnectionPhase::kClosed);
  ASSERT_TRUE(pair.client().peerReport().has_value());
  ASSERT_TRUE(pair.server().peerReport().has_value());
  EXPECT_EQ(pair.client().peerReport()->packets, 2000u);
  EXPECT_EQ(pair.server().peerReport()->packets, 2000u);
}

TEST(Connection, AcksRideOnReverseData) {
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.ackEveryPackets = 8;
  auto links = threeLinks(50 * kUs, 50 * kUs, 50 * kUs);
  std::uint64_t riding = 0;
  std::uint64_t alone = 0;
  for (auto& link : links) {
    link.toClient.drop = [&riding, &alone](std::uint64_t, std::span<const std::uint8_t> packet) {
      if (has<wire::AckFrame>(packet)) ++(has<wire::DataFrame>(packet) ? riding : alone);
      return false;
    };
  }
  Pair pair(config, std::move(links), DataDirection::kBoth);
  ASSERT_TRUE(pair.handshake());
  std::vector<std::uint8_t> payload(200, 1);
  std::array<Delivered, 64> out;
  for (int step = 0; step < 600; ++step) {
    ASSERT_TRUE(pair.client().send(payload).ok());
    ASSERT_TRUE(pair.server().send(payload).ok());
    pair.clock().advance(10 * kUs);
    for (Connection* conn : {&pair.server(), &pair.client()}) {
      auto n = conn->poll(out);
      ASSERT_TRUE(n.ok());
      conn->release(std::span<const Delivered>(out.data(), *n));
    }
  }
  std::uint64_t acks = 0;
  for (const auto& p : pair.client().stats().paths) acks += p.acksReceived;
  EXPECT_LE(acks, 3 * (riding + alone));  // a packet carries the ACKs of up to three paths
  EXPECT_GT(acks, 0u);
  // With data flowing back, ACKs ride on it rather than go alone.
  EXPECT_GT(riding, 10u);
  EXPECT_GT(riding, 4 * alone);
}

TEST(Connection, ReverseModeTheServerSends) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 200 * kUs, 300 * kUs),
            DataDirection::kServerToClient);
  ASSERT_TRUE(pair.handshake());
  EXPECT_FALSE(pair.client().state().sends);
  EXPECT_EQ(pair.client().send(std::vector<std::uint8_t>(10)).error().code(), EPERM);
  pair.sendCopyingFrom(pair.server(), pair.client(), 1000, 10 * kUs);
  ASSERT_TRUE(pair.server().finish().ok());
  ASSERT_TRUE(pair.runUntilDone(100 * kMs));
  // drain(server) delivered nothing: the client's own deliveries were collected by sendCopyingFrom's
  // drain(client).
  EXPECT_EQ(pair.client().stats().packetsDelivered, 1000u);
  ASSERT_TRUE(pair.server().peerReport().has_value());
  EXPECT_EQ(pair.server().peerReport()->packets, 1000u);
}

TEST(Connection, ReorderOffDeliversOutOfOrder) {
  ConnectionConfig config = configWith(reorder::ReorderKind::kOff);
  config.scheduler = sched::SchedulerKind::kRoundRobin;
  Pair pair(config, threeLinks(100 * kUs, 500 * kUs, 2 * kMs));
  ASSERT_TRUE(pair.handshake());
  constexpr std::uint64_t kCount = 3000;
  pair.sendCopying(kCount);
  ASSERT_TRUE(pair.finishAndDrain(50 * kMs));
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(rx.packetsDelivered, kCount);
  EXPECT_GT(rx.outOfOrderDelivered, 0u);
  EXPECT_FALSE(strictlyIncreasing(pair.delivered()));
  std::vector<std::uint64_t> sorted = pair.delivered();
  std::sort(sorted.begin(), sorted.end());
  ASSERT_EQ(sorted.size(), kCount);
  for (std::uint64_t i = 0; i < kCount; ++i) ASSERT_EQ(sorted[i], i);
}

TEST(Connection, DroppedPacketsAreDeclaredLostExactlyOnce) {
  auto links = threeLinks(100 * kUs, 300 * kUs, 1 * kMs);
  links[1].toServer.drop = [](std::uint64_t, std::span<const std::uint8_t> packet) {
    const auto seq = dataSeq(packet);
    return seq && *seq % 7 == 3;
  };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.scheduler = sched::SchedulerKind::kRoundRobin;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  constexpr std::uint64_t kCount = 2100;
  pair.sendCopying(kCount);
  ASSERT_TRUE(pair.finishAndDrain(100 * kMs));
  const std::uint64_t dropped = pair.toServer(1).packetsDropped();
  ASSERT_GT(dropped, 50u);
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(rx.lost, dropped);
  EXPECT_EQ(rx.packetsDelivered + rx.lost, kCount);
  EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
  EXPECT_EQ(rx.paths[0].lostSeen, 0u);
  EXPECT_EQ(rx.paths[1].lostSeen, dropped);
  EXPECT_EQ(rx.paths[2].lostSeen, 0u);
  EXPECT_EQ(pair.server().state().accountedSeq, kCount);
  ASSERT_TRUE(pair.runUntilDone(100 * kMs));
  EXPECT_EQ(pair.client().peerReport()->lost, dropped);
}

// A packet the network delays past the hole timeout is declared lost and then
// arrives late, while the stream goes on; it reached the host after the
// judgement, so it is not counted as queued.
TEST(Connection, APacketTheNetworkDelaysPastTheTimeoutIsLateButNotQueued) {
  auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
  for (auto& link : links) link.toServer.stampArrival = true;
  links[1].toServer.extraDelayNs = [](std::uint64_t index) { return index == 300 ? 20 * kMs : 0; };
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(6400, 200 * kUs);  // 40 ms
  ASSERT_TRUE(pair.finishAndDrain(100 * kMs));
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(rx.lost, 1u);
  EXPECT_EQ(rx.late, 1u);
  EXPECT_EQ(rx.lateQueued, 0u);
}

// The receiver's own link hands one data packet over long after it stamped
// its arrival, and its ring reads empty meanwhile: the kernel stamped it but
// had not published it (on the test bed's veth one sat so for 100 ms, until
// the link's next packet). Late, but the receiver could not have read it, so
// not queued. That a readable packet does count: receive_stream_test.cpp.
class WithholdingReceive final : public conn::testing::ForwardingPacketIo {
 public:
  WithholdingReceive(std::unique_ptr<PacketIo> inner, std::uint64_t seq, std::uint64_t holdNs,
                     std::shared_ptr<const Clock*> clock)
      : ForwardingPacketIo(std::move(inner)), seq_(seq), holdNs_(holdNs), clock_(std::move(clock)) {}
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    const std::uint64_t now = (*clock_)->nowNs();
    if (held_ && now >= releaseNs_ && !out.empty()) {
      out[0] = *held_;
      held_.reset();
      return std::size_t{1};
    }
    auto got = inner_->receive(out);
    if (!got || taken_) return got;
    for (std::size_t i = 0; i < *got; ++i) {
      const auto seq = dataSeq(std::span<const std::uint8_t>(out[i].data, out[i].length));
      if (!seq || *seq < seq_) continue;
      held_ = out[i];
      taken_ = true;
      releaseNs_ = now + holdNs_;
      std::copy(out.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                out.begin() + static_cast<std::ptrdiff_t>(*got),
                out.begin() + static_cast<std::ptrdiff_t>(i));
      return *got - 1;
    }
    return got;
  }

 private:
  std::uint64_t seq_;
  std::uint64_t holdNs_;
  std::shared_ptr<const Clock*> clock_;
  std::optional<RxPacket> held_;
  std::uint64_t releaseNs_ = 0;
  bool taken_ = false;
};

TEST(Connection, ALatePacketItsLinkHeldBackUnpublishedIsLateButNotQueued) {
  auto clock = std::make_shared<const Clock*>(nullptr);
  auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
  for (auto& link : links) link.toClient.stampArrival = true;
  links[1].wrapClient = [clock](std::unique_ptr<PacketIo> inner) -> std::unique_ptr<PacketIo> {
    return std::make_unique<WithholdingReceive>(std::move(inner), 900, 20 * kMs, clock);
  };
  // Judged by the timeout alone: fast loss would take the gap the withheld
  // packet leaves in its path's numbers as evidence of a loss on the wire.
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.reorder.fastLoss = false;
  Pair pair(config, std::move(links), DataDirection::kServerToClient);
  *clock = &pair.clock();
  ASSERT_TRUE(pair.handshake());
  pair.sendCopyingFrom(pair.server(), pair.client(), 6400, 200 * kUs);  // 40 ms
  ASSERT_TRUE(pair.server().finish().ok());
  ASSERT_TRUE(pair.runUntilDone(100 * kMs));
  const ConnectionStats rx = pair.client().stats();
  EXPECT_EQ(rx.lost, 1u);
  EXPECT_EQ(rx.late, 1u);
  EXPECT_EQ(rx.lateQueued, 0u);
}

// A receiver that finds a backlog in its rings and a table too small for it:
// reads are cut short for room again and again. Every path must get its turn
// (rounds begun at path 0 each time let path 0 run a window ahead of the
// others, whose packets were then given up while they waited in their rings),
// and no hole may time out as if every ring had been read. Each read takes
// 2 ms while the table fills.
class SlowReceive final : public conn::testing::ForwardingPacketIo {
 public:
  SlowReceive(std::unique_ptr<PacketIo> inner, std::shared_ptr<ManualClock*> clock)
      : ForwardingPacketIo(std::move(inner)), clock_(std::move(clock)) {}
  Result<std::size_t> receive(std::span<RxPacket> out) noexcept override {
    if (slow) (*clock_)->advance(2 * kMs);
    return inner_->receive(out);
  }
  bool slow = false;

 private:
  std::shared_ptr<ManualClock*> clock_;
};

TEST(Connection, AReceiverShortOfRoomReadsEveryPathAndGivesUpNoPacketWaitingInARing) {
  auto clock = std::make_shared<ManualClock*>(nullptr);
  std::vector<SlowReceive*> readers;
  auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
  for (auto& link : links) {
    link.toClient.stampArrival = true;
    link.wrapClient = [clock, &readers](std::unique_ptr<PacketIo> inner) -> std::unique_ptr<PacketIo> {
      auto reader = std::make_unique<SlowReceive>(std::move(inner), clock);
      readers.push_back(reader.get());
      return reader;
    };
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.scheduler = sched::SchedulerKind::kRoundRobin;
  config.reorder.windowPackets = 256;  // a table of 256 + 64 x 5 entries
  config.reorder.adaptiveTimeout = false;
  config.reorder.fixedTimeoutNs = 3 * kMs;
  config.reorder.fastLoss = false;
  Pair pair(config, std::move(links), DataDirection::kServerToClient);
  *clock = &pair.clock();
  ASSERT_TRUE(pair.handshake());
  pair.sendCopyingFrom(pair.server(), pair.client(), 300, 10 * kUs);
  // 1200 packets reach the client's rings while it does not read.
  std::array<std::vector<std::uint8_t>, 30> payloads;
  std::array<std::span<const std::uint8_t>, 30> spans;
  std::uint64_t next = pair.sent();
  for (int batch = 0; batch < 40; ++batch) {
    for (std::size_t j = 0; j < spans.size(); ++j, ++next) {
      payloads[j].resize(payloadSize(next));
      fillPayload(next, payloads[j]);
      spans[j] = payloads[j];
    }
    auto sent = pair.server().sendMany(spans);
    ASSERT_TRUE(sent.ok());
    ASSERT_EQ(*sent, spans.size());
    pair.clock().advance(10 * kUs);
    ASSERT_TRUE(pair.serverEndpoint().poll().ok());
  }
  pair.clock().advance(1 * kMs);
  // Reads until the table is full, taking nothing.
  for (auto* reader : readers) reader->slow = true;
  ASSERT_TRUE(pair.clientEndpoint().poll().ok());
  for (auto* reader : readers) reader->slow = false;
  // Then takes a little at a time: every read is cut short for room.
  std::array<Delivered, 16> out;
  for (int guard = 0; guard < 100'000 && pair.client().stats().packetsDelivered < next; ++guard) {
    auto n = pair.client().poll(out);
    ASSERT_TRUE(n.ok());
    pair.client().release({out.data(), *n});
    pair.clock().advance(10 * kUs);
  }
  const ConnectionStats rx = pair.client().stats();
  EXPECT_EQ(rx.packetsDelivered, next)
      << "lost " << rx.lost << ", late " << rx.late << " (queued " << rx.lateQueued << ")";
  EXPECT_EQ(rx.lost, 0u);
  EXPECT_EQ(rx.lateQueued, 0u);
}

TEST(Connection, LostTailIsDeclaredAtClose) {
  auto links = threeLinks(100 * kUs, 300 * kUs, 1 * kMs);
  constexpr std::uint64_t kCount = 300;
  // The last two data packets on path 0 (round robin: seqs 294 and 297) vanish; only CLOSE tells.
  links[0].toServer.drop = [](std::uint64_t, std::span<const std::uint8_t> packet) {
    const auto seq = dataSeq(packet);
    return seq && *seq >= kCount - 6 && *seq % 3 == 0;
  };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.scheduler = sched::SchedulerKind::kRoundRobin;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(kCount);
  ASSERT_TRUE(pair.finishAndDrain(100 * kMs));
  ASSERT_EQ(pair.toServer(0).packetsDropped(), 2u);
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(rx.lost, 2u);
  EXPECT_EQ(rx.packetsDelivered, kCount - 2);
  EXPECT_EQ(rx.paths[0].lostSeen, 2u);  // the CLOSE's packet number shows the gap
  EXPECT_FALSE(pair.server().state().endedByIdleTimeout);
}

// finish() while packets still wait in a send queue: the receiver ends the
// stream as soon as a CLOSE came on every path (no data can follow one on its
// path), so a CLOSE must not overtake queued data. It did: a CI run ended
// with one packet still queued at the sender (queued_packets 1 in its final
// report) and the receiver counting it lost (lost 1, late 0, delivered ==
// sent), because the REPORT came back before the packet's pacer let it go.
TEST(Connection, NoDataFollowsACloseOnItsPath) {
  // eaf queues the fast path up to the delay difference.
  auto links = threeLinks(100 * kUs, 600 * kUs, 100 * kUs);
  links.pop_back();
  std::array<bool, 2> closeSeen{};
  std::array<int, 2> dataAfterClose{};
  for (std::size_t l = 0; l < links.size(); ++l) {
    links[l].rateBps = 100'000'000;
    links[l].toServer.drop = [&closeSeen, &dataAfterClose, l](std::uint64_t,
                                                              std::span<const std::uint8_t> packet) {
      if (has<wire::CloseFrame>(packet)) closeSeen[l] = true;
      if (closeSeen[l] && has<wire::DataFrame>(packet)) ++dataAfterClose[l];
      return false;
    };
  }
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links));
  ASSERT_TRUE(pair.handshake());
  // Faster than the pacers (a packet each microsecond).
  pair.sendCopying(2000, kUs);
  std::uint64_t queued = 0;
  for (const auto& path : pair.client().stats().paths) queued += path.queuedPackets;
  ASSERT_GT(queued, 0u) << "nothing queued at finish: the test would test nothing";
  ASSERT_TRUE(pair.client().finish().ok());
  ASSERT_TRUE(pair.runUntilDone(3'000 * kMs));
  EXPECT_EQ(dataAfterClose[0] + dataAfterClose[1], 0) << queued << " packets were queued at finish";
  const ConnectionStats tx = pair.client().stats();
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(tx.packetsSent + tx.txDropped, pair.sent());
  EXPECT_EQ(tx.txDropped, 0u);
  EXPECT_EQ(rx.packetsDelivered, pair.sent());
  EXPECT_EQ(rx.lost, 0u);
}

TEST(Connection, LostCloseEndsTheStreamAtTheIdleTimeoutAndTheSenderGivesUpOnTheReport) {
  auto links = threeLinks(100 * kUs, 500 * kUs, 2 * kMs);
  for (auto& link : links) {
    link.toServer.drop = [](std::uint64_t, std::span<const std::uint8_t> packet) {
      return has<wire::CloseFrame>(packet);
    };
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.idleTimeoutNs = 50 * kMs;
  config.reportWaitNs = 500 * kMs;
  config.peerTimeoutNs = 10'000 * kMs;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(900);
  ASSERT_TRUE(pair.client().finish().ok());
  EXPECT_FALSE(pair.drainUntilFinished(30 * kMs));  // data all in, but no CLOSE: keep waiting
  EXPECT_EQ(pair.delivered().size(), 900u);
  ASSERT_TRUE(pair.drainUntilFinished(40 * kMs));
  EXPECT_TRUE(pair.server().state().endedByIdleTimeout);
  EXPECT_FALSE(pair.server().state().endSeen);
  EXPECT_EQ(pair.server().stats().lost, 0u);
  // Its REPORT still reaches the client (the reverse direction works).
  ASSERT_TRUE(pair.runUntilDone(600 * kMs));
  EXPECT_TRUE(pair.client().peerReport().has_value());
}

TEST(Connection, ReportLostIsResentOnTheNextClose) {
  auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
  int reportsDropped = 0;
  for (auto& link : links) {
    link.toClient.drop = [&reportsDropped](std::uint64_t, std::span<const std::uint8_t> packet) {
      if (!has<wire::ReportFrame>(packet) || reportsDropped >= 3) return false;
      ++reportsDropped;
      return true;
    };
  }
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(300);
  ASSERT_TRUE(pair.finishAndDrain(50 * kMs));
  ASSERT_TRUE(pair.runUntilDone(1000 * kMs));
  EXPECT_EQ(reportsDropped, 3);
  ASSERT_TRUE(pair.client().peerReport().has_value());
  EXPECT_EQ(pair.client().peerReport()->packets, 300u);
}

TEST(Connection, PacketNumbersNeverRepeatOnAPathCloseIncluded) {
  auto links = threeLinks(100 * kUs, 200 * kUs, 300 * kUs);
  std::array<std::set<std::uint64_t>, 3> seen;
  std::array<std::uint64_t, 3> repeats{};
  for (std::size_t p = 0; p < 3; ++p) {
    links[p].toServer.drop = [&seen, &repeats, p](std::uint64_t, std::span<const std::uint8_t> packet) {
      const auto header = wire::parsePacketHeader(packet);
      if (header.ok() && !seen[p].insert(header.value.packetNumber).second) ++repeats[p];
      return false;
    };
  }
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(600);
  pair.sendZeroCopy(600);
  ASSERT_TRUE(pair.finishAndDrain(50 * kMs));
  ASSERT_TRUE(pair.runUntilDone(100 * kMs));
  const ConnectionStats tx = pair.client().stats();
  for (std::size_t p = 0; p < 3; ++p) {
    EXPECT_EQ(repeats[p], 0u) << p;
    EXPECT_EQ(seen[p].size(), tx.paths[p].packetNumbersUsed) << p;  // HELLO, PING, data, CLOSE: all numbered
    EXPECT_GE(seen[p].size(), tx.paths[p].packetsSent + 2) << p;    // + at least HELLO and CLOSE
  }
}

TEST(Connection, DuplicatedPacketsAreProcessedOnce) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 10 * kUs, 10 * kUs));
  ASSERT_TRUE(pair.handshake());
  // Capture one data packet and replay it.
  std::vector<std::uint8_t> captured;
  pair.sendCopying(10);
  std::array<SendSlot, 1> slot;
  ASSERT_EQ(pair.client().reserve(slot, 100), 1u);
  std::memset(slot[0].data, 0, 100);
  slot[0].length = 100;
  ASSERT_TRUE(pair.client().commit(slot).ok());
  captured.assign(slot[0].frame, slot[0].frame + 40 + 100);  // still on the wire, unchanged
  pair.clock().advance(100 * kUs);
  pair.drain();
  const std::uint64_t delivered = pair.server().stats().packetsDelivered;
  ASSERT_TRUE(pair.toServer(slot[0].link).inject(captured));
  pair.clock().advance(100 * kUs);
  pair.drain();
  EXPECT_EQ(pair.server().stats().packetsDelivered, delivered);
}

TEST(Connection, PacingKeepsEveryLinkWithinItsRate) {
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  auto links = threeLinks(100 * kUs, 200 * kUs, 300 * kUs);
  const std::vector<std::uint64_t> rates = {80'000'000, 40'000'000, 20'000'000};
  for (std::size_t p = 0; p < 3; ++p) links[p].rateBps = rates[p];
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  constexpr std::uint32_t kPayload = 1000;
  constexpr std::uint64_t kOuter = 14 + 20 + 8;  // what the memory link says it adds
  std::array<SendSlot, 32> slots;
  const std::uint64_t start = pair.clock().nowNs();
  std::vector<std::uint64_t> committedBefore;
  for (std::size_t p = 0; p < 3; ++p) committedBefore.push_back(pair.toServer(p).bytesCommitted());
  bool sawBlocked = false;
  while (pair.clock().nowNs() - start < 50 * kMs) {
    const std::size_t n = pair.client().reserve(slots, kPayload);
    for (std::size_t i = 0; i < n; ++i) slots[i].length = kPayload;
    ASSERT_TRUE(pair.client().commit(std::span<const SendSlot>(slots.data(), n)).ok());
    pair.drain();
    if (n == 0) {
      const std::uint64_t when = pair.client().nextSendTimeNs(kPayload);
      if (when > pair.clock().nowNs()) sawBlocked = true;
      pair.clock().set(std::max(when, pair.clock().nowNs() + kUs));
    }
  }
  EXPECT_TRUE(sawBlocked);
  // Without a scheduler named, every path has a rate: wrr shares by rate.
  const double elapsedNs = static_cast<double>(pair.clock().nowNs() - start);
  const ConnectionStats tx = pair.client().stats();
  for (std::size_t p = 0; p < rates.size(); ++p) {
    const double frameBytes = static_cast<double>(tx.paths[p].packetsSent) * (kPayload + 40 + kOuter);
    const double rateBytesPerNs = static_cast<double>(rates[p]) / 8e9;
    const double burst = rateBytesPerNs * static_cast<double>(config.pacingBurstNs) + kPayload + 82;
    EXPECT_LE(frameBytes, rateBytesPerNs * elapsedNs + burst) << "link " << p;
    EXPECT_GE(frameBytes, 0.85 * rateBytesPerNs * elapsedNs) << "link " << p;
  }
}

TEST(Connection, ZeroCopySlotsPointIntoLinkBuffersAndEmptySlotsGoBack) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 20 * kUs, 30 * kUs));
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(pair.client().maxPayload(), 1500u - 40u);
  std::array<SendSlot, 16> slots;
  ASSERT_EQ(pair.client().reserve(slots), slots.size());
  std::uint64_t seq = 0;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    EXPECT_EQ(slots[i].data, slots[i].frame + 40);
    EXPECT_EQ(slots[i].capacity, 1500u - 40u);
    if (i == 5) continue;  // left empty: given back unsent
    fillPayload(seq, std::span<std::uint8_t>(slots[i].data, payloadSize(seq)));
    slots[i].length = payloadSize(seq);
    ++seq;
  }
  auto committed = pair.client().commit(slots);
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(*committed, slots.size() - 1);
  pair.clock().advance(100 * kUs);
  pair.drain();
  ASSERT_EQ(pair.delivered().size(), slots.size() - 1);
  EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
  EXPECT_EQ(pair.corrupt(), 0u);

  ASSERT_EQ(pair.client().reserve(std::span<SendSlot>(slots.data(), 1)), 1u);
  slots[0].length = slots[0].capacity + 1;
  auto refused = pair.client().commit(std::span<const SendSlot>(slots.data(), 1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), EMSGSIZE);
}

// A link whose commitTx fails while `failing` is set.
class FailingCommit final : public conn::testing::ForwardingPacketIo {
 public:
  FailingCommit(std::unique_ptr<PacketIo> inner, const bool& failing)
      : ForwardingPacketIo(std::move(inner)), failing_(failing) {}
  Result<std::size_t> commitTx(std::span<const TxBuffer> buffers) noexcept override {
    if (!failing_) return inner_->commitTx(buffers);
    std::vector<TxBuffer> none(buffers.begin(), buffers.end());
    for (auto& b : none) b.length = 0;  // the buffers go back unsent
    (void)inner_->commitTx(none);
    return Error(EIO, "link down");
  }

 private:
  const bool& failing_;
};

TEST(Connection, ACommitThatFailsOnOnePathStillCountsWhatTheOthersSent) {
  bool failing = false;
  auto links = threeLinks(10 * kUs, 10 * kUs, 10 * kUs);
  links[1].wrapClient = [&failing](std::unique_ptr<PacketIo> inner) {
    return std::make_unique<FailingCommit>(std::move(inner), failing);
  };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.scheduler = sched::SchedulerKind::kRoundRobin;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  failing = true;
  std::array<SendSlot, 9> slots;
  ASSERT_EQ(pair.client().reserve(slots, 100), slots.size());
  for (auto& slot : slots) slot.length = 100;
  auto committed = pair.client().commit(slots);
  ASSERT_TRUE(committed.ok()) << committed.error().message();
  EXPECT_EQ(*committed, 6u);  // paths 0 and 2; path 1's three are refused
  EXPECT_EQ(pair.client().stats().txDropped, 3u);
  EXPECT_EQ(pair.client().stats().packetsSent, 6u);
  // Only when nothing went out is the error returned.
  ASSERT_EQ(pair.client().reserve(std::span<SendSlot>(slots.data(), 3), 100), 3u);
  std::array<SendSlot, 1> onPath1{};
  for (std::size_t i = 0; i < 3; ++i) {
    if (slots[i].link == 1) {
      onPath1[0] = slots[i];
      onPath1[0].length = 100;
    } else {
      slots[i].length = 0;
      ASSERT_TRUE(pair.client().commit(std::span<const SendSlot>(&slots[i], 1)).ok());
    }
  }
  auto refused = pair.client().commit(onPath1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), EIO);
}

TEST(Connection, CopyingSendAndRecv) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 20 * kUs, 30 * kUs));
  ASSERT_TRUE(pair.handshake());
  std::vector<std::uint8_t> payload(payloadSize(0));
  fillPayload(0, payload);
  auto sent = pair.client().send(payload);
  ASSERT_TRUE(sent.ok());
  EXPECT_TRUE(*sent);
  EXPECT_EQ(pair.client().send({}).error().code(), EINVAL);
  std::vector<std::uint8_t> huge(pair.client().maxPayload() + 1);
  EXPECT_EQ(pair.client().send(huge).error().code(), EMSGSIZE);
  std::vector<std::uint8_t> buffer(2048);
  auto none = pair.server().recv(buffer);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
  pair.clock().advance(15 * kUs);
  auto tooSmall = pair.server().recv(std::span<std::uint8_t>(buffer.data(), 10));
  ASSERT_FALSE(tooSmall.ok());
  EXPECT_EQ(tooSmall.error().code(), EMSGSIZE);
  auto got = pair.server().recv(buffer);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(*got, payload.size());
  EXPECT_TRUE(payloadIntact(0, std::span<const std::uint8_t>(buffer.data(), *got)));
}

TEST(Connection, MalformedAndForeignPacketsAreCountedAndChangeNothing) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 10 * kUs, 10 * kUs));
  ASSERT_TRUE(pair.handshake());
  std::array<std::uint8_t, 64> garbage{};
  garbage.fill(0xAB);
  ASSERT_TRUE(pair.toServer(0).inject(garbage));
  ASSERT_TRUE(pair.toServer(1).inject(std::span<const std::uint8_t>(garbage.data(), 5)));
  // A valid header of our connection followed by an unknown frame type.
  std::array<std::uint8_t, 64> packet{};
  wire::PacketHeader header;
  header.connId = pair.client().state().connId;
  header.pathId = 2;
  header.packetNumber = 1'000'000;
  ASSERT_TRUE(wire::writePacketHeader(packet, header).ok());
  packet[wire::kPacketHeaderLen] = 0x7f;
  ASSERT_TRUE(pair.toServer(2).inject(packet));
  // Someone else's connection: no HELLO, so it is unknown.
  header.connId = header.connId + 1;
  packet[wire::kPacketHeaderLen] = 0;  // padding
  std::fill(packet.begin() + wire::kPacketHeaderLen, packet.end(), 0);
  ASSERT_TRUE(wire::writePacketHeader(packet, header).ok());
  ASSERT_TRUE(pair.toServer(2).inject(packet));
  pair.clock().advance(20 * kUs);
  pair.drain();
  const EndpointStats endpoint = pair.serverEndpoint().stats();
  EXPECT_EQ(endpoint.malformed, 2u);
  EXPECT_EQ(endpoint.unknownConnection, 1u);
  EXPECT_EQ(pair.server().stats().malformed, 1u);
  EXPECT_EQ(pair.server().stats().packetsDelivered, 0u);
  pair.sendCopying(100);
  pair.clock().advance(kMs);
  pair.drain();
  EXPECT_EQ(pair.delivered().size(), 100u);
  EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
}

TEST(Connection, AForgedFarAheadPacketChangesNoPathFigures) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 20 * kUs, 30 * kUs));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(300);
  // A replayed data frame with its global seq and packet number moved far ahead.
  std::array<std::uint8_t, 64> forged{};
  wire::PacketHeader header;
  header.connId = pair.client().state().connId;
  header.pathId = 0;
  header.packetNumber = std::uint64_t{1} << 32;
  header.sendTsNs = pair.clock().nowNs();
  ASSERT_TRUE(wire::writePacketHeader(forged, header).ok());
  ASSERT_TRUE(wire::writeDataFrameHeader(std::span<std::uint8_t>(forged).subspan(wire::kPacketHeaderLen),
                                         std::uint64_t{1} << 40, 24)
                  .ok());
  ASSERT_TRUE(pair.toServer(0).inject(forged));
  pair.sendCopying(300);
  ASSERT_TRUE(pair.finishAndDrain(50 * kMs));
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(rx.implausible, 1u);
  EXPECT_EQ(rx.packetsDelivered, 600u);
  EXPECT_EQ(rx.lost, 0u);
  EXPECT_EQ(rx.late, 0u);
  EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
  for (std::size_t p = 0; p < 3; ++p) {
    EXPECT_EQ(rx.paths[p].lostSeen, 0u) << p;
    EXPECT_EQ(rx.paths[p].outOfOrderInPath, 0u) << p;
  }
  ASSERT_TRUE(pair.runUntilDone(100 * kMs));
  EXPECT_EQ(pair.client().stats().malformed, 0u);  // no ACK of a packet it never sent
}

TEST(Connection, ANewerWireVersionGetsVersionNegotiation) {
  auto links = threeLinks(10 * kUs, 10 * kUs, 10 * kUs);
  std::optional<wire::VersionList> answer;
  links[0].toClient.drop = [&answer](std::uint64_t, std::span<const std::uint8_t> packet) {
    const auto versions = wire::parseVersionNegotiation(packet);
    if (versions.ok()) answer = versions.value;
    return false;
  };
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links));
  std::array<std::uint8_t, 64> packet{};
  wire::PacketHeader header;
  header.connId = 0x1234;
  ASSERT_TRUE(wire::writePacketHeader(packet, header).ok());
  packet[2] = 3;  // a newer version
  ASSERT_TRUE(pair.toServer(0).inject(packet));
  pair.clock().advance(20 * kUs);
  pair.pollBoth();
  EXPECT_EQ(pair.serverEndpoint().stats().versionMismatch, 1u);
  EXPECT_EQ(pair.serverEndpoint().stats().lastForeignVersion, 3u);
  ASSERT_TRUE(answer.has_value());
  ASSERT_EQ(answer->count, 1u);
  EXPECT_EQ(answer->versions[0], wire::kWireVersion);
}

TEST(Connection, AClientMeetingAnotherVersionFailsWithAClearError) {
  auto links = threeLinks(10 * kUs, 10 * kUs, 10 * kUs);
  // The server side "speaks" another version: every packet to it is rewritten to version 3.
  for (auto& link : links) {
    // The wire hands the frame's own memory to the hook: rewrite the version
    // byte as a peer of another version would have sent it.
    link.toServer.drop = [](std::uint64_t, std::span<const std::uint8_t> packet) {
      const_cast<std::uint8_t&>(packet[2]) = 3;  // NOLINT(cppcoreguidelines-pro-type-const-cast)
      return false;
    };
  }
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links));
  EXPECT_FALSE(pair.handshake(50 * kMs));
  ASSERT_TRUE(pair.client().done());
  ASSERT_TRUE(pair.client().error().has_value());
  EXPECT_EQ(pair.client().error()->code(), EPROTONOSUPPORT);
  EXPECT_NE(pair.client().error()->context().find("wire version 2"), std::string::npos)
      << pair.client().error()->context();
  EXPECT_GE(pair.serverEndpoint().stats().versionMismatch, 1u);
}

TEST(Connection, APathCountMismatchIsRefusedOnBothSides) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 10 * kUs, 10 * kUs),
            DataDirection::kClientToServer, /*serverPaths=*/2);
  EXPECT_FALSE(pair.handshake(50 * kMs));
  EXPECT_FALSE(pair.serverReady());
  ASSERT_TRUE(pair.client().done());
  ASSERT_TRUE(pair.client().error().has_value());
  EXPECT_NE(pair.client().error()->context().find("the client has 3 paths, the server 2"), std::string::npos)
      << pair.client().error()->context();
  EXPECT_GE(pair.serverEndpoint().stats().refused, 1u);
  EXPECT_NE(pair.serverEndpoint().stats().lastRefusal.find("3 paths"), std::string::npos);
}

TEST(Connection, NoServerFailsTheHandshakeWithinItsTimeout) {
  auto links = threeLinks(10 * kUs, 10 * kUs, 10 * kUs);
  for (auto& link : links)
    link.toServer.drop = [](std::uint64_t, std::span<const std::uint8_t>) { return true; };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.handshakeTimeoutNs = 1'000 * kMs;
  Pair pair(config, std::move(links));
  EXPECT_FALSE(pair.handshake(900 * kMs));
  EXPECT_FALSE(pair.client().done());
  EXPECT_FALSE(pair.handshake(200 * kMs));
  ASSERT_TRUE(pair.client().done());
  EXPECT_EQ(pair.client().error()->code(), ETIMEDOUT);
  EXPECT_NE(pair.client().error()->context().find("no answer"), std::string::npos);
  // HELLO was repeated, every few hundred ms.
  EXPECT_GE(pair.toServer(0).packetsDropped(), 4u);
}

TEST(Connection, APeerThatGoesAwayIsNoticed) {
  auto links = threeLinks(10 * kUs, 10 * kUs, 10 * kUs);
  bool cut = false;
  for (auto& link : links) {
    link.toClient.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.peerTimeoutNs = 500 * kMs;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(100);
  cut = true;  // the receiver "dies": nothing comes back any more
  // The paths go suspect, then dead; sending stops and the peer timeout ends it.
  std::vector<std::uint8_t> payload(100, 7);
  std::array<Delivered, 4> out;
  for (int i = 0; i < 60 && !pair.client().done(); ++i) {
    (void)pair.client().send(payload);
    pair.clock().advance(10 * kMs);
    (void)pair.client().poll(out);
  }
  ASSERT_TRUE(pair.client().done());
  EXPECT_EQ(pair.client().error()->code(), ETIMEDOUT);
  EXPECT_NE(pair.client().error()->context().find("went away"), std::string::npos);
}

// A peer that restarted answers the old connection's packets with CLOSE
// (no such connection), numbered from 0 again: numbers this connection has
// seen. They must end it at once, and as duplicates they must not count as
// signs of life either (the connection would live on until its numbers passed
// the old ones: minutes after a long transfer).
TEST(Connection, ARestartedPeersCloseEndsTheConnectionAtOnce) {
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.peerTimeoutNs = 500 * kMs;
  Pair pair(config, threeLinks(10 * kUs, 10 * kUs, 10 * kUs));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(2000);
  std::array<std::uint8_t, 128> packet{};
  wire::PacketHeader header;
  header.connId = pair.client().state().connId;
  header.pathId = 0;
  header.packetNumber = 0;
  const auto headerBytes = wire::writePacketHeader(packet, header);
  ASSERT_TRUE(headerBytes.ok());
  wire::CloseFrame close;
  close.errorCode = static_cast<std::uint16_t>(wire::CloseError::kPeerGone);
  close.reason = "no such connection here";
  const auto closeBytes = wire::writeFrame(std::span(packet).subspan(headerBytes.value), wire::Frame{close});
  ASSERT_TRUE(closeBytes.ok());
  ASSERT_TRUE(pair.toClient(0).inject(
      std::span<const std::uint8_t>(packet.data(), headerBytes.value + closeBytes.value)));
  pair.clock().advance(20 * kUs);
  std::array<Delivered, 4> out;
  (void)pair.client().poll(out);
  ASSERT_TRUE(pair.client().done());
  EXPECT_NE(pair.client().error()->context().find("no such connection"), std::string::npos);
}

TEST(Connection, AbortTellsThePeer) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(10 * kUs, 10 * kUs, 10 * kUs));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(50);
  pair.server().abort(static_cast<std::uint16_t>(wire::CloseError::kStopped), "interrupted by SIGINT");
  pair.clock().advance(100 * kUs);
  pair.drain();
  ASSERT_TRUE(pair.client().done());
  EXPECT_EQ(pair.client().error()->code(), ECONNRESET);
  EXPECT_NE(pair.client().error()->context().find("interrupted by SIGINT"), std::string::npos);
}

// After a warm-up, 10,000 payloads both ways of sending allocate nothing.
void expectNoAllocationPerPacket(const SecurityOptions& security) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 400 * kUs, 1 * kMs),
            DataDirection::kClientToServer, 0, std::nullopt, security, security);
  ASSERT_TRUE(pair.handshake());
  pair.sendZeroCopy(2000);
  pair.sendCopying(2000);
  const std::uint64_t before = gAllocations.load();
  pair.sendZeroCopy(5000);
  pair.sendCopying(5000);
  EXPECT_EQ(gAllocations.load() - before, 0u);
  ASSERT_TRUE(pair.finishAndDrain(50 * kMs));
  EXPECT_EQ(pair.delivered().size(), 14000u);
  EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
}

TEST(Connection, SteadyStateAllocatesNothingPerPacket) { expectNoAllocationPerPacket(SecurityOptions{}); }

TEST(Connection, EndpointRejectsBadPaths) {
  auto none = Endpoint::create(EndpointConfig{}, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), EINVAL);
  auto clock = std::make_shared<ManualClock>();
  MemoryLinkOptions tiny;
  tiny.frameSize = 30;  // smaller than mpxdp's headers
  auto link = conn::testing::makeDuplexLink(tiny, tiny, clock);
  std::vector<EndpointPath> paths;
  paths.push_back(EndpointPath{std::move(link.clientEnd), 0, "tiny"});
  auto tooSmall = Endpoint::create(EndpointConfig{}, std::move(paths), clock);
  ASSERT_FALSE(tooSmall.ok());
  EXPECT_EQ(tooSmall.error().code(), EINVAL);
  std::vector<EndpointPath> nullPath(1);
  EXPECT_FALSE(Endpoint::create(EndpointConfig{}, std::move(nullPath), clock).ok());
}

}  // namespace
}  // namespace mpxdp

namespace mpxdp {
namespace {

// Sends as fast as the connection allows for durationNs of simulated time,
// in steps of stepNs, with the receiver polled after every step.
void sendFor(Pair& pair, std::uint64_t durationNs, std::uint64_t stepNs = 50 * kUs) {
  std::vector<std::uint8_t> payload(1000, 3);
  std::array<std::span<const std::uint8_t>, 32> spans;
  spans.fill(std::span<const std::uint8_t>(payload));
  const std::uint64_t end = pair.clock().nowNs() + durationNs;
  while (pair.clock().nowNs() < end) {
    for (int k = 0; k < 8; ++k) {
      auto sent = pair.client().sendMany(spans);
      ASSERT_TRUE(sent.ok()) << sent.error().message();
      if (*sent < spans.size()) break;
    }
    pair.clock().advance(stepNs);
    pair.drain();
  }
}

std::optional<std::uint64_t> firstEventNs(const ConnectionStats& stats, std::uint16_t path, PathState state,
                                          std::uint64_t afterNs) {
  for (const PathEvent& e : stats.pathEvents) {
    if (e.path == path && e.state == state && e.timeNs >= afterNs) return e.timeNs;
  }
  return std::nullopt;
}

TEST(PathControl, ACutPathIsSuspectedFastItsTrafficMovesAndItComesBack) {
  auto links = threeLinks(1 * kMs, 1 * kMs, 1 * kMs);
  bool cut = false;
  for (auto& link : links) link.rateBps = 100'000'000;
  links[1].toServer.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  links[1].toClient.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.idleTimeoutNs = 0;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  sendFor(pair, 300 * kMs);
  const ConnectionStats before = pair.client().stats();
  ASSERT_EQ(before.paths[1].state, PathState::kActive);
  ASSERT_GT(before.paths[1].packetsSent, 1000u);
  const std::uint64_t cutNs = pair.clock().nowNs();
  cut = true;
  sendFor(pair, 100 * kMs);
  const ConnectionStats tx = pair.client().stats();
  const auto suspect = firstEventNs(tx, 1, PathState::kSuspect, cutNs);
  ASSERT_TRUE(suspect.has_value());
  EXPECT_LT(*suspect - cutNs, 40 * kMs);  // RTT 2 ms: the 15 ms floor plus an ACK interval
  // Losses stop: nothing is lost in the last 50 ms of the cut, and what the
  // path had queued went to the others.
  const std::uint64_t lostAt50 = pair.server().stats().lost;
  const std::uint64_t sentAt50 = tx.paths[1].packetsSent;
  sendFor(pair, 400 * kMs);
  EXPECT_EQ(pair.server().stats().lost, lostAt50);
  const ConnectionStats during = pair.client().stats();
  EXPECT_EQ(during.paths[1].packetsSent, sentAt50);
  EXPECT_EQ(during.paths[1].state, PathState::kDead);
  EXPECT_GT(during.paths[0].packetsSent, before.paths[0].packetsSent + 1000);
  // Restore: probes bring it back within a second, and it carries data again.
  const std::uint64_t restoreNs = pair.clock().nowNs();
  cut = false;
  sendFor(pair, 1000 * kMs);
  const ConnectionStats after = pair.client().stats();
  const auto active = firstEventNs(after, 1, PathState::kActive, restoreNs);
  ASSERT_TRUE(active.has_value());
  EXPECT_LT(*active - restoreNs, 1000 * kMs);
  EXPECT_GT(after.paths[1].packetsSent, sentAt50 + 1000);
  EXPECT_EQ(after.paths[1].state, PathState::kActive);
}

// The receiving host stalls on every path at once (a process descheduled for
// 600 ms, as the test bed's real-time delay lines did to the receiver at
// startup): no path is to blame, so none may die when the peer resumes. Each
// path was judged by the silence since its first unanswered packet as soon as
// another path's ACK arrived, and went from active to dead in one step.
TEST(PathControl, APeerThatStallsOnEveryPathLosesNoPathWhenItResumes) {
  auto links = threeLinks(1 * kMs, 1 * kMs, 1 * kMs);
  // The stalled receiver's rings hold its first 20 ms of packets; the rest
  // is dropped (AF_XDP's rx_dropped), so packets from early in the stall
  // stay unanswered after it.
  std::uint64_t ringFullNs = UINT64_MAX;
  const ManualClock* clock = nullptr;
  for (auto& link : links) {
    link.rateBps = 100'000'000;
    // Arrival stamps (as XDP's): the ACKs after the stall tell how long the
    // packets waited, so the RTT stays that of the links.
    link.toServer.stampArrival = true;
    link.toServer.drop = [&ringFullNs, &clock](std::uint64_t, std::span<const std::uint8_t>) {
      return clock != nullptr && clock->nowNs() >= ringFullNs;
    };
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.idleTimeoutNs = 0;
  Pair pair(config, std::move(links));
  clock = &pair.clock();
  ASSERT_TRUE(pair.handshake());
  sendFor(pair, 300 * kMs);
  const std::uint64_t stallNs = pair.clock().nowNs();
  ringFullNs = stallNs + 20 * kMs;
  // Only the client runs: it keeps sending (what its pacing and scheduler
  // allow) and hears nothing back.
  std::vector<std::uint8_t> payload(1000, 3);
  std::array<std::span<const std::uint8_t>, 32> spans;
  spans.fill(std::span<const std::uint8_t>(payload));
  while (pair.clock().nowNs() < stallNs + 600 * kMs) {
    auto sent = pair.client().sendMany(spans);
    ASSERT_TRUE(sent.ok()) << sent.error().message();
    ASSERT_TRUE(pair.clientEndpoint().poll().ok());
    pair.clock().advance(50 * kUs);
  }
  for (std::uint16_t path = 0; path < 3; ++path)
    EXPECT_NE(pair.client().stats().paths[path].state, PathState::kDead) << "path " << path;
  ringFullNs = UINT64_MAX;
  const std::uint64_t resumeNs = pair.clock().nowNs();
  sendFor(pair, 200 * kMs);
  const ConnectionStats tx = pair.client().stats();
  for (std::uint16_t path = 0; path < 3; ++path) {
    EXPECT_FALSE(firstEventNs(tx, path, PathState::kDead, stallNs).has_value()) << "path " << path;
    EXPECT_FALSE(firstEventNs(tx, path, PathState::kSuspect, resumeNs).has_value()) << "path " << path;
    EXPECT_EQ(tx.paths[path].state, PathState::kActive) << "path " << path;
  }
}

TEST(PathControl, ABackupPathCarriesDataOnlyWhenTheActivesAreDown) {
  auto links = threeLinks(1 * kMs, 1 * kMs, 1 * kMs);
  bool cut = false;
  for (auto& link : links) link.rateBps = 100'000'000;
  for (std::size_t p = 0; p < 2; ++p) {
    links[p].toServer.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
    links[p].toClient.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  }
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  // Only the server names path 2 a backup: its HELLO tells the client.
  Pair pair(config, std::move(links), DataDirection::kClientToServer, 0, /*serverBackupPath=*/2);
  ASSERT_TRUE(pair.handshake());
  sendFor(pair, 200 * kMs);
  ConnectionStats tx = pair.client().stats();
  EXPECT_TRUE(tx.paths[2].backup);
  EXPECT_EQ(tx.paths[2].state, PathState::kStandby);
  EXPECT_EQ(tx.paths[2].packetsSent, 0u);
  EXPECT_GT(tx.paths[0].packetsSent, 1000u);
  cut = true;
  sendFor(pair, 200 * kMs);
  const std::uint64_t lost = pair.server().stats().lost;
  const std::uint64_t onBackup = pair.client().stats().paths[2].packetsSent;
  EXPECT_GT(onBackup, 1000u);
  sendFor(pair, 200 * kMs);
  tx = pair.client().stats();
  EXPECT_GT(tx.paths[2].packetsSent, onBackup + 1000);
  EXPECT_EQ(pair.server().stats().lost, lost);  // loss-free on the backup
  EXPECT_NE(tx.paths[0].state, PathState::kActive);
}

// A loaded host: both ends read their rings 1-5 ms apart, and now and then
// (one gap in ten) 40-60 ms apart, at the same moments for every path. Every
// path's RTT swings, and its PTO (4 x the RTT variance) with it. Returns how
// long after the cut path 1 turned suspect; no other path may turn suspect.
std::optional<std::uint64_t> suspectDelayUnderLoad(std::uint64_t seed) {
  auto links = threeLinks(1 * kMs, 1 * kMs, 1 * kMs);
  bool cut = false;
  const ManualClock* clock = nullptr;
  std::mt19937_64 rng(seed);
  std::uint64_t serviceNs = 0;  // the next moment the hosts read their rings
  const auto untilServed = [&clock, &rng, &serviceNs](std::uint64_t) -> std::uint64_t {
    if (clock == nullptr) return 0;
    const std::uint64_t arrival = clock->nowNs() + 1 * kMs;
    while (serviceNs < arrival)
      serviceNs += rng() % 10 == 0 ? 40 * kMs + rng() % (20 * kMs) : 1 * kMs + rng() % (4 * kMs);
    return serviceNs - arrival;
  };
  for (auto& link : links) {
    link.rateBps = 100'000'000;
    link.toServer.extraDelayNs = untilServed;
    link.toClient.extraDelayNs = untilServed;
  }
  links[1].toServer.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  links[1].toClient.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.idleTimeoutNs = 0;
  Pair pair(config, std::move(links));
  if (!pair.handshake()) {
    ADD_FAILURE() << "seed " << seed << ": no handshake";
    return std::nullopt;
  }
  clock = &pair.clock();
  sendFor(pair, 1'000 * kMs);
  const ConnectionStats before = pair.client().stats();
  EXPECT_FALSE(firstEventNs(before, 1, PathState::kSuspect, 0).has_value()) << "seed " << seed;
  const std::uint64_t cutNs = pair.clock().nowNs();
  cut = true;
  sendFor(pair, 300 * kMs);
  const ConnectionStats tx = pair.client().stats();
  for (std::uint16_t path : {0, 2}) {
    EXPECT_FALSE(firstEventNs(tx, path, PathState::kSuspect, 0).has_value())
        << "seed " << seed << " path " << path;
  }
  const auto suspect = firstEventNs(tx, 1, PathState::kSuspect, cutNs);
  if (!suspect) return std::nullopt;
  return *suspect - cutNs;
}

// A cut path turns suspect in under 100 ms under that load: the other paths'
// answers to later packets show that the load lets packets through and this
// path's silence is its own. Judged by the PTO alone (its RTT variance), the
// median over these 8 runs was 129 ms and the slowest 179 ms (on a busy test
// bed, more than 200 ms); now 71 and 123.
TEST(PathControl, ACutPathIsSuspectedWithin100msWhileLoadSwingsEveryPathsRtt) {
  std::vector<std::uint64_t> delays;
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    const auto delay = suspectDelayUnderLoad(seed);
    ASSERT_TRUE(delay.has_value()) << "seed " << seed << ": the cut path never turned suspect";
    delays.push_back(*delay);
  }
  std::sort(delays.begin(), delays.end());
  std::string all;
  for (const std::uint64_t d : delays) all += std::to_string(d / kUs) + " us ";
  EXPECT_LT(delays[delays.size() / 2], 100 * kMs) << all;
  EXPECT_LT(delays.back(), 150 * kMs) << all;
}

// ---- reliable and redundant modes (issue 9) ----

ConnectionConfig reliableConfig() {
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.reliable = true;
  config.reliableWindowPackets = 1024;
  return config;
}

// Sends payloads [0, count) paced by the sender (sendCopying), then finishes
// and runs until both sides are done.
void expectEverythingInOrder(Pair& pair, std::uint64_t count) {
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(rx.lost, 0u);
  EXPECT_EQ(rx.packetsDelivered, count);
  EXPECT_EQ(pair.corrupt(), 0u);
  ASSERT_EQ(pair.delivered().size(), count);
  for (std::uint64_t i = 0; i < count; ++i) {
    if (pair.delivered()[i] != i) {
      ADD_FAILURE() << "delivered[" << i << "] = " << pair.delivered()[i];
      break;
    }
  }
}

TEST(Reliable, RandomLossOnOnePathLosesNothing) {
  auto links = threeLinks(200 * kUs, 300 * kUs, 400 * kUs);
  std::mt19937_64 rng(7);
  links[1].toServer.drop = [&rng](std::uint64_t, std::span<const std::uint8_t> packet) {
    return dataSeq(packet).has_value() && rng() % 100 < 5;  // 5 % of the data
  };
  Pair pair(reliableConfig(), std::move(links));
  ASSERT_TRUE(pair.handshake());
  EXPECT_TRUE(pair.server().state().reliable);
  EXPECT_TRUE(pair.client().state().reliable);
  constexpr std::uint64_t kCount = 20'000;
  pair.sendCopying(kCount);
  ASSERT_TRUE(pair.finishAndDrain(2'000 * kMs));
  expectEverythingInOrder(pair, kCount);
  const ConnectionStats tx = pair.client().stats();
  EXPECT_GT(pair.toServer(1).packetsDropped(), 20u);
  EXPECT_GE(tx.retransmitted, pair.toServer(1).packetsDropped());
  // Retransmissions go where they arrive first, not only on the lossy path.
  EXPECT_GT(tx.paths[0].retransmitted + tx.paths[2].retransmitted, 0u);
  ASSERT_TRUE(pair.runUntilDone(1'000 * kMs));
  EXPECT_FALSE(pair.client().error().has_value());
  EXPECT_EQ(pair.client().peerReport()->lost, 0u);
}

TEST(Reliable, ACutPathsPacketsInFlightAreSentAgainAtOnce) {
  auto links = threeLinks(1 * kMs, 1 * kMs, 1 * kMs);
  bool cut = false;
  for (auto& link : links) link.rateBps = 100'000'000;
  links[1].toServer.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  links[1].toClient.drop = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
  Pair pair(reliableConfig(), std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(5'000, 50 * kUs);
  cut = true;
  const std::uint64_t cutNs = pair.clock().nowNs();
  pair.sendCopying(20'000, 50 * kUs);
  const auto suspect = firstEventNs(pair.client().stats(), 1, PathState::kSuspect, cutNs);
  ASSERT_TRUE(suspect.has_value());
  // Found although the window stalls the other paths' traffic (they have nothing to answer).
  EXPECT_LT(*suspect - cutNs, 40 * kMs);
  ASSERT_TRUE(pair.finishAndDrain(2'000 * kMs));
  expectEverythingInOrder(pair, 25'000);
  const ConnectionStats rx = pair.server().stats();
  // The longest a payload waited for an earlier one: the cut's detection, not a loss timer.
  EXPECT_LT(rx.maxStallNs, 60 * kMs);
  EXPECT_GT(pair.client().stats().retransmitted, 0u);
}

TEST(Reliable, ASlowApplicationClosesTheWindowAndNothingIsDropped) {
  Pair pair(reliableConfig(), threeLinks(100 * kUs, 100 * kUs, 100 * kUs));
  ASSERT_TRUE(pair.handshake());
  // The receiving application reads nothing: its endpoint still runs.
  std::vector<std::uint8_t> payload(1000, 9);
  std::array<std::span<const std::uint8_t>, 32> spans;
  spans.fill(std::span<const std::uint8_t>(payload));
  std::uint64_t sent = 0;
  for (int i = 0; i < 2000; ++i) {
    auto n = pair.client().sendMany(spans);
    ASSERT_TRUE(n.ok());
    sent += *n;
    pair.clock().advance(50 * kUs);
    pair.pollBoth();
  }
  // Stopped at the window (1024), and blocked since.
  EXPECT_LE(sent, 1024u);
  EXPECT_GE(sent, 1000u);
  EXPECT_GT(pair.client().stats().flowBlockedNs, 50 * kMs);
  EXPECT_EQ(pair.server().stats().lost, 0u);
  EXPECT_EQ(pair.client().nextSendTimeNs(), UINT64_MAX);
  // The application reads: the window opens again.
  pair.drain();
  std::uint64_t more = 0;
  for (int i = 0; i < 200 && more == 0; ++i) {
    pair.clock().advance(1 * kMs);
    pair.drain();
    auto n = pair.client().sendMany(spans);
    ASSERT_TRUE(n.ok());
    more += *n;
  }
  EXPECT_GT(more, 0u);
}

TEST(Redundant, EveryPayloadGoesOnTwoPathsAndLossOnOneLosesNothing) {
  std::vector<LinkSpec> links(2);
  std::mt19937_64 rng(11);
  links[1].toServer.drop = [&rng](std::uint64_t, std::span<const std::uint8_t> packet) {
    return dataSeq(packet).has_value() && rng() % 100 < 10;
  };
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.redundant = true;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  constexpr std::uint64_t kCount = 5'000;
  pair.sendCopying(kCount);
  ASSERT_TRUE(pair.finishAndDrain(500 * kMs));
  expectEverythingInOrder(pair, kCount);
  const ConnectionStats tx = pair.client().stats();
  EXPECT_EQ(tx.redundantCopies, kCount);
  EXPECT_EQ(tx.retransmitted, 0u);
  EXPECT_GT(pair.server().stats().duplicates, kCount / 2);
}

// Abort: a reliable sender whose receiver went away stops within the peer
// timeout (it never waits forever for ACKs), and so does the receiver of a
// sender that went away mid-stream; neither reports the stream complete.
TEST(Reliable, BothSidesStopWithinTheAbortTimeWhenThePeerGoesAway) {
  for (const bool receiverDies : {true, false}) {
    SCOPED_TRACE(receiverDies ? "receiver dies" : "sender dies");
    auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
    bool cut = false;
    for (auto& link : links) {
      auto dead = [&cut](std::uint64_t, std::span<const std::uint8_t>) { return cut; };
      if (receiverDies) {
        link.toClient.drop = dead;
      } else {
        link.toServer.drop = dead;
      }
    }
    ConnectionConfig config = reliableConfig();
    config.peerTimeoutNs = 2'000 * kMs;
    Pair pair(config, std::move(links));
    ASSERT_TRUE(pair.handshake());
    pair.sendCopying(3'000);
    cut = true;
    const std::uint64_t cutNs = pair.clock().nowNs();
    (void)pair.client().finish();  // the sender is finishing: only retransmissions and CLOSE remain
    Connection& survivor = receiverDies ? pair.client() : pair.server();
    while (!survivor.done() && pair.clock().nowNs() - cutNs < 5'000 * kMs) {
      pair.clock().advance(10 * kMs);
      pair.pollBoth();
    }
    ASSERT_TRUE(survivor.done());
    EXPECT_LE(pair.clock().nowNs() - cutNs, 2'100 * kMs);
    ASSERT_TRUE(survivor.error().has_value());
    EXPECT_EQ(survivor.error()->code(), ETIMEDOUT);
    // What arrived before the cut was complete: the failure declares nothing lost.
    if (!receiverDies) {
      EXPECT_EQ(pair.server().stats().lost, 0u);
    }
  }
}

// A reliable stream is never delivered past a hole: when the sender dies with
// payloads held behind a lost one, the receiver fails (peer timeout) and drops
// them, so the application never sees a gap (a file receiver reported "payload
// N missing" instead of the peer's death when abandon() flushed them out).
TEST(Reliable, ASenderThatDiesWithAHoleOpenDeliversNothingPastIt) {
  auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
  bool holeOnPath1 = false;
  bool dead = false;
  for (std::size_t i = 0; i < links.size(); ++i) {
    links[i].toServer.drop = [&, i](std::uint64_t, std::span<const std::uint8_t>) {
      return dead || (i == 1 && holeOnPath1);
    };
  }
  ConnectionConfig config = reliableConfig();
  config.peerTimeoutNs = 500 * kMs;
  Pair pair(config, std::move(links));
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(600);
  holeOnPath1 = true;
  pair.sendCopying(30, 1 * kUs);
  dead = true;  // from now on: what is in flight still arrives, retransmissions do not
  for (int i = 0; i < 10; ++i) {
    pair.clock().advance(100 * kUs);
    pair.drain();
  }
  ASSERT_GT(pair.server().state().heldPackets, 0u) << "nothing held behind the hole: the test proves nothing";
  for (int i = 0; i < 200 && !pair.server().done(); ++i) {
    pair.clock().advance(10 * kMs);
    pair.drain();
  }
  ASSERT_TRUE(pair.server().done());
  ASSERT_TRUE(pair.server().error().has_value());
  EXPECT_EQ(pair.server().error()->code(), ETIMEDOUT);
  const auto& got = pair.delivered();
  for (std::uint64_t i = 0; i < got.size(); ++i) {
    if (got[i] != i) {
      ADD_FAILURE() << "delivered[" << i << "] = " << got[i] << ": past a hole";
      break;
    }
  }
  EXPECT_LT(got.size(), 630u);
  EXPECT_EQ(pair.server().stats().lost, 0u);
}

// The receiving side is done only once the application took the last
// payload: a loop that stops at done() reads the whole stream (issue 9: a
// file receiver lost its last 362 payloads this way).
TEST(Connection, TheReceiverIsDoneOnlyAfterTheApplicationTookEverything) {
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 100 * kUs, 100 * kUs));
  ASSERT_TRUE(pair.handshake());
  std::vector<std::uint8_t> payload(500, 1);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(pair.client().send(payload).ok());
  ASSERT_TRUE(pair.client().finish().ok());
  for (int i = 0; i < 200 && !pair.client().done(); ++i) {
    pair.clock().advance(1 * kMs);
    pair.pollBoth();  // the endpoints run; the receiving application reads nothing
  }
  EXPECT_TRUE(pair.client().done());  // the receiver's REPORT came back: it has everything
  EXPECT_TRUE(pair.server().state().receiveFinished);
  EXPECT_FALSE(pair.server().done());
  std::array<Delivered, 64> out;
  std::uint64_t taken = 0;
  for (int i = 0; i < 10; ++i) {
    auto n = pair.server().poll(out);
    ASSERT_TRUE(n.ok());
    taken += *n;
    pair.server().release(std::span<const Delivered>(out.data(), *n));
  }
  EXPECT_EQ(taken, 100u);
  EXPECT_TRUE(pair.server().done());
}

}  // namespace
}  // namespace mpxdp

namespace mpxdp {
namespace {

// ---- packet protection (issue 11) ----

SecurityOptions keyedWith(std::uint8_t fill, std::optional<CipherKind> cipher = std::nullopt) {
  SecurityOptions security;
  PreSharedKey key;
  key.fill(fill);
  security.keys.push_back(key);
  security.cipher = cipher;
  return security;
}

std::uint8_t flagsOf(std::span<const std::uint8_t> packet) { return packet.size() > 3 ? packet[3] : 0; }

TEST(Keyed, BothCiphersCarryAStreamInOrderWithEveryPacketSealed) {
  for (const CipherKind cipher : {CipherKind::kChaCha20Poly1305, CipherKind::kAes256Gcm}) {
    SCOPED_TRACE(cipherName(cipher));
    auto links = threeLinks(100 * kUs, 300 * kUs, 500 * kUs);
    std::uint64_t clear = 0;
    std::uint64_t seen = 0;
    for (auto& link : links) {
      for (auto* direction : {&link.toServer, &link.toClient}) {
        direction->drop = [&](std::uint64_t, std::span<const std::uint8_t> packet) {
          ++seen;
          if ((flagsOf(packet) & (MPXDP_HDR_FLAG_PROTECTED | MPXDP_HDR_FLAG_HANDSHAKE)) == 0) ++clear;
          return false;
        };
      }
    }
    const SecurityOptions security = keyedWith(7, cipher);
    Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links), DataDirection::kClientToServer, 0,
              std::nullopt, security, security);
    ASSERT_TRUE(pair.handshake());
    EXPECT_TRUE(pair.client().state().authenticated);
    EXPECT_EQ(pair.server().state().cipher, static_cast<std::uint8_t>(cipher));
    pair.sendCopying(5'000);
    ASSERT_TRUE(pair.finishAndDrain(500 * kMs));
    EXPECT_EQ(pair.server().stats().lost, 0u);
    ASSERT_EQ(pair.delivered().size(), 5'000u);
    EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
    EXPECT_EQ(pair.corrupt(), 0u);
    EXPECT_GT(seen, 5'000u);
    EXPECT_EQ(clear, 0u);
    EXPECT_EQ(pair.server().stats().authFailed, 0u);
    EXPECT_EQ(pair.server().stats().replayed, 0u);
  }
}

TEST(Keyed, AWrongKeyGetsNoAnswerAtAllAndIsCounted) {
  auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.handshakeTimeoutNs = 500 * kMs;
  Pair pair(config, std::move(links), DataDirection::kClientToServer, 0, std::nullopt, keyedWith(1),
            keyedWith(2));
  EXPECT_FALSE(pair.handshake(600 * kMs));
  EXPECT_FALSE(pair.serverReady());
  ASSERT_TRUE(pair.client().done());
  ASSERT_TRUE(pair.client().error().has_value());
  EXPECT_NE(pair.client().error()->message().find("same key"), std::string::npos)
      << pair.client().error()->message();
  EXPECT_GT(pair.serverEndpoint().stats().authFailed, 0u);
  // The server told it nothing.
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(pair.toClient(i).packetsCommitted(), 0u);
}

TEST(Keyed, AnUnkeyedClientGetsNoAnswerAndAKeyedClientHearsWhyAnUnkeyedServerRefuses) {
  ConnectionConfig config = configWith(reorder::ReorderKind::kWindow);
  config.handshakeTimeoutNs = 300 * kMs;
  {
    Pair pair(config, threeLinks(100 * kUs, 100 * kUs, 100 * kUs), DataDirection::kClientToServer, 0,
              std::nullopt, SecurityOptions{}, keyedWith(3));
    EXPECT_FALSE(pair.handshake(400 * kMs));
    EXPECT_GT(pair.serverEndpoint().stats().authFailed, 0u);
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(pair.toClient(i).packetsCommitted(), 0u);
  }
  {
    Pair pair(config, threeLinks(100 * kUs, 100 * kUs, 100 * kUs), DataDirection::kClientToServer, 0,
              std::nullopt, keyedWith(3), SecurityOptions{});
    EXPECT_FALSE(pair.handshake(400 * kMs));
    ASSERT_TRUE(pair.client().error().has_value());
    EXPECT_NE(pair.client().error()->message().find("no key"), std::string::npos)
        << pair.client().error()->message();
    // The unauthenticated answer changed nothing else.
    EXPECT_FALSE(pair.client().established());
  }
}

// Copies of packets from the wire, forged, replayed, truncated and pushed
// far ahead, during a keyed transfer: none gets through, none costs a payload.
TEST(Keyed, ForgedReplayedAndTruncatedPacketsAreRejectedAndCounted) {
  auto links = threeLinks(100 * kUs, 200 * kUs, 300 * kUs);
  std::vector<std::vector<std::uint8_t>> captured;
  links[1].toServer.drop = [&](std::uint64_t index, std::span<const std::uint8_t> packet) {
    if (index % 50 == 10 && captured.size() < 40) captured.emplace_back(packet.begin(), packet.end());
    return false;
  };
  const SecurityOptions security = keyedWith(9);
  Pair pair(configWith(reorder::ReorderKind::kWindow), std::move(links), DataDirection::kClientToServer, 0,
            std::nullopt, security, security);
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(2'000);
  ASSERT_GE(captured.size(), 10u);
  std::uint64_t forged = 0;
  std::uint64_t replayed = 0;
  for (std::size_t i = 0; i < captured.size(); ++i) {
    std::vector<std::uint8_t> packet = captured[i];
    switch (i % 4) {
      case 0:  // replayed as is
        ++replayed;
        break;
      case 1:  // one bit of the sealed frames flipped: its number was seen, so it is a replay
        packet[wire::kPacketHeaderLen + 5] ^= 0x10;
        ++replayed;
        break;
      case 2:  // truncated behind a valid header
        packet.resize(wire::kPacketHeaderLen + 12);
        ++forged;
        break;
      default:  // its packet number pushed far ahead (authenticated: the tag fails)
        packet[12] ^= 0x40;
        ++forged;
        break;
    }
    ASSERT_TRUE(pair.toServer(1).inject(packet));
  }
  pair.sendCopying(2'000);
  ASSERT_TRUE(pair.finishAndDrain(500 * kMs));
  const ConnectionStats rx = pair.server().stats();
  EXPECT_EQ(rx.lost, 0u);
  ASSERT_EQ(pair.delivered().size(), 4'000u);
  EXPECT_TRUE(strictlyIncreasing(pair.delivered()));
  EXPECT_EQ(rx.replayed, replayed);
  EXPECT_EQ(rx.authFailed, forged);
  EXPECT_EQ(rx.duplicates, 0u);
}

TEST(Keyed, KeysAreUpdatedAfterTheConfiguredPacketCountWithoutALoss) {
  SecurityOptions security = keyedWith(4);
  security.rotateAfterPackets = 300;
  security.minKeyPhaseNs = 5 * kMs;  // these paths differ by 0.9 ms: never two updates in flight
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 600 * kUs, 1 * kMs),
            DataDirection::kClientToServer, 0, std::nullopt, security, security);
  ASSERT_TRUE(pair.handshake());
  pair.sendCopying(6'000, 500 * kUs);  // 94 ms: the packet limit and the 5 ms minimum both bind
  ASSERT_TRUE(pair.finishAndDrain(500 * kMs));
  EXPECT_EQ(pair.server().stats().lost, 0u);
  EXPECT_EQ(pair.delivered().size(), 6'000u);
  const ConnectionStats tx = pair.client().stats();
  const ConnectionStats rx = pair.server().stats();
  EXPECT_GE(tx.keyUpdatesSent, 10u);
  EXPECT_LE(tx.keyUpdatesSent, 20u);
  EXPECT_EQ(rx.keyUpdatesReceived, tx.keyUpdatesSent);
  EXPECT_EQ(rx.authFailed, 0u);
}

// A HELLO copied from an earlier connection opens (it was sealed with the
// key) but its sender cannot go on: the server never hands it to accept().
TEST(Keyed, AReplayedHelloOfAnEarlierConnectionIsNeverAccepted) {
  const SecurityOptions security = keyedWith(5);
  std::vector<std::uint8_t> hello;
  {
    auto links = threeLinks(100 * kUs, 100 * kUs, 100 * kUs);
    links[0].toServer.drop = [&](std::uint64_t index, std::span<const std::uint8_t> packet) {
      if (index == 0) hello.assign(packet.begin(), packet.end());
      return false;
    };
    Pair earlier(configWith(reorder::ReorderKind::kWindow), std::move(links), DataDirection::kClientToServer,
                 0, std::nullopt, security, security);
    ASSERT_TRUE(earlier.handshake());
  }
  ASSERT_FALSE(hello.empty());
  Pair pair(configWith(reorder::ReorderKind::kWindow), threeLinks(100 * kUs, 100 * kUs, 100 * kUs),
            DataDirection::kClientToServer, 0, std::nullopt, security, security);
  ASSERT_TRUE(pair.toServer(0).inject(hello));
  ASSERT_TRUE(pair.handshake());
  const std::uint32_t legit = pair.client().state().connId;
  EXPECT_EQ(pair.server().state().connId, legit);
  for (int i = 0; i < 400; ++i) {
    pair.clock().advance(10 * kMs);
    pair.pollBoth();
    Connection* other = pair.serverEndpoint().accept();
    ASSERT_EQ(other, nullptr) << "accepted connection " << other->state().connId;
  }
}

TEST(Keyed, SteadyStateAllocatesNothingPerPacket) { expectNoAllocationPerPacket(keyedWith(6)); }

}  // namespace
}  // namespace mpxdp
