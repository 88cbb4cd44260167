#include "peer_routes.h"

#include <algorithm>

namespace mpxdp::cli {

Result<PeerArg> parsePeerArg(std::string_view text) {
  const auto invalid = [&](const std::string& why) {
    return Error(EINVAL, "--peer '" + std::string(text) + "': " + why);
  };
  const auto equals = text.rfind('=');
  if (equals == std::string_view::npos || equals == 0)
    return invalid("expected KEY_FILE=CIDR[,CIDR...] (the peer's key and the inner addresses it owns)");
  PeerArg arg;
  arg.keyFile = std::string(text.substr(0, equals));
  std::string_view rest = text.substr(equals + 1);
  if (rest.empty()) return invalid("no address after '=': give the inner addresses the peer owns");
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    auto prefix = tun::IpPrefix::parse(item);
    if (!prefix) return invalid(prefix.error().context());
    arg.allowed.push_back(*prefix);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
    if (rest.empty()) return invalid("empty address after ','");
  }
  return arg;
}

namespace {

IpAddress addressAt(std::span<const std::uint8_t> packet, std::size_t offset, bool v6) noexcept {
  IpAddress address;
  address.family = v6 ? IpAddress::Family::kV6 : IpAddress::Family::kV4;
  std::copy_n(packet.begin() + static_cast<std::ptrdiff_t>(offset), v6 ? 16 : 4, address.bytes.begin());
  return address;
}

std::optional<IpAddress> packetAddress(std::span<const std::uint8_t> packet, bool destination) noexcept {
  if (packet.empty()) return std::nullopt;
  const std::uint8_t version = packet[0] >> 4;
  if (version == 4 && packet.size() >= 20) return addressAt(packet, destination ? 16 : 12, false);
  if (version == 6 && packet.size() >= 40) return addressAt(packet, destination ? 24 : 8, true);
  return std::nullopt;
}

bool samePrefix(const tun::IpPrefix& a, const tun::IpPrefix& b) noexcept {
  return a.length == b.length && prefixContains(a, b.address);
}

}  // namespace

std::optional<IpAddress> packetSource(std::span<const std::uint8_t> packet) noexcept {
  return packetAddress(packet, false);
}

std::optional<IpAddress> packetDestination(std::span<const std::uint8_t> packet) noexcept {
  return packetAddress(packet, true);
}

bool prefixContains(const tun::IpPrefix& prefix, const IpAddress& address) noexcept {
  if (prefix.address.family != address.family) return false;
  const unsigned full = prefix.length / 8;
  const unsigned bits = prefix.length % 8;
  if (!std::equal(prefix.address.bytes.begin(), prefix.address.bytes.begin() + full, address.bytes.begin()))
    return false;
  if (bits == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
  return (prefix.address.bytes[full] & mask) == (address.bytes[full] & mask);
}

Result<PeerRoutes> PeerRoutes::create(const std::vector<std::vector<tun::IpPrefix>>& allowedPerPeer) {
  PeerRoutes routes;
  for (std::size_t peer = 0; peer < allowedPerPeer.size(); ++peer) {
    for (const tun::IpPrefix& prefix : allowedPerPeer[peer]) {
      for (const Route& route : routes.routes_) {
        if (samePrefix(route.prefix, prefix)) {
          return Error(EINVAL,
                       "--peer: " + prefix.toString() +
                           (route.peer == peer ? " is given twice for one peer"
                                               : " is claimed by two peers (each network needs one owner)"));
        }
      }
      routes.routes_.push_back({prefix, peer});
    }
  }
  std::stable_sort(routes.routes_.begin(), routes.routes_.end(),
                   [](const Route& a, const Route& b) { return a.prefix.length > b.prefix.length; });
  return routes;
}

std::optional<std::size_t> PeerRoutes::peerFor(const IpAddress& destination) const noexcept {
  for (const Route& route : routes_) {
    if (prefixContains(route.prefix, destination)) return route.peer;
  }
  return std::nullopt;
}

bool PeerRoutes::allows(std::size_t peer, const IpAddress& source) const noexcept {
  const auto owner = peerFor(source);
  return owner && *owner == peer;
}

}  // namespace mpxdp::cli
