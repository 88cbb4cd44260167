// The XDP steering program: loaded from the embedded skeleton, attached to
// interfaces through bpf_link (so it goes away with the process, even on
// SIGKILL), and told which AF_XDP socket serves each (ifindex, queue).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "mpxdp/error.h"
#include "mpxdp_shared.h"

namespace mpxdp::bpf {

struct SteeringCounters {
  std::uint64_t redirected = 0;
  std::uint64_t passed = 0;
  std::uint64_t malformed = 0;
  std::uint64_t noSocket = 0;
};

// Where the program puts each redirected packet's arrival time (mpxdp_rx_meta).
enum class ArrivalStamp {
  kAuto,       // the first of the three below that this kernel loads
  kMetadata,   // XDP metadata, just before the frame (bpf_xdp_adjust_meta)
  kPrepended,  // in front of the frame itself: the descriptor starts at the stamp
  kNone,       // no stamp: user space times the packet when it reads it
};

// The word a link's description uses for it: "stamp-metadata",
// "stamp-in-frame", "no-stamp" ("stamp-auto" before a program is loaded).
std::string_view describe(ArrivalStamp stamp) noexcept;

struct SteeringOptions {
  std::uint16_t udpPort = MPXDP_DEFAULT_PORT;  // host byte order
  ArrivalStamp arrivalStamp = ArrivalStamp::kAuto;
};

class SteeringProgram {
 public:
  // Opens the skeleton, sets .rodata from options, loads it into the kernel.
  // With ArrivalStamp::kAuto a kernel that refuses a stamping helper gets the
  // program built for the next way of stamping.
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
  // The stamp the loaded program writes (never kAuto). With kPrepended every
  // redirected frame starts with an mpxdp_rx_meta that the reader must skip.
  ArrivalStamp arrivalStamp() const noexcept;
  // Kernel id of the loaded program, as bpf_xdp_query and bpftool report it.
  std::uint32_t programId() const noexcept;

 private:
  struct Impl;
  explicit SteeringProgram(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mpxdp::bpf
