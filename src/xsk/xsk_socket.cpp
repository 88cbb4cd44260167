#include "xsk_socket.h"

#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/socket.h>
#include <xdp/xsk.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "bits.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

namespace mpxdp::xsk {
namespace {

constexpr int kBusyRetries = 50;
constexpr std::chrono::milliseconds kBusyRetryWait{10};

}  // namespace

const char* toString(XdpMode mode) noexcept {
  switch (mode) {
    case XdpMode::kAuto:
      return "auto";
    case XdpMode::kCopy:
      return "copy";
    case XdpMode::kZeroCopy:
      return "zerocopy";
  }
  return "?";
}

Result<std::unique_ptr<XskSocket>> XskSocket::create(Umem& umem, const XskSocketConfig& config) {
  if (!isPowerOfTwo(config.rxRingSize) || (config.txRingSize != 0 && !isPowerOfTwo(config.txRingSize))) {
    return Error(EINVAL, "AF_XDP RX ring size " + std::to_string(config.rxRingSize) + " and TX ring size " +
                             std::to_string(config.txRingSize) +
                             " must be powers of two (TX may be 0: no TX ring)");
  }
  const unsigned ifindex = if_nametoindex(config.interface.c_str());
  if (ifindex == 0) return Error::fromErrno("AF_XDP socket: no interface named '" + config.interface + "'");

  std::unique_ptr<XskSocket> socket(new XskSocket());
  socket->config_ = config;
  socket->ifindex_ = static_cast<int>(ifindex);

  xsk_socket_config socketConfig{};
  socketConfig.rx_size = config.rxRingSize;
  socketConfig.tx_size = config.txRingSize;
  socketConfig.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our own program steers
  socketConfig.xdp_flags = 0;
  // Without a mode flag the kernel tries zero-copy and falls back to copy
  // by itself; XDP_OPTIONS below tells which one we got.
  std::uint16_t bindFlags = XDP_USE_NEED_WAKEUP;
  if (config.mode == XdpMode::kCopy) bindFlags |= XDP_COPY;
  if (config.mode == XdpMode::kZeroCopy) bindFlags |= XDP_ZEROCOPY;
  socketConfig.bind_flags = bindFlags;

  // A socket just closed on this queue releases it from a deferred kernel
  // work item, so a quick re-bind can see EBUSY for a few milliseconds.
  int rc = 0;
  for (int attempt = 0;; ++attempt) {
    rc = xsk_socket__create(&socket->xsk_, config.interface.c_str(), config.queue, umem.handle(),
                            socket->rx_.raw(), config.txRingSize != 0 ? socket->tx_.raw() : nullptr,
                            &socketConfig);
    if (rc != -EBUSY || attempt >= kBusyRetries) break;
    std::this_thread::sleep_for(kBusyRetryWait);
  }
  if (rc != 0) {
    socket->xsk_ = nullptr;
    std::string context = "binding an AF_XDP socket to " + config.interface + " queue " +
                          std::to_string(config.queue) + " in " + toString(config.mode) + " mode";
    if (-rc == EOPNOTSUPP && config.mode == XdpMode::kZeroCopy) context += " (driver has no zero-copy)";
    if (-rc == EBUSY) context += " (another AF_XDP socket is bound to this queue, still after 500 ms)";
    if (-rc == EINVAL) context += " (does the interface have that queue?)";
    return Error(-rc, context);
  }
  socket->fd_ = xsk_socket__fd(socket->xsk_);

  xdp_options options{};
  socklen_t optionsLen = sizeof(options);
  if (getsockopt(socket->fd_, SOL_XDP, XDP_OPTIONS, &options, &optionsLen) != 0) {
    return Error::fromErrno("getsockopt(XDP_OPTIONS) on the AF_XDP socket of " + config.interface);
  }
  socket->zeroCopy_ = (options.flags & XDP_OPTIONS_ZEROCOPY) != 0;
  if (config.mode == XdpMode::kZeroCopy && !socket->zeroCopy_) {
    return Error(EOPNOTSUPP,
                 "AF_XDP socket on " + config.interface + " asked for zero-copy but got copy mode");
  }
  if (config.mode == XdpMode::kCopy && socket->zeroCopy_) {
    return Error(EPROTO, "AF_XDP socket on " + config.interface + " asked for copy mode but got zero-copy");
  }
  return socket;
}

XskSocket::~XskSocket() {
  if (xsk_ != nullptr) xsk_socket__delete(xsk_);
}

int XskSocket::kickTx() noexcept {
  if (sendto(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) return 0;
  return errno;
}

int XskSocket::wakeRx() noexcept {
  if (recvfrom(fd_, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr) >= 0) return 0;
  return errno == EAGAIN ? 0 : errno;
}

Result<XskStatistics> XskSocket::statistics() const noexcept {
  xdp_statistics raw{};
  socklen_t len = sizeof(raw);
  if (getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &raw, &len) != 0) {
    return Error::fromErrno("getsockopt(XDP_STATISTICS) on the AF_XDP socket of " + config_.interface);
  }
  XskStatistics stats;
  stats.rxDropped = raw.rx_dropped;
  stats.rxInvalidDescs = raw.rx_invalid_descs;
  stats.txInvalidDescs = raw.tx_invalid_descs;
  // Kernels older than 5.9 return the short (3-field) struct.
  if (len >= sizeof(raw)) {
    stats.rxRingFull = raw.rx_ring_full;
    stats.rxFillRingEmptyDescs = raw.rx_fill_ring_empty_descs;
    stats.txRingEmptyDescs = raw.tx_ring_empty_descs;
  }
  return stats;
}

}  // namespace mpxdp::xsk
