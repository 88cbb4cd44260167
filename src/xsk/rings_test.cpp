// The ring wrappers against rings laid out in ordinary memory; the test plays
// the kernel's side of each ring.
#include "rings.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace mpxdp::xsk {
namespace {

// One ring's memory with the kernel-side operations on it.
template <typename Entry>
struct MemoryRing {
  explicit MemoryRing(std::uint32_t size, std::uint32_t startIndex) : entries(size) {
    producer = startIndex;
    consumer = startIndex;
  }
  RingMemory memory() { return {&producer, &consumer, &flags, entries.data(), size()}; }
  std::uint32_t size() const { return static_cast<std::uint32_t>(entries.size()); }
  Entry& at(std::uint32_t index) { return entries[index & (size() - 1)]; }

  // Kernel as consumer: takes the oldest published entry.
  bool pop(Entry* out) {
    if (consumer == producer) return false;
    *out = at(consumer);
    ++consumer;
    return true;
  }
  // Kernel as producer: publishes an entry.
  bool push(const Entry& entry) {
    if (producer - consumer == size()) return false;
    at(producer) = entry;
    ++producer;
    return true;
  }

  std::uint32_t producer = 0;
  std::uint32_t consumer = 0;
  std::uint32_t flags = 0;
  std::vector<Entry> entries;
};

constexpr std::uint32_t kNearWrap = 0xFFFFFFF0u;  // indices wrap around 2^32 during the tests

TEST(FillRing, ProducesUntilFullAndAcrossIndexWrapAround) {
  MemoryRing<std::uint64_t> kernel(8, kNearWrap);
  FillRing fill;
  fill.attach(kernel.memory());
  EXPECT_EQ(fill.size(), 8u);
  EXPECT_EQ(fill.freeSlots(8), 8u);

  std::uint64_t next = 0;
  std::uint64_t expected = 0;
  for (int round = 0; round < 20; ++round) {  // 20 rounds of 5 cross the 2^32 boundary
    std::uint64_t addrs[5];
    for (auto& a : addrs) a = next++ * 2048;
    ASSERT_EQ(fill.produce(addrs), 5u) << "round " << round;
    EXPECT_EQ(fill.outstanding(), 5u);
    std::uint64_t got = 0;
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(kernel.pop(&got));
      EXPECT_EQ(got, expected++ * 2048);
    }
    EXPECT_FALSE(kernel.pop(&got));
    EXPECT_EQ(fill.outstanding(), 0u);
  }
  EXPECT_LT(kernel.producer, kNearWrap) << "the producer index should have wrapped";
}

TEST(FillRing, ProducesOnlyWhatFitsAndSeesTheConsumerProgress) {
  MemoryRing<std::uint64_t> kernel(4, kNearWrap + 14);
  FillRing fill;
  fill.attach(kernel.memory());
  const std::uint64_t addrs[6] = {0, 2048, 4096, 6144, 8192, 10240};
  EXPECT_EQ(fill.produce(addrs), 4u);
  EXPECT_EQ(fill.freeSlots(1), 0u);
  EXPECT_EQ(fill.produce(std::span<const std::uint64_t>(addrs + 4, 2)), 0u);
  std::uint64_t got = 0;
  ASSERT_TRUE(kernel.pop(&got));
  EXPECT_EQ(got, 0u);
  EXPECT_EQ(fill.freeSlots(1), 1u);
  EXPECT_EQ(fill.produce(std::span<const std::uint64_t>(addrs + 4, 2)), 1u);
  for (std::uint64_t want : {2048u, 4096u, 6144u, 8192u}) {
    ASSERT_TRUE(kernel.pop(&got));
    EXPECT_EQ(got, want);
  }
}

TEST(TxRing, ReserveIsAllOrNothingAndSubmitPublishes) {
  MemoryRing<xdp_desc> kernel(4, kNearWrap + 15);
  TxRing tx;
  tx.attach(kernel.memory());
  std::uint32_t index = 0;
  ASSERT_EQ(tx.reserve(3, &index), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) tx.desc(index + i) = xdp_desc{i * 4096u, 100 + i, 0};
  EXPECT_EQ(kernel.producer, kNearWrap + 15) << "nothing is visible before submit";
  EXPECT_EQ(tx.reserve(2, &index), 0u) << "only one slot is left";
  tx.submit(3);
  EXPECT_EQ(tx.outstanding(), 3u);
  xdp_desc desc{};
  for (std::uint32_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(kernel.pop(&desc));
    EXPECT_EQ(desc.addr, i * 4096u);
    EXPECT_EQ(desc.len, 100 + i);
  }
  ASSERT_EQ(tx.reserve(4, &index), 4u);
  tx.submit(4);
  EXPECT_EQ(tx.outstanding(), 4u);
}

TEST(TxRing, NeedsWakeupFollowsTheFlag) {
  MemoryRing<xdp_desc> kernel(4, 0);
  TxRing tx;
  tx.attach(kernel.memory());
  EXPECT_FALSE(tx.needsWakeup());
  kernel.flags = XDP_RING_NEED_WAKEUP;
  EXPECT_TRUE(tx.needsWakeup());
}

TEST(CompletionRing, ConsumesInOrderAcrossIndexWrapAround) {
  MemoryRing<std::uint64_t> kernel(8, kNearWrap);
  CompletionRing completion;
  completion.attach(kernel.memory());
  std::uint64_t pushed = 0;
  std::uint64_t consumed = 0;
  std::uint64_t out[6];
  for (int round = 0; round < 30; ++round) {
    const int n = 1 + round % 8;
    for (int i = 0; i < n; ++i) ASSERT_TRUE(kernel.push(pushed++));
    std::size_t total = 0;
    while (std::size_t got = completion.consume(out)) {
      for (std::size_t i = 0; i < got; ++i) EXPECT_EQ(out[i], consumed++);
      total += got;
    }
    EXPECT_EQ(total, static_cast<std::size_t>(n));
    EXPECT_EQ(kernel.consumer, kernel.producer) << "consumed entries are released to the kernel";
  }
  EXPECT_EQ(consumed, pushed);
}

TEST(RxRing, PeekReleaseAndCancel) {
  MemoryRing<xdp_desc> kernel(4, kNearWrap + 14);
  RxRing rx;
  rx.attach(kernel.memory());
  std::uint32_t index = 0;
  EXPECT_EQ(rx.peek(4, &index), 0u);
  for (std::uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(kernel.push(xdp_desc{i * 2048u + 256, 60 + i, 0}));
  ASSERT_EQ(rx.peek(2, &index), 2u);
  EXPECT_EQ(rx.desc(index).addr, 256u);
  EXPECT_EQ(rx.desc(index + 1).len, 61u);
  rx.cancel(1);
  rx.release(1);
  EXPECT_EQ(kernel.consumer, kNearWrap + 15);
  ASSERT_EQ(rx.peek(4, &index), 2u);
  EXPECT_EQ(rx.desc(index).addr, 2048u + 256);
  EXPECT_EQ(rx.desc(index + 1).addr, 4096u + 256);
  rx.release(2);
  EXPECT_EQ(kernel.consumer, kernel.producer);
  EXPECT_TRUE(kernel.push(xdp_desc{0, 1, 0}));
}

}  // namespace
}  // namespace mpxdp::xsk
