#include "frame_allocator.h"

#include <cerrno>
#include <string>

namespace mpxdp::xsk {

FrameAllocator::FrameAllocator(std::uint32_t frameCount, std::uint32_t frameSize, std::uint64_t firstAddr)
    : frameSize_(frameSize == 0 ? 1 : frameSize),
      firstAddr_(firstAddr),
      stack_(frameCount),
      isFree_(frameCount, 1),
      top_(frameCount) {
  // Lowest address on top so a fresh allocator hands out frames in order.
  for (std::uint32_t i = 0; i < frameCount; ++i) {
    stack_[i] = firstAddr_ + static_cast<std::uint64_t>(frameCount - 1 - i) * frameSize_;
  }
}

std::optional<std::uint64_t> FrameAllocator::allocate() noexcept {
  if (top_ == 0) return std::nullopt;
  const std::uint64_t addr = stack_[--top_];
  isFree_[static_cast<std::size_t>(indexOf(addr))] = 0;
  return addr;
}

std::size_t FrameAllocator::allocate(std::span<std::uint64_t> out) noexcept {
  std::size_t n = 0;
  while (n < out.size() && top_ > 0) {
    const std::uint64_t addr = stack_[--top_];
    isFree_[static_cast<std::size_t>(indexOf(addr))] = 0;
    out[n++] = addr;
  }
  return n;
}

std::int64_t FrameAllocator::indexOf(std::uint64_t addr) const noexcept {
  if (addr < firstAddr_) return -1;
  const std::uint64_t offset = addr - firstAddr_;
  if (offset % frameSize_ != 0) return -1;
  const std::uint64_t index = offset / frameSize_;
  if (index >= isFree_.size()) return -1;
  return static_cast<std::int64_t>(index);
}

bool FrameAllocator::push(std::uint64_t addr) noexcept {
  const std::int64_t index = indexOf(addr);
  if (index < 0 || isFree_[static_cast<std::size_t>(index)] != 0) return false;
  isFree_[static_cast<std::size_t>(index)] = 1;
  stack_[top_++] = addr;
  return true;
}

Result<void> FrameAllocator::free(std::uint64_t addr) noexcept {
  const std::int64_t index = indexOf(addr);
  if (index < 0) {
    ++rejected_;
    return Error(EINVAL, "frame address " + std::to_string(addr) + " is not the start of a UMEM frame");
  }
  if (!push(addr)) {
    ++rejected_;
    return Error(EALREADY, "frame " + std::to_string(addr) + " freed twice");
  }
  return {};
}

std::size_t FrameAllocator::free(std::span<const std::uint64_t> addrs) noexcept {
  std::size_t accepted = 0;
  for (const std::uint64_t addr : addrs) {
    if (push(addr)) {
      ++accepted;
    } else {
      ++rejected_;
    }
  }
  return accepted;
}

}  // namespace mpxdp::xsk
