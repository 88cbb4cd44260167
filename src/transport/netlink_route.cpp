#include "netlink_route.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/if_vlan.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "unique_fd.h"

namespace mpxdp::transport {
namespace {

constexpr std::uint16_t kDiscardPort = 9;

int toAf(IpAddress::Family family) { return family == IpAddress::Family::kV4 ? AF_INET : AF_INET6; }
std::size_t addressLength(IpAddress::Family family) { return family == IpAddress::Family::kV4 ? 4 : 16; }

std::optional<IpAddress> ipFromAttr(const rtattr* attr, int af) {
  const std::size_t len = RTA_PAYLOAD(attr);
  IpAddress ip;
  if (af == AF_INET && len == 4) {
    ip.family = IpAddress::Family::kV4;
  } else if (af == AF_INET6 && len == 16) {
    ip.family = IpAddress::Family::kV6;
  } else {
    return std::nullopt;
  }
  std::memcpy(ip.bytes.data(), RTA_DATA(attr), len);
  return ip;
}

// A netlink request under construction: header, fixed part, attributes.
struct Request {
  alignas(NLMSG_ALIGNTO) std::uint8_t buffer[256] = {};
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer); }
  template <typename T>
  T* body() {
    return reinterpret_cast<T*>(NLMSG_DATA(header()));
  }
  void addAttribute(std::uint16_t type, const void* data, std::size_t len) {
    auto* attr = reinterpret_cast<rtattr*>(buffer + NLMSG_ALIGN(header()->nlmsg_len));
    attr->rta_type = type;
    attr->rta_len = static_cast<std::uint16_t>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(attr), data, len);
    header()->nlmsg_len = NLMSG_ALIGN(header()->nlmsg_len) + RTA_ALIGN(attr->rta_len);
  }
};

// Sends one request and hands each reply message to onMessage; NLMSG_ERROR
// with a non-zero code becomes the returned Error.
Result<void> transact(Request& request, const std::string& what,
                      const std::function<void(const nlmsghdr&)>& onMessage) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (fd.get() < 0) return Error::fromErrno(what + ": opening an rtnetlink socket");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    return Error::fromErrno(what + ": binding an rtnetlink socket");
  }
  timeval timeout{2, 0};  // the kernel answers at once; never hang on a lost reply
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));

  const std::uint32_t seq = 1;
  request.header()->nlmsg_seq = seq;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), request.buffer, request.header()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    return Error::fromErrno(what + ": sending the rtnetlink request");
  }

  std::vector<std::uint8_t> reply(64 * 1024);
  for (;;) {
    const ssize_t got = recv(fd.get(), reply.data(), reply.size(), 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Error::fromErrno(what + ": reading the rtnetlink reply");
    }
    int remaining = static_cast<int>(got);
    for (auto* msg = reinterpret_cast<nlmsghdr*>(reply.data()); NLMSG_OK(msg, remaining);
         msg = NLMSG_NEXT(msg, remaining)) {
      if (msg->nlmsg_seq != seq) continue;
      if (msg->nlmsg_type == NLMSG_DONE) return {};
      if (msg->nlmsg_type == NLMSG_ERROR) {
        const auto* err = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(msg));
        if (err->error != 0) return Error(-err->error, what);
        return {};
      }
      onMessage(*msg);
      if ((msg->nlmsg_flags & NLM_F_MULTI) == 0) return {};
    }
  }
}

bool usableState(std::uint16_t state) {
  return (state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)) != 0;
}

// Sends one small datagram to ip's discard port through the interface so the
// kernel resolves ip's link-layer address.
void provokeResolution(const std::string& interface, const IpAddress& ip) {
  UniqueFd fd(socket(toAf(ip.family), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return;
  // Needs CAP_NET_RAW; the route already leaves through interface anyway.
  setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, interface.c_str(),
             static_cast<socklen_t>(interface.size()));
  static const char kProbe[] = "mpxdp neighbour probe";
  if (ip.isV4()) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(kDiscardPort);
    std::memcpy(&to.sin_addr, ip.bytes.data(), 4);
    sendto(fd.get(), kProbe, sizeof(kProbe), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  } else {
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(kDiscardPort);
    std::memcpy(&to.sin6_addr, ip.bytes.data(), 16);
    to.sin6_scope_id = if_nametoindex(interface.c_str());
    sendto(fd.get(), kProbe, sizeof(kProbe), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  }
}

}  // namespace

IpAddress RouteInfo::nextHop() const { return gateway ? *gateway : destination; }

Result<RouteInfo> lookupRoute(const IpAddress& dst) {
  Request request;
  request.header()->nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  request.header()->nlmsg_type = RTM_GETROUTE;
  request.header()->nlmsg_flags = NLM_F_REQUEST;
  auto* rt = request.body<rtmsg>();
  rt->rtm_family = static_cast<unsigned char>(toAf(dst.family));
  rt->rtm_dst_len = static_cast<unsigned char>(addressLength(dst.family) * 8);
  request.addAttribute(RTA_DST, dst.bytes.data(), addressLength(dst.family));

  RouteInfo info;
  info.destination = dst;
  bool found = false;
  auto done = transact(request, "route lookup for " + dst.toString(), [&](const nlmsghdr& msg) {
    if (msg.nlmsg_type != RTM_NEWROUTE) return;
    const auto* reply = reinterpret_cast<const rtmsg*>(NLMSG_DATA(&msg));
    int len = static_cast<int>(RTM_PAYLOAD(&msg));
    for (const rtattr* attr = RTM_RTA(reply); RTA_OK(attr, len); attr = RTA_NEXT(attr, len)) {
      switch (attr->rta_type) {
        case RTA_OIF:
          std::memcpy(&info.oifIndex, RTA_DATA(attr), sizeof(int));
          found = true;
          break;
        case RTA_GATEWAY:
          info.gateway = ipFromAttr(attr, reply->rtm_family);
          break;
        case RTA_PREFSRC:
          info.preferredSource = ipFromAttr(attr, reply->rtm_family);
          break;
        default:
          break;
      }
    }
  });
  if (!done.ok()) return done.error();
  if (!found) return Error(ENETUNREACH, "route lookup for " + dst.toString() + ": no output interface");
  return info;
}

Result<std::optional<MacAddress>> lookupNeighbour(int ifindex, const IpAddress& ip) {
  Request request;
  request.header()->nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
  request.header()->nlmsg_type = RTM_GETNEIGH;
  request.header()->nlmsg_flags = NLM_F_REQUEST;
  auto* nd = request.body<ndmsg>();
  nd->ndm_family = static_cast<std::uint8_t>(toAf(ip.family));
  nd->ndm_ifindex = ifindex;
  request.addAttribute(NDA_DST, ip.bytes.data(), addressLength(ip.family));

  std::optional<MacAddress> mac;
  auto done = transact(request, "neighbour lookup for " + ip.toString(), [&](const nlmsghdr& msg) {
    if (msg.nlmsg_type != RTM_NEWNEIGH) return;
    const auto* reply = reinterpret_cast<const ndmsg*>(NLMSG_DATA(&msg));
    if (reply->ndm_ifindex != ifindex || !usableState(reply->ndm_state)) return;
    int len = static_cast<int>(msg.nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
    for (const rtattr* attr = reinterpret_cast<const rtattr*>(reinterpret_cast<const std::uint8_t*>(reply) +
                                                              NLMSG_ALIGN(sizeof(ndmsg)));
         RTA_OK(attr, len); attr = RTA_NEXT(attr, len)) {
      if (attr->rta_type == NDA_LLADDR && RTA_PAYLOAD(attr) == 6) {
        MacAddress found;
        std::memcpy(found.bytes.data(), RTA_DATA(attr), 6);
        mac = found;
      }
    }
  });
  if (!done.ok()) {
    if (done.error().code() == ENOENT) return std::optional<MacAddress>();
    return done.error();
  }
  return mac;
}

Result<MacAddress> resolveNeighbour(int ifindex, const std::string& interface, const IpAddress& ip,
                                    std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  auto nextProbe = Clock::now();
  for (;;) {
    auto mac = lookupNeighbour(ifindex, ip);
    if (!mac.ok()) return mac.error();
    if (mac->has_value()) return **mac;
    const auto now = Clock::now();
    if (now >= deadline) break;
    if (now >= nextProbe) {
      provokeResolution(interface, ip);
      nextProbe = now + std::chrono::milliseconds(500);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Error(EHOSTUNREACH, "could not resolve MAC of " + ip.toString() + " on " + interface + " within " +
                                 std::to_string(timeout.count()) + " ms");
}

Result<IpAddress> firstInterfaceAddress(int ifindex, IpAddress::Family family) {
  Request request;
  request.header()->nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  request.header()->nlmsg_type = RTM_GETADDR;
  request.header()->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.body<ifaddrmsg>()->ifa_family = static_cast<std::uint8_t>(toAf(family));

  std::optional<IpAddress> first;
  auto done = transact(request, "address lookup", [&](const nlmsghdr& msg) {
    if (msg.nlmsg_type != RTM_NEWADDR || first) return;
    const auto* reply = reinterpret_cast<const ifaddrmsg*>(NLMSG_DATA(&msg));
    if (static_cast<int>(reply->ifa_index) != ifindex) return;
    int len = static_cast<int>(IFA_PAYLOAD(&msg));
    for (const rtattr* attr = IFA_RTA(reply); RTA_OK(attr, len); attr = RTA_NEXT(attr, len)) {
      if (attr->rta_type == IFA_LOCAL || (attr->rta_type == IFA_ADDRESS && !first)) {
        first = ipFromAttr(attr, reply->ifa_family);
      }
    }
  });
  if (!done.ok()) return done.error();
  if (!first) return Error(EADDRNOTAVAIL, "interface index " + std::to_string(ifindex) + " has no address");
  return *first;
}

Result<IpAddress> firstInterfaceAddress(int ifindex) {
  auto v4 = firstInterfaceAddress(ifindex, IpAddress::Family::kV4);
  if (v4.ok() || v4.error().code() != EADDRNOTAVAIL) return v4;
  auto v6 = firstInterfaceAddress(ifindex, IpAddress::Family::kV6);
  if (v6.ok() || v6.error().code() != EADDRNOTAVAIL) return v6;
  return Error(EADDRNOTAVAIL, "interface index " + std::to_string(ifindex) + " has no IPv4 or IPv6 address");
}

Result<InterfaceInfo> interfaceInfo(const std::string& interface) {
  if (interface.empty() || interface.size() >= IFNAMSIZ) {
    return Error(EINVAL, "invalid interface name '" + interface + "'");
  }
  InterfaceInfo info;
  info.ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  if (info.ifindex == 0) return Error::fromErrno("no interface named '" + interface + "'");
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Error::fromErrno("socket for interface queries");
  ifreq request{};
  std::memcpy(request.ifr_name, interface.c_str(), interface.size());
  if (ioctl(fd.get(), SIOCGIFHWADDR, &request) != 0) return Error::fromErrno("MAC address of " + interface);
  std::memcpy(info.mac.bytes.data(), request.ifr_hwaddr.sa_data, 6);
  if (ioctl(fd.get(), SIOCGIFMTU, &request) != 0) return Error::fromErrno("MTU of " + interface);
  info.mtu = static_cast<std::uint32_t>(request.ifr_mtu);

  ethtool_channels channels{};
  channels.cmd = ETHTOOL_GCHANNELS;
  ifreq channelRequest{};
  std::memcpy(channelRequest.ifr_name, interface.c_str(), interface.size());
  channelRequest.ifr_data = reinterpret_cast<char*>(&channels);
  if (ioctl(fd.get(), SIOCETHTOOL, &channelRequest) == 0) {
    const std::uint32_t queues = channels.rx_count + channels.combined_count;
    if (queues > 0) info.rxQueues = queues;
  }

  // Answers only for VLAN devices (and only once 8021q is loaded, which any
  // VLAN device needs).
  vlan_ioctl_args vlanRequest{};
  vlanRequest.cmd = GET_VLAN_VID_CMD;
  std::memcpy(vlanRequest.device1, interface.c_str(), interface.size());
  info.vlan = ioctl(fd.get(), SIOCGIFVLAN, &vlanRequest) == 0;
  return info;
}

}  // namespace mpxdp::transport
