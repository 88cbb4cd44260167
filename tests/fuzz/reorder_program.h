// The byte format reorderer_fuzz reads: a 12-byte configuration, then
// operations. Shared with the seed generator, which writes programs with
// ReorderProgramWriter. Every byte string is a valid program (missing bytes
// read as 0).
//
// Configuration:
//   byte 0   bits 0-1: kind (0 window, 1 sort, 2 off, 3 window reliable)
//            bit 2: fast loss off; bit 3: fixed timeout; bit 4: initialSeq = start
//            bits 5-7: pathCount - 1
//   byte 1   bits 0-2: windowPackets = 64 << min(v, 4); bits 3-5: fastLossThreshold - 1
//   byte 2   sortCapacityPackets = 1 + v * windowPackets / 256
//   byte 3   bits 0-3: fixed timeout (v + 1) * 200 us;
//            bits 4-7: adaptive maxTimeoutNs (v + 1) * 2 ms (margin a quarter of it)
//   4..11    start: the first global seq (big-endian u64)
// Operations: one byte, op = b >> 5, arg = b & 31.
//   0..2 push      seq = highest seq pushed + arg - 16; then bytes P (path = P & 7,
//                  packet number = the path's next + (P >> 3) - 4) and T (timing:
//                  arrival = now + ((T & 15) - 4) * 10 us, send time = arrival -
//                  path * 1 ms - (T >> 4) * 50 us)
//   3   jump       seq = highest + (signed 64-bit D >> arg), D the next 8 bytes; then P, T
//   4   time       now += arg^2 * 20 us (arg < 28), or (arg - 27) * 200 ms
//   5   observe    observePath(arg & 7, the path's next + next byte - 16)
//   6   poll       arg 0: at now; 1: at nextDeadlineNs() (now moves there when it is
//                  within 1 s); else now += arg * 100 us, then poll
//   7   replay     the packet pushed (arg * 256 + next byte) mod pushes earlier, pushed again
// Seqs are kept within [start - 2^61, start + 2^62) so that the 64-bit sequence
// circle is never walked around (the oracle can then order them plainly).
// After the last operation: flush().
#pragma once

#include <cstdint>
#include <vector>

namespace mpxdp::fuzz::reorder_program {

inline constexpr std::size_t kConfigLen = 12;

enum class Kind : std::uint8_t { kWindow = 0, kSort = 1, kOff = 2, kWindowReliable = 3 };

enum class Op : std::uint8_t {
  kPush = 0,  // 0..2
  kJump = 3,
  kTime = 4,
  kObserve = 5,
  kPoll = 6,
  kReplay = 7,
};

inline constexpr std::uint8_t kPacketNumberBias = 4;  // P >> 3 of an in-order packet number
inline constexpr std::uint8_t kObserveBias = 16;
inline constexpr int kSeqBias = 16;  // arg of a push one above the highest seq: 17

// Writes programs (for the seed corpus).
class ReorderProgramWriter {
 public:
  struct Config {
    Kind kind = Kind::kWindow;
    bool fastLoss = true;
    bool fixedTimeout = false;
    bool initialSeq = false;
    std::uint8_t pathCount = 2;          // 1..8
    std::uint8_t windowShift = 2;        // 64 << shift
    std::uint8_t fastLossThreshold = 3;  // 1..8
    std::uint8_t sortCapacity = 32;      // byte 2
    std::uint8_t timeouts = 0x44;        // byte 3
    std::uint64_t start = 1000;
  };

  explicit ReorderProgramWriter(const Config& c) {
    bytes_.push_back(static_cast<std::uint8_t>(static_cast<std::uint8_t>(c.kind) | (c.fastLoss ? 0 : 4) |
                                               (c.fixedTimeout ? 8 : 0) | (c.initialSeq ? 16 : 0) |
                                               ((c.pathCount - 1) << 5)));
    bytes_.push_back(static_cast<std::uint8_t>(c.windowShift | ((c.fastLossThreshold - 1) << 3)));
    bytes_.push_back(c.sortCapacity);
    bytes_.push_back(c.timeouts);
    for (int shift = 56; shift >= 0; shift -= 8)
      bytes_.push_back(static_cast<std::uint8_t>(c.start >> shift));
  }

  // seqStep: seq relative to the highest pushed (-16..15); numberStep: packet
  // number relative to the path's next (-4..27); jitter: T byte.
  ReorderProgramWriter& push(int seqStep, std::uint8_t path, int numberStep = 0, std::uint8_t timing = 0x04) {
    bytes_.push_back(static_cast<std::uint8_t>(seqStep + kSeqBias));  // op 0
    bytes_.push_back(static_cast<std::uint8_t>((path & 7) | ((numberStep + kPacketNumberBias) << 3)));
    bytes_.push_back(timing);
    return *this;
  }
  ReorderProgramWriter& jump(std::int64_t distance, std::uint8_t path, int numberStep = 0) {
    bytes_.push_back(static_cast<std::uint8_t>(static_cast<std::uint8_t>(Op::kJump) << 5));  // shift 0
    for (int shift = 56; shift >= 0; shift -= 8) {
      bytes_.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(distance) >> shift));
    }
    bytes_.push_back(static_cast<std::uint8_t>((path & 7) | ((numberStep + kPacketNumberBias) << 3)));
    bytes_.push_back(0x04);
    return *this;
  }
  ReorderProgramWriter& time(std::uint8_t arg) { return op(Op::kTime, arg); }
  ReorderProgramWriter& observe(std::uint8_t path, int numberStep = 0) {
    op(Op::kObserve, path);
    bytes_.push_back(static_cast<std::uint8_t>(numberStep + kObserveBias));
    return *this;
  }
  ReorderProgramWriter& poll(std::uint8_t arg = 0) { return op(Op::kPoll, arg); }
  ReorderProgramWriter& replay(std::uint16_t index) {
    op(Op::kReplay, static_cast<std::uint8_t>(index >> 8));
    bytes_.push_back(static_cast<std::uint8_t>(index));
    return *this;
  }

  const std::vector<std::uint8_t>& bytes() const noexcept { return bytes_; }

 private:
  ReorderProgramWriter& op(Op o, std::uint8_t arg) {
    bytes_.push_back(static_cast<std::uint8_t>((static_cast<std::uint8_t>(o) << 5) | (arg & 31)));
    return *this;
  }

  std::vector<std::uint8_t> bytes_;
};

}  // namespace mpxdp::fuzz::reorder_program
