// Reorderer cost per packet: window vs the paper's sort baseline vs off, over
// simulated multipath traces (N FIFO paths with a delay skew, optional loss), at
// 10 Mpps (gap_ns 100) and at the paper's rate (20 MB/s of ~1400 B packets: one
// every 70 us). sort re-sorts its whole buffer on every 100 us timer tick while it
// holds anything, as the paper's prototype did: at the paper's rate that is about
// one full sort per packet, which sorts_per_kpkt shows.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "reorderer.h"

namespace {

using mpxdp::reorder::ArrivingPacket;
using mpxdp::reorder::DeliverySink;
using mpxdp::reorder::ReorderKind;

constexpr std::uint64_t kTracePackets = 1 << 16;
constexpr std::uint64_t kPollEvery = 32;  // the receive loop polls once per batch...
// ...or when it wakes up for a packet after this long (at low rates a batch is one packet).
constexpr std::uint64_t kPollIdleNs = 10'000;

class CountingSink final : public DeliverySink {
 public:
  void deliver(const ArrivingPacket& packet, std::uint64_t holdNs) override {
    delivered_ += 1;
    checksum_ += packet.globalSeq + holdNs;
  }
  void lost(std::uint64_t /*firstSeq*/, std::uint64_t count) override { lost_ += count; }
  void discard(const ArrivingPacket& /*packet*/, DiscardReason /*reason*/) override { ++discarded_; }
  std::uint64_t delivered_ = 0;
  std::uint64_t lost_ = 0;
  std::uint64_t discarded_ = 0;
  std::uint64_t checksum_ = 0;
};

// Packets sprayed round robin over `paths` FIFO paths; path p is delayed by
// p * skew / (paths - 1) packet times (so the slowest lags the fastest by `skew`
// packets), `lossPerMille` of them dropped, and the rest ordered by arrival.
std::vector<ArrivingPacket> makeTrace(int paths, std::uint64_t skewPackets, int lossPerMille,
                                      std::uint64_t gapNs) {
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<int> perMille(0, 999);
  std::vector<std::uint32_t> pathSeq(static_cast<std::size_t>(paths), 0);
  std::vector<ArrivingPacket> trace;
  for (std::uint64_t i = 0; i < kTracePackets; ++i) {
    const auto path = static_cast<std::uint16_t>(i % static_cast<std::uint64_t>(paths));
    ArrivingPacket p;
    p.globalSeq = i;
    p.pathId = path;
    p.pathPacketNumber = pathSeq[path]++;
    p.sendTsNs = i * gapNs;
    p.arrivalNs = p.sendTsNs + path * skewPackets * gapNs / static_cast<std::uint64_t>(paths - 1) + 5000;
    p.cookie = i;
    if (i > 0 && perMille(rng) < lossPerMille) continue;
    trace.push_back(p);
  }
  std::stable_sort(trace.begin(), trace.end(), [](const ArrivingPacket& a, const ArrivingPacket& b) {
    return a.arrivalNs < b.arrivalNs;
  });
  return trace;
}

void BM_Reorder(benchmark::State& state) {
  const auto kind = static_cast<ReorderKind>(state.range(0));
  const int paths = static_cast<int>(state.range(1));
  const auto skew = static_cast<std::uint64_t>(state.range(2));
  const int lossPerMille = static_cast<int>(state.range(3));
  const auto gapNs = static_cast<std::uint64_t>(state.range(4));
  const std::vector<ArrivingPacket> trace = makeTrace(paths, skew, lossPerMille, gapNs);

  mpxdp::reorder::ReorderOptions options;
  options.kind = kind;
  options.pathCount = static_cast<std::uint32_t>(paths);
  options.initialSeq = 0;
  auto made = mpxdp::reorder::makeReorderer(options);
  if (!made.ok()) {
    state.SkipWithError(made.error().message().c_str());
    return;
  }
  auto& reorderer = *made.value();
  CountingSink sink;
  // Each round continues the stream: sequence numbers and time move on. The
  // round's packets are written before its timing starts, so the timed loop
  // pushes them as a receive loop would, from memory, and measures the
  // reorderer, not a copy of each packet (copying and adjusting a 48-byte
  // packet on the stack cost a store-forwarding stall per packet, 5-10 ns).
  std::vector<ArrivingPacket> round(trace.size());
  std::uint64_t rounds = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const std::uint64_t seqBase = rounds * kTracePackets;
    const std::uint64_t timeBase = rounds * kTracePackets * gapNs;
    for (std::size_t i = 0; i < trace.size(); ++i) {
      round[i] = trace[i];
      round[i].globalSeq += seqBase;
      round[i].sendTsNs += timeBase;
      round[i].arrivalNs += timeBase;
    }
    state.ResumeTiming();
    std::uint64_t n = 0;
    std::uint64_t lastPollNs = 0;
    for (const ArrivingPacket& p : round) {
      reorderer.push(p, p.arrivalNs, sink);
      if (++n % kPollEvery == 0 || p.arrivalNs - lastPollNs >= kPollIdleNs) {
        reorderer.poll(p.arrivalNs, sink);
        lastPollNs = p.arrivalNs;
      }
    }
    ++rounds;
  }
  benchmark::DoNotOptimize(sink.checksum_);
  const auto stats = reorderer.stats();
  const double pushed = static_cast<double>(stats.pushed);
  state.SetItemsProcessed(static_cast<std::int64_t>(stats.pushed));
  state.counters["ns_per_pkt"] =
      benchmark::Counter(pushed, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["ooo_delivered_pct"] = 100.0 * static_cast<double>(stats.outOfOrderDelivered) / pushed;
  state.counters["lost_pct"] = 100.0 * static_cast<double>(stats.lost) / pushed;
  state.counters["sorts_per_kpkt"] = 1000.0 * static_cast<double>(stats.sorts) / pushed;
  state.SetLabel(std::string(mpxdp::reorder::toString(kind)));
}

BENCHMARK(BM_Reorder)
    ->ArgNames({"kind", "paths", "skew", "loss_permille", "gap_ns"})
    ->ArgsProduct({{static_cast<int>(ReorderKind::kWindow), static_cast<int>(ReorderKind::kSort),
                    static_cast<int>(ReorderKind::kOff)},
                   {2, 3, 4},
                   {0, 10, 100, 1000},
                   {0, 10},
                   {100, 70'000}});

}  // namespace

BENCHMARK_MAIN();
