// FdWaiter's receive coalescing on a pipe: the first readiness wakes it, the
// next wake-up is held off, timers are not. Only lower bounds on time are
// checked (a sleep never ends early), and upper bounds far from the values.
#include "run_control.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>

namespace mpxdp::cli {
namespace {

constexpr std::uint64_t kMs = 1'000'000;

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fds.data()), 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void put() const { EXPECT_EQ(::write(fds[1], "x", 1), 1); }
  std::array<int, 2> fds{};
};

TEST(FdWaiterTest, HoldsOffTheWakeUpAfterOneForReadableFds) {
  Pipe pipe;
  std::vector<pollfd> fds{{pipe.fds[0], POLLIN, 0}};
  FdWaiter waiter(100 * kMs);
  pipe.put();
  const std::uint64_t start = monotonicNs();
  waiter.wait(fds, start + 10'000 * kMs);
  EXPECT_TRUE(fds[0].revents & POLLIN);  // woken by the byte, not the deadline
  // Still readable (the byte was not read): the next wake-up waits for the
  // end of the hold-off, 100 ms after the first.
  waiter.wait(fds, start + 10'000 * kMs);
  const std::uint64_t second = monotonicNs();
  EXPECT_GE(second - start, 100 * kMs);
  EXPECT_LT(second - start, 5'000 * kMs);
}

TEST(FdWaiterTest, NeverHoldsOffATimer) {
  Pipe pipe;
  std::vector<pollfd> fds{{pipe.fds[0], POLLIN, 0}};
  FdWaiter waiter(2'000 * kMs);
  pipe.put();
  waiter.wait(fds, monotonicNs() + 10'000 * kMs);
  ASSERT_TRUE(fds[0].revents & POLLIN);
  const std::uint64_t start = monotonicNs();
  waiter.wait(fds, start + 5 * kMs);  // a timer due during the hold-off
  const std::uint64_t elapsed = monotonicNs() - start;
  EXPECT_GE(elapsed, 5 * kMs);
  EXPECT_LT(elapsed, 1'000 * kMs);
}

TEST(FdWaiterTest, WithoutAHoldOffWakesForEveryReadiness) {
  Pipe pipe;
  std::vector<pollfd> fds{{pipe.fds[0], POLLIN, 0}};
  FdWaiter waiter(0);
  pipe.put();
  const std::uint64_t start = monotonicNs();
  for (int i = 0; i < 100; ++i) {
    waiter.wait(fds, monotonicNs() + 10'000 * kMs);
    ASSERT_TRUE(fds[0].revents & POLLIN) << i;
  }
  EXPECT_LT(monotonicNs() - start, 1'000 * kMs);
}

TEST(FdWaiterTest, WaitsForTheDeadlineWhenNothingIsReadable) {
  Pipe pipe;
  std::vector<pollfd> fds{{pipe.fds[0], POLLIN, 0}};
  FdWaiter waiter(50 * kMs);
  const std::uint64_t start = monotonicNs();
  waiter.wait(fds, start + 20 * kMs);
  EXPECT_GE(monotonicNs() - start, 20 * kMs);
  EXPECT_FALSE(fds[0].revents & POLLIN);
}

}  // namespace
}  // namespace mpxdp::cli
