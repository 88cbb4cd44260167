#include "busy_poll.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string>

namespace mpxdp::transport {

Result<void> enableBusyPolling(int fd, std::uint32_t usecs, std::uint32_t budget) {
  const int one = 1;
  const int time = static_cast<int>(std::min<std::uint32_t>(usecs, INT32_MAX));
  const int packets = static_cast<int>(std::min<std::uint32_t>(budget, UINT16_MAX));
  const auto failed = [](const char* option) {
    const int code = errno;
    return Error(code, std::string("setsockopt ") + option +
                           (code == EPERM ? " (busy polling needs CAP_NET_ADMIN)" : ""));
  };
  if (setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &time, sizeof(time)) != 0) return failed("SO_BUSY_POLL");
  if (setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) != 0)
    return failed("SO_PREFER_BUSY_POLL");
  if (setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &packets, sizeof(packets)) != 0)
    return failed("SO_BUSY_POLL_BUDGET");
  return {};
}

std::string describeBusyPolling(std::uint32_t usecs) {
  return usecs == 0 ? std::string() : " busy-poll " + std::to_string(usecs) + "us";
}

}  // namespace mpxdp::transport
