// Scheduler cost per packet: pick() over per-path views, as the send stream
// calls it. The views come from a tiny queue model (each pick adds the
// packet's transmission time to its path's queue; on kNoPath the queues
// drain by waitNs()), so the admission checks take both branches.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "scheduler.h"

namespace {

using mpxdp::sched::kNoPath;
using mpxdp::sched::PathView;
using mpxdp::sched::SchedulerKind;

void BM_Pick(benchmark::State& state) {
  const auto kind = static_cast<SchedulerKind>(state.range(0));
  const auto pathCount = static_cast<std::size_t>(state.range(1));
  // Rates 1, 2, 3 ... Gbit/s; delays 0, 2, 4 ... ms beyond the fastest.
  std::vector<PathView> paths;
  for (std::size_t i = 0; i < pathCount; ++i)
    paths.push_back({true, (i + 1) * 1'000'000'000ULL, 0, i * 2'000'000ULL, 24});
  mpxdp::sched::SchedulerOptions options;
  options.kind = kind;
  auto made = mpxdp::sched::makeScheduler(options, pathCount);
  if (!made.ok()) {
    state.SkipWithError(made.error().message().c_str());
    return;
  }
  auto& scheduler = *made.value();
  constexpr std::uint32_t kBytes = 1474;
  std::uint64_t picked = 0;
  std::uint64_t waits = 0;
  for (auto _ : state) {
    const int path = scheduler.pick(paths, kBytes);
    if (path == kNoPath) {
      const std::uint64_t wait = scheduler.waitNs(paths, kBytes);
      for (PathView& p : paths) p.queuedNs = p.queuedNs > wait ? p.queuedNs - wait : 0;
      ++waits;
    } else {
      PathView& p = paths[static_cast<std::size_t>(path)];
      p.queuedNs += mpxdp::sched::transmitNs(p, kBytes);
      picked += static_cast<std::uint64_t>(path);
    }
  }
  benchmark::DoNotOptimize(picked);
  state.SetItemsProcessed(state.iterations());
  state.counters["wait_pct"] = 100.0 * static_cast<double>(waits) / static_cast<double>(state.iterations());
  state.SetLabel(std::string(mpxdp::sched::toString(kind)));
}

BENCHMARK(BM_Pick)
    ->ArgNames({"kind", "paths"})
    ->ArgsProduct({{static_cast<int>(SchedulerKind::kEarliestArrival),
                    static_cast<int>(SchedulerKind::kRoundRobin),
                    static_cast<int>(SchedulerKind::kWeightedRoundRobin)},
                   {3, 8}});

}  // namespace

BENCHMARK_MAIN();
