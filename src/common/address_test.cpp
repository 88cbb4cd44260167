#include "mpxdp/address.h"

#include <gtest/gtest.h>

#include "mpxdp/error.h"

namespace mpxdp {
namespace {

TEST(MacAddressTest, ParsesAndFormats) {
  auto mac = MacAddress::parse("02:aB:0c:00:ff:10");
  ASSERT_TRUE(mac);
  EXPECT_EQ(mac->toString(), "02:ab:0c:00:ff:10");
}

TEST(MacAddressTest, RejectsMalformed) {
  for (const char* text :
       {"", "02:ab:0c:00:ff", "02:ab:0c:00:ff:1g", "02-ab-0c-00-ff-10", "02:ab:0c:00:ff:100"}) {
    EXPECT_FALSE(MacAddress::parse(text)) << text;
  }
}

TEST(IpAddressTest, ParsesBothFamilies) {
  auto v4 = IpAddress::parse("198.18.1.2");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->isV4());
  EXPECT_EQ(v4->v4HostOrder(), 0xC6120102u);
  EXPECT_EQ(v4->toString(), "198.18.1.2");
  EXPECT_EQ(IpAddress::v4(0xC6120102u), *v4);

  auto v6 = IpAddress::parse("fd00::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->isV4());
  EXPECT_EQ(v6->toString(), "fd00::1");
}

TEST(IpAddressTest, RejectsMalformed) {
  for (const char* text : {"", "198.18.1", "198.18.1.256", "hello", "fd00:::1::"}) {
    EXPECT_FALSE(IpAddress::parse(text)) << text;
  }
}

TEST(ErrorTest, CarriesErrnoAndContext) {
  Error error(ENOENT, "opening /nowhere");
  EXPECT_EQ(error.code(), ENOENT);
  EXPECT_EQ(error.message(), "opening /nowhere: No such file or directory");
  EXPECT_EQ(error.wrap("loading").context(), "loading: opening /nowhere");
  Result<int> failed = error;
  EXPECT_FALSE(failed.ok());
  Result<int> fine = 7;
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(*fine, 7);
}

}  // namespace
}  // namespace mpxdp
