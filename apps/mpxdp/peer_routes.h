// Routing by key for `mpxdp tun` serving several peers (--peer KEY=CIDR,...):
// each peer owns the inner prefixes given with its key. A packet read from
// the TUN goes to the peer whose prefix holds its destination (the longest
// match); a packet from a peer reaches the TUN only when its source is in
// that peer's prefixes, so one peer cannot speak for another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/address.h"
#include "mpxdp/error.h"
#include "tun_device.h"

namespace mpxdp::cli {

// One --peer argument: KEY_FILE=CIDR[,CIDR...].
struct PeerArg {
  std::string keyFile;
  std::vector<tun::IpPrefix> allowed;
};

// EINVAL naming the argument on bad syntax.
Result<PeerArg> parsePeerArg(std::string_view text);

// The source and destination addresses of an IPv4 or IPv6 packet; nullopt
// when it is too short to hold them or not IP.
std::optional<IpAddress> packetSource(std::span<const std::uint8_t> packet) noexcept;
std::optional<IpAddress> packetDestination(std::span<const std::uint8_t> packet) noexcept;

// Whether address lies in prefix (host bits of the prefix's address ignored).
bool prefixContains(const tun::IpPrefix& prefix, const IpAddress& address) noexcept;

class PeerRoutes {
 public:
  // One list of prefixes per peer, in peer order. EINVAL when two peers
  // claim the same network (a longer prefix inside another peer's is fine:
  // the longest match wins).
  static Result<PeerRoutes> create(const std::vector<std::vector<tun::IpPrefix>>& allowedPerPeer);

  std::optional<std::size_t> peerFor(const IpAddress& destination) const noexcept;
  bool allows(std::size_t peer, const IpAddress& source) const noexcept;

 private:
  struct Route {
    tun::IpPrefix prefix;
    std::size_t peer = 0;
  };
  std::vector<Route> routes_;  // longest prefix first
};

}  // namespace mpxdp::cli
