// Busy polling on a socket of either backend (kernel UDP or AF_XDP).
#pragma once

#include <cstdint>
#include <string>

#include "mpxdp/error.h"

namespace mpxdp::transport {

// A non-blocking read on fd polls the device's NAPI context itself for up to
// `usecs` (SO_BUSY_POLL), the kernel leaves that context to such reads while
// they come (SO_PREFER_BUSY_POLL), and each poll takes up to `budget` packets
// (SO_BUSY_POLL_BUDGET). EPERM without CAP_NET_ADMIN, and the error says so.
Result<void> enableBusyPolling(int fd, std::uint32_t usecs, std::uint32_t budget);

// What a link's description adds: " busy-poll 50us", or nothing when off.
std::string describeBusyPolling(std::uint32_t usecs);

}  // namespace mpxdp::transport
