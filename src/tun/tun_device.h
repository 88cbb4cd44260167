// A Linux TUN interface (layer 3, no packet-information prefix) for mpxdp
// tun: created for the life of the object (not persistent, so the kernel
// removes it when the process dies), with the virtio-net header and the
// segmentation offloads this kernel supports, so one read can return a TCP
// or UDP super-packet of up to 64 KiB and one write can hand the kernel a
// coalesced one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mpxdp/address.h"
#include "mpxdp/error.h"
#include "unique_fd.h"

namespace mpxdp::tun {

// An address with its prefix length, as `ip addr add` takes it: 10.9.0.1/24, fd00::1/64.
struct IpPrefix {
  IpAddress address;
  std::uint8_t length = 0;
  // EINVAL with a message naming the text on bad syntax or a length beyond 32 / 128.
  static Result<IpPrefix> parse(std::string_view text);
  std::string toString() const;
};

// Offloads a TUN device was given (TUNSETOFFLOAD), as flags.
enum TunOffload : std::uint32_t {
  kOffloadChecksum = 1U << 0,  // TUN_F_CSUM: partial checksums in both directions
  kOffloadTso4 = 1U << 1,
  kOffloadTso6 = 1U << 2,
  kOffloadUso4 = 1U << 3,  // UDP segmentation (kernel 6.2+)
  kOffloadUso6 = 1U << 4,
};

struct TunOptions {
  std::string name;  // IFNAMSIZ - 1 characters at most; EEXIST when an interface has it
  // Read and write the 10-byte virtio_net_hdr before each packet and ask for
  // the offloads below; off: plain IP packets, one per read and write.
  bool virtioHeader = true;
  bool offloads = true;  // TSO4/6 and USO4/6 where the kernel accepts them (needs virtioHeader)
  std::uint32_t txQueueLength = 1000;
  // Queues (IFF_MULTI_QUEUE when more than 1): a descriptor each. The kernel
  // sends each flow to the queue it last wrote that flow's packets on.
  std::uint32_t queues = 1;
};

inline constexpr std::uint32_t kMaxTunQueues = 16;

class TunDevice {
 public:
  // Opens /dev/net/tun (non-blocking), creates the interface and sets the
  // offloads; the interface is down until setUp(true).
  static Result<TunDevice> open(const TunOptions& options);
  TunDevice() = default;
  TunDevice(TunDevice&& other) noexcept;
  TunDevice& operator=(TunDevice&& other) noexcept;
  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;
  ~TunDevice() = default;  // closes the fds: the kernel removes the interface and its routes

  int fd() const noexcept { return queueFd(0); }
  std::uint32_t queueCount() const noexcept { return static_cast<std::uint32_t>(fds_.size()); }
  int queueFd(std::uint32_t queue) const noexcept { return queue < fds_.size() ? fds_[queue].get() : -1; }
  int ifindex() const noexcept { return ifindex_; }
  const std::string& name() const noexcept { return name_; }
  bool virtioHeader() const noexcept { return virtioHeader_; }
  std::uint32_t offloads() const noexcept { return offloads_; }  // TunOffload flags
  std::string describeOffloads() const;                          // "csum tso4 tso6 uso4 uso6" or "none"

  // Through rtnetlink / ioctl in the calling thread's network namespace.
  Result<void> setMtu(std::uint32_t mtu);
  Result<void> addAddress(const IpPrefix& prefix);
  Result<void> setUp(bool up);

  // One packet (behind its virtio_net_hdr when virtioHeader()) into buffer;
  // 0 when none is waiting. The buffer should hold 65535 + 10 bytes.
  Result<std::size_t> read(std::span<std::uint8_t> buffer) noexcept { return read(0, buffer); }
  Result<std::size_t> read(std::uint32_t queue, std::span<std::uint8_t> buffer) noexcept;
  // One packet (behind its virtio_net_hdr when virtioHeader()). false when
  // the kernel did not take it (EAGAIN / ENOBUFS: dropped, counted by the caller).
  Result<bool> write(std::span<const std::uint8_t> packet) noexcept { return write(0, packet); }
  Result<bool> write(std::uint32_t queue, std::span<const std::uint8_t> packet) noexcept;
  // One packet gathered from parts (at most kMaxWriteParts), as write().
  static constexpr std::size_t kMaxWriteParts = 128;
  Result<bool> write(std::span<const std::span<const std::uint8_t>> parts) noexcept {
    return write(0, parts);
  }
  Result<bool> write(std::uint32_t queue, std::span<const std::span<const std::uint8_t>> parts) noexcept;

 private:
  std::vector<UniqueFd> fds_;  // one per queue
  int ifindex_ = 0;
  std::string name_;
  bool virtioHeader_ = false;
  std::uint32_t offloads_ = 0;
};

}  // namespace mpxdp::tun
