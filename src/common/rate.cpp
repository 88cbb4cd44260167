#include "rate.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace mpxdp {

Result<std::uint64_t> parseRate(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Error(EINVAL, fmt::format("bad rate '{}': {} (expected bits per second like 300M, 2.5G, 100k or "
                                     "1000000; suffixes k/M/G/T are powers of 1000)",
                                     text, why));
  };
  if (text.empty()) return bad("empty");
  std::uint64_t multiplier = 1;
  std::string_view number = text;
  switch (number.back()) {
    case 'k':
    case 'K':
      multiplier = 1'000;
      break;
    case 'm':
    case 'M':
      multiplier = 1'000'000;
      break;
    case 'g':
    case 'G':
      multiplier = 1'000'000'000;
      break;
    case 't':
    case 'T':
      multiplier = 1'000'000'000'000;
      break;
    default:
      break;
  }
  if (multiplier != 1) number.remove_suffix(1);
  if (number.empty()) return bad("no number before the unit");

  // Exact decimal arithmetic: whole part and up to 12 fraction digits.
  constexpr std::uint64_t kMax = UINT64_MAX;
  std::uint64_t whole = 0;
  std::uint64_t fraction = 0;
  std::uint64_t fractionScale = 1;
  bool seenDot = false;
  bool seenDigit = false;
  for (char c : number) {
    if (c == '.') {
      if (seenDot) return bad("more than one decimal point");
      seenDot = true;
      continue;
    }
    if (c < '0' || c > '9') return bad(c == '-' ? "negative" : "not a number");
    seenDigit = true;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (!seenDot) {
      if (whole > (kMax - digit) / 10) return bad("too large");
      whole = whole * 10 + digit;
    } else if (fractionScale < 1'000'000'000'000) {
      fraction = fraction * 10 + digit;
      fractionScale *= 10;
    }
  }
  if (!seenDigit) return bad("not a number");
  if (whole > kMax / multiplier) return bad("too large");
  // fraction < fractionScale <= 1e12 and multiplier <= 1e12: the product fits after dividing one out.
  const std::uint64_t fractional = multiplier >= fractionScale ? fraction * (multiplier / fractionScale)
                                                               : fraction / (fractionScale / multiplier);
  const std::uint64_t wholeBits = whole * multiplier;
  if (wholeBits > kMax - fractional) return bad("too large");
  const std::uint64_t bps = wholeBits + fractional;
  if (bps == 0) return bad("must be positive (leave the rate out for an unshaped link)");
  return bps;
}

std::string formatRate(std::uint64_t bps) {
  if (bps == 0) return "unshaped";
  static constexpr std::array<std::pair<std::uint64_t, std::string_view>, 4> kUnits = {
      {{1'000'000'000'000, "Tbit/s"}, {1'000'000'000, "Gbit/s"}, {1'000'000, "Mbit/s"}, {1'000, "kbit/s"}}};
  for (const auto& [scale, unit] : kUnits) {
    if (bps >= scale)
      return fmt::format("{:g} {}", static_cast<double>(bps) / static_cast<double>(scale), unit);
  }
  return fmt::format("{} bit/s", bps);
}

}  // namespace mpxdp
