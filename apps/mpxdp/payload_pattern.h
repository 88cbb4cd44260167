// The verifiable payload of `mpxdp send`: a function of the global sequence
// number and the byte offset, written and checked 8 bytes at a time, so the
// receiver detects corruption, truncation and payloads swapped between packets.
#pragma once

#include <cstdint>

namespace mpxdp::cli {

// Writes the pattern of packet `seq` into data[0, length).
void fillPattern(std::uint8_t* data, std::uint32_t length, std::uint64_t seq) noexcept;
// True when data[0, length) holds exactly the pattern of packet `seq`.
bool checkPattern(const std::uint8_t* data, std::uint32_t length, std::uint64_t seq) noexcept;

}  // namespace mpxdp::cli
