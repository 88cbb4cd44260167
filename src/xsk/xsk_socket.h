// An AF_XDP socket bound to one (interface, queue), with its RX and TX rings.
// The XDP program that steers packets into it is loaded elsewhere
// (libxdp's default program is never loaded).
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>

#include "mpxdp/error.h"
#include "rings.h"
#include "umem.h"

struct xsk_socket;

namespace mpxdp::xsk {

enum class XdpMode : std::uint8_t {
  kAuto,      // zero-copy when the driver has it, else copy
  kCopy,      // force copy mode
  kZeroCopy,  // zero-copy or fail
};
const char* toString(XdpMode mode) noexcept;

struct XskSocketConfig {
  std::string interface;
  std::uint32_t queue = 0;
  std::uint32_t rxRingSize = 2048;  // powers of two
  std::uint32_t txRingSize = 2048;  // 0: receive-only socket, no TX ring (tx() unusable)
  XdpMode mode = XdpMode::kAuto;
};

// XDP_STATISTICS, as the kernel counts them for this socket.
struct XskStatistics {
  std::uint64_t rxDropped = 0;
  std::uint64_t rxInvalidDescs = 0;
  std::uint64_t txInvalidDescs = 0;
  std::uint64_t rxRingFull = 0;
  std::uint64_t rxFillRingEmptyDescs = 0;
  std::uint64_t txRingEmptyDescs = 0;
};

class XskSocket {
 public:
  // Binds a socket on umem (which must outlive it) with XDP_USE_NEED_WAKEUP.
  static Result<std::unique_ptr<XskSocket>> create(Umem& umem, const XskSocketConfig& config);
  ~XskSocket();
  XskSocket(const XskSocket&) = delete;
  XskSocket& operator=(const XskSocket&) = delete;

  int fd() const noexcept { return fd_; }
  int ifindex() const noexcept { return ifindex_; }
  const XskSocketConfig& config() const noexcept { return config_; }
  // The mode the kernel actually granted (from XDP_OPTIONS).
  bool zeroCopy() const noexcept { return zeroCopy_; }
  RxRing& rx() noexcept { return rx_; }
  TxRing& tx() noexcept { return tx_; }

  // Asks the kernel to process the TX ring (sendto). Returns 0, or the errno:
  // EAGAIN, EBUSY and ENOBUFS mean "reap completions and try again".
  int kickTx() noexcept;
  // Kicks while the kernel takes descriptors (copy mode sends at most 32 per
  // kick) and it still wants wake-ups; gives up after a few kicks without
  // progress (device busy: the next call goes on). afterKick() runs after
  // every kick (the filling thread reaps completions there). Returns 0, or
  // the errno of a kick that failed for good.
  template <typename AfterKick>
  int drainTx(AfterKick afterKick) noexcept {
    constexpr int kMaxIdleKicks = 4;
    int idleKicks = 0;
    std::uint32_t outstanding = tx_.outstanding();
    while (outstanding > 0 && tx_.needsWakeup() && idleKicks < kMaxIdleKicks) {
      const int err = kickTx();
      if (err != 0 && err != EAGAIN && err != EBUSY && err != ENOBUFS && err != EINTR) return err;
      afterKick();
      const std::uint32_t now = tx_.outstanding();
      idleKicks = now < outstanding ? 0 : idleKicks + 1;
      outstanding = now;
    }
    return 0;
  }
  // Asks the kernel to look at the fill ring again (recvfrom). Returns 0 or errno.
  int wakeRx() noexcept;

  Result<XskStatistics> statistics() const noexcept;

 private:
  XskSocket() = default;

  XskSocketConfig config_;
  xsk_socket* xsk_ = nullptr;
  int fd_ = -1;
  int ifindex_ = 0;
  bool zeroCopy_ = false;
  RxRing rx_;
  TxRing tx_;
};

}  // namespace mpxdp::xsk
