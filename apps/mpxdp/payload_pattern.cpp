#include "payload_pattern.h"

#include <cstring>

namespace mpxdp::cli {
namespace {

// Odd multipliers: word i of packet s is s * kSeqMul + i * kWordMul, mixed
// so that neighbouring packets differ in every byte. The length enters the
// base so a payload cut short does not pass as a shorter packet.
constexpr std::uint64_t kSeqMul = 0x9E3779B97F4A7C15ULL;
constexpr std::uint64_t kWordMul = 0xD6E8FEB86659FD93ULL;

inline std::uint64_t word(std::uint64_t base, std::uint64_t i) noexcept {
  const std::uint64_t x = base + i * kWordMul;
  return x ^ (x >> 29);
}

}  // namespace

void fillPattern(std::uint8_t* data, std::uint32_t length, std::uint64_t seq) noexcept {
  const std::uint64_t base = ((seq + 1) * kSeqMul) ^ (std::uint64_t{length} << 48);
  const std::uint32_t words = length / 8;
  for (std::uint32_t i = 0; i < words; ++i) {
    const std::uint64_t w = word(base, i);
    std::memcpy(data + 8 * i, &w, 8);
  }
  if (const std::uint32_t tail = length % 8; tail != 0) {
    const std::uint64_t w = word(base, words);
    std::memcpy(data + 8 * words, &w, tail);
  }
}

bool checkPattern(const std::uint8_t* data, std::uint32_t length, std::uint64_t seq) noexcept {
  const std::uint64_t base = ((seq + 1) * kSeqMul) ^ (std::uint64_t{length} << 48);
  const std::uint32_t words = length / 8;
  std::uint64_t diff = 0;
  for (std::uint32_t i = 0; i < words; ++i) {
    std::uint64_t got;
    std::memcpy(&got, data + 8 * i, 8);
    diff |= got ^ word(base, i);
  }
  if (const std::uint32_t tail = length % 8; tail != 0) {
    const std::uint64_t w = word(base, words);
    diff |= static_cast<std::uint64_t>(std::memcmp(data + 8 * words, &w, tail) != 0);
  }
  return diff == 0;
}

}  // namespace mpxdp::cli
