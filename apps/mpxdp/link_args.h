// The links of `mpxdp send` and `mpxdp recv`: parsed from --link arguments
// or taken from a test bed, then opened as AF_XDP or kernel-UDP PacketIos.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/address.h"
#include "mpxdp/connection.h"
#include "mpxdp/error.h"
#include "testbed.h"

namespace mpxdp::bpf {
class SteeringProgram;
}

namespace mpxdp::cli {

enum class Backend : std::uint8_t { kXdp, kUdp };
Result<Backend> parseBackend(std::string_view name);
std::string_view toString(Backend backend) noexcept;

enum class Side : std::uint8_t { kSender, kReceiver };

// One --link argument: IFACE[=PEER_IP[@RATE]] (the receiver may omit the peer).
struct LinkArg {
  std::string interface;
  std::optional<IpAddress> peerIp;
  std::uint64_t rateBps = 0;  // 0: unknown (unpaced link)
};

// Parses IFACE[=PEER_IP[@RATE]]; RATE as iperf3 writes it (300M, 1G). EINVAL
// with a message naming the argument on bad syntax.
Result<LinkArg> parseLinkArg(std::string_view text);

// The links of one side of a live test bed, in link order.
std::vector<LinkArg> linksFromTestbed(const testbed::TestbedInfo& info, Side side);

// The links of one side: from the test bed NAME (entering its namespace for
// this side, kept in `netns`) when testbedName is set, else from --link texts.
// Errors: EINVAL (syntax), ENOENT (no such test bed), others from the kernel.
Result<std::vector<LinkArg>> resolveLinkArgs(const std::string& testbedName,
                                             const std::vector<std::string>& linkTexts, Side side,
                                             std::optional<testbed::NetnsScope>& netns);

// A link ready to open: the interface exists in the current namespace and
// has an address of the peer's family (without a peer: its first IPv4,
// else IPv6 address; the link is then receive-only).
struct LinkPlan {
  std::string interface;
  IpAddress localIp;
  std::optional<IpAddress> peerIp;
  std::uint64_t rateBps = 0;
};

// Checks each link against the current network namespace: the interface
// exists (ENODEV), the sender gives a peer (EINVAL; the receiver may omit
// it) and the interface has a local address of the peer's family
// (EADDRNOTAVAIL).
Result<std::vector<LinkPlan>> planLinks(const std::vector<LinkArg>& args, Side side);

struct OpenOptions {
  Backend backend = Backend::kXdp;
  std::uint16_t port = 0;
  std::uint32_t batchSize = 64;
  std::uint32_t frameCount = 4096;
  // xdp backend: the steering program, loaded once; every side that
  // receives (now both: the connection is bidirectional) needs it.
  bpf::SteeringProgram* steering = nullptr;
  // xdp backend: bind only this RX queue; unset: one socket per RX queue.
  std::optional<std::uint32_t> queue;
};

// Opens every planned link; the error names the failing link.
Result<std::vector<Link>> openLinks(const std::vector<LinkPlan>& plans, const OpenOptions& options);

}  // namespace mpxdp::cli
