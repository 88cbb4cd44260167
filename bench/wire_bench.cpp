// Microbenchmarks of the wire codec on 1024-byte payloads (the project's standard packet): the outer
// headers, the v2 packet header and frames, and the legacy v1 header.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "codec.h"
#include "frames.h"
#include "packet.h"

namespace mpxdp::wire {
namespace {

constexpr std::size_t kPayloadLen = 1024;

OuterAddressing benchAddressing(bool v6) {
  OuterAddressing a;
  a.srcMac = MacAddress{{0x02, 0, 0, 0, 0, 1}};
  a.dstMac = MacAddress{{0x02, 0, 0, 0, 0, 2}};
  if (v6) {
    a.srcIp = *IpAddress::parse("2001:db8::1");
    a.dstIp = *IpAddress::parse("2001:db8::2");
  } else {
    a.srcIp = IpAddress::v4(0xc0000201);  // 192.0.2.1
    a.dstIp = IpAddress::v4(0xc0000202);
  }
  a.srcPort = 47001;
  a.dstPort = MPXDP_DEFAULT_PORT;
  return a;
}

MpHeader benchHeader() {
  MpHeader h;
  h.connId = 0x01020304;
  h.pathId = 1;
  h.payloadLen = kPayloadLen;
  h.pathSeq = 7;
  h.globalSeq = 1234567;
  h.sendTsNs = 987654321;
  return h;
}

// A complete frame: outer headers + multipath header + 1024 bytes of data.
std::vector<std::uint8_t> benchFrame(bool v6, bool udpChecksum) {
  const OuterAddressing a = benchAddressing(v6);
  const std::size_t outer = outerHeaderLength(a);
  std::vector<std::uint8_t> frame(outer + kMpHeaderLen + kPayloadLen);
  for (std::size_t i = 0; i < frame.size(); ++i) {
    frame[i] = static_cast<std::uint8_t>(i * 31 + 7);
  }
  if (!encodeMpHeader(std::span(frame).subspan(outer), benchHeader()).ok() ||
      !encodeOuter(frame, a, kMpHeaderLen + kPayloadLen, udpChecksum).ok()) {
    std::abort();  // benchmark setup only
  }
  return frame;
}

void BM_EncodeMpHeader(benchmark::State& state) {
  std::vector<std::uint8_t> out(kMpHeaderLen + kPayloadLen);
  MpHeader h = benchHeader();
  for (auto _ : state) {
    ++h.globalSeq;
    benchmark::DoNotOptimize(encodeMpHeader(out, h));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeMpHeader);

void BM_DecodeMpHeader(benchmark::State& state) {
  std::vector<std::uint8_t> in(kMpHeaderLen + kPayloadLen);
  if (!encodeMpHeader(in, benchHeader()).ok()) {
    std::abort();
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(in.data());
    auto decoded = decodeMpHeader(in);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeMpHeader);

// Arg 0: IPv4 (1) or IPv6 (6). Arg 1: UDP checksum on (1) or off (0; IPv6 computes it anyway).
void BM_OuterTemplateWrite(benchmark::State& state) {
  const bool v6 = state.range(0) == 6;
  const bool udpChecksum = state.range(1) != 0;
  const auto tmpl = OuterTemplate::make(benchAddressing(v6));
  if (!tmpl.ok()) {
    state.SkipWithError("template");
    return;
  }
  std::vector<std::uint8_t> frame = benchFrame(v6, udpChecksum);
  const std::size_t udpPayloadLen = kMpHeaderLen + kPayloadLen;
  for (auto _ : state) {
    benchmark::DoNotOptimize(tmpl.value.write(frame, udpPayloadLen, udpChecksum));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());  // frames; bytes would mislead when no checksum is summed
}
BENCHMARK(BM_OuterTemplateWrite)->ArgNames({"ip", "udpcsum"})->Args({4, 0})->Args({4, 1})->Args({6, 1});

// The non-template encoder, for comparison.
void BM_EncodeOuter(benchmark::State& state) {
  const bool udpChecksum = state.range(0) != 0;
  const OuterAddressing a = benchAddressing(false);
  std::vector<std::uint8_t> frame = benchFrame(false, udpChecksum);
  for (auto _ : state) {
    benchmark::DoNotOptimize(encodeOuter(frame, a, kMpHeaderLen + kPayloadLen, udpChecksum));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeOuter)->ArgName("udpcsum")->Arg(0)->Arg(1);

// Arg 0: IPv4 (4) or IPv6 (6). Arg 1: UDP checksum present (1) or zero (0, IPv4 only).
void BM_DecodeOuter(benchmark::State& state) {
  const bool v6 = state.range(0) == 6;
  const std::vector<std::uint8_t> frame = benchFrame(v6, state.range(1) != 0);
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());
    auto parsed = decodeOuter(frame);
    if (!parsed.ok()) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());  // frames; bytes would mislead when no checksum is summed
}
BENCHMARK(BM_DecodeOuter)->ArgNames({"ip", "udpcsum"})->Args({4, 0})->Args({4, 1})->Args({6, 1});

void BM_DecodeFrame(benchmark::State& state) {
  const std::vector<std::uint8_t> frame = benchFrame(false, true);
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());
    auto parsed = decodeFrame(frame);
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeFrame);

// ---- wire v2 ----

PacketHeader benchPacketHeader() {
  return {.flags = 0, .connId = 0x01020304, .pathId = 1, .packetNumber = 7, .sendTsNs = 987654321};
}

// The hot-path sender: packet header + DATA frame header in front of a payload already in place.
void BM_WriteDataPacketHeaders(benchmark::State& state) {
  std::vector<std::uint8_t> out(kDataPacketOverhead + kPayloadLen);
  PacketHeader h = benchPacketHeader();
  std::uint64_t globalSeq = 1234567;
  const std::span<std::uint8_t> frames = std::span(out).subspan(kPacketHeaderLen);
  for (auto _ : state) {
    ++h.packetNumber;
    ++globalSeq;
    benchmark::DoNotOptimize(writePacketHeader(out, h));
    benchmark::DoNotOptimize(writeDataFrameHeader(frames, globalSeq, kPayloadLen));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WriteDataPacketHeaders);

// The hot-path receiver: packet header, then the one DATA frame.
void BM_ParseDataPacket(benchmark::State& state) {
  std::vector<std::uint8_t> in(kDataPacketOverhead + kPayloadLen);
  if (!writePacketHeader(in, benchPacketHeader()).ok() ||
      !writeDataFrameHeader(std::span(in).subspan(kPacketHeaderLen), 1234567, kPayloadLen).ok()) {
    std::abort();
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(in.data());
    const auto header = parsePacketHeader(in);
    const auto frame = parseFrame(std::span<const std::uint8_t>(in).subspan(kPacketHeaderLen));
    if (!header.ok() || !frame.ok() || !std::holds_alternative<DataFrame>(frame.value.frame)) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(header);
    benchmark::DoNotOptimize(frame);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseDataPacket);

AckFrame benchAck(std::size_t ranges) {
  AckFrame ack;
  ack.pathId = 1;
  ack.ackDelayUs = 25;
  ack.largestRecvTsNs = 123456789;
  ack.bytesReceived = 1 << 30;
  ack.rangeCount = static_cast<std::uint8_t>(ranges);
  std::uint64_t top = 1'000'000;
  for (std::size_t i = 0; i < ranges; ++i) {
    ack.ranges[i] = {top - 50, top};
    top -= 53;  // two packets missing between ranges
  }
  return ack;
}

void BM_WriteAckFrame8(benchmark::State& state) {
  const Frame ack = benchAck(8);
  std::vector<std::uint8_t> out(frameSize(ack));
  for (auto _ : state) {
    benchmark::DoNotOptimize(writeFrame(out, ack));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_WriteAckFrame8);

void BM_ParseAckFrame8(benchmark::State& state) {
  const Frame ack = benchAck(8);
  std::vector<std::uint8_t> in(frameSize(ack));
  if (!writeFrame(in, ack).ok()) {
    std::abort();
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(in.data());
    auto parsed = parseFrame(in);
    if (!parsed.ok()) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseAckFrame8);

void BM_ChecksumPartial(benchmark::State& state) {
  const std::vector<std::uint8_t> data = benchFrame(false, false);
  for (auto _ : state) {
    benchmark::DoNotOptimize(data.data());
    benchmark::DoNotOptimize(checksumPartial(data, 0));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChecksumPartial);

// The same without AVX2: what CPUs without it pay, and the before of issue 12's change.
void BM_ChecksumPartialPortable(benchmark::State& state) {
  const std::vector<std::uint8_t> data = benchFrame(false, false);
  for (auto _ : state) {
    benchmark::DoNotOptimize(data.data());
    benchmark::DoNotOptimize(checksumPartialPortable(data, 0));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_ChecksumPartialPortable);

}  // namespace
}  // namespace mpxdp::wire

BENCHMARK_MAIN();
