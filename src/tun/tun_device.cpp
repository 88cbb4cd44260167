#include "tun_device.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

// UDP segmentation offload flags arrived in kernel 6.2; older headers lack them.
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

#include "unique_fd.h"

namespace mpxdp::tun {
namespace {

constexpr int kVirtioHeaderBytes = 10;  // struct virtio_net_hdr, without num_buffers

ifreq requestFor(const std::string& name) {
  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), std::min(name.size(), std::size_t{IFNAMSIZ - 1}));
  return request;
}

// One SIOC* interface ioctl on a throwaway socket of the calling thread's namespace.
Result<void> interfaceIoctl(unsigned long command, ifreq& request, const std::string& what) {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Error::fromErrno(what + ": socket for interface ioctls");
  if (ioctl(fd.get(), command, &request) != 0) return Error::fromErrno(what);
  return {};
}

// Sends one rtnetlink request with NLM_F_ACK and returns the errno of the
// acknowledgement, with the kernel's extended-ack text when it gives one.
Result<void> netlinkRequest(nlmsghdr* request, const std::string& what) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (fd.get() < 0) return Error::fromErrno(what + ": opening an rtnetlink socket");
  const int on = 1;
  setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on));  // best effort
  setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on));  // no echoed request
  timeval timeout{2, 0};  // the kernel answers at once; never hang on a lost reply
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));

  constexpr std::uint32_t kSeq = 1;
  request->nlmsg_seq = kSeq;
  request->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), request, request->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) <
      0) {
    return Error::fromErrno(what + ": sending the rtnetlink request");
  }

  alignas(nlmsghdr) std::array<std::uint8_t, 8192> reply{};
  for (;;) {
    const ssize_t got = recv(fd.get(), reply.data(), reply.size(), 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Error::fromErrno(what + ": reading the rtnetlink acknowledgement");
    }
    int remaining = static_cast<int>(got);
    for (auto* msg = reinterpret_cast<nlmsghdr*>(reply.data()); NLMSG_OK(msg, remaining);
         msg = NLMSG_NEXT(msg, remaining)) {
      if (msg->nlmsg_seq != kSeq || msg->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(msg));
      if (err->error == 0) return {};
      std::string context = what;
      // Extended-ack attributes follow the nlmsgerr (request not echoed: NETLINK_CAP_ACK).
      if ((msg->nlmsg_flags & NLM_F_ACK_TLVS) != 0) {
        const std::size_t headerBytes = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nlmsgerr));
        int attrBytes = static_cast<int>(msg->nlmsg_len) - static_cast<int>(headerBytes);
        for (const auto* attr =
                 reinterpret_cast<const rtattr*>(reinterpret_cast<const std::uint8_t*>(msg) + headerBytes);
             RTA_OK(attr, attrBytes); attr = RTA_NEXT(attr, attrBytes)) {
          if (attr->rta_type == NLMSGERR_ATTR_MSG && RTA_PAYLOAD(attr) > 1) {
            context += " (" + std::string(static_cast<const char*>(RTA_DATA(attr))) + ")";
          }
        }
      }
      return Error(-err->error, context);
    }
  }
}

}  // namespace

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  const auto invalid = [&](const std::string& why) {
    return Error(EINVAL, "invalid address/prefix '" + std::string(text) + "': " + why);
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return invalid("expected ADDRESS/LENGTH");
  const auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return invalid("not an IPv4 or IPv6 address");
  const std::string_view lengthText = text.substr(slash + 1);
  unsigned length = 0;
  const auto [end, ec] = std::from_chars(lengthText.data(), lengthText.data() + lengthText.size(), length);
  if (lengthText.empty() || ec != std::errc() || end != lengthText.data() + lengthText.size()) {
    return invalid("prefix length is not a number");
  }
  const unsigned maxLength = address->isV4() ? 32 : 128;
  if (length > maxLength) return invalid("prefix length beyond " + std::to_string(maxLength));
  IpPrefix prefix;
  prefix.address = *address;
  prefix.length = static_cast<std::uint8_t>(length);
  return prefix;
}

std::string IpPrefix::toString() const { return address.toString() + "/" + std::to_string(length); }

Result<TunDevice> TunDevice::open(const TunOptions& options) {
  const std::string& name = options.name;
  if (name.empty() || name.size() > IFNAMSIZ - 1 || name.find_first_of("/ \t\n:") != std::string::npos) {
    return Error(EINVAL, "TUN interface name '" + name + "': needs 1 to " + std::to_string(IFNAMSIZ - 1) +
                             " characters, no '/', ':' or white space");
  }
  // TUNSETIFF would attach to an existing TUN interface of that name (or
  // fail obscurely on another kind): refuse any name in use.
  if (if_nametoindex(name.c_str()) != 0) {
    return Error(EEXIST, "TUN interface '" + name + "': an interface of that name already exists");
  }

  if (options.queues == 0 || options.queues > kMaxTunQueues) {
    return Error(EINVAL, "TUN interface '" + name + "': " + std::to_string(options.queues) +
                             " queues; expected 1 to " + std::to_string(kMaxTunQueues));
  }
  // The first TUNSETIFF creates the interface; with IFF_MULTI_QUEUE each
  // further one attaches another queue to it.
  std::vector<UniqueFd> fds;
  ifreq request = requestFor(name);
  for (std::uint32_t queue = 0; queue < options.queues; ++queue) {
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) return Error(ENOENT, "/dev/net/tun missing: load the tun module (modprobe tun)");
      return Error::fromErrno("opening /dev/net/tun for '" + name + "'");
    }
    request = requestFor(name);
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (options.virtioHeader) request.ifr_flags |= IFF_VNET_HDR;
    if (options.queues > 1) request.ifr_flags |= IFF_MULTI_QUEUE;
    if (ioctl(fd.get(), TUNSETIFF, &request) != 0) {
      if (queue == 0) return Error::fromErrno("creating TUN interface '" + name + "'");
      return Error::fromErrno("TUN interface '" + name + "': attaching queue " + std::to_string(queue));
    }
    fds.push_back(std::move(fd));
  }
  const int fd0 = fds.front().get();

  TunDevice device;
  device.name_.assign(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ));
  device.virtioHeader_ = options.virtioHeader;

  if (options.virtioHeader) {
    int headerBytes = kVirtioHeaderBytes;
    if (ioctl(fd0, TUNSETVNETHDRSZ, &headerBytes) != 0) {
      return Error::fromErrno("TUN interface '" + name + "': setting the virtio header size");
    }
    // Offloads need the header: it carries the GSO type and the checksum start.
    if (options.offloads) {
      unsigned flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
      int rc = ioctl(fd0, TUNSETOFFLOAD, flags);
      if (rc != 0 && errno == EINVAL) {  // kernel before 6.2: no USO
        flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        rc = ioctl(fd0, TUNSETOFFLOAD, flags);
      }
      if (rc != 0) return Error::fromErrno("TUN interface '" + name + "': setting offloads");
      if ((flags & TUN_F_CSUM) != 0) device.offloads_ |= kOffloadChecksum;
      if ((flags & TUN_F_TSO4) != 0) device.offloads_ |= kOffloadTso4;
      if ((flags & TUN_F_TSO6) != 0) device.offloads_ |= kOffloadTso6;
      if ((flags & TUN_F_USO4) != 0) device.offloads_ |= kOffloadUso4;
      if ((flags & TUN_F_USO6) != 0) device.offloads_ |= kOffloadUso6;
    }
  }

  device.ifindex_ = static_cast<int>(if_nametoindex(device.name_.c_str()));
  if (device.ifindex_ == 0) return Error::fromErrno("TUN interface '" + name + "': reading its ifindex");

  if (options.txQueueLength > 0) {  // 0 keeps the kernel's default
    ifreq qlen = requestFor(device.name_);
    qlen.ifr_qlen = static_cast<int>(options.txQueueLength);
    auto set = interfaceIoctl(SIOCSIFTXQLEN, qlen, "TUN interface '" + name + "': setting txqueuelen");
    if (!set.ok()) return set.error();
  }
  device.fds_ = std::move(fds);
  return device;
}

TunDevice::TunDevice(TunDevice&& other) noexcept
    : fds_(std::move(other.fds_)),
      ifindex_(std::exchange(other.ifindex_, 0)),
      name_(std::move(other.name_)),
      virtioHeader_(std::exchange(other.virtioHeader_, false)),
      offloads_(std::exchange(other.offloads_, 0)) {
  other.fds_.clear();
  other.name_.clear();
}

TunDevice& TunDevice::operator=(TunDevice&& other) noexcept {
  if (this != &other) {
    fds_ = std::move(other.fds_);
    other.fds_.clear();
    ifindex_ = std::exchange(other.ifindex_, 0);
    name_ = std::move(other.name_);
    other.name_.clear();
    virtioHeader_ = std::exchange(other.virtioHeader_, false);
    offloads_ = std::exchange(other.offloads_, 0);
  }
  return *this;
}

std::string TunDevice::describeOffloads() const {
  static constexpr std::pair<std::uint32_t, const char*> kNames[] = {
      {kOffloadChecksum, "csum"}, {kOffloadTso4, "tso4"}, {kOffloadTso6, "tso6"},
      {kOffloadUso4, "uso4"},     {kOffloadUso6, "uso6"},
  };
  std::string text;
  for (const auto& [flag, label] : kNames) {
    if ((offloads_ & flag) == 0) continue;
    if (!text.empty()) text += ' ';
    text += label;
  }
  return text.empty() ? "none" : text;
}

Result<void> TunDevice::setMtu(std::uint32_t mtu) {
  if (fds_.empty()) return Error(EBADF, "setting the MTU of a closed TUN device");
  ifreq request = requestFor(name_);
  request.ifr_mtu = static_cast<int>(mtu);
  return interfaceIoctl(SIOCSIFMTU, request, "setting MTU " + std::to_string(mtu) + " on '" + name_ + "'");
}

Result<void> TunDevice::setUp(bool up) {
  if (fds_.empty()) return Error(EBADF, "setting a closed TUN device up or down");
  ifreq request = requestFor(name_);
  auto got = interfaceIoctl(SIOCGIFFLAGS, request, "reading the flags of '" + name_ + "'");
  if (!got.ok()) return got;
  if (up) {
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
  } else {
    request.ifr_flags = static_cast<short>(request.ifr_flags & ~IFF_UP);
  }
  return interfaceIoctl(SIOCSIFFLAGS, request,
                        std::string("setting '") + name_ + "' " + (up ? "up" : "down"));
}

Result<void> TunDevice::addAddress(const IpPrefix& prefix) {
  if (fds_.empty()) return Error(EBADF, "adding an address to a closed TUN device");
  const bool v4 = prefix.address.isV4();
  const std::size_t addressBytes = v4 ? 4 : 16;
  if (prefix.length > addressBytes * 8) {
    return Error(EINVAL, "adding " + prefix.toString() + " to '" + name_ + "': prefix length too long");
  }

  struct {
    nlmsghdr header;
    ifaddrmsg body;
    std::array<std::uint8_t, 2 * RTA_SPACE(16)> attributes;
  } message{};
  message.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  message.header.nlmsg_type = RTM_NEWADDR;
  message.header.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  message.body.ifa_family = v4 ? AF_INET : AF_INET6;
  message.body.ifa_prefixlen = prefix.length;
  // Without duplicate address detection an IPv6 address is usable at once
  // (a point-to-point TUN link has no one to collide with).
  message.body.ifa_flags = v4 ? 0 : IFA_F_NODAD;
  message.body.ifa_scope = RT_SCOPE_UNIVERSE;
  message.body.ifa_index = static_cast<std::uint32_t>(ifindex_);
  const auto addAttribute = [&](std::uint16_t type) {
    auto* attr = reinterpret_cast<rtattr*>(reinterpret_cast<std::uint8_t*>(&message) +
                                           NLMSG_ALIGN(message.header.nlmsg_len));
    attr->rta_type = type;
    attr->rta_len = static_cast<std::uint16_t>(RTA_LENGTH(addressBytes));
    std::memcpy(RTA_DATA(attr), prefix.address.bytes.data(), addressBytes);
    message.header.nlmsg_len = NLMSG_ALIGN(message.header.nlmsg_len) + RTA_ALIGN(attr->rta_len);
  };
  if (v4) addAttribute(IFA_LOCAL);
  addAttribute(IFA_ADDRESS);
  return netlinkRequest(&message.header, "adding " + prefix.toString() + " to '" + name_ + "'");
}

Result<std::size_t> TunDevice::read(std::uint32_t queue, std::span<std::uint8_t> buffer) noexcept {
  const int fd = queueFd(queue);
  for (;;) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::size_t{0};
    return Error::fromErrno("reading from TUN interface '" + name_ + "'");
  }
}

Result<bool> TunDevice::write(std::uint32_t queue, std::span<const std::uint8_t> packet) noexcept {
  const int fd = queueFd(queue);
  for (;;) {
    const ssize_t put = ::write(fd, packet.data(), packet.size());
    if (put >= 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
    return Error::fromErrno("writing to TUN interface '" + name_ + "'");
  }
}

Result<bool> TunDevice::write(std::uint32_t queue,
                              std::span<const std::span<const std::uint8_t>> parts) noexcept {
  const int fd = queueFd(queue);
  std::array<iovec, kMaxWriteParts> iov{};
  if (parts.size() > iov.size())
    return Error(EINVAL, "writing to TUN interface '" + name_ + "': more than " +
                             std::to_string(kMaxWriteParts) + " parts");
  for (std::size_t i = 0; i < parts.size(); ++i) {
    // writev does not write through iov_base; the cast only satisfies its type.
    iov[i].iov_base =
        const_cast<std::uint8_t*>(parts[i].data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    iov[i].iov_len = parts[i].size();
  }
  for (;;) {
    const ssize_t put = ::writev(fd, iov.data(), static_cast<int>(parts.size()));
    if (put >= 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
    return Error::fromErrno("writing to TUN interface '" + name_ + "'");
  }
}

}  // namespace mpxdp::tun
