// `mpxdp demo`, the README's main job, end to end: it builds its test bed,
// runs every configuration, prints the comparison and leaves nothing behind.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "privilege.h"
#include "subprocess.h"
#include "testbed.h"

namespace mpxdp {
namespace {

using namespace std::chrono_literals;

bool namespaceExists(const std::string& name) { return std::filesystem::exists("/run/netns/" + name); }

TEST(DemoTest, RunsEveryConfigurationAndRemovesItsTestBed) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = "dm" + std::to_string(getpid());
  auto demo = testbed::Subprocess::spawn(
      {MPXDP_EXECUTABLE, "demo", "--name", name, "--links", "2", "--rate", "100M", "-t", "1"});
  ASSERT_TRUE(demo) << demo.error().message();
  const auto status = demo->wait(120s);
  ASSERT_TRUE(status) << "demo did not finish: " << demo->err();
  EXPECT_EQ(*status, 0) << demo->err();
  const std::string& table = demo->out();
  for (const char* row : {"xdp      window", "xdp      sort", "xdp      off", "udp      window"}) {
    EXPECT_NE(table.find(row), std::string::npos) << "no row '" << row << "' in:\n" << table;
  }
  EXPECT_NE(table.find("2 links x 100M"), std::string::npos) << table;
  EXPECT_FALSE(namespaceExists(testbed::senderNamespaceName(name)));
  EXPECT_FALSE(namespaceExists(testbed::receiverNamespaceName(name)));
  EXPECT_FALSE(namespaceExists(testbed::linkNamespaceName(name)));
}

TEST(DemoTest, FailoverCutsAndRestoresALinkAndShowsThePathEvents) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = "df" + std::to_string(getpid());
  auto demo = testbed::Subprocess::spawn(
      {MPXDP_EXECUTABLE, "demo", "--failover", "--name", name, "--rate", "100M", "-t", "4"});
  ASSERT_TRUE(demo) << demo.error().message();
  const auto status = demo->wait(120s);
  ASSERT_TRUE(status) << "demo did not finish: " << demo->err();
  EXPECT_EQ(*status, 0) << demo->err();
  const std::string& out = demo->out();
  for (const char* line :
       {"Failover: 3 links x 100M", "backend: auto, the default (links: ", "path 1 (s1): active -> suspect",
        "path 1 (s1): dead -> active", "packets lost after the cut", "goodput: before"}) {
    EXPECT_NE(out.find(line), std::string::npos) << "no '" << line << "' in:\n" << out;
  }
  EXPECT_NE(demo->err().find("link 1 cut"), std::string::npos) << demo->err();
  EXPECT_FALSE(namespaceExists(testbed::linkNamespaceName(name)));
}

TEST(DemoTest, RefusesATakenNameAndLeavesThatTestBedAlone) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = "dt" + std::to_string(getpid());
  auto bed = testbed::ScopedTestbed::create({name, {0}, 1500});
  ASSERT_TRUE(bed) << bed.error().message();
  auto demo = testbed::Subprocess::spawn({MPXDP_EXECUTABLE, "demo", "--name", name, "-t", "1"});
  ASSERT_TRUE(demo) << demo.error().message();
  const auto status = demo->wait(30s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 1);
  EXPECT_NE(demo->err().find("exists already"), std::string::npos) << demo->err();
  EXPECT_TRUE(namespaceExists(bed->info().senderNamespace));
  EXPECT_TRUE(namespaceExists(bed->info().receiverNamespace));
}

}  // namespace
}  // namespace mpxdp
