// Fuzz target: the v2 packet header and frames (src/wire/packet.h, frames.h).
// Every input is used three ways:
//  1. as a UDP payload: parseInvariants, parsePacketHeader and
//     parseVersionNegotiation against the documented layout; a parsed header
//     is written back and must give the same bytes (reserved ones aside);
//  2. as a frame body (after the packet header when one parses, else the
//     whole input) read with FrameReader: every frame's length is checked
//     against the layout, the frame is written again (writeFrame) and must
//     give the input's bytes (ignored fields aside), parse again to an equal
//     frame and encode the same way a second time;
//  3. as the fields of one frame to write: writeFrame must refuse exactly the
//     frames the format cannot carry, and what it writes must parse back equal.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "frames.h"
#include "fuzz_support.h"
#include "packet.h"

namespace mpxdp::fuzz {
namespace {

using wire::WireError;

std::uint16_t load16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::uint32_t load32(const std::uint8_t* p) { return std::uint32_t{load16(p)} << 16 | load16(p + 2); }

// ---- 1. packet level ----

void checkPacketLevel(std::span<const std::uint8_t> in) {
  const auto inv = wire::parseInvariants(in);
  const bool magic = in.size() >= 2 && load16(in.data()) == wire::kMagic;
  if (in.size() < wire::kInvariantsLen) {
    FUZZ_CHECK(inv.error == WireError::kTruncated);
  } else if (!magic) {
    FUZZ_CHECK(inv.error == WireError::kBadMagic);
  } else {
    FUZZ_CHECK(inv.ok() && inv.value.version == in[2] && inv.value.flags == in[3] &&
               inv.value.connId == load32(in.data() + 4));
  }

  const auto header = wire::parsePacketHeader(in);
  if (!inv.ok()) {
    FUZZ_CHECK(header.error == inv.error);
  } else if (inv.value.version != wire::kWireVersion) {
    FUZZ_CHECK(header.error == WireError::kBadVersion);
  } else if (in.size() < wire::kPacketHeaderLen) {
    FUZZ_CHECK(header.error == WireError::kTruncated);
  } else {
    FUZZ_CHECK(header.ok());
    std::array<std::uint8_t, wire::kPacketHeaderLen> out{};
    FUZZ_CHECK(wire::writePacketHeader(out, header.value).ok());
    for (std::size_t i = 0; i < out.size(); ++i) {
      const bool reserved = i == 10 || i == 11;  // written 0, ignored
      FUZZ_CHECK(out[i] == (reserved ? 0 : in[i]));
    }
    std::vector<std::uint8_t> tooShort(wire::kPacketHeaderLen - 1);
    FUZZ_CHECK(wire::writePacketHeader(tooShort, header.value).error == WireError::kBufferTooSmall);
  }

  const auto list = wire::parseVersionNegotiation(in);
  if (!inv.ok()) {
    FUZZ_CHECK(list.error == inv.error);
  } else if (inv.value.version != wire::kVersionNegotiation) {
    FUZZ_CHECK(list.error == WireError::kBadVersion);
  } else if (in.size() <= wire::kInvariantsLen) {
    FUZZ_CHECK(list.error == WireError::kTruncated);
  } else if (const std::uint8_t count = in[wire::kInvariantsLen]; count == 0 || count > 16) {
    FUZZ_CHECK(list.error == WireError::kBadFrame);
  } else if (in.size() < wire::kInvariantsLen + 1 + count) {
    FUZZ_CHECK(list.error == WireError::kTruncated);
  } else {
    FUZZ_CHECK(list.ok() && list.value.count == count);
    for (std::size_t i = 0; i < count; ++i)
      FUZZ_CHECK(list.value.versions[i] == in[wire::kInvariantsLen + 1 + i]);
  }
}

// ---- 2. frames read from the input ----

// The frame's size from its layout (docs/wire-format.md), or nullopt when the
// bytes at hand do not tell it yet (too short to hold the length field).
std::optional<std::size_t> layoutSize(std::span<const std::uint8_t> f) {
  const auto need = [&](std::size_t n, std::size_t size) -> std::optional<std::size_t> {
    if (f.size() < n) return std::nullopt;
    return size;
  };
  switch (f[0]) {
    case 0:
      return f.size();
    case 1:
      return need(4, f.size() >= 4 ? 12 + std::size_t{load16(f.data() + 2)} : 0);
    case 2:
      return need(2, f.size() >= 2 ? 36 + 8 * (std::size_t{f[1]} - 1) : 0);
    case 3:
      return 8;
    case 4:
      return 20;
    case 5:
      return 8;
    case 6:
      return need(14, f.size() >= 14 ? 14 + std::size_t{load16(f.data() + 12)} : 0);
    case 7:
      return need(21, f.size() >= 21 ? 21 + std::size_t{f[20]} : 0);
    case 8:
      return need(2, f.size() >= 2 ? 68 + 24 * std::size_t{f[1]} : 0);
    case 9:
      return 12;
    default:
      return std::nullopt;
  }
}

// Bytes the parser ignores (reserved fields, CLOSE's unknown flag bits): the
// writer sends 0 there. Returns the mask of bits that must round-trip.
std::uint8_t keptBits(std::uint8_t type, std::size_t offset) {
  switch (type) {
    case 1:  // DATA: flags
      return offset == 1 ? 0 : 0xff;
    case 3:  // PING: reserved 1..3
      return offset >= 1 && offset <= 3 ? 0 : 0xff;
    case 4:  // PONG: reserved 1
      return offset == 1 ? 0 : 0xff;
    case 6:  // CLOSE: flags bit 0 only
      return offset == 1 ? 0x01 : 0xff;
    case 7:  // HELLO: every byte (5 is the cipher of a keyed connection)
      return 0xff;
    case 8:  // REPORT: reserved 2..3
      return offset == 2 || offset == 3 ? 0 : 0xff;
    case 9:  // MAX_SEQ: reserved 1..3
      return offset >= 1 && offset <= 3 ? 0 : 0xff;
    default:
      return 0xff;
  }
}

bool sameBytes(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

bool sameRanges(const wire::AckFrame& a, const wire::AckFrame& b) {
  for (std::size_t i = 0; i < a.rangeCount; ++i) {
    if (a.ranges[i].smallest != b.ranges[i].smallest || a.ranges[i].largest != b.ranges[i].largest)
      return false;
  }
  return true;
}

bool sameFrame(const wire::Frame& x, const wire::Frame& y) {
  if (x.index() != y.index()) return false;
  return std::visit(
      [&y](const auto& a) -> bool {
        using T = std::decay_t<decltype(a)>;
        const T& b = std::get<T>(y);
        if constexpr (std::is_same_v<T, wire::PaddingFrame>) {
          return a.length == b.length;
        } else if constexpr (std::is_same_v<T, wire::DataFrame>) {
          return a.globalSeq == b.globalSeq && sameBytes(a.data, b.data);
        } else if constexpr (std::is_same_v<T, wire::AckFrame>) {
          return a.pathId == b.pathId && a.ackDelayUs == b.ackDelayUs &&
                 a.largestRecvTsNs == b.largestRecvTsNs && a.bytesReceived == b.bytesReceived &&
                 a.rangeCount == b.rangeCount && sameRanges(a, b);
        } else if constexpr (std::is_same_v<T, wire::PingFrame>) {
          return a.pingId == b.pingId;
        } else if constexpr (std::is_same_v<T, wire::PongFrame>) {
          return a.pathId == b.pathId && a.pingId == b.pingId && a.pingSendTsNs == b.pingSendTsNs &&
                 a.holdNs == b.holdNs;
        } else if constexpr (std::is_same_v<T, wire::PathStatusFrame>) {
          return a.status == b.status && a.pathId == b.pathId && a.statusSeq == b.statusSeq;
        } else if constexpr (std::is_same_v<T, wire::CloseFrame>) {
          return a.streamComplete == b.streamComplete && a.errorCode == b.errorCode &&
                 a.finalSeq == b.finalSeq && a.reason == b.reason;
        } else if constexpr (std::is_same_v<T, wire::HelloFrame>) {
          return a.role == b.role && a.pathCount == b.pathCount && a.mode == b.mode &&
                 a.maxPayload == b.maxPayload && a.rateBps == b.rateBps && a.durationMs == b.durationMs &&
                 a.name == b.name && a.cipher == b.cipher;
        } else if constexpr (std::is_same_v<T, wire::ReportFrame>) {
          if (a.durationNs != b.durationNs || a.packets != b.packets || a.bytes != b.bytes ||
              a.lost != b.lost || a.late != b.late || a.outOfOrder != b.outOfOrder ||
              a.duplicates != b.duplicates || a.malformed != b.malformed || a.pathCount != b.pathCount) {
            return false;
          }
          for (std::size_t i = 0; i < a.pathCount; ++i) {
            if (a.paths[i].packets != b.paths[i].packets || a.paths[i].bytes != b.paths[i].bytes ||
                a.paths[i].lost != b.paths[i].lost) {
              return false;
            }
          }
          return true;
        } else {
          static_assert(std::is_same_v<T, wire::MaxSeqFrame>);
          return a.maxSeq == b.maxSeq;
        }
      },
      x);
}

// Writes f into a buffer of exactly its size; it must parse back equal.
std::vector<std::uint8_t> writeAndReparse(const wire::Frame& f) {
  const std::size_t size = wire::frameSize(f);
  FUZZ_CHECK(size > 0);
  std::vector<std::uint8_t> out(size);
  const auto written = wire::writeFrame(out, f);
  FUZZ_CHECK(written.ok() && written.value == size);
  const auto reparsed = wire::parseFrame(out);
  FUZZ_CHECK(reparsed.ok() && reparsed.value.length == size);
  FUZZ_CHECK(sameFrame(reparsed.value.frame, f));
  std::vector<std::uint8_t> tooShort(size - 1);
  FUZZ_CHECK(wire::writeFrame(tooShort, f).error == WireError::kBufferTooSmall);
  return out;
}

void checkFrameRoundTrip(const wire::ParsedFrame2& parsed, std::span<const std::uint8_t> in) {
  const std::uint8_t type = in[0];
  FUZZ_CHECK(parsed.frame.index() == type);  // the variant follows FrameType's order
  const std::optional<std::size_t> size = layoutSize(in);
  FUZZ_CHECK(size && *size == parsed.length && parsed.length <= in.size());
  FUZZ_CHECK(wire::frameSize(parsed.frame) == parsed.length);

  const std::vector<std::uint8_t> out = writeAndReparse(parsed.frame);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::uint8_t kept = keptBits(type, i);
    FUZZ_CHECK((out[i] & ~kept) == 0);
    FUZZ_CHECK((out[i] & kept) == (in[i] & kept));
  }
  // The canonical encoding is stable: parse(out) writes out again.
  const auto again = wire::parseFrame(out);
  FUZZ_CHECK(again.ok());
  std::vector<std::uint8_t> out2(out.size());
  FUZZ_CHECK(wire::writeFrame(out2, again.value.frame).ok() && out2 == out);

  if (const auto* data = std::get_if<wire::DataFrame>(&parsed.frame)) {
    // The data already in place at out + 12 (the hot path): no copy, same bytes.
    std::vector<std::uint8_t> inPlace(out.size());
    if (!data->data.empty())
      std::memcpy(inPlace.data() + wire::kDataFrameHeaderLen, data->data.data(), data->data.size());
    wire::DataFrame placed{data->globalSeq, std::span(inPlace).subspan(wire::kDataFrameHeaderLen)};
    FUZZ_CHECK(wire::writeFrame(inPlace, placed).ok() && inPlace == out);
    std::array<std::uint8_t, wire::kDataFrameHeaderLen> header{};
    FUZZ_CHECK(
        wire::writeDataFrameHeader(header, data->globalSeq, static_cast<std::uint16_t>(data->data.size()))
            .ok());
    FUZZ_CHECK(std::memcmp(header.data(), out.data(), header.size()) == 0);
  }
}

void checkFrames(std::span<const std::uint8_t> body) {
  wire::FrameReader reader(body);
  wire::ParsedFrame2 parsed;
  std::size_t offset = 0;
  std::size_t count = 0;
  bool padding = false;
  std::vector<std::uint8_t> rewritten;
  while (reader.next(parsed)) {
    FUZZ_CHECK(!padding);  // PADDING is the last frame
    FUZZ_CHECK(parsed.length >= 1 && parsed.length <= body.size() - offset);
    const std::span<const std::uint8_t> frame = body.subspan(offset);
    checkFrameRoundTrip(parsed, frame);
    padding = std::holds_alternative<wire::PaddingFrame>(parsed.frame);
    const std::size_t at = rewritten.size();
    rewritten.resize(at + parsed.length);
    FUZZ_CHECK(wire::writeFrame(std::span(rewritten).subspan(at), parsed.frame).ok());
    offset += parsed.length;
    ++count;
    FUZZ_CHECK(reader.offset() == offset && reader.frameCount() == count);
  }
  const WireError error = reader.error();
  FUZZ_CHECK(!reader.next(parsed) && reader.error() == error);  // stays at the end
  if (error == WireError::kNone) {
    FUZZ_CHECK(offset == body.size() && count > 0);
    // The written frames read back as the same sequence.
    wire::FrameReader again(rewritten);
    wire::ParsedFrame2 frame;
    std::size_t n = 0;
    while (again.next(frame)) ++n;
    FUZZ_CHECK(again.error() == WireError::kNone && n == count);
    return;
  }
  FUZZ_CHECK(offset == reader.offset());
  if (offset == body.size()) {
    FUZZ_CHECK(count == 0 && error == WireError::kTruncated);  // an empty body
    return;
  }
  const std::span<const std::uint8_t> rest = body.subspan(offset);
  const std::optional<std::size_t> size = layoutSize(rest);
  if (rest[0] > 9) {
    FUZZ_CHECK(error == WireError::kUnknownFrame);
  } else if (size && *size > rest.size()) {
    // Truncated, unless a field that decides the size is itself malformed.
    const bool badCount = (rest[0] == 2 && (rest[1] == 0 || rest[1] > 32)) || (rest[0] == 8 && rest[1] > 32);
    FUZZ_CHECK(error == (badCount ? WireError::kBadFrame : WireError::kTruncated));
  } else if (!size) {
    FUZZ_CHECK(error == WireError::kTruncated);
  } else {
    FUZZ_CHECK(error == WireError::kBadFrame);
  }
}

// ---- 3. frames built from the input ----

// Can an ACK with these ranges be encoded (docs/wire-format.md)?
bool ackEncodable(const wire::AckFrame& f) {
  if (f.rangeCount == 0 || f.rangeCount > wire::kMaxAckRanges) return false;
  const wire::AckRange& first = f.ranges[0];
  if (first.largest < first.smallest || first.largest - first.smallest > UINT32_MAX) return false;
  for (std::size_t i = 1; i < f.rangeCount; ++i) {
    const wire::AckRange& prev = f.ranges[i - 1];
    const wire::AckRange& r = f.ranges[i];
    if (r.largest < r.smallest || r.largest - r.smallest > UINT32_MAX) return false;
    // Below the previous range with at least one number missing between.
    if (prev.smallest < 2 || r.largest > prev.smallest - 2) return false;
    if (prev.smallest - 2 - r.largest > UINT32_MAX) return false;
  }
  return true;
}

std::string_view text(ByteReader& r, std::size_t n) {
  const auto bytes = r.bytes(n);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

void checkBuiltFrame(std::span<const std::uint8_t> in) {
  ByteReader r(in);
  const std::uint8_t type = r.u8();
  wire::Frame f;
  bool encodable = true;
  std::vector<std::uint8_t> longName;
  switch (type % 10) {
    case 0: {
      const std::size_t length = r.u8() % 64;
      f = wire::PaddingFrame{length};
      encodable = length > 0;
      break;
    }
    case 1: {
      wire::DataFrame d;
      d.globalSeq = r.u64();
      d.data = r.bytes(r.u16() % 512);
      f = d;
      break;
    }
    case 2: {
      wire::AckFrame a;
      a.rangeCount = static_cast<std::uint8_t>(r.u8() % 34);
      a.pathId = r.u16();
      a.ackDelayUs = r.u32();
      a.largestRecvTsNs = r.u64();
      a.bytesReceived = r.u64();
      // Mostly ranges built downwards by small steps (valid, or just off), else raw values.
      const bool raw = (r.u8() & 7) == 0;
      std::uint64_t top = r.u64();
      for (std::size_t i = 0; i < std::min<std::size_t>(a.rangeCount, wire::kMaxAckRanges); ++i) {
        if (raw) {
          a.ranges[i] = {r.u64(), r.u64()};
          continue;
        }
        const std::uint64_t length = r.u8();
        const std::uint64_t gap = r.u8();
        a.ranges[i].largest = top;
        a.ranges[i].smallest = top - length;  // may wrap: then not encodable
        top = a.ranges[i].smallest - gap;     // gap 0 or 1: adjacent or overlapping
      }
      encodable = ackEncodable(a);
      f = a;
      break;
    }
    case 3:
      f = wire::PingFrame{r.u32()};
      break;
    case 4: {
      wire::PongFrame p;
      p.pathId = r.u16();
      p.pingId = r.u32();
      p.pingSendTsNs = r.u64();
      p.holdNs = r.u32();
      f = p;
      break;
    }
    case 5: {
      const std::uint8_t status = r.u8() % 5;
      f = wire::PathStatusFrame{static_cast<wire::PathStatus>(status), r.u16(), r.u32()};
      encodable = status >= 1 && status <= 3;
      break;
    }
    case 6: {
      wire::CloseFrame c;
      c.streamComplete = r.flag();
      c.errorCode = r.u16();
      c.finalSeq = r.u64();
      c.reason = text(r, r.u16() % 300);
      f = c;
      break;
    }
    case 7: {
      wire::HelloFrame h;
      const std::uint8_t role = r.u8() % 3;
      h.role = static_cast<wire::HelloRole>(role);
      h.pathCount = r.u16();
      h.mode = r.u8();
      h.maxPayload = r.u16();
      h.rateBps = r.u64();
      h.durationMs = r.u32();
      h.cipher = r.u8();
      const std::size_t nameLen = r.u16() % 300;
      h.name = text(r, nameLen);
      if ((type & 0x80) != 0) {  // a name longer than the format carries
        longName.assign(nameLen + 256, 'n');
        h.name = {reinterpret_cast<const char*>(longName.data()), longName.size()};
      }
      encodable = role <= 1 && h.name.size() <= wire::kMaxHelloNameLen;
      f = h;
      break;
    }
    case 8: {
      wire::ReportFrame rep;
      rep.pathCount = static_cast<std::uint8_t>(r.u8() % 35);
      rep.durationNs = r.u64();
      rep.packets = r.u64();
      rep.bytes = r.u64();
      rep.lost = r.u64();
      rep.late = r.u64();
      rep.outOfOrder = r.u64();
      rep.duplicates = r.u64();
      rep.malformed = r.u64();
      for (std::size_t i = 0; i < std::min<std::size_t>(rep.pathCount, wire::kMaxReportPaths); ++i) {
        rep.paths[i] = {r.u64(), r.u64(), r.u64()};
      }
      encodable = rep.pathCount <= wire::kMaxReportPaths;
      f = rep;
      break;
    }
    default:
      f = wire::MaxSeqFrame{r.u64()};
      break;
  }
  if (encodable) {
    writeAndReparse(f);
    return;
  }
  // Refused whatever the room.
  std::vector<std::uint8_t> out(4096);
  FUZZ_CHECK(wire::writeFrame(out, f).error == WireError::kBadFrame);
}

}  // namespace
}  // namespace mpxdp::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  mpxdp::fuzz::checkPacketLevel(in);
  const bool packet = mpxdp::wire::parsePacketHeader(in).ok();
  mpxdp::fuzz::checkFrames(packet ? in.subspan(mpxdp::wire::kPacketHeaderLen) : in);
  mpxdp::fuzz::checkBuiltFrame(in);
  return 0;
}
