// Test support: a packet-level simulation of a tbf-shaped link (rate, 1 ms
// token bucket, byte-limited FIFO that drops at the tail, propagation delay)
// shared by flows: mpxdp senders (PathEstimator + RateController, fed as the
// connection would feed them from ACKs, which come as the connection's receiver
// sends them: after 64 packets or a quarter of the RTT, 1 to 5 ms),
// constant-rate sources and a Reno-like TCP. Time is simulated; nothing here
// reads a clock.
#pragma once

#include <cstdint>
#include <memory>
#include <queue>
#include <vector>

#include "path_estimator.h"
#include "rate_controller.h"

namespace mpxdp::path::testing {

struct LinkConfig {
  std::uint64_t rateBps = 100'000'000;
  std::uint64_t burstNs = 1'000'000;   // tbf burst, in time at rate
  std::uint64_t queueNs = 20'000'000;  // tbf queue limit, in time at rate
  std::uint64_t rttNs = 10'000'000;    // propagation, split evenly
  double randomLoss = 0;               // drawn per packet after the queue (a radio link's loss)
  double peerClockPpm = 0;             // the receiver's clock runs this much fast (+) or slow (-)
  // ACKs due in [from, to) arrive at `to`: the feedback stalls, data still flows.
  std::uint64_t ackBlackoutFromNs = 0;
  std::uint64_t ackBlackoutToNs = 0;
};

enum class FlowKind : std::uint8_t { kMpxdp, kConstant, kReno };

struct FlowStats {
  std::uint64_t sentPackets = 0;
  std::uint64_t droppedPackets = 0;
  std::uint64_t deliveredBytes = 0;
};

class LinkSim {
 public:
  static constexpr std::uint32_t kPacketBytes = 1500;

  explicit LinkSim(const LinkConfig& link);
  ~LinkSim();

  // Returns the flow index. constantBps for kConstant.
  std::size_t addMpxdp(const RateControlOptions& options, std::uint64_t startNs = 0);
  std::size_t addConstant(std::uint64_t rateBps, std::uint64_t startNs = 0);
  std::size_t addReno(std::uint64_t startNs = 0);
  void stopFlow(std::size_t flow, std::uint64_t atNs);
  // A sender short of CPU (an mpxdp flow): it sends nothing for stallNs at
  // the start of every periodNs, then goes on at its pacing rate; the
  // delivery samples whose span holds a stall are app-limited.
  void setStalls(std::size_t flow, std::uint64_t periodNs, std::uint64_t stallNs);

  // tc change: rate, burst and queue limit scale with the new rate.
  void setLinkRate(std::uint64_t rateBps);
  void runUntil(std::uint64_t nowNs);
  std::uint64_t now() const { return now_; }

  const FlowStats& stats(std::size_t flow) const;
  RateController& controller(std::size_t flow);
  PathEstimator& estimator(std::size_t flow);
  std::uint64_t queueBytes() const { return queueBytes_; }

 private:
  struct Flow;
  struct Packet {
    std::size_t flow;
    std::uint64_t number;
    std::uint32_t bytes;
  };
  struct Event {
    std::uint64_t time;
    std::uint64_t order;
    int type;
    std::size_t flow;
    std::uint64_t a;
    bool operator>(const Event& other) const {
      return time != other.time ? time > other.time : order > other.order;
    }
  };
  enum EventType { kSend, kDepart, kArrive, kAckTimer, kAckArrive };

  void schedule(std::uint64_t time, int type, std::size_t flow, std::uint64_t a = 0);
  void handle(const Event& event);
  void transmit(std::size_t flow);
  void enqueue(const Packet& packet);
  void scheduleDeparture();
  void arrive(std::size_t flow, std::uint64_t number);
  static std::uint64_t ackDelay(const Flow& f);
  void sendAck(std::size_t flow);
  void ackArrives(std::size_t flow, std::uint64_t ackIndex);

  LinkConfig link_;
  std::uint64_t now_ = 0;
  std::uint64_t order_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::vector<std::unique_ptr<Flow>> flows_;
  std::queue<Packet> queue_;
  std::uint64_t queueBytes_ = 0;
  std::uint64_t rng_ = 0x9e3779b97f4a7c15ULL;  // fixed: runs reproduce
  bool departureScheduled_ = false;
  // Token bucket in bit-ns (bits * 1e9) to stay exact.
  double tokensBits_ = 0;
  std::uint64_t tokensAt_ = 0;
};

}  // namespace mpxdp::path::testing
