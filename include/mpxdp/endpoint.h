// The local side of multipath connections: an Endpoint owns its paths (one
// PacketIo per link, each possibly over several RX queues), everything that
// serves them (the XDP steering program when it opened real links), and the
// connections over them. Each arriving packet goes to its connection by
// connection id (the demultiplexer); a HELLO with a new id makes a new
// connection when the endpoint accepts them.
//
// Single-threaded: one thread calls poll() (directly, or through a
// connection's poll/reserve) and owns every connection of the endpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpxdp/clock.h"
#include "mpxdp/connection.h"
#include "mpxdp/error.h"
#include "mpxdp/export.h"
#include "mpxdp/packet_io.h"
#include "mpxdp/security.h"

namespace mpxdp {

// One link to the peer host. Path i carries path id i: both ends list their
// links in the same order (the handshake checks it).
struct EndpointPath {
  std::unique_ptr<PacketIo> io;
  // The link's line rate (frames as a shaper counts them): a cap on its pacing
  // rate, which is otherwise estimated; 0 = unknown.
  std::uint64_t rateBps = 0;
  std::string name;     // e.g. the interface name, for reports and the HELLO
  bool backup = false;  // carries data only when the other paths are down or too slow
};

struct EndpointConfig {
  ConnectionConfig connection;
  // Accept connections that peers open (a server: mpxdp recv).
  bool acceptIncoming = false;
  // Connections at once; further HELLOs are refused with CLOSE(busy).
  std::uint32_t maxConnections = 1;
  // Keys: every packet authenticated and encrypted (security.h).
  SecurityOptions security;
};

// Packets the endpoint could not give to any connection.
struct EndpointStats {
  std::uint64_t malformed = 0;          // no valid packet header (outer headers were fine)
  std::uint64_t versionMismatch = 0;    // another wire version; answered with version negotiation
  std::uint64_t unknownConnection = 0;  // a connection id we do not have (answered with CLOSE)
  std::uint64_t refused = 0;            // HELLOs refused (busy, mismatch)
  std::uint64_t linkMalformed = 0;      // frames whose outer headers failed to decode, all paths
  // Keyed: packets for no connection that did not open with any key, or came
  // without protection; dropped without an answer.
  std::uint64_t authFailed = 0;
  std::uint8_t lastForeignVersion = 0;  // the wire version of the last mismatched packet
  std::string lastRefusal;              // why the last HELLO was refused
  std::uint32_t lastRefusedConnId = 0;  // and its connection id
  // The XDP steering program's counters (AF_XDP backend only).
  bool steering = false;
  std::uint64_t xdpRedirected = 0;  // handed to our sockets
  std::uint64_t xdpPassed = 0;      // not ours: left to the kernel
  std::uint64_t xdpMalformed = 0;   // our port, but no valid mpxdp packet
  std::uint64_t xdpNoSocket = 0;    // ours, but no socket on that queue
};

class MPXDP_API Endpoint {
 public:
  // Over paths that are already open (any PacketIo, e.g. in-memory in tests).
  // clock defaults to a MonotonicClock.
  static Result<std::unique_ptr<Endpoint>> create(const EndpointConfig& config,
                                                  std::vector<EndpointPath> paths,
                                                  std::shared_ptr<Clock> clock = nullptr);
  virtual ~Endpoint() = default;

  // Opens a connection to the peer: HELLO on every path; poll() completes
  // the handshake. The connection is owned by the endpoint.
  virtual Result<Connection*> connect(const ConnectOptions& options) = 0;
  // The next incoming connection whose handshake completed, or nullptr.
  virtual Connection* accept() noexcept = 0;
  // Forgets a connection that is done() (its buffers go back to the paths).
  virtual void remove(Connection* connection) noexcept = 0;

  // Receives on every path, hands packets to their connections, sends due
  // control frames (ACK, PING, HELLO and CLOSE repeats) and runs timers.
  virtual Result<void> poll() noexcept = 0;
  // When poll() next has timed work; UINT64_MAX when none.
  virtual std::uint64_t nextDeadlineNs() const noexcept = 0;
  // Descriptors that become readable when a path has packets (for poll(2)).
  virtual std::vector<int> pollFds() const = 0;

  virtual std::size_t pathCount() const noexcept = 0;
  virtual const std::string& pathName(std::size_t path) const noexcept = 0;
  virtual std::string describePath(std::size_t path) const = 0;
  virtual EndpointStats stats() const = 0;
  virtual Clock& clock() noexcept = 0;
};

}  // namespace mpxdp
