// Drives one connection of `mpxdp send` or `mpxdp recv` until it is done:
// sends the patterned stream (when this side sends) for its duration at its
// rate, receives and checks the peer's stream (when this side receives),
// prints interval reports, and on SIGINT/SIGTERM aborts the connection so
// the peer learns why. Both sides of a bidirectional run share one step;
// `mpxdp recv --max-peers` steps several connections in one loop.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "metrics.h"
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
  PayloadSource* source = nullptr;     // null: the test pattern for sendDurationNs
  PayloadSink* sink = nullptr;         // null: check the test pattern
  MetricsServer* metrics = nullptr;    // --metrics: where snapshots go (null: none)
  std::vector<std::string> linkNames;  // the paths' interfaces, for the metrics' labels
  std::uint64_t rxHoldoffNs = 0;       // --rx-usecs: runTransfer's receive coalescing (FdWaiter)
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

// One connection's transfer, driven step by step by the caller's loop.
// sendReporter / receiveReporter: where interval lines go (null = that
// direction is not run here); they, the endpoint, the connection and the
// plan's source and sink outlive the Transfer.
class Transfer {
 public:
  Transfer(Endpoint& endpoint, Connection& connection, const TransferPlan& plan, Reporter* sendReporter,
           Reporter* receiveReporter);
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // Interval times and the send duration count from nowNs.
  void start(std::uint64_t nowNs);
  // Does what is due at nowNs (receive, check, send, report). Returns when it
  // next has work: 0 (or anything <= nowNs) to be called again at once.
  std::uint64_t step(std::uint64_t nowNs);
  // The connection is done, failed, or was aborted (a stop signal, a file error).
  bool done() const noexcept { return ended_ || connection_.done(); }
  // Once done(): the figures and why it ended.
  TransferResult finish();

 private:
  void refreshPacing(const ConnectionStats& stats);
  // The receiving side's part of a step: false when the transfer ended.
  bool receive(std::uint64_t nowNs, bool& busy);
  // The sending side's: false when the transfer ended; wake is lowered to its next send time.
  bool send(std::uint64_t nowNs, bool& busy, std::uint64_t& wake);
  double seconds(std::uint64_t ns) const { return static_cast<double>(ns - startNs_) / 1e9; }
  void end(std::optional<Error> failure, const char* endedBy = nullptr);

  Endpoint& endpoint_;
  Connection& connection_;
  TransferPlan plan_;
  Reporter* sendReporter_;
  Reporter* receiveReporter_;
  TransferResult result_;
  bool sends_;
  bool receives_;
  bool ended_ = false;
  std::uint32_t payload_;
  std::uint64_t intervalNs_;
  std::uint64_t startNs_ = 0;
  std::uint64_t sendEndNs_ = UINT64_MAX;
  std::uint64_t nextReportNs_ = UINT64_MAX;
  std::uint64_t lastSendNs_ = 0;
  std::uint64_t lastControlPollNs_ = 0;
  bool sourceDone_ = false;  // the source gave its last payload
  std::uint64_t firstDeliveryNs_ = 0;
  std::uint64_t lastDeliveryNs_ = 0;
  // Pacing: the paths' summed rates, read back every so often (they are estimated).
  std::uint64_t frameBits_;
  std::uint64_t askedBps_;
  std::uint64_t pacedBps_ = 0;
  std::uint64_t batchNs_ = 50'000;
  std::uint64_t nextRateRefreshNs_ = 0;
  std::array<SendSlot, 64> slots_;
  std::array<Delivered, 256> delivered_;
};

// Drives one Transfer until it is done, waiting on the endpoint's descriptors in between.
TransferResult runTransfer(Endpoint& endpoint, Connection& connection, const TransferPlan& plan,
                           Reporter* sendReporter, Reporter* receiveReporter);

}  // namespace mpxdp::cli
