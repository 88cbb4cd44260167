// Scheduler cost: pick() with pacing, and the nextEligibleNs() query when paced out.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "scheduler.h"

namespace {

using mpxdp::sched::kNoPath;
using mpxdp::sched::PathConfig;
using mpxdp::sched::SchedulerKind;

void BM_Pick(benchmark::State& state) {
  const auto kind = static_cast<SchedulerKind>(state.range(0));
  const auto pathCount = static_cast<std::size_t>(state.range(1));
  const bool paced = state.range(2) != 0;
  std::vector<PathConfig> paths;
  for (std::size_t i = 0; i < pathCount; ++i) paths.push_back({paced ? (i + 1) * 1'000'000'000ULL : 0});
  mpxdp::sched::SchedulerOptions options;
  options.kind = kind;
  options.perPacketOverheadBytes = 24;
  auto made = mpxdp::sched::makeScheduler(options, paths);
  if (!made.ok()) {
    state.SkipWithError(made.error().message().c_str());
    return;
  }
  auto& scheduler = *made.value();
  std::uint64_t now = 0;
  std::uint64_t picked = 0;
  std::uint64_t waits = 0;
  for (auto _ : state) {
    const int path = scheduler.pick(now, 1474);
    if (path == kNoPath) {
      now = scheduler.nextEligibleNs(now, 1474);
      ++waits;
    } else {
      picked += static_cast<std::uint64_t>(path);
      now += 1;  // the caller's clock moves on a little between packets
    }
  }
  benchmark::DoNotOptimize(picked);
  state.SetItemsProcessed(state.iterations());
  state.counters["wait_pct"] = 100.0 * static_cast<double>(waits) / static_cast<double>(state.iterations());
  state.SetLabel(std::string(mpxdp::sched::toString(kind)));
}

BENCHMARK(BM_Pick)
    ->ArgNames({"kind", "paths", "paced"})
    ->ArgsProduct({{static_cast<int>(SchedulerKind::kRoundRobin),
                    static_cast<int>(SchedulerKind::kWeightedRoundRobin)},
                   {2, 4, 8},
                   {0, 1}});

}  // namespace

BENCHMARK_MAIN();
