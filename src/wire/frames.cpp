// Wire format v2 frames. Every read is bounds-checked against the input span
// before it happens; nothing here allocates.
#include "frames.h"

#include <cstring>
#include <type_traits>

#include "byte_order.h"

namespace mpxdp::wire {

using detail::load16;
using detail::load32;
using detail::load64;
using detail::store16;
using detail::store32;
using detail::store64;

namespace {

template <typename T>
WireResult<T> fail(WireError error) noexcept {
  return detail::fail<WireResult<T>>(error);
}

constexpr std::uint8_t kCloseFlagStreamComplete = 0x01;
constexpr std::uint8_t kLastFrameType = static_cast<std::uint8_t>(FrameType::kMaxSeq);

std::size_t ackSize(std::size_t rangeCount) noexcept {
  return kAckFrameBaseLen + kAckRangeLen * (rangeCount - 1);
}

bool validPathStatus(std::uint8_t s) noexcept {
  return s >= static_cast<std::uint8_t>(PathStatus::kActive) &&
         s <= static_cast<std::uint8_t>(PathStatus::kAbandoned);
}

bool validRole(std::uint8_t r) noexcept { return r <= static_cast<std::uint8_t>(HelloRole::kServer); }

std::size_t sizeOf(const PaddingFrame& f) noexcept { return f.length; }
std::size_t sizeOf(const DataFrame& f) noexcept {
  return f.data.size() > kMaxDataLen ? 0 : kDataFrameHeaderLen + f.data.size();
}
std::size_t sizeOf(const AckFrame& f) noexcept {
  return f.rangeCount == 0 || f.rangeCount > kMaxAckRanges ? 0 : ackSize(f.rangeCount);
}
std::size_t sizeOf(const PingFrame&) noexcept { return kPingFrameLen; }
std::size_t sizeOf(const PongFrame&) noexcept { return kPongFrameLen; }
std::size_t sizeOf(const PathStatusFrame&) noexcept { return kPathStatusFrameLen; }
std::size_t sizeOf(const MaxSeqFrame&) noexcept { return kMaxSeqFrameLen; }
std::size_t sizeOf(const CloseFrame& f) noexcept {
  return f.reason.size() > kMaxCloseReasonLen ? 0 : kCloseFrameBaseLen + f.reason.size();
}
std::size_t sizeOf(const HelloFrame& f) noexcept {
  return f.name.size() > kMaxHelloNameLen ? 0 : kHelloFrameBaseLen + f.name.size();
}
std::size_t sizeOf(const ReportFrame& f) noexcept {
  return f.pathCount > kMaxReportPaths ? 0 : kReportFrameBaseLen + kReportPathLen * f.pathCount;
}

// ---- writers: out holds at least sizeOf(f) bytes, validity checked by the caller or here ----

WireError put(std::uint8_t* p, const PaddingFrame& f) noexcept {
  std::memset(p, 0, f.length);
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const DataFrame& f) noexcept {
  p[0] = static_cast<std::uint8_t>(FrameType::kData);
  p[1] = 0;
  store16(p + 2, static_cast<std::uint16_t>(f.data.size()));
  store64(p + 4, f.globalSeq);
  if (!f.data.empty() && f.data.data() != p + kDataFrameHeaderLen) {
    std::memmove(p + kDataFrameHeaderLen, f.data.data(), f.data.size());
  }
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const AckFrame& f) noexcept {
  // QUIC encoding (RFC 9000 19.3.1): first_range, then (gap, length) pairs.
  const AckRange& first = f.ranges[0];
  if (first.largest < first.smallest || first.largest - first.smallest > UINT32_MAX) {
    return WireError::kBadFrame;
  }
  p[0] = static_cast<std::uint8_t>(FrameType::kAck);
  p[1] = f.rangeCount;
  store16(p + 2, f.pathId);
  store32(p + 4, f.ackDelayUs);
  store64(p + 8, first.largest);
  store64(p + 16, f.largestRecvTsNs);
  store64(p + 24, f.bytesReceived);
  store32(p + 32, static_cast<std::uint32_t>(first.largest - first.smallest));
  std::uint8_t* q = p + kAckFrameBaseLen;
  for (std::size_t i = 1; i < f.rangeCount; ++i) {
    const AckRange& prev = f.ranges[i - 1];
    const AckRange& r = f.ranges[i];
    // Non-adjacent: r.largest + 2 <= prev.smallest, i.e. at least one packet missing between.
    if (r.largest < r.smallest || prev.smallest < 2 || r.largest > prev.smallest - 2) {
      return WireError::kBadFrame;
    }
    const std::uint64_t gap = prev.smallest - 2 - r.largest;
    const std::uint64_t length = r.largest - r.smallest;
    if (gap > UINT32_MAX || length > UINT32_MAX) {
      return WireError::kBadFrame;
    }
    store32(q, static_cast<std::uint32_t>(gap));
    store32(q + 4, static_cast<std::uint32_t>(length));
    q += kAckRangeLen;
  }
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const MaxSeqFrame& f) noexcept {
  p[0] = static_cast<std::uint8_t>(FrameType::kMaxSeq);
  p[1] = 0;
  store16(p + 2, 0);
  store64(p + 4, f.maxSeq);
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const PingFrame& f) noexcept {
  p[0] = static_cast<std::uint8_t>(FrameType::kPing);
  p[1] = 0;
  store16(p + 2, 0);
  store32(p + 4, f.pingId);
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const PongFrame& f) noexcept {
  p[0] = static_cast<std::uint8_t>(FrameType::kPong);
  p[1] = 0;
  store16(p + 2, f.pathId);
  store32(p + 4, f.pingId);
  store64(p + 8, f.pingSendTsNs);
  store32(p + 16, f.holdNs);
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const PathStatusFrame& f) noexcept {
  const auto status = static_cast<std::uint8_t>(f.status);
  if (!validPathStatus(status)) {
    return WireError::kBadFrame;
  }
  p[0] = static_cast<std::uint8_t>(FrameType::kPathStatus);
  p[1] = status;
  store16(p + 2, f.pathId);
  store32(p + 4, f.statusSeq);
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const CloseFrame& f) noexcept {
  p[0] = static_cast<std::uint8_t>(FrameType::kClose);
  p[1] = f.streamComplete ? kCloseFlagStreamComplete : 0;
  store16(p + 2, f.errorCode);
  store64(p + 4, f.finalSeq);
  store16(p + 12, static_cast<std::uint16_t>(f.reason.size()));
  if (!f.reason.empty()) {
    std::memcpy(p + kCloseFrameBaseLen, f.reason.data(), f.reason.size());
  }
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const HelloFrame& f) noexcept {
  const auto role = static_cast<std::uint8_t>(f.role);
  if (!validRole(role)) {
    return WireError::kBadFrame;
  }
  p[0] = static_cast<std::uint8_t>(FrameType::kHello);
  p[1] = role;
  store16(p + 2, f.pathCount);
  p[4] = f.mode;
  p[5] = f.cipher;
  store16(p + 6, f.maxPayload);
  store64(p + 8, f.rateBps);
  store32(p + 16, f.durationMs);
  p[20] = static_cast<std::uint8_t>(f.name.size());
  if (!f.name.empty()) {
    std::memcpy(p + kHelloFrameBaseLen, f.name.data(), f.name.size());
  }
  return WireError::kNone;
}

WireError put(std::uint8_t* p, const ReportFrame& f) noexcept {
  p[0] = static_cast<std::uint8_t>(FrameType::kReport);
  p[1] = f.pathCount;
  store16(p + 2, 0);
  const std::uint64_t totals[] = {f.durationNs, f.packets,    f.bytes,      f.lost,
                                  f.late,       f.outOfOrder, f.duplicates, f.malformed};
  std::uint8_t* q = p + 4;
  for (const std::uint64_t v : totals) {
    store64(q, v);
    q += 8;
  }
  for (std::size_t i = 0; i < f.pathCount; ++i) {
    store64(q, f.paths[i].packets);
    store64(q + 8, f.paths[i].bytes);
    store64(q + 16, f.paths[i].lost);
    q += kReportPathLen;
  }
  return WireError::kNone;
}

// ---- parsers: p points at the type byte, n >= 1 bytes available ----

using Parsed = WireResult<ParsedFrame2>;

Parsed done(Frame frame, std::size_t length) noexcept {
  return {ParsedFrame2{frame, length}, WireError::kNone};
}

Parsed parsePadding(const std::uint8_t* p, std::size_t n) noexcept {
  for (std::size_t i = 1; i < n; ++i) {
    if (p[i] != 0) {
      return fail<ParsedFrame2>(WireError::kBadFrame);
    }
  }
  return done(PaddingFrame{n}, n);
}

Parsed parseData(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < kDataFrameHeaderLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  const std::size_t length = load16(p + 2);
  if (n - kDataFrameHeaderLen < length) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  DataFrame f;
  f.globalSeq = load64(p + 4);
  f.data = {p + kDataFrameHeaderLen, length};
  return done(f, kDataFrameHeaderLen + length);
}

Parsed parseAck(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < 2) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  const std::uint8_t count = p[1];
  if (count == 0 || count > kMaxAckRanges) {
    return fail<ParsedFrame2>(WireError::kBadFrame);
  }
  const std::size_t size = ackSize(count);
  if (n < size) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  Parsed result;
  result.value.length = size;
  auto& f = result.value.frame.emplace<AckFrame>();  // built in place: AckFrame is 530 bytes
  f.rangeCount = count;
  f.pathId = load16(p + 2);
  f.ackDelayUs = load32(p + 4);
  const std::uint64_t largest = load64(p + 8);
  f.largestRecvTsNs = load64(p + 16);
  f.bytesReceived = load64(p + 24);
  const std::uint32_t firstRange = load32(p + 32);
  if (firstRange > largest) {
    return fail<ParsedFrame2>(WireError::kBadFrame);
  }
  f.ranges[0] = {largest - firstRange, largest};
  const std::uint8_t* q = p + kAckFrameBaseLen;
  for (std::size_t i = 1; i < count; ++i) {
    const std::uint64_t gap = load32(q);
    const std::uint64_t length = load32(q + 4);
    const std::uint64_t prevSmallest = f.ranges[i - 1].smallest;
    if (prevSmallest < gap + 2) {
      return fail<ParsedFrame2>(WireError::kBadFrame);
    }
    const std::uint64_t top = prevSmallest - gap - 2;
    if (top < length) {
      return fail<ParsedFrame2>(WireError::kBadFrame);
    }
    f.ranges[i] = {top - length, top};
    q += kAckRangeLen;
  }
  return result;
}

Parsed parseMaxSeq(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < kMaxSeqFrameLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  return done(MaxSeqFrame{load64(p + 4)}, kMaxSeqFrameLen);
}

Parsed parsePing(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < kPingFrameLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  return done(PingFrame{load32(p + 4)}, kPingFrameLen);
}

Parsed parsePong(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < kPongFrameLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  PongFrame f;
  f.pathId = load16(p + 2);
  f.pingId = load32(p + 4);
  f.pingSendTsNs = load64(p + 8);
  f.holdNs = load32(p + 16);
  return done(f, kPongFrameLen);
}

Parsed parsePathStatus(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < kPathStatusFrameLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  if (!validPathStatus(p[1])) {
    return fail<ParsedFrame2>(WireError::kBadFrame);
  }
  PathStatusFrame f;
  f.status = static_cast<PathStatus>(p[1]);
  f.pathId = load16(p + 2);
  f.statusSeq = load32(p + 4);
  return done(f, kPathStatusFrameLen);
}

Parsed parseClose(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < kCloseFrameBaseLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  const std::size_t reasonLen = load16(p + 12);
  if (n - kCloseFrameBaseLen < reasonLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  CloseFrame f;
  f.streamComplete = (p[1] & kCloseFlagStreamComplete) != 0;
  f.errorCode = load16(p + 2);
  f.finalSeq = load64(p + 4);
  f.reason = {reinterpret_cast<const char*>(p + kCloseFrameBaseLen), reasonLen};
  return done(f, kCloseFrameBaseLen + reasonLen);
}

Parsed parseHello(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < kHelloFrameBaseLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  const std::size_t nameLen = p[20];
  if (n - kHelloFrameBaseLen < nameLen) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  if (!validRole(p[1])) {
    return fail<ParsedFrame2>(WireError::kBadFrame);
  }
  HelloFrame f;
  f.role = static_cast<HelloRole>(p[1]);
  f.pathCount = load16(p + 2);
  f.mode = p[4];
  f.cipher = p[5];
  f.maxPayload = load16(p + 6);
  f.rateBps = load64(p + 8);
  f.durationMs = load32(p + 16);
  f.name = {reinterpret_cast<const char*>(p + kHelloFrameBaseLen), nameLen};
  return done(f, kHelloFrameBaseLen + nameLen);
}

Parsed parseReport(const std::uint8_t* p, std::size_t n) noexcept {
  if (n < 2) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  const std::uint8_t count = p[1];
  if (count > kMaxReportPaths) {
    return fail<ParsedFrame2>(WireError::kBadFrame);
  }
  const std::size_t size = kReportFrameBaseLen + kReportPathLen * count;
  if (n < size) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  Parsed result;
  result.value.length = size;
  auto& f = result.value.frame.emplace<ReportFrame>();
  f.pathCount = count;
  std::uint64_t* totals[] = {&f.durationNs, &f.packets,    &f.bytes,      &f.lost,
                             &f.late,       &f.outOfOrder, &f.duplicates, &f.malformed};
  const std::uint8_t* q = p + 4;
  for (std::uint64_t* v : totals) {
    *v = load64(q);
    q += 8;
  }
  for (std::size_t i = 0; i < count; ++i) {
    f.paths[i] = {load64(q), load64(q + 8), load64(q + 16)};
    q += kReportPathLen;
  }
  return result;
}

}  // namespace

const char* toString(FrameType t) noexcept {
  switch (t) {
    case FrameType::kPadding:
      return "PADDING";
    case FrameType::kData:
      return "DATA";
    case FrameType::kAck:
      return "ACK";
    case FrameType::kPing:
      return "PING";
    case FrameType::kPong:
      return "PONG";
    case FrameType::kPathStatus:
      return "PATH_STATUS";
    case FrameType::kClose:
      return "CLOSE";
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kReport:
      return "REPORT";
    case FrameType::kMaxSeq:
      return "MAX_SEQ";
  }
  return "unknown";
}

const char* toString(CloseError e) noexcept {
  switch (e) {
    case CloseError::kNone:
      return "none";
    case CloseError::kVersion:
      return "version";
    case CloseError::kPathMismatch:
      return "path mismatch";
    case CloseError::kPayloadTooLarge:
      return "payload too large";
    case CloseError::kPeerGone:
      return "peer gone";
    case CloseError::kStopped:
      return "stopped";
    case CloseError::kBusy:
      return "busy";
    case CloseError::kProtocol:
      return "protocol violation";
  }
  return "unknown";
}

std::size_t frameSize(const Frame& f) noexcept {
  return std::visit([](const auto& frame) noexcept { return sizeOf(frame); }, f);
}

WireResult<std::size_t> writeFrame(std::span<std::uint8_t> out, const Frame& f) noexcept {
  const std::size_t size = frameSize(f);
  if (size == 0) {
    return fail<std::size_t>(WireError::kBadFrame);
  }
  if (out.size() < size) {
    return fail<std::size_t>(WireError::kBufferTooSmall);
  }
  const WireError error =
      std::visit([p = out.data()](const auto& frame) noexcept { return put(p, frame); }, f);
  if (error != WireError::kNone) {
    return fail<std::size_t>(error);
  }
  return {size, WireError::kNone};
}

WireResult<ParsedFrame2> parseFrame(std::span<const std::uint8_t> in) noexcept {
  if (in.empty()) {
    return fail<ParsedFrame2>(WireError::kTruncated);
  }
  const std::uint8_t* p = in.data();
  const std::size_t n = in.size();
  if (p[0] > kLastFrameType) {
    return fail<ParsedFrame2>(WireError::kUnknownFrame);
  }
  switch (static_cast<FrameType>(p[0])) {
    case FrameType::kPadding:
      return parsePadding(p, n);
    case FrameType::kData:
      return parseData(p, n);
    case FrameType::kAck:
      return parseAck(p, n);
    case FrameType::kPing:
      return parsePing(p, n);
    case FrameType::kPong:
      return parsePong(p, n);
    case FrameType::kPathStatus:
      return parsePathStatus(p, n);
    case FrameType::kClose:
      return parseClose(p, n);
    case FrameType::kHello:
      return parseHello(p, n);
    case FrameType::kReport:
      return parseReport(p, n);
    case FrameType::kMaxSeq:
      return parseMaxSeq(p, n);
  }
  return fail<ParsedFrame2>(WireError::kUnknownFrame);
}

WireResult<std::size_t> writeDataFrameHeader(std::span<std::uint8_t> out, std::uint64_t globalSeq,
                                             std::uint16_t length) noexcept {
  if (out.size() < kDataFrameHeaderLen) {
    return fail<std::size_t>(WireError::kBufferTooSmall);
  }
  std::uint8_t* p = out.data();
  p[0] = static_cast<std::uint8_t>(FrameType::kData);
  p[1] = 0;
  store16(p + 2, length);
  store64(p + 4, globalSeq);
  return {kDataFrameHeaderLen, WireError::kNone};
}

bool FrameReader::next(ParsedFrame2& out) noexcept {
  if (error_ != WireError::kNone) {
    return false;
  }
  if (offset_ == body_.size()) {
    if (count_ == 0) {
      error_ = WireError::kTruncated;  // a packet holds at least one frame
    }
    return false;
  }
  WireResult<ParsedFrame2> parsed = parseFrame(body_.subspan(offset_));
  if (!parsed.ok()) {
    error_ = parsed.error;
    return false;
  }
  offset_ += parsed.value.length;
  ++count_;
  out = parsed.value;
  return true;
}

}  // namespace mpxdp::wire
