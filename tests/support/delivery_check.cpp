#include "delivery_check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace mpxdp::test {
namespace {

std::uint64_t u64(const nlohmann::json& j, const char* key) { return j.at(key).get<std::uint64_t>(); }

}  // namespace

// The receiver's own JSON against the sender's: nothing declared lost that the
// host did not drop or that did not come late, nothing late that had already
// reached this host when its loss was judged, everything else delivered in
// order. On this lossless test bed a loss can only come from the receiving
// host itself: a receiver too slow to refill its AF_XDP fill ring (seen under
// ASan with both cores busy) makes the kernel drop packets, counted per path
// as rx_dropped. Those are real losses and must be declared exactly.
// A late packet is a loss the receiver had to declare, not a false one, when
// it reached the host after the judgement: this VM sometimes stalls a process
// for ~100 ms, and a sender stalled between two paths' transmit calls sends
// their packets that much apart. Diagnosed in local runs under extra load
// (2, 14 and 41 late; a CI run had 17): each late packet was stamped by the
// XDP program 100-105 ms after its send stamp, and 7-36 ms after the time its
// loss was judged at, so no hole timeout would have saved it. A late packet
// its path held readable when its loss was judged would be the receiver's
// error (late_queued_packets); one stamped in time but published by the
// kernel only with the link's next packet is not.
void expectCleanDelivery(const nlohmann::json& r, const nlohmann::json& sender) {
  std::printf(
      "sent %llu, delivered %llu, lost %llu (fast %llu), late %llu (queued %llu), implausible %llu, "
      "malformed %llu\n",
      static_cast<unsigned long long>(u64(sender, "sent_packets")),
      static_cast<unsigned long long>(u64(r, "delivered_packets")),
      static_cast<unsigned long long>(u64(r, "lost_packets")),
      static_cast<unsigned long long>(u64(r, "lost_fast_packets")),
      static_cast<unsigned long long>(u64(r, "late_packets")),
      static_cast<unsigned long long>(u64(r, "late_queued_packets")),
      static_cast<unsigned long long>(u64(r, "implausible_packets")),
      static_cast<unsigned long long>(u64(r, "malformed_packets")));
  std::uint64_t hostDropped = 0;
  for (const auto& path : r.at("paths")) {
    std::printf("  path %s (%s): packets %llu, lost %llu, rx_dropped %llu, rx_ring_full %llu\n",
                path.at("name").get<std::string>().c_str(), path.at("mode").get<std::string>().c_str(),
                static_cast<unsigned long long>(u64(path, "packets")),
                static_cast<unsigned long long>(u64(path, "lost")),
                static_cast<unsigned long long>(u64(path, "rx_dropped")),
                static_cast<unsigned long long>(u64(path, "rx_ring_full")));
    // Every gap in a path's numbering is a packet this host dropped.
    EXPECT_EQ(u64(path, "lost"), u64(path, "rx_dropped")) << path.dump();
    hostDropped += u64(path, "rx_dropped");
  }
  if (hostDropped > 0)
    std::printf("  the receiving host dropped %llu (fill ring empty)\n",
                static_cast<unsigned long long>(hostDropped));
  // A packet the sender's link refused (tx_dropped) had its sequence number
  // but never left: the receiver rightly declares it lost. One still in a
  // send queue at the end must not exist: the CLOSE waits for the queues (two
  // CI runs ended with 14 and 1 lost, none late, delivered == sent_packets,
  // and the sender's last report showed a packet queued on path 0).
  const std::uint64_t senderDropped = u64(sender, "tx_dropped_packets");
  for (const auto& path : sender.at("paths")) EXPECT_EQ(u64(path, "queued_packets"), 0u) << path.dump();
  if (senderDropped > 0)
    std::printf("  the sender's links refused %llu\n", static_cast<unsigned long long>(senderDropped));
  EXPECT_EQ(r.at("ended_by"), "end of stream");
  const std::uint64_t late = u64(r, "late_packets");
  EXPECT_LE(u64(r, "lost_packets"), hostDropped + senderDropped + late)
      << r.dump() << "\nsender: " << sender.dump();
  if (hostDropped == 0) {
    EXPECT_EQ(u64(r, "late_queued_packets"), 0u) << r.dump();
    // A stall is rare and short: more than one per mille late would be a timeout gone wrong.
    EXPECT_LE(late, u64(sender, "sent_packets") / 1000) << r.dump();
  } else {
    // Overloaded (seen in CI under ASan: 21,474 host drops, a 299 ms stall,
    // 13,367 late of which 739 queued): the receiver ran out of frames and fell
    // behind its rings and the sender, so late and queued say nothing about
    // its timeouts. Only the accounting above holds. The overload loop (held
    // packets pin frames, the host drops, holes follow) is an open lead.
    std::printf("  overloaded: late and queued not judged\n");
  }
  EXPECT_EQ(u64(r, "out_of_order_delivered"), 0u);
  EXPECT_EQ(u64(r, "corrupt_packets"), 0u);
  EXPECT_EQ(u64(r, "delivered_packets") + u64(r, "lost_packets"), u64(sender, "sent_packets") + senderDropped)
      << "sender: " << sender.dump();
}

}  // namespace mpxdp::test
