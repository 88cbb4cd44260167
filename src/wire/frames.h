// Wire format v2 frames: what follows the packet header. Each frame is a
// 1-byte type and its fields, big-endian. Pure functions: no allocation, no
// I/O, never a read or write outside the span; parsed views (DATA bytes,
// CLOSE reason, HELLO name) point into the parsed buffer. See docs/wire-format.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>

#include "codec.h"
#include "packet.h"

namespace mpxdp::wire {

inline constexpr std::size_t kDataFrameHeaderLen = 12;
inline constexpr std::size_t kMaxAckRanges = 32;
inline constexpr std::size_t kMaxReportPaths = 32;
inline constexpr std::size_t kAckFrameBaseLen = 36;  // with one range
inline constexpr std::size_t kAckRangeLen = 8;       // each further range
inline constexpr std::size_t kPingFrameLen = 8;
inline constexpr std::size_t kPongFrameLen = 20;
inline constexpr std::size_t kPathStatusFrameLen = 8;
inline constexpr std::size_t kMaxSeqFrameLen = 12;
inline constexpr std::size_t kCloseFrameBaseLen = 14;   // + reason
inline constexpr std::size_t kHelloFrameBaseLen = 21;   // + name
inline constexpr std::size_t kReportFrameBaseLen = 68;  // + 24 per path
inline constexpr std::size_t kReportPathLen = 24;
inline constexpr std::size_t kMaxDataLen = 0xffff;
inline constexpr std::size_t kMaxCloseReasonLen = 0xffff;
inline constexpr std::size_t kMaxHelloNameLen = 0xff;
// A data packet: header + one DATA frame header, then the payload.
inline constexpr std::size_t kDataPacketOverhead = kPacketHeaderLen + kDataFrameHeaderLen;  // 40

enum class FrameType : std::uint8_t {
  kPadding = 0,
  kData = 1,
  kAck = 2,
  kPing = 3,
  kPong = 4,
  kPathStatus = 5,
  kClose = 6,
  kHello = 7,
  kReport = 8,
  kMaxSeq = 9,
};

const char* toString(FrameType t) noexcept;  // unknown values -> "unknown"

// The type byte plus the rest of the packet, all zero. Must be the last frame.
struct PaddingFrame {
  std::size_t length = 0;
};

struct DataFrame {
  std::uint64_t globalSeq = 0;
  std::span<const std::uint8_t> data;
};

// Inclusive range of packet numbers.
struct AckRange {
  std::uint64_t smallest = 0;
  std::uint64_t largest = 0;
};

struct AckFrame {
  std::uint16_t pathId = 0;
  std::uint32_t ackDelayUs = 0;
  std::uint64_t largestRecvTsNs = 0;
  std::uint64_t bytesReceived = 0;
  std::uint8_t rangeCount = 0;
  // Descending, disjoint, non-adjacent (at least one missing packet between
  // two ranges); ranges[0].largest = largest acked.
  std::array<AckRange, kMaxAckRanges> ranges{};
  std::uint64_t largestAcked() const noexcept { return ranges[0].largest; }
};

struct PingFrame {
  std::uint32_t pingId = 0;
};

struct PongFrame {
  std::uint16_t pathId = 0;
  std::uint32_t pingId = 0;
  std::uint64_t pingSendTsNs = 0;
  std::uint32_t holdNs = 0;
};

enum class PathStatus : std::uint8_t { kActive = 1, kStandby = 2, kAbandoned = 3 };

struct PathStatusFrame {
  PathStatus status = PathStatus::kActive;
  std::uint16_t pathId = 0;
  std::uint32_t statusSeq = 0;
};

enum class CloseError : std::uint16_t {
  kNone = 0,
  kVersion = 1,
  kPathMismatch = 2,
  kPayloadTooLarge = 3,
  kPeerGone = 4,
  kStopped = 5,
  kBusy = 6,
  kProtocol = 7,
};

const char* toString(CloseError e) noexcept;  // unknown codes -> "unknown"

struct CloseFrame {
  bool streamComplete = false;  // flags bit 0; other flag bits are ignored
  std::uint16_t errorCode = 0;  // a CloseError value, or one we do not know yet
  std::uint64_t finalSeq = 0;
  std::string_view reason;  // at most kMaxCloseReasonLen bytes
};

enum class HelloRole : std::uint8_t { kClient = 0, kServer = 1 };
inline constexpr std::uint8_t kModeClientSends = 1;
inline constexpr std::uint8_t kModeServerSends = 2;
inline constexpr std::uint8_t kModeDirectionMask = kModeClientSends | kModeServerSends;
// The client asks for reliable mode (retransmission, flow control).
inline constexpr std::uint8_t kModeReliable = 4;

struct HelloFrame {
  HelloRole role = HelloRole::kClient;
  std::uint16_t pathCount = 0;
  std::uint8_t mode = 0;  // kModeClientSends | kModeServerSends | kModeReliable bits, as sent
  std::uint16_t maxPayload = 0;
  std::uint64_t rateBps = 0;     // client: the payload rate it asks the server to send at (0: its own choice)
  std::uint32_t durationMs = 0;  // client: how long it asks the server to send (0: until the client closes)
  std::string_view name;         // at most kMaxHelloNameLen bytes
  // Keyed connections: the session cipher (CipherKind: 1 ChaCha20-Poly1305,
  // 2 AES-256-GCM), the client's choice, echoed by the server; 0 unkeyed.
  std::uint8_t cipher = 0;
};

struct ReportPath {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t lost = 0;
};

struct ReportFrame {
  std::uint64_t durationNs = 0, packets = 0, bytes = 0, lost = 0, late = 0, outOfOrder = 0, duplicates = 0,
                malformed = 0;
  std::uint8_t pathCount = 0;
  std::array<ReportPath, kMaxReportPaths> paths{};
};

// Reliable mode, receiver to sender: the data stream may go up to (not
// including) global seq maxSeq; flow control, as QUIC's MAX_DATA. Only ever
// raised; a smaller value than one already received is stale.
struct MaxSeqFrame {
  std::uint64_t maxSeq = 0;
};

using Frame = std::variant<PaddingFrame, DataFrame, AckFrame, PingFrame, PongFrame, PathStatusFrame,
                           CloseFrame, HelloFrame, ReportFrame, MaxSeqFrame>;

// Encoded size of f, type byte included; 0 when a field that decides the size
// is out of range (PADDING length 0, DATA longer than 65535, ACK rangeCount 0
// or > 32, REPORT pathCount > 32, reason/name too long).
std::size_t frameSize(const Frame& f) noexcept;

// Writes f at the start of out. Returns the bytes written (frameSize(f)), or
// kBufferTooSmall, or kBadFrame for values that cannot be encoded: the size
// cases of frameSize, ACK ranges not descending/disjoint/non-adjacent or
// whose first range, gaps or lengths do not fit u32, a PathStatus or
// HelloRole outside the enum. DATA bytes may already sit at out + 12.
WireResult<std::size_t> writeFrame(std::span<std::uint8_t> out, const Frame& f) noexcept;

struct ParsedFrame2 {
  Frame frame;
  std::size_t length = 0;  // bytes the frame took in the input, type byte included
};

// Parses the frame at the start of in. Errors: kTruncated (the frame, or a
// length field in it, runs past the end of in), kUnknownFrame (type > 9),
// kBadFrame (PADDING bytes not zero, ACK range_count 0 or > 32, ACK ranges
// below packet number 0, PATH_STATUS status or HELLO role unknown, REPORT
// path_count > 32). Reserved fields other than PADDING are ignored.
WireResult<ParsedFrame2> parseFrame(std::span<const std::uint8_t> in) noexcept;

// The hot-path DATA frame header: writes the 12 bytes at out[0..12); the
// `length` data bytes go right after. Returns kDataFrameHeaderLen, or
// kBufferTooSmall.
WireResult<std::size_t> writeDataFrameHeader(std::span<std::uint8_t> out, std::uint64_t globalSeq,
                                             std::uint16_t length) noexcept;

// Iterates the frames of a packet body (the UDP payload after the packet
// header):
//
//   FrameReader reader(body);
//   ParsedFrame2 f;
//   while (reader.next(f)) { ...f.frame... }
//   if (reader.error() != WireError::kNone) { drop the packet: malformed }
//
// next() returns false at the end of the body or at the first error and stays
// there. An empty body is an error (kTruncated): a packet holds at least one
// frame. Frames already returned stay valid; a packet whose reader ends in an
// error is malformed as a whole, so act on frames only after it ended clean
// when that matters.
class FrameReader {
 public:
  explicit FrameReader(std::span<const std::uint8_t> body) noexcept : body_(body) {}

  bool next(ParsedFrame2& out) noexcept;
  WireError error() const noexcept { return error_; }
  std::size_t offset() const noexcept { return offset_; }     // of the next frame in the body
  std::size_t frameCount() const noexcept { return count_; }  // frames returned so far

 private:
  std::span<const std::uint8_t> body_;
  std::size_t offset_ = 0;
  std::size_t count_ = 0;
  WireError error_ = WireError::kNone;
};

}  // namespace mpxdp::wire
