#include "frames.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "packet.h"

namespace mpxdp::wire {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A heap copy of exactly n bytes, so a sanitizer build catches any read past the span.
struct Exact {
  Exact(const std::uint8_t* p, std::size_t n) : storage(new std::uint8_t[n == 0 ? 1 : n]), size(n) {
    if (n > 0) std::memcpy(storage.get(), p, n);
  }
  Exact(const Bytes& b, std::size_t n) : Exact(b.data(), n) {}
  std::span<const std::uint8_t> span() const { return {storage.get(), size}; }
  std::unique_ptr<std::uint8_t[]> storage;
  std::size_t size;
};

Bytes encode(const Frame& f) {
  Bytes out(frameSize(f));
  const auto written = writeFrame(out, f);
  EXPECT_TRUE(written.ok()) << toString(written.error);
  EXPECT_EQ(written.value, out.size());
  return out;
}

bool sameBytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// Field-by-field equality of two frames of the same alternative.
::testing::AssertionResult sameFrame(const Frame& a, const Frame& b) {
  if (a.index() != b.index()) {
    return ::testing::AssertionFailure() << "alternative " << a.index() << " vs " << b.index();
  }
  bool same = false;
  if (const auto* x = std::get_if<PaddingFrame>(&a)) {
    same = x->length == std::get<PaddingFrame>(b).length;
  } else if (const auto* x = std::get_if<DataFrame>(&a)) {
    const auto& y = std::get<DataFrame>(b);
    same = x->globalSeq == y.globalSeq && sameBytes(x->data, y.data);
  } else if (const auto* x = std::get_if<AckFrame>(&a)) {
    const auto& y = std::get<AckFrame>(b);
    same = x->pathId == y.pathId && x->ackDelayUs == y.ackDelayUs &&
           x->largestRecvTsNs == y.largestRecvTsNs && x->bytesReceived == y.bytesReceived &&
           x->rangeCount == y.rangeCount;
    for (std::size_t i = 0; same && i < x->rangeCount; ++i) {
      same = x->ranges[i].smallest == y.ranges[i].smallest && x->ranges[i].largest == y.ranges[i].largest;
    }
  } else if (const auto* x = std::get_if<PingFrame>(&a)) {
    same = x->pingId == std::get<PingFrame>(b).pingId;
  } else if (const auto* x = std::get_if<PongFrame>(&a)) {
    const auto& y = std::get<PongFrame>(b);
    same = x->pathId == y.pathId && x->pingId == y.pingId && x->pingSendTsNs == y.pingSendTsNs &&
           x->holdNs == y.holdNs;
  } else if (const auto* x = std::get_if<PathStatusFrame>(&a)) {
    const auto& y = std::get<PathStatusFrame>(b);
    same = x->status == y.status && x->pathId == y.pathId && x->statusSeq == y.statusSeq;
  } else if (const auto* x = std::get_if<CloseFrame>(&a)) {
    const auto& y = std::get<CloseFrame>(b);
    same = x->streamComplete == y.streamComplete && x->errorCode == y.errorCode &&
           x->finalSeq == y.finalSeq && x->reason == y.reason;
  } else if (const auto* x = std::get_if<HelloFrame>(&a)) {
    const auto& y = std::get<HelloFrame>(b);
    same = x->role == y.role && x->pathCount == y.pathCount && x->mode == y.mode &&
           x->maxPayload == y.maxPayload && x->rateBps == y.rateBps && x->durationMs == y.durationMs &&
           x->name == y.name;
  } else if (const auto* x = std::get_if<ReportFrame>(&a)) {
    const auto& y = std::get<ReportFrame>(b);
    same = x->durationNs == y.durationNs && x->packets == y.packets && x->bytes == y.bytes &&
           x->lost == y.lost && x->late == y.late && x->outOfOrder == y.outOfOrder &&
           x->duplicates == y.duplicates && x->malformed == y.malformed && x->pathCount == y.pathCount;
    for (std::size_t i = 0; same && i < x->pathCount; ++i) {
      same = x->paths[i].packets == y.paths[i].packets && x->paths[i].bytes == y.paths[i].bytes &&
             x->paths[i].lost == y.paths[i].lost;
    }
  } else if (const auto* x = std::get_if<MaxSeqFrame>(&a)) {
    same = x->maxSeq == std::get<MaxSeqFrame>(b).maxSeq;
  }
  return same ? ::testing::AssertionSuccess() : ::testing::AssertionFailure() << "fields differ";
}

// ---- sample frames ----

const Bytes& payload1024() {
  static const Bytes bytes = [] {
    Bytes b(1024);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
    return b;
  }();
  return bytes;
}

const std::string& longReason() {
  static const std::string s(kMaxCloseReasonLen, 'r');
  return s;
}

const std::string& longName() {
  static const std::string s(kMaxHelloNameLen, 'n');
  return s;
}

AckFrame maxRangeAck() {
  AckFrame ack;
  ack.pathId = 3;
  ack.ackDelayUs = 250;
  ack.largestRecvTsNs = 0x1111222233334444;
  ack.bytesReceived = 0x55556666;
  ack.rangeCount = kMaxAckRanges;
  std::uint64_t top = 1'000'000;
  for (std::size_t i = 0; i < kMaxAckRanges; ++i) {
    ack.ranges[i] = {top - i, top};  // ranges of growing length
    top = top - i - 2 - (i % 3);     // gaps of 1..3 missing packets
  }
  return ack;
}

ReportFrame maxPathReport() {
  ReportFrame r;
  r.durationNs = 10'000'000'000;
  r.packets = 1;
  r.bytes = 2;
  r.lost = 3;
  r.late = 4;
  r.outOfOrder = 5;
  r.duplicates = 6;
  r.malformed = ~0ull;
  r.pathCount = kMaxReportPaths;
  for (std::size_t i = 0; i < kMaxReportPaths; ++i) {
    r.paths[i] = {i * 1000 + 1, i * 1'000'000 + 2, i};
  }
  return r;
}

struct Sample {
  std::string name;
  Frame frame;
};

std::vector<Sample> samples() {
  AckFrame oneRange;
  oneRange.pathId = 1;
  oneRange.rangeCount = 1;
  oneRange.ranges[0] = {7, 7};
  AckFrame fromZero;
  fromZero.rangeCount = 2;
  fromZero.ranges[0] = {10, 20};
  fromZero.ranges[1] = {0, 8};  // packet 9 missing; the last range reaches packet 0
  ReportFrame noPaths;
  noPaths.packets = 42;
  return {
      {"padding 1", PaddingFrame{1}},
      {"padding 17", PaddingFrame{17}},
      {"data empty", DataFrame{5, {}}},
      {"data 1024", DataFrame{0x0102030405060708, payload1024()}},
      {"ack one range", oneRange},
      {"ack down to 0", fromZero},
      {"ack 32 ranges", maxRangeAck()},
      {"ping", PingFrame{0xabcdef01}},
      {"pong", PongFrame{9, 0xabcdef01, 0x123456789abcdef0, 4321}},
      {"path active", PathStatusFrame{PathStatus::kActive, 0, 1}},
      {"path standby", PathStatusFrame{PathStatus::kStandby, 2, 0xfffffffe}},
      {"path abandoned", PathStatusFrame{PathStatus::kAbandoned, 0xffff, 7}},
      {"close graceful, empty reason", CloseFrame{true, 0, 1'000'000, {}}},
      {"close aborted",
       CloseFrame{false, static_cast<std::uint16_t>(CloseError::kPathMismatch), 0, "path 1 on eth2"}},
      {"close longest reason", CloseFrame{false, 7, 3, longReason()}},
      {"hello client",
       HelloFrame{HelloRole::kClient, 2, kModeClientSends, 1432, 800'000'000, 10'000, "eth1"}},
      {"hello server, empty name",
       HelloFrame{HelloRole::kServer, 4, kModeClientSends | kModeServerSends, 9000, 0, 0, {}}},
      {"hello longest name",
       HelloFrame{HelloRole::kServer, 1, kModeServerSends, 0, UINT64_MAX, UINT32_MAX, longName()}},
      {"report no paths", noPaths},
      {"report 32 paths", maxPathReport()},
      {"max seq 0", MaxSeqFrame{0}},
      {"max seq largest", MaxSeqFrame{UINT64_MAX}},
      {"hello reliable",
       HelloFrame{HelloRole::kClient, 3, kModeClientSends | kModeReliable, 1432, 0, 0, "eth0"}},
  };
}

// ---- round trips ----

TEST(FramesTest, EveryFrameTypeRoundTrips) {
  for (const Sample& s : samples()) {
    SCOPED_TRACE(s.name);
    const Bytes bytes = encode(s.frame);
    const Exact in(bytes, bytes.size());
    const auto parsed = parseFrame(in.span());
    ASSERT_TRUE(parsed.ok()) << toString(parsed.error);
    EXPECT_EQ(parsed.value.length, bytes.size());
    EXPECT_TRUE(sameFrame(parsed.value.frame, s.frame));
    // Re-encoding what was parsed gives the same bytes.
    EXPECT_EQ(encode(parsed.value.frame), bytes);
  }
}

TEST(FramesTest, SizesMatchTheSpec) {
  EXPECT_EQ(frameSize(DataFrame{0, payload1024()}), 12u + 1024);
  AckFrame ack;
  ack.rangeCount = 1;
  EXPECT_EQ(frameSize(ack), 36u);
  ack.rangeCount = 32;
  EXPECT_EQ(frameSize(ack), 36u + 8 * 31);
  EXPECT_EQ(frameSize(PingFrame{}), 8u);
  EXPECT_EQ(frameSize(PongFrame{}), 20u);
  EXPECT_EQ(frameSize(PathStatusFrame{}), 8u);
  EXPECT_EQ(frameSize(CloseFrame{false, 0, 0, "abc"}), 17u);
  EXPECT_EQ(frameSize(HelloFrame{HelloRole::kClient, 1, 1, 1, 0, 0, "eth0"}), 25u);
  ReportFrame report;
  report.pathCount = 2;
  EXPECT_EQ(frameSize(report), 68u + 48);
  EXPECT_EQ(kDataPacketOverhead, 40u);
}

TEST(FramesTest, ParsedViewsPointIntoTheInput) {
  const Bytes bytes = encode(DataFrame{1, payload1024()});
  const auto parsed = parseFrame(bytes);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(std::get<DataFrame>(parsed.value.frame).data.data(), bytes.data() + kDataFrameHeaderLen);
  const Bytes close = encode(CloseFrame{false, 1, 0, "why"});
  const auto parsedClose = parseFrame(close);
  ASSERT_TRUE(parsedClose.ok());
  EXPECT_EQ(static_cast<const void*>(std::get<CloseFrame>(parsedClose.value.frame).reason.data()),
            static_cast<const void*>(close.data() + kCloseFrameBaseLen));
}

// ---- exact bytes ----

TEST(FramesTest, GoldenDataPacket) {
  const Bytes data = {0xa0, 0xa1, 0xa2};
  Bytes packet(kDataPacketOverhead + data.size());
  ASSERT_TRUE(
      writePacketHeader(
          packet,
          {.flags = 0, .connId = 0x01020304, .pathId = 1, .packetNumber = 5, .sendTsNs = 0x0000000100000002})
          .ok());
  const auto written = writeFrame(std::span(packet).subspan(kPacketHeaderLen), DataFrame{0x0a0b, data});
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written.value, 15u);
  const Bytes expected = {
      'M',  'X',  0x02, 0x00, 0x01, 0x02, 0x03, 0x04,  // magic, version 2, flags, conn_id
      0x00, 0x01, 0x00, 0x00,                          // path_id 1, reserved
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,  // packet_number 5
      0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,  // send_ts_ns
      0x01, 0x00, 0x00, 0x03,                          // DATA, flags 0, length 3
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x0b,  // global_seq
      0xa0, 0xa1, 0xa2,                                // data
  };
  EXPECT_EQ(packet, expected);

  // The hot-path writer gives the same DATA header.
  Bytes hot(kDataFrameHeaderLen);
  const auto header = writeDataFrameHeader(hot, 0x0a0b, 3);
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header.value, kDataFrameHeaderLen);
  EXPECT_EQ(hot, Bytes(expected.begin() + kPacketHeaderLen, expected.begin() + kDataPacketOverhead));
  Bytes shortBuf(kDataFrameHeaderLen - 1);
  EXPECT_EQ(writeDataFrameHeader(shortBuf, 0, 0).error, WireError::kBufferTooSmall);
}

TEST(FramesTest, GoldenAckUsesQuicRangeEncoding) {
  AckFrame ack;
  ack.pathId = 2;
  ack.ackDelayUs = 0x10;
  ack.largestRecvTsNs = 0x20;
  ack.bytesReceived = 0x30;
  ack.rangeCount = 3;
  ack.ranges[0] = {95, 100};  // first_range 5
  ack.ranges[1] = {90, 90};   // 91..94 missing: gap 3, length 0
  ack.ranges[2] = {0, 3};     // 4..89 missing: gap 85, length 3
  const Bytes expected = {
      0x02, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10,  // ACK, range_count 3, path_id 2, ack_delay_us
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 100,   // largest_acked
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,  // largest_recv_ts_ns
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30,  // bytes_received
      0x00, 0x00, 0x00, 0x05,                          // first_range
      0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,  // gap 3, length 0
      0x00, 0x00, 0x00, 85,   0x00, 0x00, 0x00, 0x03,  // gap 85, length 3
  };
  EXPECT_EQ(encode(ack), expected);
  const auto parsed = parseFrame(expected);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(std::get<AckFrame>(parsed.value.frame).largestAcked(), 100u);
  EXPECT_TRUE(sameFrame(parsed.value.frame, ack));
}

// ---- several frames ----

TEST(FramesTest, SeveralFramesInOnePacket) {
  const std::vector<Frame> frames = {
      HelloFrame{HelloRole::kClient, 2, kModeClientSends, 1432, 0, 0, "veth0"},
      PingFrame{77},
      maxRangeAck(),
      CloseFrame{true, 0, 12, {}},
      PaddingFrame{23},
  };
  Bytes packet(512);
  std::size_t at = 0;
  ASSERT_TRUE(writePacketHeader(packet, {.connId = 9}).ok());
  at += kPacketHeaderLen;
  for (const Frame& f : frames) {
    const auto written = writeFrame(std::span(packet).subspan(at), f);
    ASSERT_TRUE(written.ok()) << toString(written.error);
    at += written.value;
  }
  packet.resize(at);

  const Exact in(packet, packet.size());
  ASSERT_TRUE(parsePacketHeader(in.span()).ok());
  FrameReader reader(in.span().subspan(kPacketHeaderLen));
  ParsedFrame2 f;
  std::size_t i = 0;
  while (reader.next(f)) {
    ASSERT_LT(i, frames.size());
    EXPECT_TRUE(sameFrame(f.frame, frames[i])) << "frame " << i;
    ++i;
  }
  EXPECT_EQ(reader.error(), WireError::kNone);
  EXPECT_EQ(i, frames.size());
  EXPECT_EQ(reader.frameCount(), frames.size());
  EXPECT_EQ(reader.offset(), packet.size() - kPacketHeaderLen);
  EXPECT_FALSE(reader.next(f));  // stays at the end
}

TEST(FramesTest, ReaderStopsAtTheFirstBadFrame) {
  Bytes body = encode(PingFrame{1});
  body.push_back(0x42);  // unknown type
  const Bytes more = encode(PingFrame{2});
  body.insert(body.end(), more.begin(), more.end());
  FrameReader reader(body);
  ParsedFrame2 f;
  ASSERT_TRUE(reader.next(f));
  EXPECT_EQ(std::get<PingFrame>(f.frame).pingId, 1u);
  EXPECT_FALSE(reader.next(f));
  EXPECT_EQ(reader.error(), WireError::kUnknownFrame);
  EXPECT_FALSE(reader.next(f));
  EXPECT_EQ(reader.offset(), kPingFrameLen);
}

TEST(FramesTest, AnEmptyBodyIsMalformed) {
  FrameReader reader(std::span<const std::uint8_t>{});
  ParsedFrame2 f;
  EXPECT_FALSE(reader.next(f));
  EXPECT_EQ(reader.error(), WireError::kTruncated);
}

// ---- malformed input ----

TEST(FramesTest, EveryTruncationIsAnError) {
  for (const Sample& s : samples()) {
    if (std::holds_alternative<PaddingFrame>(s.frame)) continue;  // padding runs to the end by definition
    SCOPED_TRACE(s.name);
    const Bytes bytes = encode(s.frame);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      const Exact cut(bytes, n);
      const auto parsed = parseFrame(cut.span());
      ASSERT_FALSE(parsed.ok()) << "parsed when cut to " << n;
      EXPECT_EQ(parsed.error, WireError::kTruncated) << "cut to " << n;
      FrameReader reader(cut.span());
      ParsedFrame2 f;
      EXPECT_FALSE(reader.next(f));
      EXPECT_NE(reader.error(), WireError::kNone);
    }
  }
}

WireError parseError(const Bytes& bytes) {
  const Exact in(bytes, bytes.size());
  return parseFrame(in.span()).error;
}

TEST(FramesTest, LengthsThatLieAreTruncated) {
  Bytes data = encode(DataFrame{1, payload1024()});
  data[2] = 0x04;
  data[3] = 0x01;  // 1025
  EXPECT_EQ(parseError(data), WireError::kTruncated);
  data[2] = 0xff;
  data[3] = 0xff;
  EXPECT_EQ(parseError(data), WireError::kTruncated);

  Bytes close = encode(CloseFrame{false, 1, 0, "abc"});
  close[13] = 4;
  EXPECT_EQ(parseError(close), WireError::kTruncated);
  close[12] = 0xff;
  EXPECT_EQ(parseError(close), WireError::kTruncated);

  Bytes hello = encode(HelloFrame{HelloRole::kClient, 1, 1, 1, 0, 0, "eth0"});
  hello[20] = 5;  // name_len beyond the frame
  EXPECT_EQ(parseError(hello), WireError::kTruncated);

  AckFrame ack = maxRangeAck();
  ack.rangeCount = 4;
  Bytes ackBytes = encode(ack);
  ackBytes[1] = 5;  // one range more than present
  EXPECT_EQ(parseError(ackBytes), WireError::kTruncated);

  ReportFrame report = maxPathReport();
  report.pathCount = 2;
  Bytes reportBytes = encode(report);
  reportBytes[1] = 3;
  EXPECT_EQ(parseError(reportBytes), WireError::kTruncated);
}

TEST(FramesTest, AckRangesBelowZeroAreMalformed) {
  AckFrame ack;
  ack.rangeCount = 1;
  ack.ranges[0] = {0, 5};
  Bytes first = encode(ack);
  first[35] = 6;  // first_range 6 > largest 5
  EXPECT_EQ(parseError(first), WireError::kBadFrame);
  first[32] = 0xff;  // first_range huge
  EXPECT_EQ(parseError(first), WireError::kBadFrame);

  ack.rangeCount = 2;
  ack.ranges[0] = {4, 5};
  ack.ranges[1] = {0, 2};  // gap 0, length 2
  Bytes two = encode(ack);
  ASSERT_EQ(two.size(), 44u);
  EXPECT_EQ(parseError(two), WireError::kNone);
  Bytes gapUnder = two;
  gapUnder[39] = 3;  // next largest = 4 - 3 - 2 < 0
  EXPECT_EQ(parseError(gapUnder), WireError::kBadFrame);
  Bytes gapEdge = two;
  gapEdge[39] = 2;  // next largest = 0, length 2 below it
  EXPECT_EQ(parseError(gapEdge), WireError::kBadFrame);
  gapEdge[43] = 0;  // length 0: range [0, 0] is fine
  EXPECT_EQ(parseError(gapEdge), WireError::kNone);
  Bytes lengthUnder = two;
  lengthUnder[43] = 3;  // smallest = 2 - 3 < 0
  EXPECT_EQ(parseError(lengthUnder), WireError::kBadFrame);
}

TEST(FramesTest, RangeCountOutOfBoundsIsMalformed) {
  Bytes ack = encode(maxRangeAck());
  ack[1] = 0;
  EXPECT_EQ(parseError(ack), WireError::kBadFrame);
  ack[1] = 33;
  ack.resize(ack.size() + 8, 0);  // even with the bytes of a 33rd range present
  EXPECT_EQ(parseError(ack), WireError::kBadFrame);
  ack[1] = 0xff;
  EXPECT_EQ(parseError(ack), WireError::kBadFrame);

  Bytes report = encode(maxPathReport());
  report[1] = 33;
  report.resize(report.size() + 24, 0);
  EXPECT_EQ(parseError(report), WireError::kBadFrame);
}

TEST(FramesTest, NonZeroPaddingIsMalformed) {
  for (std::size_t at = 1; at < 9; ++at) {
    Bytes padding(9, 0);
    padding[at] = 0x01;
    EXPECT_EQ(parseError(padding), WireError::kBadFrame) << at;
  }
  // A frame after padding is padding that is not zero: the packet is malformed.
  Bytes body = {0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
  FrameReader reader(body);
  ParsedFrame2 f;
  EXPECT_FALSE(reader.next(f));
  EXPECT_EQ(reader.error(), WireError::kBadFrame);
}

TEST(FramesTest, UnknownTypesAndEnumValuesAreRejected) {
  for (const int type : {10, 0x10, 0x7f, 0x80, 0xff}) {
    Bytes unknown(40, 0);
    unknown[0] = static_cast<std::uint8_t>(type);
    EXPECT_EQ(parseError(unknown), WireError::kUnknownFrame) << type;
  }
  for (const int status : {0, 4, 0xff}) {
    Bytes ps = encode(PathStatusFrame{PathStatus::kActive, 1, 1});
    ps[1] = static_cast<std::uint8_t>(status);
    EXPECT_EQ(parseError(ps), WireError::kBadFrame) << status;
  }
  Bytes hello = encode(HelloFrame{HelloRole::kClient, 1, 1, 1, 0, 0, "x"});
  hello[1] = 2;
  EXPECT_EQ(parseError(hello), WireError::kBadFrame);
}

TEST(FramesTest, ReservedFieldsAreIgnored) {
  Bytes ping = encode(PingFrame{5});
  ping[1] = 0xff;
  ping[2] = 0xff;
  const auto parsed = parseFrame(ping);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(std::get<PingFrame>(parsed.value.frame).pingId, 5u);
  Bytes close = encode(CloseFrame{true, 0, 1, {}});
  close[1] = 0xff;  // unknown flag bits
  const auto parsedClose = parseFrame(close);
  ASSERT_TRUE(parsedClose.ok());
  EXPECT_TRUE(std::get<CloseFrame>(parsedClose.value.frame).streamComplete);
}

// ---- what cannot be written ----

TEST(FramesTest, WriteRefusesShortBuffers) {
  for (const Sample& s : samples()) {
    SCOPED_TRACE(s.name);
    const std::size_t size = frameSize(s.frame);
    ASSERT_GT(size, 0u);
    Bytes out(size - 1, 0xee);
    EXPECT_EQ(writeFrame(out, s.frame).error, WireError::kBufferTooSmall);
    EXPECT_EQ(out, Bytes(size - 1, 0xee));  // nothing written
  }
}

WireError writeError(const Frame& f) {
  Bytes out(100'000);
  return writeFrame(out, f).error;
}

TEST(FramesTest, WriteRefusesValuesTheWireCannotCarry) {
  EXPECT_EQ(writeError(PaddingFrame{0}), WireError::kBadFrame);
  const Bytes big(kMaxDataLen + 1);
  EXPECT_EQ(writeError(DataFrame{0, big}), WireError::kBadFrame);
  EXPECT_EQ(writeError(DataFrame{0, std::span(big).first(kMaxDataLen)}), WireError::kNone);
  const std::string reason(kMaxCloseReasonLen + 1, 'x');
  EXPECT_EQ(writeError(CloseFrame{false, 1, 0, reason}), WireError::kBadFrame);
  const std::string name(kMaxHelloNameLen + 1, 'x');
  EXPECT_EQ(writeError(HelloFrame{HelloRole::kClient, 1, 1, 1, 0, 0, name}), WireError::kBadFrame);
  EXPECT_EQ(writeError(HelloFrame{static_cast<HelloRole>(2), 1, 1, 1, 0, 0, {}}), WireError::kBadFrame);
  EXPECT_EQ(writeError(PathStatusFrame{static_cast<PathStatus>(0), 1, 1}), WireError::kBadFrame);
  EXPECT_EQ(writeError(PathStatusFrame{static_cast<PathStatus>(4), 1, 1}), WireError::kBadFrame);
  ReportFrame report;
  report.pathCount = kMaxReportPaths + 1;
  EXPECT_EQ(frameSize(report), 0u);
  EXPECT_EQ(writeError(report), WireError::kBadFrame);

  AckFrame ack;
  ack.rangeCount = 0;
  EXPECT_EQ(frameSize(ack), 0u);
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.rangeCount = kMaxAckRanges + 1;
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);

  ack.rangeCount = 1;
  ack.ranges[0] = {6, 5};  // smallest > largest
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.ranges[0] = {0, std::uint64_t{UINT32_MAX} + 1};  // first_range does not fit u32
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.ranges[0] = {1, std::uint64_t{UINT32_MAX} + 1};
  EXPECT_EQ(writeError(ack), WireError::kNone);

  ack.rangeCount = 2;
  ack.ranges[0] = {10, 20};
  ack.ranges[1] = {5, 9};  // adjacent: would be one range
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.ranges[1] = {5, 12};  // overlapping
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.ranges[1] = {30, 40};  // ascending
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.ranges[1] = {8, 7};  // inverted
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.ranges[1] = {0, 8};
  EXPECT_EQ(writeError(ack), WireError::kNone);
  ack.ranges[0] = {0, 0};  // nothing can follow a range that ends at packet 0
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
  ack.ranges[0] = {std::uint64_t{1} << 40, std::uint64_t{1} << 40};
  ack.ranges[1] = {0, 0};  // gap does not fit u32
  EXPECT_EQ(writeError(ack), WireError::kBadFrame);
}

TEST(FramesTest, DataMayAlreadySitAfterTheHeader) {
  Bytes out(kDataFrameHeaderLen + 5, 0);
  for (std::size_t i = 0; i < 5; ++i) out[kDataFrameHeaderLen + i] = static_cast<std::uint8_t>(i + 1);
  const DataFrame f{3, std::span<const std::uint8_t>(out).subspan(kDataFrameHeaderLen)};
  ASSERT_TRUE(writeFrame(out, f).ok());
  const auto parsed = parseFrame(out);
  ASSERT_TRUE(parsed.ok());
  const auto& data = std::get<DataFrame>(parsed.value.frame).data;
  ASSERT_EQ(data.size(), 5u);
  EXPECT_EQ(data[0], 1);
  EXPECT_EQ(data[4], 5);
}

TEST(FramesTest, CloseErrorNames) {
  EXPECT_STREQ(toString(CloseError::kNone), "none");
  EXPECT_STREQ(toString(CloseError::kPathMismatch), "path mismatch");
  EXPECT_STREQ(toString(CloseError::kProtocol), "protocol violation");
  EXPECT_STREQ(toString(static_cast<CloseError>(99)), "unknown");
  EXPECT_STREQ(toString(FrameType::kAck), "ACK");
  EXPECT_STREQ(toString(FrameType::kMaxSeq), "MAX_SEQ");
  EXPECT_STREQ(toString(WireError::kUnknownFrame), "unknown frame type");
  EXPECT_STREQ(toString(WireError::kBadFrame), "malformed frame");
}

// ---- fuzz ----

// Whatever the bytes, parsing returns (no crash, no read outside the span under
// ASan) and anything it accepts lies inside the input and re-encodes to the same size.
void checkParsedBody(std::span<const std::uint8_t> body) {
  FrameReader reader(body);
  ParsedFrame2 f;
  std::size_t consumed = 0;
  while (reader.next(f)) {
    ASSERT_GT(f.length, 0u);
    consumed += f.length;
    ASSERT_LE(consumed, body.size());
    if (const auto* d = std::get_if<DataFrame>(&f.frame)) {
      ASSERT_GE(d->data.data(), body.data());
      ASSERT_LE(d->data.data() + d->data.size(), body.data() + body.size());
    }
    if (const auto* a = std::get_if<AckFrame>(&f.frame)) {
      for (std::size_t i = 0; i < a->rangeCount; ++i) {
        ASSERT_LE(a->ranges[i].smallest, a->ranges[i].largest);
        if (i > 0) {
          ASSERT_LT(a->ranges[i].largest + 1, a->ranges[i - 1].smallest);
        }
      }
    }
    ASSERT_EQ(frameSize(f.frame), f.length);
  }
  ASSERT_EQ(reader.error() == WireError::kNone, consumed == body.size() && consumed > 0);
}

TEST(FramesFuzzTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(0x6d707864);  // fixed seed: failures reproduce
  std::size_t accepted = 0;
  for (int iter = 0; iter < 200'000; ++iter) {
    const std::size_t n = rng() % 300;
    Bytes bytes(n);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    if (n > 0 && rng() % 2 == 0) bytes[0] %= 10;  // half the time a known type
    const Exact in(bytes, n);
    (void)parsePacketHeader(in.span());
    (void)parseInvariants(in.span());
    (void)parseVersionNegotiation(in.span());
    accepted += parseFrame(in.span()).ok() ? 1 : 0;
    checkParsedBody(in.span());
    if (::testing::Test::HasFatalFailure()) FAIL() << "iteration " << iter;
  }
  EXPECT_GT(accepted, 0u);  // the loop reaches the parsers' success paths too
}

TEST(FramesFuzzTest, MutatedValidPacketsNeverCrash) {
  std::mt19937_64 rng(0x32);
  std::vector<Bytes> seeds;
  for (const Sample& s : samples()) seeds.push_back(encode(s.frame));
  for (int iter = 0; iter < 200'000; ++iter) {
    Bytes body = seeds[rng() % seeds.size()];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      body[rng() % body.size()] = static_cast<std::uint8_t>(rng());
    }
    if (rng() % 4 == 0) body.resize(rng() % (body.size() + 1));
    const Exact in(body, body.size());
    checkParsedBody(in.span());
    if (::testing::Test::HasFatalFailure()) FAIL() << "iteration " << iter;
  }
}

}  // namespace
}  // namespace mpxdp::wire
