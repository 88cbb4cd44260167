// Pure packet functions between a TUN device with offloads and mpxdp's
// path-sized payloads: the virtio_net_hdr codec, splitting a super-packet
// read from the TUN into IP packets that each fit a payload (what the NIC
// would do for TSO/USO), and coalescing in-order TCP segments into one
// super-packet to write (what GRO would do). No allocation, no syscalls.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "mpxdp/address.h"
#include "mpxdp/error.h"

namespace mpxdp::tun {

inline constexpr std::size_t kVirtioHeaderBytes = 10;
inline constexpr std::size_t kMaxSuperPacket = 65535;

// struct virtio_net_hdr (linux/virtio_net.h), fields in host order.
struct VirtioHeader {
  static constexpr std::uint8_t kNeedsChecksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
  static constexpr std::uint8_t kDataValid = 2;      // VIRTIO_NET_HDR_F_DATA_VALID
  static constexpr std::uint8_t kGsoNone = 0;
  static constexpr std::uint8_t kGsoTcpV4 = 1;
  static constexpr std::uint8_t kGsoUdpL4 = 5;
  static constexpr std::uint8_t kGsoTcpV6 = 4;
  static constexpr std::uint8_t kGsoEcn = 0x80;
  std::uint8_t flags = 0;
  std::uint8_t gsoType = kGsoNone;
  std::uint16_t headerLength = 0;  // hdr_len
  std::uint16_t gsoSize = 0;       // payload bytes per segment
  std::uint16_t checksumStart = 0;
  std::uint16_t checksumOffset = 0;
};

// The TUN uses little-endian virtio headers on this (little-endian) host.
VirtioHeader parseVirtioHeader(std::span<const std::uint8_t, kVirtioHeaderBytes> bytes) noexcept;
void writeVirtioHeader(const VirtioHeader& header, std::span<std::uint8_t, kVirtioHeaderBytes> out) noexcept;

// The Internet checksum (RFC 1071) folded to 16 bits, not inverted, of data
// added to `initial`.
std::uint16_t checksumAdd(std::span<const std::uint8_t> data, std::uint32_t initial = 0) noexcept;

// Splits one packet read from the TUN (its virtio header already parsed,
// `packet` the IP packet after it) into IP packets of at most maxPacketBytes
// each, every one with complete IP, TCP or UDP checksums, as TSO / USO would
// put them on the wire: TCP sequence numbers advance, FIN and PSH only on the
// last segment, CWR only on the first, IPv4 ids increment; a packet without
// GSO comes out as it is, its partial checksum completed. Segments may be
// smaller than the header's gsoSize when maxPacketBytes calls for it.
class GsoSplitter {
 public:
  // EINVAL (packet left alone) when the header and the packet disagree or the
  // packet is not IPv4/IPv6 with TCP or UDP where the header says GSO;
  // EMSGSIZE when a packet without GSO is larger than maxPacketBytes (the
  // caller answers with ICMP), or the headers alone do not fit.
  Result<void> begin(const VirtioHeader& header, std::span<const std::uint8_t> packet,
                     std::uint32_t maxPacketBytes) noexcept;
  // Writes the next IP packet into out (which holds at least maxPacketBytes);
  // its length, 0 when every segment was written.
  std::size_t next(std::span<std::uint8_t> out) noexcept;
  std::size_t remainingSegments() const noexcept;

 private:
  enum class Mode : std::uint8_t { kAsIs, kCompleteChecksum, kTcp, kUdp };
  std::span<const std::uint8_t> packet_;  // the IP packet, trimmed to its IP length for GSO
  Mode mode_ = Mode::kAsIs;
  bool ipv6_ = false;
  std::uint32_t ipHeaderBytes_ = 0;
  std::uint32_t headerBytes_ = 0;     // IP + TCP/UDP header
  std::uint32_t segmentPayload_ = 0;  // payload bytes per segment
  std::uint32_t offset_ = 0;          // payload bytes already written
  std::uint32_t remaining_ = 0;       // segments still to write
  std::uint32_t addressSum_ = 0;      // pseudo-header: addresses + protocol
  std::uint16_t checksumStart_ = 0;
  std::uint16_t checksumOffset_ = 0;
};

// Gathers in-order TCP segments of one flow (same addresses, ports, ACK
// number, window, TCP options and IP fields; each next sequence number is
// the previous end; every segment as long as the first except the last; no
// flags but ACK, and PSH on the last) into one super-packet behind a
// virtio header (GSO TCPv4/v6, NEEDS_CSUM with the pseudo-header sum), the
// way GRO would before the TCP stack sees them. Anything else is passed on
// alone with flags kDataValid (its checksums were checked on the path).
// Zero-copy: only the first segment's headers are copied; the super-packet
// is a gather list pointing into the added packets (for writev).
class TcpCoalescer {
 public:
  static constexpr std::size_t kMaxSegments = 64;
  // The virtio header and the first segment's IP and TCP headers.
  static constexpr std::size_t kHeaderBufferBytes = kVirtioHeaderBytes + 60 + 60;

  // Adds one IP packet, which must stay valid and unchanged until take().
  // false: it does not continue the packet being built (take() that one
  // first, then add this one again, which then starts a new one) or is not
  // TCP: then take() returns the pending packet and the caller writes
  // `ipPacket` on its own with singleHeader().
  bool add(std::span<const std::uint8_t> ipPacket) noexcept;
  bool empty() const noexcept;
  std::uint32_t segments() const noexcept;  // in the pending packet
  // The pending packet as a gather list (virtio header and headers first,
  // then each segment's payload), ready for writev; empties the coalescer.
  // Valid until the next add().
  std::span<const std::span<const std::uint8_t>> take() noexcept;
  // The virtio header for a packet written on its own (no GSO, kDataValid).
  static std::span<const std::uint8_t, kVirtioHeaderBytes> singleHeader() noexcept;

 private:
  std::array<std::uint8_t, kHeaderBufferBytes> headers_{};
  std::array<std::span<const std::uint8_t>, kMaxSegments + 1> parts_{};
  std::uint32_t length_ = 0;  // IP bytes pending (headers + payloads)
  std::uint32_t segments_ = 0;
  std::uint32_t ipHeaderBytes_ = 0;
  std::uint32_t tcpHeaderBytes_ = 0;
  std::uint32_t firstPayload_ = 0;
  std::uint32_t nextSeq_ = 0;
  bool closed_ = false;  // a short or PSH segment ended the run
  bool push_ = false;
};

// A hash of an IP packet's flow that is the same in both directions
// (addresses, protocol and, for TCP and UDP, ports; the ports of a later
// IPv4 fragment are not looked at), to keep a flow on one TUN queue. 0 for
// anything that is not IPv4 or IPv6.
std::uint32_t symmetricFlowHash(std::span<const std::uint8_t> ipPacket) noexcept;

// The answer to an IP packet too big for the tunnel: ICMPv4 destination
// unreachable / fragmentation needed (type 3 code 4) with the next-hop MTU,
// or ICMPv6 packet too big (type 2), from `source` (the tunnel's own
// address) to the packet's sender, quoting as much of it as RFC 792 / 4443
// allow. Its length, written into out (>= 1280 bytes); 0 when the packet
// must not be answered (not IPv4/IPv6, an ICMP error itself, IPv4 without DF,
// multicast).
std::size_t buildPacketTooBig(std::span<const std::uint8_t> ipPacket, std::uint32_t mtu,
                              const IpAddress& source, std::span<std::uint8_t> out) noexcept;

}  // namespace mpxdp::tun
