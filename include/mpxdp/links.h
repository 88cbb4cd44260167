// Opening real links: an Endpoint over AF_XDP sockets (with the XDP steering
// program) or kernel UDP sockets, one per interface. The endpoint owns the
// sockets and the program; both go away with it (the program is attached
// through a bpf_link, so also when the process dies).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpxdp/address.h"
#include "mpxdp/clock.h"
#include "mpxdp/endpoint.h"
#include "mpxdp/error.h"
#include "mpxdp/export.h"

namespace mpxdp {

enum class Backend : std::uint8_t {
  kXdp,  // AF_XDP sockets on every RX queue + the steering program (needs root)
  kUdp,  // kernel UDP sockets (no privileges; the fallback and the baseline)
  // Per link: AF_XDP where its driver runs it zero-copy, else kernel UDP
  // (with GSO and GRO, faster than AF_XDP copy mode: BENCHMARKS.md); all
  // links kernel UDP without the privileges AF_XDP needs.
  kAuto,
};
MPXDP_API Result<Backend> parseBackend(std::string_view name);
MPXDP_API std::string_view toString(Backend backend) noexcept;

inline constexpr std::uint16_t kDefaultPort = 47000;

// The UDP checksum of IPv4 packets (IPv6 packets always carry one).
enum class UdpChecksum : std::uint8_t {
  // AF_XDP with keys: none, since the AEAD tag already rejects a corrupted
  // packet and writing plus verifying the checksum costs about 40 ns per
  // 1 KB packet in user space (AVX2; 90 ns without). Otherwise computed (the
  // UDP backend keeps it: the kernel computes it, and UDP GSO needs it).
  kAuto,
  kOn,
  kOff,  // checksum 0 (UDP backend: SO_NO_CHECK, which also turns UDP GSO off)
};

// One link: the local interface and, where known, the peer's address on it.
struct LinkSpec {
  std::string interface;
  std::optional<IpAddress> localIp;  // default: the interface's address of the peer's family
  std::optional<IpAddress> peerIp;   // unset: learned from the peer's first packet (a server)
  std::uint64_t rateBps = 0;         // line rate: a cap on the estimated pacing rate; 0 = unknown
  bool backup = false;               // a backup path (mpxdp --backup-link)
};

struct LinkOptions {
  Backend backend = Backend::kAuto;
  std::uint16_t port = kDefaultPort;  // local UDP port (the steering program matches it)
  std::uint16_t peerPort = 0;         // the peer's UDP port; 0 = port
  // A server with several clients at once: each connection answers where its
  // packets come from (the UDP backend's sockets then stay unconnected).
  bool manyPeers = false;
  // Per link: buffers for receiving and sending (half each). The send half
  // also holds the per-path send queues: eaf queues a fast path up to the
  // delay difference to the slowest (35 ms at 300 Mbit/s is ~1200 frames).
  std::uint32_t frameCount = 16384;
  std::uint32_t batchSize = 64;
  // UDP backend: send runs of equal-size packets to one peer as one UDP GSO
  // message (UDP_SEGMENT), where the kernel supports it.
  bool udpGso = true;
  // UDP backend: receive datagrams the kernel coalesced (UDP_GRO, e.g. a GSO
  // run that stayed one packet on its way) as one, and hand out each
  // packet on its own, where the kernel supports it. Costs batchSize x 64 KiB
  // of staging per link.
  bool udpGro = true;
  // Busy polling, either backend (SO_BUSY_POLL for this many microseconds,
  // with SO_PREFER_BUSY_POLL and a budget of batchSize): a read polls the
  // device's NAPI context itself instead of waiting for its softirq (an
  // AF_XDP link reads its socket, recvfrom, when its RX ring is empty).
  // Needs CAP_NET_ADMIN, and takes effect only where the socket gets a NAPI
  // id (veth has one only with GRO on). 0: off.
  std::uint32_t busyPollUsecs = 0;
  UdpChecksum udpChecksum = UdpChecksum::kAuto;
  // Threads of the data path: 1, the caller's alone; 2 (xdp backend): the
  // caller fills the rings and a second thread makes the kernel send (in copy
  // mode the kick runs the driver's transmit path). EINVAL otherwise.
  std::uint32_t threads = 1;
  // Receive threads: 0, the caller reads its links itself; N (at most one
  // per link): N threads read the links (link i on thread i mod N), check
  // their outer headers and refill their buffers, and the caller takes ready
  // packets from a ring per link. EINVAL beyond the number of links.
  std::uint32_t rxThreads = 0;
};

// Opens every link (the error names the failing one) and an Endpoint over them.
MPXDP_API Result<std::unique_ptr<Endpoint>> openEndpoint(const EndpointConfig& config,
                                                         const std::vector<LinkSpec>& links,
                                                         const LinkOptions& options,
                                                         std::shared_ptr<Clock> clock = nullptr);

}  // namespace mpxdp
