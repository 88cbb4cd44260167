// Route and neighbour look-ups over rtnetlink, so that users name a peer IP
// and an interface and never a MAC address.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "mpxdp/address.h"
#include "mpxdp/error.h"

namespace mpxdp::transport {

struct RouteInfo {
  int oifIndex = 0;
  std::optional<IpAddress> gateway;  // next hop when the peer is not on-link
  std::optional<IpAddress> preferredSource;
  IpAddress nextHop() const;  // gateway or the destination itself
  IpAddress destination;
};

// RTM_GETROUTE: how the kernel would reach dst from the calling thread's namespace.
Result<RouteInfo> lookupRoute(const IpAddress& dst);

// RTM_GETNEIGH: the MAC of ip on ifindex when the entry is usable
// (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP with an address); nullopt otherwise.
Result<std::optional<MacAddress>> lookupNeighbour(int ifindex, const IpAddress& ip);

// Looks the neighbour up; when absent, provokes ARP/ND with a small UDP
// datagram sent through interface to ip (discard port) and polls until the
// MAC appears or timeout passes.
Result<MacAddress> resolveNeighbour(int ifindex, const std::string& interface, const IpAddress& ip,
                                    std::chrono::milliseconds timeout);

// RTM_GETADDR: the first address of the family on ifindex.
Result<IpAddress> firstInterfaceAddress(int ifindex, IpAddress::Family family);
// The first IPv4 address of ifindex, else its first IPv6 address.
Result<IpAddress> firstInterfaceAddress(int ifindex);

struct InterfaceInfo {
  int ifindex = 0;
  MacAddress mac;
  std::uint32_t mtu = 0;
  // RX queues in use (ETHTOOL_GCHANNELS rx + combined; 1 when the driver
  // does not say). Asked through a socket, so right in the calling thread's
  // namespace (sysfs may show another namespace).
  std::uint32_t rxQueues = 1;
  bool vlan = false;  // an 802.1Q device: its frames carry a 4-byte tag
};
Result<InterfaceInfo> interfaceInfo(const std::string& interface);

}  // namespace mpxdp::transport
