#include "link_sim.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mpxdp/connection.h"

namespace mpxdp::path::testing {

namespace {
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
constexpr double kNsPerSecond = 1e9;
// The simulated mpxdp receiver acknowledges as the connection does by default.
const ConnectionConfig kConnectionDefaults{};
}  // namespace

struct SentInfo {
  std::uint64_t sendNs = 0;
  std::uint32_t bytes = 0;
  bool received = false;
};

struct AckInfo {
  std::uint64_t largest = 0;
  std::uint64_t largestSendNs = 0;
  std::uint64_t recvTsNs = 0;  // peer clock
  std::uint64_t bytesReceived = 0;
  std::uint64_t ackDelayNs = 0;
};

struct LinkSim::Flow {
  FlowKind kind = FlowKind::kMpxdp;
  std::uint64_t stopNs = kNever;
  std::unique_ptr<RateController> controller;
  PathEstimator estimator;
  std::uint64_t constantBps = 0;
  std::uint64_t stallPeriodNs = 0;
  std::uint64_t stallNs = 0;
  bool stalledSinceAck = false;
  std::vector<SentInfo> sent;
  std::uint64_t nextJudge = 0;
  // Receiver (its clock runs peerOffset ahead: only OWD differences mean anything).
  std::uint64_t peerOffset = 0;
  std::uint64_t recvBytes = 0;
  std::uint64_t largest = 0;
  std::uint64_t largestArrivalNs = 0;
  std::uint32_t unacked = 0;
  std::uint32_t ackEvery = kConnectionDefaults.ackEveryPackets;
  std::uint64_t ackMaxDelayNs = kConnectionDefaults.ackDelayNs;
  std::uint64_t ackGeneration = 0;
  bool ackTimerSet = false;
  std::vector<AckInfo> acks;
  // Reno.
  double cwnd = 10;
  double ssthresh = 1e12;
  std::uint64_t inflight = 0;
  std::uint64_t recoveryEnd = 0;
  std::uint64_t lastAckNs = 0;
  FlowStats stats;
};

LinkSim::LinkSim(const LinkConfig& link) : link_(link) {
  tokensBits_ = static_cast<double>(link_.rateBps) * static_cast<double>(link_.burstNs) / kNsPerSecond;
}

LinkSim::~LinkSim() = default;

std::size_t LinkSim::addMpxdp(const RateControlOptions& options, std::uint64_t startNs) {
  auto flow = std::make_unique<Flow>();
  flow->kind = FlowKind::kMpxdp;
  auto controller = makeRateController(options);
  flow->controller = std::move(controller.value());
  flow->peerOffset = 1'000'000'000'000ULL + 7'777'777ULL * flows_.size();
  flows_.push_back(std::move(flow));
  schedule(startNs, kSend, flows_.size() - 1);
  return flows_.size() - 1;
}

std::size_t LinkSim::addConstant(std::uint64_t rateBps, std::uint64_t startNs) {
  auto flow = std::make_unique<Flow>();
  flow->kind = FlowKind::kConstant;
  flow->constantBps = rateBps;
  flows_.push_back(std::move(flow));
  schedule(startNs, kSend, flows_.size() - 1);
  return flows_.size() - 1;
}

std::size_t LinkSim::addReno(std::uint64_t startNs) {
  auto flow = std::make_unique<Flow>();
  flow->kind = FlowKind::kReno;
  flow->ackEvery = 2;
  flow->ackMaxDelayNs = 1'000'000;
  flows_.push_back(std::move(flow));
  schedule(startNs, kSend, flows_.size() - 1);
  return flows_.size() - 1;
}

void LinkSim::stopFlow(std::size_t flow, std::uint64_t atNs) { flows_[flow]->stopNs = atNs; }

void LinkSim::setStalls(std::size_t flow, std::uint64_t periodNs, std::uint64_t stallNs) {
  flows_[flow]->stallPeriodNs = periodNs;
  flows_[flow]->stallNs = std::min(stallNs, periodNs);
}

void LinkSim::setLinkRate(std::uint64_t rateBps) {
  link_.rateBps = rateBps;
  const double burst = static_cast<double>(rateBps) * static_cast<double>(link_.burstNs) / kNsPerSecond;
  tokensBits_ = std::min(tokensBits_, burst);
}

const FlowStats& LinkSim::stats(std::size_t flow) const { return flows_[flow]->stats; }
RateController& LinkSim::controller(std::size_t flow) { return *flows_[flow]->controller; }
PathEstimator& LinkSim::estimator(std::size_t flow) { return flows_[flow]->estimator; }

void LinkSim::schedule(std::uint64_t time, int type, std::size_t flow, std::uint64_t a) {
  events_.push(Event{time, order_++, type, flow, a});
}

void LinkSim::runUntil(std::uint64_t nowNs) {
  while (!events_.empty() && events_.top().time <= nowNs) {
    const Event event = events_.top();
    events_.pop();
    now_ = event.time;
    handle(event);
  }
  now_ = nowNs;
}

void LinkSim::handle(const Event& event) {
  Flow& f = *flows_[event.flow];
  switch (event.type) {
    case kSend: {
      if (now_ >= f.stopNs) return;
      if (f.kind == FlowKind::kReno) {
        // A 10 ms tick: the retransmission timeout (200 ms without progress) restarts from one packet.
        if (f.inflight > 0 && now_ - f.lastAckNs >= 200'000'000) {
          f.nextJudge = f.sent.size();
          f.inflight = 0;
          f.ssthresh = std::max(2.0, f.cwnd / 2);
          f.cwnd = 1;
          f.recoveryEnd = f.sent.size();
          f.lastAckNs = now_;
        }
        if (f.inflight == 0) f.lastAckNs = now_;
        while (static_cast<double>(f.inflight) < f.cwnd) transmit(event.flow);
        schedule(now_ + 10'000'000, kSend, event.flow);
        return;
      }
      if (f.stallPeriodNs != 0 && now_ % f.stallPeriodNs < f.stallNs) {
        f.stalledSinceAck = true;
        schedule(now_ - now_ % f.stallPeriodNs + f.stallNs, kSend, event.flow);
        return;
      }
      const std::uint64_t rate = f.kind == FlowKind::kMpxdp ? f.controller->pacingRateBps() : f.constantBps;
      const auto gap =
          static_cast<std::uint64_t>(std::ceil(kPacketBytes * 8 * kNsPerSecond / static_cast<double>(rate)));
      // As the connection: no new packet for a path in flight up to its cap (the path idles: app-limited).
      if (f.kind == FlowKind::kMpxdp && f.inflight * kPacketBytes >= f.controller->inflightCapBytes()) {
        f.stalledSinceAck = true;
      } else {
        transmit(event.flow);
      }
      schedule(now_ + gap, kSend, event.flow);
      return;
    }
    case kDepart: {
      const Packet packet = queue_.front();
      queue_.pop();
      queueBytes_ -= packet.bytes;
      const double burst =
          static_cast<double>(link_.rateBps) * static_cast<double>(link_.burstNs) / kNsPerSecond;
      tokensBits_ = std::min(burst, tokensBits_ + static_cast<double>(link_.rateBps) *
                                                      static_cast<double>(now_ - tokensAt_) / kNsPerSecond);
      tokensAt_ = now_;
      tokensBits_ -= packet.bytes * 8.0;
      departureScheduled_ = false;
      schedule(now_ + link_.rttNs / 2, kArrive, packet.flow, packet.number);
      scheduleDeparture();
      return;
    }
    case kArrive:
      arrive(event.flow, event.a);
      return;
    case kAckTimer:
      if (f.ackTimerSet && event.a == f.ackGeneration && f.unacked > 0) sendAck(event.flow);
      return;
    case kAckArrive:
      ackArrives(event.flow, event.a);
      return;
  }
}

void LinkSim::transmit(std::size_t flow) {
  Flow& f = *flows_[flow];
  const std::uint64_t number = f.sent.size();
  f.sent.push_back(SentInfo{now_, kPacketBytes, false});
  ++f.stats.sentPackets;
  ++f.inflight;
  if (f.controller) f.controller->onSent(now_, kPacketBytes);
  enqueue(Packet{flow, number, kPacketBytes});
}

void LinkSim::enqueue(const Packet& packet) {
  const double limit =
      static_cast<double>(link_.rateBps) * static_cast<double>(link_.queueNs) / 8 / kNsPerSecond;
  if (static_cast<double>(queueBytes_ + packet.bytes) > limit) {
    ++flows_[packet.flow]->stats.droppedPackets;
    return;
  }
  queue_.push(packet);
  queueBytes_ += packet.bytes;
  scheduleDeparture();
}

void LinkSim::scheduleDeparture() {
  if (departureScheduled_ || queue_.empty()) return;
  const double burst = static_cast<double>(link_.rateBps) * static_cast<double>(link_.burstNs) / kNsPerSecond;
  tokensBits_ = std::min(burst, tokensBits_ + static_cast<double>(link_.rateBps) *
                                                  static_cast<double>(now_ - tokensAt_) / kNsPerSecond);
  tokensAt_ = now_;
  const double need = queue_.front().bytes * 8.0;
  std::uint64_t at = now_;
  if (tokensBits_ < need) {
    at += static_cast<std::uint64_t>(
        std::ceil((need - tokensBits_) * kNsPerSecond / static_cast<double>(link_.rateBps)));
  }
  departureScheduled_ = true;
  schedule(at, kDepart, 0);
}

void LinkSim::arrive(std::size_t flow, std::uint64_t number) {
  Flow& f = *flows_[flow];
  if (link_.randomLoss > 0) {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    if (static_cast<double>(rng_ >> 11) * 0x1.0p-53 < link_.randomLoss) {
      ++f.stats.droppedPackets;
      return;
    }
  }
  f.sent[number].received = true;
  f.recvBytes += f.sent[number].bytes;
  f.stats.deliveredBytes += f.sent[number].bytes;
  if (number >= f.largest) {
    f.largest = number;
    f.largestArrivalNs = now_;
  }
  if (f.kind == FlowKind::kConstant) return;
  if (++f.unacked >= f.ackEvery) {
    sendAck(flow);
  } else if (!f.ackTimerSet) {
    f.ackTimerSet = true;
    schedule(now_ + ackDelay(f), kAckTimer, flow, f.ackGeneration);
  }
}

// As the connection's receiver: a quarter of the RTT within [1 ms, 5 ms]
// (ConnectionConfig's ackMinDelayNs and ackDelayNs); TCP: its delayed ACK.
std::uint64_t LinkSim::ackDelay(const Flow& f) {
  if (f.kind != FlowKind::kMpxdp || !f.estimator.rttValid()) return f.ackMaxDelayNs;
  return std::clamp<std::uint64_t>(f.estimator.srttNs() / 4, kConnectionDefaults.ackMinDelayNs,
                                   f.ackMaxDelayNs);
}

void LinkSim::sendAck(std::size_t flow) {
  Flow& f = *flows_[flow];
  const auto drift =
      static_cast<std::int64_t>(static_cast<double>(f.largestArrivalNs) * link_.peerClockPpm / 1e6);
  const std::uint64_t recvTs =
      static_cast<std::uint64_t>(static_cast<std::int64_t>(f.largestArrivalNs + f.peerOffset) + drift);
  f.acks.push_back(
      AckInfo{f.largest, f.sent[f.largest].sendNs, recvTs, f.recvBytes, now_ - f.largestArrivalNs});
  f.unacked = 0;
  ++f.ackGeneration;
  f.ackTimerSet = false;
  std::uint64_t at = now_ + link_.rttNs / 2;
  if (at >= link_.ackBlackoutFromNs && at < link_.ackBlackoutToNs) at = link_.ackBlackoutToNs;
  schedule(at, kAckArrive, flow, f.acks.size() - 1);
}

void LinkSim::ackArrives(std::size_t flow, std::uint64_t ackIndex) {
  Flow& f = *flows_[flow];
  const AckInfo ack = f.acks[ackIndex];
  std::uint64_t ackedPackets = 0, ackedBytes = 0, lostPackets = 0, lostBytes = 0;
  std::uint64_t firstLost = kNever;
  std::uint64_t newestLostSentNs = 0;
  for (std::uint64_t pn = f.nextJudge; pn <= ack.largest && pn < f.sent.size(); ++pn) {
    if (f.sent[pn].received) {
      ++ackedPackets;
      ackedBytes += f.sent[pn].bytes;
    } else {
      ++lostPackets;
      lostBytes += f.sent[pn].bytes;
      firstLost = std::min(firstLost, pn);
      newestLostSentNs = std::max(newestLostSentNs, f.sent[pn].sendNs);
    }
  }
  f.nextJudge = std::max(f.nextJudge, ack.largest + 1);
  f.inflight -= std::min(f.inflight, ackedPackets + lostPackets);
  if (now_ >= f.stopNs) return;
  if (f.kind == FlowKind::kReno) {
    if (ackedPackets > 0) f.lastAckNs = now_;
    if (lostPackets > 0 && firstLost >= f.recoveryEnd) {
      f.cwnd = std::max(2.0, f.cwnd / 2);
      f.ssthresh = f.cwnd;
      f.recoveryEnd = f.sent.size();
    }
    if (f.cwnd < f.ssthresh) {
      f.cwnd += static_cast<double>(ackedPackets);
    } else {
      f.cwnd += static_cast<double>(ackedPackets) / f.cwnd;
    }
    while (static_cast<double>(f.inflight) < f.cwnd) transmit(flow);
    return;
  }
  PathEstimator& est = f.estimator;
  est.onRttSample(now_, now_ - ack.largestSendNs, ack.ackDelayNs);
  const bool appLimited = f.stalledSinceAck;
  f.stalledSinceAck = false;
  const std::uint64_t delivery = est.onDelivered(now_, ack.bytesReceived, ack.recvTsNs, appLimited);
  est.onOwdSample(now_, static_cast<std::int64_t>(ack.recvTsNs - ack.largestSendNs));
  if (ackedPackets > 0) est.onAcked(now_, ackedPackets, ackedBytes);
  if (lostPackets > 0) {
    est.onLost(now_, lostPackets, lostBytes);
    f.controller->onLoss(LossSample{now_, lostPackets, lostBytes, newestLostSentNs});
  }
  AckSample sample;
  sample.nowNs = now_;
  sample.deliveryRateBps = delivery;
  sample.appLimited = appLimited;
  sample.ackedBytes = ackedBytes;
  sample.srttNs = est.srttNs();
  sample.minRttNs = est.minRttNs();
  sample.owdValid = est.owdValid();
  sample.queueDelayNs = est.queueDelayNs();
  sample.lossRate = est.lossRate();
  f.controller->onAck(sample);
}

}  // namespace mpxdp::path::testing
