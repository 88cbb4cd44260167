// The packet pump of `mpxdp tun` serving several peers (--peer KEY=CIDR):
// one endpoint accepts a connection from each peer, told apart by the key
// it holds. IP packets read from the TUN go to the peer that owns their
// destination (peer_routes.h). Each peer has a short queue of its own. A
// packet for a full queue is held and the TUN is not read meanwhile, which
// pushes back on TCP as TunnelPump does, but only while no other active
// peer runs dry: then the held packet is dropped (and counted), so a slow
// peer does not hold up the others. A peer's packets reach the TUN only
// with a source address it owns. One thread, like TunnelPump.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "metrics.h"
#include "mpxdp/connection.h"
#include "mpxdp/endpoint.h"
#include "offload.h"
#include "peer_routes.h"
#include "report.h"
#include "tun_device.h"
#include "tunnel.h"

namespace mpxdp::cli {

struct HubReporting {
  RunDescription run;  // the tunnel's; each connection adds its id and key
  bool json = false;   // -J: reports are gathered into peersJson()
  double intervalS = 0;
  MetricsServer* metrics = nullptr;  // --metrics (null: none)
  std::uint64_t rxHoldoffNs = 0;     // --rx-usecs: the loop's receive coalescing (FdWaiter)
};

class TunnelHub {
 public:
  // Super-packets (up to 64 KB each) a peer may have waiting.
  static constexpr std::size_t kQueueDepth = 4;

  // peers[i] holds the endpoint's key i; routes maps inner addresses to them.
  TunnelHub(tun::TunDevice& device, TunnelAddresses addresses, std::vector<PeerArg> peers, PeerRoutes routes,
            HubReporting reporting);
  ~TunnelHub();
  TunnelHub(const TunnelHub&) = delete;
  TunnelHub& operator=(const TunnelHub&) = delete;

  // Serves the peers until a stop signal (their connections are then
  // aborted, so each peer learns why) or an error of the endpoint.
  Result<void> run(Endpoint& endpoint);

  const TunnelCounters& counters() const noexcept { return counters_; }
  // One object per peer: its key file, prefixes, connections so far,
  // whether one is up, and the last connection's send and recv reports.
  nlohmann::json peersJson() const;

 private:
  struct Peer;
  void adopt(Endpoint& endpoint, Connection* connection, std::uint64_t nowNs);
  void end(Endpoint& endpoint, Peer& peer, const std::string& endedBy, std::optional<Error> failure);
  // Delivered payloads of one peer to the TUN; false when its connection is done.
  Result<bool> receive(std::size_t index, bool& busy);
  // Reads the TUN into the peers' queues; true when it stopped with packets left.
  Result<bool> readTun();
  // Sends what a peer has queued; false when it must wait (paced out, window closed).
  bool sendQueued(Peer& peer);
  bool startNext(Peer& peer);
  void pop(Peer& peer);
  bool anyConnected() const noexcept;
  // Another peer that had packets lately has none queued now.
  bool anotherPeerStarves(std::size_t except, std::uint64_t nowNs) const noexcept;
  // Moves the packet in spare_ to the back of the peer's queue.
  void enqueue(Peer& peer, std::uint64_t nowNs);

  tun::TunDevice& device_;
  PeerRoutes routes_;
  HubReporting reporting_;
  TunnelCounters counters_;
  TunWriter writer_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::vector<std::uint8_t> spare_;  // the next read lands here, then swaps into a peer's queue
  // The packet in spare_ waits for room in this peer's queue (the TUN is not read meanwhile).
  std::optional<std::size_t> held_;
  tun::VirtioHeader spareHeader_;
  std::size_t spareOffset_ = 0;
  std::size_t spareLength_ = 0;
  std::array<SendSlot, 64> slots_;
  std::array<Delivered, 256> delivered_;
};

}  // namespace mpxdp::cli
