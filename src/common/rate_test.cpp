#include "rate.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

namespace mpxdp {
namespace {

TEST(RateTest, ParsesLikeIperf3) {
  const std::vector<std::pair<std::string, std::uint64_t>> good = {
      {"300M", 300'000'000}, {"300m", 300'000'000},   {"1G", 1'000'000'000},     {"2.5G", 2'500'000'000},
      {"100k", 100'000},     {"100K", 100'000},       {"1000000", 1'000'000},    {"0.5k", 500},
      {"1.25M", 1'250'000},  {"10G", 10'000'000'000}, {"1T", 1'000'000'000'000}, {"7", 7},
  };
  for (const auto& [text, bps] : good) {
    auto rate = parseRate(text);
    ASSERT_TRUE(rate) << text << ": " << rate.error().message();
    EXPECT_EQ(*rate, bps) << text;
  }
  for (const std::string text : {"", "M", "abc", "-5M", "1.5.5G", "10X", "0", "0M", "1 G", "300Mbit",
                                 "99999999999999999999", "20000000T", "."}) {
    auto rate = parseRate(text);
    ASSERT_FALSE(rate) << "'" << text << "' was accepted";
    EXPECT_EQ(rate.error().code(), EINVAL);
    EXPECT_NE(rate.error().context().find(text), std::string::npos);
  }
}

TEST(RateTest, FormatsWithTheLargestUnitThatFits) {
  EXPECT_EQ(formatRate(0), "unshaped");
  EXPECT_EQ(formatRate(999), "999 bit/s");
  EXPECT_EQ(formatRate(100'000), "100 kbit/s");
  EXPECT_EQ(formatRate(300'000'000), "300 Mbit/s");
  EXPECT_EQ(formatRate(2'500'000'000), "2.5 Gbit/s");
  EXPECT_EQ(formatRate(1'000'000'000'000), "1 Tbit/s");
}

}  // namespace
}  // namespace mpxdp
