#include "frame_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace mpxdp::xsk {
namespace {

TEST(FrameAllocator, HandsOutEveryFrameOnceThenRunsDry) {
  FrameAllocator frames(8, 4096, 4096 * 8);
  EXPECT_EQ(frames.capacity(), 8u);
  EXPECT_EQ(frames.available(), 8u);
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 8; ++i) {
    auto addr = frames.allocate();
    ASSERT_TRUE(addr.has_value());
    EXPECT_EQ(*addr % 4096, 0u);
    EXPECT_GE(*addr, 4096u * 8);
    EXPECT_LT(*addr, 4096u * 16);
    EXPECT_TRUE(seen.insert(*addr).second) << "frame handed out twice: " << *addr;
  }
  EXPECT_EQ(frames.available(), 0u);
  EXPECT_FALSE(frames.allocate().has_value());
  std::uint64_t batch[4];
  EXPECT_EQ(frames.allocate(batch), 0u);
}

TEST(FrameAllocator, FreedFramesAreReused) {
  FrameAllocator frames(4, 2048);
  std::uint64_t batch[4];
  ASSERT_EQ(frames.allocate(batch), 4u);
  ASSERT_TRUE(frames.free(batch[2]).ok());
  EXPECT_EQ(frames.available(), 1u);
  auto again = frames.allocate();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, batch[2]);
  EXPECT_FALSE(frames.allocate().has_value());
}

TEST(FrameAllocator, BatchAllocateIsPartialWhenShort) {
  FrameAllocator frames(5, 2048);
  std::uint64_t batch[3];
  EXPECT_EQ(frames.allocate(batch), 3u);
  std::uint64_t rest[3];
  EXPECT_EQ(frames.allocate(rest), 2u);
  EXPECT_EQ(frames.available(), 0u);
  EXPECT_EQ(frames.free(std::span<const std::uint64_t>(batch, 3)), 3u);
  EXPECT_EQ(frames.free(std::span<const std::uint64_t>(rest, 2)), 2u);
  EXPECT_EQ(frames.available(), 5u);
  EXPECT_EQ(frames.rejectedFrees(), 0u);
}

TEST(FrameAllocator, DoubleFreeIsAnError) {
  FrameAllocator frames(4, 2048);
  auto addr = frames.allocate();
  ASSERT_TRUE(addr.has_value());
  ASSERT_TRUE(frames.free(*addr).ok());
  auto second = frames.free(*addr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), EALREADY);
  EXPECT_EQ(frames.available(), 4u);
  // Freeing a frame that was never handed out is the same mistake.
  auto never = frames.free(2048);
  EXPECT_FALSE(never.ok());
  EXPECT_EQ(frames.available(), 4u);
  EXPECT_EQ(frames.rejectedFrees(), 2u);
}

TEST(FrameAllocator, RejectsAddressesThatAreNotFrameStarts) {
  FrameAllocator frames(4, 2048, 8192);
  std::uint64_t batch[4];
  ASSERT_EQ(frames.allocate(batch), 4u);
  EXPECT_EQ(frames.free(8192 + 100).error().code(), EINVAL);       // inside a frame
  EXPECT_EQ(frames.free(4096).error().code(), EINVAL);             // below the range
  EXPECT_EQ(frames.free(8192 + 4 * 2048).error().code(), EINVAL);  // past the end
  const std::uint64_t mixed[] = {batch[0], 1, batch[1], batch[0]};
  EXPECT_EQ(frames.free(mixed), 2u);
  EXPECT_EQ(frames.available(), 2u);
  EXPECT_EQ(frames.rejectedFrees(), 5u);
}

TEST(FrameAllocator, FrameBaseMasksOffsetsInsideAFrame) {
  FrameAllocator frames(4, 4096, 0);
  EXPECT_EQ(frames.frameBase(4096 + 256 + 66), 4096u);
  EXPECT_EQ(frames.frameBase(3 * 4096), 3u * 4096);
}

TEST(FrameAllocator, ManyCyclesKeepTheSetOfFrames) {
  FrameAllocator frames(64, 2048);
  std::vector<std::uint64_t> held(64);
  for (int round = 0; round < 100; ++round) {
    const std::size_t n = frames.allocate(std::span<std::uint64_t>(held.data(), 1 + round % 64));
    ASSERT_EQ(n, 1u + round % 64);
    std::reverse(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(n));
    ASSERT_EQ(frames.free(std::span<const std::uint64_t>(held.data(), n)), n);
  }
  std::set<std::uint64_t> all;
  while (auto addr = frames.allocate()) all.insert(*addr);
  EXPECT_EQ(all.size(), 64u);
  EXPECT_EQ(*all.rbegin(), 63u * 2048);
}

}  // namespace
}  // namespace mpxdp::xsk
