// Shared by the fuzz targets: the oracle check and a reader that turns the
// fuzzer's bytes into values. Builds with gcc too (the replay tests), so no
// clang-only header (FuzzedDataProvider) is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

namespace mpxdp::fuzz {

// A broken oracle is a finding: libFuzzer reports the abort with the input
// that caused it, a replay test fails.
[[noreturn]] inline void checkFailed(const char* file, int line, const char* what) {
  std::fprintf(stderr, "fuzz oracle failed at %s:%d: %s\n", file, line, what);
  std::abort();
}

#define FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::mpxdp::fuzz::checkFailed(__FILE__, __LINE__, #cond))

// Reads big-endian values from the front of the input; zeros once it is used up,
// so every input is a valid program.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> in) noexcept : in_(in) {}

  bool empty() const noexcept { return pos_ >= in_.size(); }
  std::size_t remaining() const noexcept { return empty() ? 0 : in_.size() - pos_; }

  std::uint8_t u8() noexcept { return empty() ? 0 : in_[pos_++]; }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>((u8() << 8) | u8()); }
  std::uint32_t u32() noexcept {
    const std::uint32_t high = u16();
    return (high << 16) | u16();
  }
  std::uint64_t u64() noexcept {
    const std::uint64_t high = u32();
    return (high << 32) | u32();
  }
  bool flag() noexcept { return (u8() & 1) != 0; }

  // Up to n bytes (fewer when the input ends).
  std::span<const std::uint8_t> bytes(std::size_t n) noexcept {
    const std::size_t take = n < remaining() ? n : remaining();
    const std::span<const std::uint8_t> out = in_.subspan(empty() ? in_.size() : pos_, take);
    pos_ += take;
    return out;
  }

 private:
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

}  // namespace mpxdp::fuzz

// libFuzzer's entry point (its name), defined by each target.
extern "C" int LLVMFuzzerTestOneInput(  // NOLINT(readability-identifier-naming)
    const std::uint8_t* data, std::size_t size);
