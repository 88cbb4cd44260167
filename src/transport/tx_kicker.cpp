#include "tx_kicker.h"

#include <cerrno>
#include <system_error>

#include "xsk_socket.h"

namespace mpxdp::transport {

Result<std::shared_ptr<TxKicker>> TxKicker::start() {
  std::shared_ptr<TxKicker> kicker(new TxKicker());
  try {
    kicker->thread_ = std::thread([raw = kicker.get()] { raw->run(); });
  } catch (const std::system_error& error) {
    return Error(error.code().value(), "starting the transmit thread");
  }
  return kicker;
}

TxKicker::~TxKicker() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_one();
  if (thread_.joinable()) thread_.join();
}

Result<std::size_t> TxKicker::add(xsk::XskSocket& socket) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (std::size_t slot = 0; slot < kMaxSockets; ++slot) {
    if (sockets_[slot] == nullptr) {
      sockets_[slot] = &socket;
      pending_[slot].store(false, std::memory_order_relaxed);
      errors_[slot].store(0, std::memory_order_relaxed);
      return slot;
    }
  }
  return Error(EBUSY, "the transmit thread serves " + std::to_string(kMaxSockets) + " sockets at most");
}

void TxKicker::remove(std::size_t slot) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);  // waits for a round of kicks that may use it
  sockets_[slot] = nullptr;
  pending_[slot].store(false, std::memory_order_relaxed);
}

void TxKicker::request(std::size_t slot) noexcept {
  if (pending_[slot].exchange(true, std::memory_order_acq_rel)) return;  // one is due already
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_one();  // a system call only when the thread sleeps
}

int TxKicker::takeError(std::size_t slot) noexcept {
  return errors_[slot].exchange(0, std::memory_order_relaxed);
}

void TxKicker::run() noexcept {
  while (!stop_.load(std::memory_order_acquire)) {
    const std::uint32_t seen = generation_.load(std::memory_order_acquire);
    bool kicked = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (std::size_t slot = 0; slot < kMaxSockets; ++slot) {
        if (sockets_[slot] == nullptr || !pending_[slot].exchange(false, std::memory_order_acq_rel)) continue;
        drain(slot);
        kicked = true;
      }
    }
    // A request after the scan changed the generation: no sleep then.
    if (!kicked) generation_.wait(seen, std::memory_order_acquire);
  }
}

void TxKicker::drain(std::size_t slot) noexcept {
  // Completions stay with the filling thread: nothing to do between kicks.
  const int err = sockets_[slot]->drainTx([this] { kicks_.fetch_add(1, std::memory_order_relaxed); });
  if (err != 0) errors_[slot].store(err, std::memory_order_relaxed);
}

}  // namespace mpxdp::transport
