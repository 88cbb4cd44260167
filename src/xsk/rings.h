// Typed wrappers over libxdp's single-producer/single-consumer AF_XDP rings.
// The same layout (producer index, consumer index, flags, entry array) can
// sit in kernel-mapped memory or, for tests, in ordinary memory.
#pragma once

#include <xdp/xsk.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace mpxdp::xsk {

// The memory of one ring: where its indices, flags and entries live.
struct RingMemory {
  std::uint32_t* producer = nullptr;
  std::uint32_t* consumer = nullptr;
  std::uint32_t* flags = nullptr;
  void* entries = nullptr;
  std::uint32_t size = 0;  // entries, a power of two
};

// Points a libxdp ring (producer or consumer kind: same fields) at memory.
template <typename Ring>
void pointAt(Ring& ring, const RingMemory& memory) noexcept {
  ring = {};
  ring.mask = memory.size - 1;
  ring.size = memory.size;
  ring.producer = memory.producer;
  ring.consumer = memory.consumer;
  ring.flags = memory.flags;
  ring.ring = memory.entries;
  ring.cached_prod = *memory.producer;
}

// Rings the application produces into (fill, TX).
class ProducerRing {
 public:
  ProducerRing() = default;
  // Attaches to ring memory as libxdp does after mmap (cached consumer kept
  // one ring size ahead, see xsk_prod_nb_free).
  void attach(const RingMemory& memory) noexcept {
    pointAt(ring_, memory);
    ring_.cached_cons = *memory.consumer + memory.size;
  }
  xsk_ring_prod* raw() noexcept { return &ring_; }
  std::uint32_t size() const noexcept { return ring_.size; }

  // Free slots, refreshing the consumer index only when fewer than wanted are known free.
  std::uint32_t freeSlots(std::uint32_t wanted) noexcept { return xsk_prod_nb_free(&ring_, wanted); }
  // Reserves exactly n slots starting at *index, or none (returns 0).
  std::uint32_t reserve(std::uint32_t n, std::uint32_t* index) noexcept {
    return xsk_ring_prod__reserve(&ring_, n, index);
  }
  // Publishes the n oldest reserved slots to the consumer.
  void submit(std::uint32_t n) noexcept { xsk_ring_prod__submit(&ring_, n); }
  bool needsWakeup() const noexcept { return xsk_ring_prod__needs_wakeup(&ring_) != 0; }
  // Entries published but not yet taken by the consumer.
  std::uint32_t outstanding() const noexcept {
    // Atomic loads: a transmit thread (TxKicker) reads them beside the producer.
    return __atomic_load_n(ring_.producer, __ATOMIC_RELAXED) -
           __atomic_load_n(ring_.consumer, __ATOMIC_ACQUIRE);
  }

 protected:
  xsk_ring_prod ring_{};
};

// Rings the application consumes from (RX, completion).
class ConsumerRing {
 public:
  ConsumerRing() = default;
  void attach(const RingMemory& memory) noexcept {
    pointAt(ring_, memory);
    ring_.cached_cons = *memory.consumer;
  }
  xsk_ring_cons* raw() noexcept { return &ring_; }
  std::uint32_t size() const noexcept { return ring_.size; }

  // Claims up to n ready entries starting at *index; returns how many.
  std::uint32_t peek(std::uint32_t n, std::uint32_t* index) noexcept {
    return xsk_ring_cons__peek(&ring_, n, index);
  }
  // Gives the n oldest claimed entries back to the producer.
  void release(std::uint32_t n) noexcept { xsk_ring_cons__release(&ring_, n); }
  // Unclaims the n newest claimed entries.
  void cancel(std::uint32_t n) noexcept { xsk_ring_cons__cancel(&ring_, n); }

 protected:
  xsk_ring_cons ring_{};
};

class FillRing : public ProducerRing {
 public:
  __u64& addr(std::uint32_t index) noexcept { return *xsk_ring_prod__fill_addr(&ring_, index); }
  // Publishes as many of addrs as fit; returns how many.
  std::size_t produce(std::span<const std::uint64_t> addrs) noexcept {
    std::uint32_t n = freeSlots(static_cast<std::uint32_t>(addrs.size()));
    if (n > addrs.size()) n = static_cast<std::uint32_t>(addrs.size());
    if (n == 0) return 0;
    std::uint32_t index = 0;
    reserve(n, &index);
    for (std::uint32_t i = 0; i < n; ++i) addr(index + i) = addrs[i];
    submit(n);
    return n;
  }
};

class TxRing : public ProducerRing {
 public:
  xdp_desc& desc(std::uint32_t index) noexcept { return *xsk_ring_prod__tx_desc(&ring_, index); }
};

class CompletionRing : public ConsumerRing {
 public:
  std::uint64_t addr(std::uint32_t index) const noexcept { return *xsk_ring_cons__comp_addr(&ring_, index); }
  // Takes up to out.size() completed addresses; returns how many.
  std::size_t consume(std::span<std::uint64_t> out) noexcept {
    std::uint32_t index = 0;
    const std::uint32_t n = peek(static_cast<std::uint32_t>(out.size()), &index);
    for (std::uint32_t i = 0; i < n; ++i) out[i] = addr(index + i);
    if (n > 0) release(n);
    return n;
  }
};

class RxRing : public ConsumerRing {
 public:
  const xdp_desc& desc(std::uint32_t index) const noexcept { return *xsk_ring_cons__rx_desc(&ring_, index); }
};

}  // namespace mpxdp::xsk
