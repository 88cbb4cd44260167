// RFC 6479 anti-replay window: bit i of the ring says packet number i was
// opened. The ring has one word more than the window, so moving ahead only
// clears whole words and never a bit still inside the window.
#include "packet_protection.h"

namespace mpxdp::crypto {
namespace {

constexpr std::uint64_t kBitsPerWord = 64;

}  // namespace

ReplayWindow::Verdict ReplayWindow::check(std::uint64_t packetNumber) const noexcept {
  if (!any_ || packetNumber > highest_) {
    return Verdict::kNew;
  }
  if (highest_ - packetNumber >= kReplayWindowPackets) {
    return Verdict::kTooOld;
  }
  const std::uint64_t word = bits_[(packetNumber / kBitsPerWord) % kWords];
  const std::uint64_t bit = std::uint64_t{1} << (packetNumber % kBitsPerWord);
  return (word & bit) != 0 ? Verdict::kDuplicate : Verdict::kNew;
}

void ReplayWindow::accept(std::uint64_t packetNumber) noexcept {
  if (!any_) {
    any_ = true;
    highest_ = packetNumber;
  } else if (packetNumber > highest_) {
    // Clear the words between the old highest's and the new one's (all of
    // them at most: a big jump empties the window).
    const std::uint64_t from = highest_ / kBitsPerWord;
    const std::uint64_t to = packetNumber / kBitsPerWord;
    const std::uint64_t skipped = to - from < kWords ? to - from : kWords;
    for (std::uint64_t i = 1; i <= skipped; ++i) {
      bits_[(from + i) % kWords] = 0;
    }
    highest_ = packetNumber;
  } else if (highest_ - packetNumber >= kReplayWindowPackets) {
    return;  // below the window: its word now belongs to newer numbers
  }
  bits_[(packetNumber / kBitsPerWord) % kWords] |= std::uint64_t{1} << (packetNumber % kBitsPerWord);
}

}  // namespace mpxdp::crypto
