#include "queue_reader.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>
#include <utility>

#include "event_fd.h"

namespace mpxdp::tun {

QueueReader::QueueReader(int fd, std::uint32_t slots, std::size_t slotBytes, std::string name)
    : fd_(fd), name_(std::move(name)), slots_(slots) {
  for (Slot& slot : slots_) slot.bytes.resize(slotBytes);
}

Result<std::unique_ptr<QueueReader>> QueueReader::start(int fd, std::uint32_t slots, std::size_t slotBytes,
                                                        std::string name) {
  if (fd < 0 || slots == 0 || slotBytes == 0)
    return Error(EINVAL, name + ": a queue reader needs a descriptor, slots and a slot size");
  std::unique_ptr<QueueReader> reader(new QueueReader(fd, slots, slotBytes, std::move(name)));
  for (UniqueFd* event : {&reader->ready_, &reader->space_, &reader->stop_}) {
    *event = UniqueFd(makeEventFd());
    if (event->get() < 0) return Error::fromErrno(reader->name_ + ": eventfd for its reader thread");
  }
  try {
    reader->thread_ = std::thread([r = reader.get()] { r->run(); });
  } catch (const std::system_error& e) {
    return Error(e.code().value(), reader->name_ + ": starting its reader thread");
  }
  pthread_setname_np(reader->thread_.native_handle(), "mpxdp-tunq");
  return reader;
}

QueueReader::~QueueReader() {
  if (thread_.joinable()) {
    stopping_.store(true);
    signalEventFd(stop_.get());
    thread_.join();
  }
}

void QueueReader::clearReady() noexcept { drainEventFd(ready_.get()); }

std::span<const std::uint8_t> QueueReader::front() const noexcept {
  const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (head_.load() == tail) return {};
  const Slot& slot = slots_[tail % slots_.size()];
  return {slot.bytes.data(), slot.length};
}

void QueueReader::pop() noexcept {
  const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (head_.load() == tail) return;
  tail_.store(tail + 1);
  // The reader waits only on a full ring; it can not add to it meanwhile.
  if (head_.load() - tail == slots_.size()) signalEventFd(space_.get());
}

std::optional<Error> QueueReader::failure() const {
  if (!failed_.load(std::memory_order_acquire)) return std::nullopt;
  return failure_;
}

void QueueReader::waitFor(int fd, int wakeFd) noexcept {
  // poll skips the negative descriptors.
  std::array<pollfd, 3> fds{{{stop_.get(), POLLIN, 0}, {wakeFd, POLLIN, 0}, {fd, POLLIN, 0}}};
  while (::poll(fds.data(), fds.size(), -1) < 0 && errno == EINTR) {
  }
  if ((fds[1].revents & POLLIN) != 0) drainEventFd(wakeFd);
}

void QueueReader::run() noexcept {
  while (!stopping_.load(std::memory_order_relaxed)) {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load() == slots_.size()) {  // full: wait for the consumer
      waitFor(-1, space_.get());
      continue;
    }
    Slot& slot = slots_[head % slots_.size()];
    const ssize_t got = ::read(fd_, slot.bytes.data(), slot.bytes.size());
    if (got == 0) {  // a TUN queue never ends; anything else has closed: an empty slot would read as none
      failure_ = Error(EPIPE, "reading " + name_ + ": end of file");
      failed_.store(true, std::memory_order_release);
      signalEventFd(ready_.get());
      return;
    }
    if (got > 0) {
      slot.length = static_cast<std::size_t>(got);
      reads_.fetch_add(1, std::memory_order_relaxed);
      head_.store(head + 1);
      if (tail_.load() == head) signalEventFd(ready_.get());  // it was empty: the consumer may sleep
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      waitFor(fd_, -1);
      continue;
    }
    failure_ = Error::fromErrno("reading " + name_);
    failed_.store(true, std::memory_order_release);
    signalEventFd(ready_.get());
    return;
  }
}

}  // namespace mpxdp::tun
