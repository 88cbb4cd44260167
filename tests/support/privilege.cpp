#include "privilege.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#ifndef AF_XDP
#define AF_XDP 44
#endif

namespace mpxdp::test {

bool runningInCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::strcmp(ci, "true") == 0;
}

std::optional<std::string> privilegeMissing() {
  if (geteuid() != 0) {
    return "needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN): run the tests as root";
  }
  return std::nullopt;
}

std::optional<std::string> xdpFeatureMissing() {
  const int fd = socket(AF_XDP, SOCK_RAW, 0);
  if (fd < 0) {
    return std::string("kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS): ") + std::strerror(errno);
  }
  close(fd);
  if (!std::filesystem::exists("/sys/kernel/btf/vmlinux")) {
    return "kernel has no BTF (/sys/kernel/btf/vmlinux missing)";
  }
  return std::nullopt;
}

}  // namespace mpxdp::test
