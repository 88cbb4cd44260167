// tools/wireshark/mpxdp.lua on pcaps that mpxdp_pcap_sample builds with the
// real codec: every packet is recognised, every field shows the value the
// generator wrote, valid packets carry no malformed/error marks and each
// malformed one carries the expected expert error.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "process.h"
#include "tshark_support.h"

namespace mpxdp::test {
namespace {

nlohmann::json readJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, false);
}

class DissectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MPXDP_REQUIRE_TSHARK();
    auto dir = TempDir::create("mpxdp-dissector-");
    ASSERT_TRUE(dir) << dir.error().message();
    dir_.emplace(std::move(*dir));
    auto made = testbed::runProgram({MPXDP_PCAP_SAMPLE, dir_->path()});
    ASSERT_TRUE(made) << made.error().message();
    ASSERT_EQ(made->exitStatus, 0) << made->err;
  }
  std::string file(const std::string& name) const { return dir_->path() + "/" + name; }

  std::optional<TempDir> dir_;
};

TEST_F(DissectorTest, EveryFieldOfEveryPacketAsWritten) {
  const auto expected = readJson(file("sample.json"));
  ASSERT_FALSE(expected.is_discarded());
  const auto& packets = expected.at("packets");
  // Every field name any packet expects, plus what says who decoded it.
  std::set<std::string> names;
  for (const auto& p : packets) {
    for (const auto& [name, values] : p.at("fields").items()) names.insert(name);
  }
  std::vector<std::string> fields = {"frame.number", "frame.protocols"};
  fields.insert(fields.end(), names.begin(), names.end());
  auto rows = tsharkFields(file("sample.pcap"), fields);
  ASSERT_TRUE(rows) << rows.error().message();
  ASSERT_EQ(rows->size(), packets.size());

  std::set<std::string> frameTypes;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    const auto& p = packets[i];
    const auto& row = (*rows)[i];
    SCOPED_TRACE("packet " + std::to_string(i + 1) + ": " + p.at("description").get<std::string>());
    ASSERT_EQ(row[0], std::vector<std::string>{std::to_string(p.at("number").get<int>())});
    ASSERT_EQ(row[1].size(), 1u);
    EXPECT_TRUE(row[1][0].ends_with(":udp:mpxdp")) << row[1][0];
    for (std::size_t f = 2; f < fields.size(); ++f) {
      std::vector<std::string> want;
      if (p.at("fields").contains(fields[f]))
        want = p.at("fields").at(fields[f]).get<std::vector<std::string>>();
      EXPECT_EQ(row[f], want) << fields[f];
    }
    if (p.at("fields").contains("mpxdp.frame.type")) {
      for (const auto& t : p.at("fields").at("mpxdp.frame.type")) frameTypes.insert(t.get<std::string>());
    }
  }
  // The sample covers every frame type 0..9.
  EXPECT_EQ(frameTypes.size(), 10u);

  auto bad = tsharkMatching(file("sample.pcap"), "_ws.malformed || _ws.expert.severity >= warning");
  ASSERT_TRUE(bad) << bad.error().message();
  EXPECT_TRUE(bad->empty()) << bad->size() << " valid packets marked malformed/warning, first "
                            << bad->front();
  auto decoded = tsharkMatching(file("sample.pcap"), "mpxdp");
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->size(), packets.size());
}

TEST_F(DissectorTest, MalformedPacketsCarryTheExpectedExpertError) {
  const auto expected = readJson(file("malformed.json"));
  ASSERT_FALSE(expected.is_discarded());
  const auto& packets = expected.at("packets");
  ASSERT_GE(packets.size(), 10u);

  auto all = tsharkMatching(file("malformed.pcap"), "mpxdp && _ws.malformed && _ws.expert.severity >= error");
  ASSERT_TRUE(all) << all.error().message();
  std::vector<int> numbers;
  for (const auto& p : packets) numbers.push_back(p.at("number").get<int>());
  EXPECT_EQ(*all, numbers) << "every malformed packet is decoded as mpxdp and marked malformed";

  std::set<std::string> experts;
  for (const auto& p : packets) experts.insert(p.at("expert").get<std::string>());
  for (const auto& expert : experts) {
    auto matching = tsharkMatching(file("malformed.pcap"), expert);
    ASSERT_TRUE(matching) << matching.error().message();
    std::vector<int> want;
    for (const auto& p : packets) {
      if (p.at("expert") == expert) want.push_back(p.at("number").get<int>());
    }
    EXPECT_EQ(*matching, want) << expert;
  }
}

}  // namespace
}  // namespace mpxdp::test
