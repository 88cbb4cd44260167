// A fixed-capacity free list of UMEM frame addresses. All memory is taken at
// construction; allocate and free are O(1) and never allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "mpxdp/error.h"

namespace mpxdp::xsk {

class FrameAllocator {
 public:
  // Frames are at addresses firstAddr + i * frameSize for i in [0, frameCount);
  // all of them start free.
  FrameAllocator(std::uint32_t frameCount, std::uint32_t frameSize, std::uint64_t firstAddr = 0);

  std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(isFree_.size()); }
  std::uint32_t available() const noexcept { return top_; }
  std::uint32_t frameSize() const noexcept { return frameSize_; }

  std::optional<std::uint64_t> allocate() noexcept;
  // Takes up to out.size() frames; returns how many were written to out.
  std::size_t allocate(std::span<std::uint64_t> out) noexcept;

  // Returns a frame. Fails (EINVAL) for an address that is not the start of
  // one of our frames and (EALREADY) for a frame that is already free.
  Result<void> free(std::uint64_t addr) noexcept;
  // Returns frames; bad addresses (see free) are skipped and counted in
  // rejectedFrees(). Returns how many were accepted.
  std::size_t free(std::span<const std::uint64_t> addrs) noexcept;
  std::uint64_t rejectedFrees() const noexcept { return rejected_; }

  // Start of the frame that contains addr (addr may point inside a frame).
  std::uint64_t frameBase(std::uint64_t addr) const noexcept {
    return addr - ((addr - firstAddr_) % frameSize_);
  }

 private:
  // Index of the frame starting at addr, or -1 when addr is not a frame start.
  std::int64_t indexOf(std::uint64_t addr) const noexcept;
  bool push(std::uint64_t addr) noexcept;

  std::uint32_t frameSize_;
  std::uint64_t firstAddr_;
  std::vector<std::uint64_t> stack_;  // free frames, [0, top_)
  std::vector<std::uint8_t> isFree_;  // per frame: 1 when on the stack
  std::uint32_t top_ = 0;
  std::uint64_t rejected_ = 0;
};

}  // namespace mpxdp::xsk
