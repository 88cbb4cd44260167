// Configuration of one end of one link, shared by the transports.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mpxdp/address.h"
#include "mpxdp_shared.h"
#include "xsk_socket.h"

namespace mpxdp::transport {

class TxKicker;

struct LinkEndpointConfig {
  std::string interface;  // e.g. "s0"; the UDP transport may leave it empty
  // Default: the route's preferred source on interface; receive-only links
  // take the interface's first address (IPv4 before IPv6).
  std::optional<IpAddress> localIp;
  // Unset: a receive-only link (no route or neighbour look-up; reserveTx lends nothing).
  std::optional<IpAddress> peerIp;
  std::uint16_t localPort = MPXDP_DEFAULT_PORT;
  std::uint16_t peerPort = MPXDP_DEFAULT_PORT;
  // AF_XDP: bind only this RX queue; unset: one socket per RX queue.
  std::optional<std::uint32_t> queue;
  bool udpChecksum = true;  // IPv4 only: false sends checksum 0 (IPv6 always checksums)
  // A server answering several peers (PacketIo::acquirePeer): the UDP socket
  // stays unconnected, so that datagrams from any source arrive.
  bool manyPeers = false;
  // UDP: runs of equal-size datagrams to one destination go out as one
  // UDP_SEGMENT (GSO) message, when the kernel supports it.
  bool udpGso = true;
  // UDP: ask the kernel for coalesced datagrams (UDP_GRO) and split them into
  // their segments, when the kernel supports it.
  bool udpGro = true;
  // Both: SO_BUSY_POLL microseconds with SO_PREFER_BUSY_POLL and a budget of
  // batchSize; 0: off (mpxdp/links.h).
  std::uint32_t busyPollUsecs = 0;
  // UMEM (AF_XDP) or buffer pool (UDP): half the frames receive (AF_XDP:
  // split over the RX queues' sockets), half transmit.
  std::uint32_t frameCount = 4096;  // power of two, >= 64
  std::uint32_t frameSize = 4096;   // AF_XDP: power of two in [2048, page size]
  std::uint32_t batchSize = 64;     // ring and syscall batch
  xsk::XdpMode xdpMode = xsk::XdpMode::kAuto;
  // AF_XDP: kicks (the transmit system calls) run on this thread instead of
  // the caller's (tx_kicker.h); null: the caller kicks.
  std::shared_ptr<TxKicker> txKicker;
  // How long to wait for ARP/ND of the next hop: several of the kernel's
  // 1 s retries, so a lossy link (10 % each way: a request and its reply
  // both get through 81 % of the time) is still resolved.
  std::chrono::milliseconds neighbourTimeout{5000};
};

}  // namespace mpxdp::transport
