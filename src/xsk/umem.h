// A UMEM: an anonymous mmap'd area registered with the kernel for AF_XDP,
// plus its fill and completion rings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "mpxdp/error.h"
#include "rings.h"

struct xsk_umem;

namespace mpxdp::xsk {

struct UmemConfig {
  std::uint32_t frameCount = 4096;
  std::uint32_t frameSize = 4096;  // power of two in [2048, page size] (aligned mode)
  std::uint32_t fillRingSize = 2048;
  std::uint32_t completionRingSize = 2048;
};

class Umem {
 public:
  // Maps frameCount * frameSize bytes (populated up front) and registers them.
  static Result<std::unique_ptr<Umem>> create(const UmemConfig& config);
  ~Umem();
  Umem(const Umem&) = delete;
  Umem& operator=(const Umem&) = delete;

  const UmemConfig& config() const noexcept { return config_; }
  std::uint8_t* area() noexcept { return area_; }
  std::size_t areaSize() const noexcept { return size_; }
  // Pointer to UMEM address addr (descriptor addresses are offsets in the area).
  std::uint8_t* at(std::uint64_t addr) noexcept { return area_ + addr; }
  std::uint64_t frameBase(std::uint64_t addr) const noexcept {
    return addr & ~std::uint64_t{config_.frameSize - 1};
  }

  FillRing& fill() noexcept { return fill_; }
  CompletionRing& completion() noexcept { return completion_; }
  xsk_umem* handle() noexcept { return umem_; }

 private:
  Umem() = default;

  UmemConfig config_;
  std::uint8_t* area_ = nullptr;
  std::size_t size_ = 0;
  xsk_umem* umem_ = nullptr;
  // libxdp keeps pointers to these until the first socket is bound: the
  // object must not move (hence unique_ptr).
  FillRing fill_;
  CompletionRing completion_;
};

}  // namespace mpxdp::xsk
