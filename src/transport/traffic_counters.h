// Packet and byte counters shared by the transports. Relaxed atomics: the
// transmit and receive sides may run on different threads from stats().
#pragma once

#include <atomic>
#include <cstdint>

#include "mpxdp/packet_io.h"

namespace mpxdp::transport {

class TrafficCounters {
 public:
  void sent(std::uint64_t packets, std::uint64_t bytes) noexcept {
    txPackets_.fetch_add(packets, std::memory_order_relaxed);
    txBytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void received(std::uint64_t packets, std::uint64_t bytes) noexcept {
    rxPackets_.fetch_add(packets, std::memory_order_relaxed);
    rxBytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  void malformed(std::uint64_t packets) noexcept {
    rxMalformed_.fetch_add(packets, std::memory_order_relaxed);
  }

  // The counted fields of a PacketIoStats; the rest stays zero.
  PacketIoStats snapshot() const noexcept {
    PacketIoStats stats;
    stats.txPackets = txPackets_.load(std::memory_order_relaxed);
    stats.txBytes = txBytes_.load(std::memory_order_relaxed);
    stats.rxPackets = rxPackets_.load(std::memory_order_relaxed);
    stats.rxBytes = rxBytes_.load(std::memory_order_relaxed);
    stats.rxMalformed = rxMalformed_.load(std::memory_order_relaxed);
    return stats;
  }

 private:
  std::atomic<std::uint64_t> txPackets_{0};
  std::atomic<std::uint64_t> txBytes_{0};
  std::atomic<std::uint64_t> rxPackets_{0};
  std::atomic<std::uint64_t> rxBytes_{0};
  std::atomic<std::uint64_t> rxMalformed_{0};
};

}  // namespace mpxdp::transport
