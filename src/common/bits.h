// Small bit helpers shared by the modules.
#pragma once

#include <cstdint>

namespace mpxdp {

constexpr bool isPowerOfTwo(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

// Largest power of two <= v (0 for 0).
constexpr std::uint32_t floorPowerOfTwo(std::uint32_t v) noexcept {
  std::uint32_t p = 1;
  if (v == 0) return 0;
  while (p <= v / 2) p *= 2;
  return p;
}

}  // namespace mpxdp
