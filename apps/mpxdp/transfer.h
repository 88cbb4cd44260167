// Drives one connection of `mpxdp send` or `mpxdp recv` until it is done:
// sends the patterned stream (when this side sends) for its duration at its
// rate, receives and checks the peer's stream (when this side receives),
// prints interval reports, and on SIGINT/SIGTERM aborts the connection so
// the peer learns why. Both sides of a bidirectional run share the loop.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "mpxdp/connection.h"
#include "mpxdp/endpoint.h"
#include "report.h"

namespace mpxdp::cli {

// Where the sending side's payloads come from instead of the test pattern (mpxdp send -F).
class PayloadSource {
 public:
  virtual ~PayloadSource() = default;
  // Writes the next payload (at most capacity bytes) at data: its length, 0
  // when the stream is complete (the loop then ends this side's stream).
  virtual Result<std::uint32_t> fill(std::uint8_t* data, std::uint32_t capacity) noexcept = 0;
  virtual FileProgress progress() const noexcept = 0;
};

// Where the receiving side's payloads go instead of the pattern check (mpxdp recv -F).
class PayloadSink {
 public:
  virtual ~PayloadSink() = default;
  // One in-order payload; an error aborts the connection with its message.
  virtual Result<void> consume(std::uint64_t seq, std::span<const std::uint8_t> payload) noexcept = 0;
  virtual FileProgress progress() const noexcept = 0;
};

struct TransferPlan {
  std::uint64_t sendDurationNs = 0;  // 0 with a sending side: until stopped
  std::uint32_t payloadBytes = 1024;
  std::uint64_t rateBps = 0;  // payload bits per second (-b); 0 = as fast as the links' pacing allows
  // The links' line rates summed (0 when one is unknown): with rateBps, how
  // long a batch of packets takes, so the loop sleeps for batches, not packets.
  double intervalS = 1.0;
  PayloadSource* source = nullptr;  // null: the test pattern for sendDurationNs
  PayloadSink* sink = nullptr;      // null: check the test pattern
};

struct TransferResult {
  ConnectionStats stats;
  std::uint64_t corrupt = 0;
  double sendDurationS = 0;
  double receiveDurationS = 0;
  double endS = 0;      // when the loop ended, on the intervals' clock (seconds since the start)
  std::string endedBy;  // "time", "end of file", "end of stream", "idle timeout", "signal", "peer", "error"
  std::optional<Error> failure;
  // With a source or sink: how far the file got when the loop ended.
  std::optional<FileProgress> sendFile;
  std::optional<FileProgress> receiveFile;
};

// sendReporter / receiveReporter: where interval lines go (null = that direction is not run here).
TransferResult runTransfer(Endpoint& endpoint, Connection& connection, const TransferPlan& plan,
                           Reporter* sendReporter, Reporter* receiveReporter);

}  // namespace mpxdp::cli
