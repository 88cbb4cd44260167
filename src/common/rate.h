// Link rates in bits per second, written the way iperf3 writes them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mpxdp/error.h"

namespace mpxdp {

// Parses a rate the way iperf3 does: a decimal number with an optional SI
// suffix k/K, m/M, g/G, t/T (x1000 steps), in bits per second: "300M", "2.5G",
// "100k", "1000000". Rejects empty, negative, zero, junk and overflow (EINVAL,
// the context names the text).
Result<std::uint64_t> parseRate(std::string_view text);

// "300 Mbit/s", "2.5 Gbit/s", "999 bit/s"; 0 is "unshaped".
std::string formatRate(std::uint64_t bps);

}  // namespace mpxdp
