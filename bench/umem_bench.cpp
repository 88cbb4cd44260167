// UMEM frame allocator: single and batched allocate/free round trips, as the
// transmit path (batch of 64) and the receive path (release in batches) use it.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>

#include "frame_allocator.h"

namespace {

constexpr std::uint32_t kFrames = 4096;
constexpr std::uint32_t kFrameSize = 4096;

void BM_AllocateFreeSingle(benchmark::State& state) {
  mpxdp::xsk::FrameAllocator frames(kFrames, kFrameSize);
  for (auto _ : state) {
    auto addr = frames.allocate();
    benchmark::DoNotOptimize(addr);
    (void)frames.free(*addr);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocateFreeSingle);

void BM_AllocateFreeBatch(benchmark::State& state) {
  mpxdp::xsk::FrameAllocator frames(kFrames, kFrameSize);
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::array<std::uint64_t, 256> addrs{};
  for (auto _ : state) {
    const std::size_t got = frames.allocate({addrs.data(), batch});
    benchmark::DoNotOptimize(addrs.data());
    frames.free({addrs.data(), got});
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
  state.counters["rejected"] = static_cast<double>(frames.rejectedFrees());
}
BENCHMARK(BM_AllocateFreeBatch)->Arg(16)->Arg(64)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
