// Internal helpers shared by the reorderers: modular sequence comparison and
// a power-of-two ring bitmap indexed by sequence number.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mpxdp::reorder::detail {

// Signed distance b - a on the 64-bit sequence circle.
inline std::int64_t seqDiff(std::uint64_t b, std::uint64_t a) noexcept {
  return static_cast<std::int64_t>(b - a);
}
inline bool seqLess(std::uint64_t a, std::uint64_t b) noexcept { return seqDiff(b, a) > 0; }

// One bit per sequence number, slot = seq & mask. size is a power of two >= 64.
class SeqBitmap {
 public:
  explicit SeqBitmap(std::uint32_t size) : words_(size / 64, 0), mask_(size - 1) {}

  bool test(std::uint64_t seq) const noexcept {
    const std::uint64_t slot = seq & mask_;
    return (words_[slot >> 6] >> (slot & 63)) & 1U;
  }
  void set(std::uint64_t seq) noexcept {
    const std::uint64_t slot = seq & mask_;
    words_[slot >> 6] |= std::uint64_t{1} << (slot & 63);
  }
  void clear(std::uint64_t seq) noexcept {
    const std::uint64_t slot = seq & mask_;
    words_[slot >> 6] &= ~(std::uint64_t{1} << (slot & 63));
  }
  void assign(std::uint64_t seq, bool value) noexcept { value ? set(seq) : clear(seq); }
  // Sets or clears [from, from + count), a word at a time. count <= size.
  void assignRange(std::uint64_t from, std::uint64_t count, bool value) noexcept {
    forEachWord(from, count, [&](std::size_t index, std::uint64_t bits) {
      words_[index] = value ? (words_[index] | bits) : (words_[index] & ~bits);
    });
  }
  // Clears [from, from + count) here and sets it in `to`, a bitmap of the same
  // size, in one pass. count <= size.
  void moveRange(SeqBitmap& to, std::uint64_t from, std::uint64_t count) noexcept {
    forEachWord(from, count, [&](std::size_t index, std::uint64_t bits) {
      words_[index] &= ~bits;
      to.words_[index] |= bits;
    });
  }

  // Offset from `from` of the first set (wantSet) or clear bit within
  // [from, from + limit), or limit when there is none. limit <= size.
  std::uint64_t find(std::uint64_t from, std::uint64_t limit, bool wantSet) const noexcept {
    std::uint64_t offset = 0;
    while (offset < limit) {
      const std::uint64_t slot = (from + offset) & mask_;
      std::uint64_t word = words_[slot >> 6];
      if (!wantSet) word = ~word;
      word >>= (slot & 63);
      if (word != 0) {
        offset += static_cast<std::uint64_t>(std::countr_zero(word));
        return offset < limit ? offset : limit;
      }
      offset += 64 - (slot & 63);
    }
    return limit;
  }

 private:
  // Calls apply(word index, bits) for each word [from, from + count) touches.
  template <typename Apply>
  void forEachWord(std::uint64_t from, std::uint64_t count, Apply apply) const noexcept {
    while (count > 0) {
      const std::uint64_t slot = from & mask_;
      const std::uint64_t bit = slot & 63;
      const std::uint64_t span = std::min<std::uint64_t>(count, 64 - bit);
      const std::uint64_t ones = span == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << span) - 1;
      apply(static_cast<std::size_t>(slot >> 6), ones << bit);
      from += span;
      count -= span;
    }
  }

  std::vector<std::uint64_t> words_;
  std::uint64_t mask_;
};

}  // namespace mpxdp::reorder::detail
