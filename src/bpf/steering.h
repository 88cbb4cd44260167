// The XDP steering program: loaded from the embedded skeleton, attached to
// interfaces through bpf_link (so it goes away with the process, even on
// SIGKILL), and told which AF_XDP socket serves each (ifindex, queue).
#pragma once

#include <cstdint>
#include <memory>

#include "mpxdp/error.h"
#include "mpxdp_shared.h"

namespace mpxdp::bpf {

struct SteeringCounters {
  std::uint64_t redirected = 0;
  std::uint64_t passed = 0;
  std::uint64_t malformed = 0;
  std::uint64_t noSocket = 0;
};

struct SteeringOptions {
  std::uint16_t udpPort = MPXDP_DEFAULT_PORT;  // host byte order
};

class SteeringProgram {
 public:
  // Opens the skeleton, sets .rodata from options, loads it into the kernel.
  static Result<std::unique_ptr<SteeringProgram>> load(const SteeringOptions& options);
  ~SteeringProgram();
  SteeringProgram(const SteeringProgram&) = delete;
  SteeringProgram& operator=(const SteeringProgram&) = delete;

  // Attaches to ifindex via bpf_link (native mode where the driver has it,
  // generic otherwise). Fails with EBUSY and a message naming the program
  // already there instead of replacing another program.
  Result<void> attach(int ifindex);
  Result<void> detach(int ifindex);
  // Steers packets arriving on (ifindex, queue) into the socket xskFd.
  Result<void> bindSocket(int ifindex, std::uint32_t queue, int xskFd);
  Result<void> unbindSocket(int ifindex, std::uint32_t queue);
  // Counters summed over all CPUs.
  Result<SteeringCounters> counters() const;
  int programFd() const noexcept;
  // Kernel id of the loaded program, as bpf_xdp_query and bpftool report it.
  std::uint32_t programId() const noexcept;

 private:
  struct Impl;
  explicit SteeringProgram(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpxdp::bpf
