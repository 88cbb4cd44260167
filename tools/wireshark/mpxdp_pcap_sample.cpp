// Writes pcap files of mpxdp v2 packets built with the real codec
// (mpxdp::wire) and JSON files with the field values the dissector
// (tools/wireshark/mpxdp.lua) must show for them:
//
//   mpxdp_pcap_sample DIR
//     DIR/sample.pcap, DIR/sample.json: valid packets, every frame type, a
//       multi-frame packet, version negotiation, IPv6, a VLAN tag and a port
//       other than 47000 (heuristic registration).
//     DIR/malformed.pcap, DIR/malformed.json: one defect per packet, each
//       rejected by the codec (its WireError is recorded) and expected to
//       carry one mpxdp expert error.
//
// The pcap is the classic format (24-byte global header, 16-byte record
// headers, link type Ethernet), written here to need no libpcap.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "codec.h"
#include "frames.h"
#include "packet.h"

namespace {

using namespace mpxdp;
using wire::Frame;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kConnId = 0x1234abcd;
constexpr std::uint16_t kPort = 47000;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "mpxdp_pcap_sample: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T check(wire::WireResult<T> r, const char* what) {
  if (!r.ok()) die(std::string(what) + ": " + wire::toString(r.error));
  return r.value;
}

std::string hex(std::uint64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", width, static_cast<unsigned long long>(v));
  return buf;
}

std::string hexBytes(std::span<const std::uint8_t> bytes) {
  std::string s;
  char buf[3];
  for (auto b : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", b);
    s += buf;
  }
  return s;
}

// Field values in the order tshark lists them (tree order), as `-T fields` prints them.
using Fields = std::map<std::string, std::vector<std::string>>;

void add(Fields& f, const std::string& name, const std::string& value) { f[name].push_back(value); }
template <typename T>
requires std::is_integral_v<T>
void add(Fields& f, const std::string& name, T value) { f[name].push_back(std::to_string(value)); }
void addBool(Fields& f, const std::string& name, bool value) { f[name].push_back(value ? "1" : "0"); }

void expectHeader(Fields& f, const wire::PacketHeader& h) {
  add(f, "mpxdp.magic", hex(wire::kMagic, 4));
  add(f, "mpxdp.version", wire::kWireVersion);
  add(f, "mpxdp.flags", hex(h.flags, 2));
  addBool(f, "mpxdp.flags.protected", (h.flags & MPXDP_HDR_FLAG_PROTECTED) != 0);
  addBool(f, "mpxdp.flags.handshake", (h.flags & MPXDP_HDR_FLAG_HANDSHAKE) != 0);
  addBool(f, "mpxdp.flags.key_phase", (h.flags & MPXDP_HDR_FLAG_KEY_PHASE) != 0);
  add(f, "mpxdp.conn_id", h.connId);
  add(f, "mpxdp.path_id", h.pathId);
  add(f, "mpxdp.reserved", hex(0, 4));
  add(f, "mpxdp.packet_number", h.packetNumber);
  add(f, "mpxdp.send_ts", h.sendTsNs);
}

void expectFrame(Fields& f, const Frame& frame) {
  add(f, "mpxdp.frame.type", static_cast<unsigned>(frame.index()));
  add(f, "mpxdp.frame.length", wire::frameSize(frame));
  std::visit(Overloaded{
                 [&](const wire::PaddingFrame& p) { add(f, "mpxdp.padding.length", p.length); },
                 [&](const wire::DataFrame& d) {
                   add(f, "mpxdp.data.flags", hex(0, 2));
                   add(f, "mpxdp.data.length", d.data.size());
                   add(f, "mpxdp.data.global_seq", d.globalSeq);
                   if (!d.data.empty()) add(f, "mpxdp.data.payload", hexBytes(d.data));
                 },
                 [&](const wire::AckFrame& a) {
                   add(f, "mpxdp.ack.range_count", a.rangeCount);
                   add(f, "mpxdp.ack.path_id", a.pathId);
                   add(f, "mpxdp.ack.delay_us", a.ackDelayUs);
                   add(f, "mpxdp.ack.largest", a.largestAcked());
                   add(f, "mpxdp.ack.largest_recv_ts", a.largestRecvTsNs);
                   add(f, "mpxdp.ack.bytes_received", a.bytesReceived);
                   add(f, "mpxdp.ack.first_range", a.ranges[0].largest - a.ranges[0].smallest);
                   for (std::size_t i = 0; i < a.rangeCount; ++i) {
                     const auto& r = a.ranges[i];
                     if (i > 0) {
                       // RFC 9000 19.3.1: gap + 1 packets missing, length = largest - smallest.
                       add(f, "mpxdp.ack.gap", a.ranges[i - 1].smallest - r.largest - 2);
                       add(f, "mpxdp.ack.range_length", r.largest - r.smallest);
                     }
                     add(f, "mpxdp.ack.range.largest", r.largest);
                     add(f, "mpxdp.ack.range.smallest", r.smallest);
                   }
                 },
                 [&](const wire::PingFrame& p) {
                   add(f, "mpxdp.ping.reserved", hex(0, 6));
                   add(f, "mpxdp.ping.id", p.pingId);
                 },
                 [&](const wire::PongFrame& p) {
                   add(f, "mpxdp.pong.reserved", hex(0, 2));
                   add(f, "mpxdp.pong.path_id", p.pathId);
                   add(f, "mpxdp.pong.ping_id", p.pingId);
                   add(f, "mpxdp.pong.ping_send_ts", p.pingSendTsNs);
                   add(f, "mpxdp.pong.hold_ns", p.holdNs);
                 },
                 [&](const wire::PathStatusFrame& p) {
                   add(f, "mpxdp.path_status.status", static_cast<unsigned>(p.status));
                   add(f, "mpxdp.path_status.path_id", p.pathId);
                   add(f, "mpxdp.path_status.seq", p.statusSeq);
                 },
                 [&](const wire::CloseFrame& c) {
                   add(f, "mpxdp.close.flags", hex(c.streamComplete ? 1 : 0, 2));
                   addBool(f, "mpxdp.close.stream_complete", c.streamComplete);
                   add(f, "mpxdp.close.error_code", c.errorCode);
                   add(f, "mpxdp.close.final_seq", c.finalSeq);
                   add(f, "mpxdp.close.reason_len", c.reason.size());
                   if (!c.reason.empty()) add(f, "mpxdp.close.reason", std::string(c.reason));
                 },
                 [&](const wire::HelloFrame& h) {
                   add(f, "mpxdp.hello.role", static_cast<unsigned>(h.role));
                   add(f, "mpxdp.hello.path_count", h.pathCount);
                   add(f, "mpxdp.hello.mode", hex(h.mode, 2));
                   addBool(f, "mpxdp.hello.mode.client_sends", (h.mode & wire::kModeClientSends) != 0);
                   addBool(f, "mpxdp.hello.mode.server_sends", (h.mode & wire::kModeServerSends) != 0);
                   addBool(f, "mpxdp.hello.mode.reliable", (h.mode & wire::kModeReliable) != 0);
                   add(f, "mpxdp.hello.cipher", static_cast<unsigned>(h.cipher));
                   add(f, "mpxdp.hello.max_payload", h.maxPayload);
                   add(f, "mpxdp.hello.rate_bps", h.rateBps);
                   add(f, "mpxdp.hello.duration_ms", h.durationMs);
                   add(f, "mpxdp.hello.name_len", h.name.size());
                   if (!h.name.empty()) add(f, "mpxdp.hello.name", std::string(h.name));
                 },
                 [&](const wire::MaxSeqFrame& m) {
                   add(f, "mpxdp.max_seq.reserved", hex(0, 6));
                   add(f, "mpxdp.max_seq.max_seq", m.maxSeq);
                 },
                 [&](const wire::ReportFrame& r) {
                   add(f, "mpxdp.report.path_count", r.pathCount);
                   add(f, "mpxdp.report.reserved", hex(0, 4));
                   add(f, "mpxdp.report.duration_ns", r.durationNs);
                   add(f, "mpxdp.report.packets", r.packets);
                   add(f, "mpxdp.report.bytes", r.bytes);
                   add(f, "mpxdp.report.lost", r.lost);
                   add(f, "mpxdp.report.late", r.late);
                   add(f, "mpxdp.report.out_of_order", r.outOfOrder);
                   add(f, "mpxdp.report.duplicates", r.duplicates);
                   add(f, "mpxdp.report.malformed", r.malformed);
                   for (std::size_t i = 0; i < r.pathCount; ++i) {
                     add(f, "mpxdp.report.path.packets", r.paths[i].packets);
                     add(f, "mpxdp.report.path.bytes", r.paths[i].bytes);
                     add(f, "mpxdp.report.path.lost", r.paths[i].lost);
                   }
                 },
             },
             frame);
}

wire::OuterAddressing ipv4Link(std::uint16_t srcPort, std::uint16_t dstPort) {
  wire::OuterAddressing a;
  a.srcMac = *MacAddress::parse("02:00:00:00:00:01");
  a.dstMac = *MacAddress::parse("02:00:00:00:00:02");
  a.srcIp = *IpAddress::parse("10.77.0.1");
  a.dstIp = *IpAddress::parse("10.77.0.2");
  a.srcPort = srcPort;
  a.dstPort = dstPort;
  return a;
}

wire::OuterAddressing ipv6Link() {
  wire::OuterAddressing a = ipv4Link(47001, kPort);
  a.srcIp = *IpAddress::parse("fd00:77::1");
  a.dstIp = *IpAddress::parse("fd00:77::2");
  return a;
}

// UDP payload: packet header + frames, written by the codec; checks that the
// codec itself reads it back without error.
Bytes payload(const wire::PacketHeader& h, const std::vector<Frame>& frames) {
  Bytes p(65000);
  std::size_t off = check(wire::writePacketHeader(p, h), "writePacketHeader");
  for (const auto& frame : frames) {
    off += check(wire::writeFrame(std::span(p).subspan(off), frame), "writeFrame");
  }
  p.resize(off);
  check(wire::parsePacketHeader(p), "parsePacketHeader");
  wire::FrameReader reader(std::span<const std::uint8_t>(p).subspan(wire::kPacketHeaderLen));
  wire::ParsedFrame2 parsed;
  while (reader.next(parsed)) {
  }
  if (reader.error() != wire::WireError::kNone || reader.frameCount() != frames.size()) {
    die(std::string("codec does not read back its own packet: ") + wire::toString(reader.error()));
  }
  return p;
}

// Ethernet frame: outer headers from encodeOuter, or from the template when given one.
Bytes ethernet(const wire::OuterAddressing& a, const Bytes& udpPayload,
               const wire::OuterTemplate* tmpl = nullptr) {
  const std::size_t outer = wire::outerHeaderLength(a);
  Bytes frame(outer + udpPayload.size());
  std::copy(udpPayload.begin(), udpPayload.end(), frame.begin() + static_cast<std::ptrdiff_t>(outer));
  if (tmpl != nullptr) {
    check(tmpl->write(frame, udpPayload.size(), true), "OuterTemplate::write");
  } else {
    check(wire::encodeOuter(frame, a, udpPayload.size(), true), "encodeOuter");
  }
  return frame;
}

class PcapWriter {
 public:
  explicit PcapWriter(const std::string& path) : out_(path, std::ios::binary) {
    if (!out_) die("cannot write " + path);
    // Classic pcap, microsecond timestamps, written in host order (the magic tells readers which).
    put32(0xa1b2c3d4);
    put16(2);
    put16(4);
    put32(0);       // thiszone
    put32(0);       // sigfigs
    put32(262144);  // snaplen
    put32(1);       // LINKTYPE_ETHERNET
  }
  void write(const Bytes& frame) {
    ++count_;
    put32(1'700'000'000 + count_);  // one packet per second, deterministic
    put32(0);
    put32(static_cast<std::uint32_t>(frame.size()));
    put32(static_cast<std::uint32_t>(frame.size()));
    out_.write(reinterpret_cast<const char*>(frame.data()), static_cast<std::streamsize>(frame.size()));
    if (!out_) die("write failed");
  }
  std::uint32_t count() const { return count_; }

 private:
  void put16(std::uint16_t v) { out_.write(reinterpret_cast<const char*>(&v), 2); }
  void put32(std::uint32_t v) { out_.write(reinterpret_cast<const char*>(&v), 4); }
  std::ofstream out_;
  std::uint32_t count_ = 0;
};

struct Sample {
  PcapWriter pcap;
  nlohmann::json packets = nlohmann::json::array();

  void addValid(const std::string& description, const Bytes& frame, Fields fields) {
    pcap.write(frame);
    packets.push_back({{"number", pcap.count()}, {"description", description}, {"fields", fields}});
  }
  void addMalformed(const std::string& description, const Bytes& frame, wire::WireError codecError,
                    const std::string& expert) {
    pcap.write(frame);
    packets.push_back({{"number", pcap.count()},
                       {"description", description},
                       {"codec_error", wire::toString(codecError)},
                       {"expert", expert}});
  }
};

wire::PacketHeader header(std::uint16_t path, std::uint64_t pn) {
  return {.flags = 0,
          .connId = kConnId,
          .pathId = path,
          .packetNumber = pn,
          .sendTsNs = 5'000'000'000ULL + pn * 1000};
}

void writeJson(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) die("cannot write " + path);
}

// The codec error FrameReader / parsePacketHeader reports for a UDP payload.
wire::WireError codecError(const Bytes& p) {
  const auto h = wire::parsePacketHeader(p);
  if (!h.ok()) return h.error;
  wire::FrameReader reader(std::span<const std::uint8_t>(p).subspan(wire::kPacketHeaderLen));
  wire::ParsedFrame2 parsed;
  while (reader.next(parsed)) {
  }
  return reader.error();
}

std::uint8_t dataBytes[1024];

void buildValid(const std::string& dir) {
  Sample s{PcapWriter(dir + "/sample.pcap")};
  const auto link0 = ipv4Link(47100, kPort);
  const auto tmpl = check(wire::OuterTemplate::make(link0), "OuterTemplate::make");
  auto one = [&](const std::string& what, std::uint16_t path, std::uint64_t pn, std::vector<Frame> frames,
                 const wire::OuterAddressing& a, bool useTemplate) {
    const auto h = header(path, pn);
    Fields f;
    expectHeader(f, h);
    for (const auto& frame : frames) expectFrame(f, frame);
    s.addValid(what, ethernet(a, payload(h, frames), useTemplate ? &tmpl : nullptr), f);
  };

  one("HELLO client", 0, 0,
      {wire::HelloFrame{.role = wire::HelloRole::kClient,
                        .pathCount = 2,
                        .mode = wire::kModeClientSends | wire::kModeServerSends,
                        .maxPayload = 1432,
                        .rateBps = 50'000'000,
                        .durationMs = 1000,
                        .name = "s0"}},
      link0, true);
  one("HELLO server", 1, 0,
      {wire::HelloFrame{.role = wire::HelloRole::kServer,
                        .pathCount = 2,
                        .mode = wire::kModeServerSends,
                        .maxPayload = 1024,
                        .name = "r1-long-interface-name"}},
      link0, false);
  for (std::size_t i = 0; i < sizeof dataBytes; ++i) dataBytes[i] = static_cast<std::uint8_t>(i * 7 + 3);
  one("DATA", 0, 1, {wire::DataFrame{.globalSeq = 123, .data = std::span(dataBytes, 1024)}}, link0, true);
  one("DATA empty", 0, 2, {wire::DataFrame{.globalSeq = 0xfedcba9876543210ULL, .data = {}}}, link0, true);
  wire::AckFrame ack1{.pathId = 1,
                      .ackDelayUs = 250,
                      .largestRecvTsNs = 9'000'000'123ULL,
                      .bytesReceived = 1'048'576,
                      .rangeCount = 1};
  ack1.ranges[0] = {.smallest = 0, .largest = 99};
  one("ACK one range", 0, 3, {ack1}, link0, true);
  one("PING", 1, 1, {wire::PingFrame{.pingId = 0xdeadbeef}}, link0, true);
  one("PONG", 1, 2,
      {wire::PongFrame{.pathId = 1, .pingId = 0xdeadbeef, .pingSendTsNs = 5'000'001'000ULL, .holdNs = 4321}},
      link0, true);
  one("PATH_STATUS standby", 0, 4,
      {wire::PathStatusFrame{.status = wire::PathStatus::kStandby, .pathId = 1, .statusSeq = 7}}, link0,
      true);
  one("CLOSE graceful, stream complete", 0, 5,
      {wire::CloseFrame{.streamComplete = true, .errorCode = 0, .finalSeq = 124, .reason = "done, all sent"}},
      link0, true);
  one("CLOSE abort, no reason", 1, 3,
      {wire::CloseFrame{.streamComplete = false,
                        .errorCode = static_cast<std::uint16_t>(wire::CloseError::kPathMismatch),
                        .finalSeq = 0,
                        .reason = {}}},
      link0, true);
  wire::ReportFrame report{.durationNs = 1'000'000'000ULL,
                           .packets = 6000,
                           .bytes = 6'144'000,
                           .lost = 3,
                           .late = 2,
                           .outOfOrder = 11,
                           .duplicates = 1,
                           .malformed = 0,
                           .pathCount = 2};
  report.paths[0] = {.packets = 3001, .bytes = 3'073'024, .lost = 1};
  report.paths[1] = {.packets = 2999, .bytes = 3'070'976, .lost = 2};
  one("REPORT 2 paths", 0, 6, {report}, link0, true);
  one("MAX_SEQ", 0, 20, {wire::MaxSeqFrame{.maxSeq = 4096}}, link0, true);
  one("PING + PADDING", 0, 7, {wire::PingFrame{.pingId = 1}, wire::PaddingFrame{.length = 40}}, link0, true);

  // The docs' example: ranges [95, 100], [90, 90], [0, 3].
  wire::AckFrame ack3{.pathId = 0,
                      .ackDelayUs = 10,
                      .largestRecvTsNs = 8'888'888'888ULL,
                      .bytesReceived = 104'000,
                      .rangeCount = 3};
  ack3.ranges[0] = {.smallest = 95, .largest = 100};
  ack3.ranges[1] = {.smallest = 90, .largest = 90};
  ack3.ranges[2] = {.smallest = 0, .largest = 3};
  one("DATA + ACK 3 ranges + PING (multi-frame)", 1, 4,
      {wire::DataFrame{.globalSeq = 124, .data = std::span(dataBytes, 16)}, ack3,
       wire::PingFrame{.pingId = 2}},
      link0, true);

  // Version negotiation: invariants + count + versions.
  {
    Bytes p(64);
    p.resize(check(wire::writeVersionNegotiation(p, kConnId), "writeVersionNegotiation"));
    const auto vn = check(wire::parseVersionNegotiation(p), "parseVersionNegotiation");
    Fields f;
    add(f, "mpxdp.magic", hex(wire::kMagic, 4));
    add(f, "mpxdp.version", wire::kVersionNegotiation);
    add(f, "mpxdp.flags", hex(0, 2));
    addBool(f, "mpxdp.flags.protected", false);
    addBool(f, "mpxdp.flags.handshake", false);
    addBool(f, "mpxdp.flags.key_phase", false);
    add(f, "mpxdp.conn_id", kConnId);
    add(f, "mpxdp.vn.count", vn.count);
    for (std::size_t i = 0; i < vn.count; ++i) add(f, "mpxdp.vn.version", vn.versions[i]);
    s.addValid("version negotiation", ethernet(ipv4Link(kPort, 47100), p), f);
  }

  one("IPv6: ACK + PONG", 0, 8,
      {ack1, wire::PongFrame{.pathId = 0, .pingId = 3, .pingSendTsNs = 77, .holdNs = 0}}, ipv6Link(), false);
  auto tagged = ipv4Link(47100, kPort);
  tagged.vlanId = 100;
  one("VLAN 100: PATH_STATUS abandoned", 0, 9,
      {wire::PathStatusFrame{.status = wire::PathStatus::kAbandoned, .pathId = 0, .statusSeq = 8}}, tagged,
      false);
  one("port 50000 (heuristic): DATA", 0, 10,
      {wire::DataFrame{.globalSeq = 125, .data = std::span(dataBytes, 100)}}, ipv4Link(50001, 50000), false);

  writeJson(dir + "/sample.json", {{"packets", s.packets}});
  std::printf("sample.pcap: %u packets\n", s.pcap.count());
}

void buildMalformed(const std::string& dir) {
  Sample s{PcapWriter(dir + "/malformed.pcap")};
  const auto link = ipv4Link(47100, kPort);
  std::uint64_t pn = 0;
  // Valid payload, then `patch` breaks it; the codec must reject the result.
  auto bad = [&](const std::string& what, std::vector<Frame> frames, auto patch, const std::string& expert) {
    Bytes p = payload(header(0, pn++), frames);
    patch(p);
    const auto error = codecError(p);
    if (error == wire::WireError::kNone) die("codec accepts the malformed packet: " + what);
    s.addMalformed(what, ethernet(link, p), error, expert);
  };
  constexpr std::size_t kFrame = wire::kPacketHeaderLen;  // offset of the first frame

  bad(
      "DATA length 200, 100 bytes present",
      {wire::DataFrame{.globalSeq = 1, .data = std::span(dataBytes, 100)}},
      [](Bytes& p) { p[kFrame + 2] = 0, p[kFrame + 3] = 200; }, "mpxdp.truncated");
  bad(
      "DATA header cut", {wire::DataFrame{.globalSeq = 1, .data = {}}},
      [](Bytes& p) { p.resize(kFrame + 7); }, "mpxdp.truncated");
  bad(
      "unknown frame type 0x0a", {wire::PingFrame{.pingId = 5}}, [](Bytes& p) { p[kFrame] = 0x0a; },
      "mpxdp.unknown_frame");
  bad(
      "PING then unknown frame 0x7f", {wire::PingFrame{.pingId = 5}, wire::PingFrame{.pingId = 6}},
      [](Bytes& p) { p[kFrame + 8] = 0x7f; }, "mpxdp.unknown_frame");
  bad(
      "CLOSE reason_len lies", {wire::CloseFrame{.errorCode = 0, .finalSeq = 0, .reason = "bye"}},
      [](Bytes& p) { p[kFrame + 13] = 50; }, "mpxdp.truncated");
  bad(
      "HELLO name_len lies", {wire::HelloFrame{.pathCount = 1, .name = "eth0"}},
      [](Bytes& p) { p[kFrame + 20] = 9; }, "mpxdp.truncated");
  bad(
      "HELLO role 2", {wire::HelloFrame{.pathCount = 1, .name = "eth0"}}, [](Bytes& p) { p[kFrame + 1] = 2; },
      "mpxdp.bad_value");
  wire::AckFrame ack{.pathId = 0, .rangeCount = 2};
  ack.ranges[0] = {.smallest = 50, .largest = 60};
  ack.ranges[1] = {.smallest = 10, .largest = 20};
  bad(
      "ACK range_count 0", {ack}, [](Bytes& p) { p[kFrame + 1] = 0; }, "mpxdp.bad_value");
  bad(
      "ACK range_count 5, 2 ranges present", {ack}, [](Bytes& p) { p[kFrame + 1] = 5; }, "mpxdp.truncated");
  bad(
      "ACK first_range above largest", {ack}, [](Bytes& p) { p[kFrame + 32] = 0x7f; }, "mpxdp.bad_value");
  bad(
      "ACK gap below 0", {ack}, [](Bytes& p) { p[kFrame + 36] = 0x7f; }, "mpxdp.bad_value");
  bad(
      "PATH_STATUS status 4", {wire::PathStatusFrame{.pathId = 1, .statusSeq = 1}},
      [](Bytes& p) { p[kFrame + 1] = 4; }, "mpxdp.bad_value");
  wire::ReportFrame report{.pathCount = 1};
  bad(
      "REPORT path_count 33", {report}, [](Bytes& p) { p[kFrame + 1] = 33; }, "mpxdp.bad_value");
  bad(
      "REPORT path_count 2, 1 path present", {report}, [](Bytes& p) { p[kFrame + 1] = 2; },
      "mpxdp.truncated");
  bad(
      "PADDING not zero", {wire::PingFrame{.pingId = 1}, wire::PaddingFrame{.length = 10}},
      [](Bytes& p) { p.back() = 1; }, "mpxdp.bad_value");
  bad(
      "PONG cut", {wire::PongFrame{.pathId = 0, .pingId = 1}}, [](Bytes& p) { p.resize(p.size() - 1); },
      "mpxdp.truncated");
  bad(
      "packet header only, no frame", {wire::PingFrame{}}, [](Bytes& p) { p.resize(kFrame); },
      "mpxdp.no_frames");
  bad(
      "packet header cut at 20 bytes", {wire::PingFrame{}}, [](Bytes& p) { p.resize(20); },
      "mpxdp.truncated");

  writeJson(dir + "/malformed.json", {{"packets", s.packets}});
  std::printf("malformed.pcap: %u packets\n", s.pcap.count());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR  (writes sample.pcap/json and malformed.pcap/json in DIR)\n",
                 argv[0]);
    return 2;
  }
  buildValid(argv[1]);
  buildMalformed(argv[1]);
  return 0;
}
