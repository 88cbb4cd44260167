#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "privilege.h"
#include "process.h"
#include "testbed.h"

namespace {

using mpxdp::testbed::ProgramOutput;

ProgramOutput mpxdp(std::vector<std::string> args) {
  args.insert(args.begin(), MPXDP_EXECUTABLE);
  auto output = mpxdp::testbed::runProgram(args);
  if (!output) {
    ADD_FAILURE() << output.error().message();
    return {-1, "", ""};
  }
  return *output;
}

TEST(testbedCli, VersionAndHelp) {
  MPXDP_REQUIRE_PRIVILEGED();
  const auto version = mpxdp({"--version"});
  EXPECT_EQ(version.exitStatus, 0);
  EXPECT_NE(version.out.find("mpxdp "), std::string::npos);
  const auto help = mpxdp({"help"});
  EXPECT_EQ(help.exitStatus, 0);
  EXPECT_NE(help.out.find("testbed"), std::string::npos);
  const auto helpUp = mpxdp({"help", "testbed", "up"});
  EXPECT_EQ(helpUp.exitStatus, 0);
  EXPECT_NE(helpUp.out.find("--rates"), std::string::npos);
  EXPECT_EQ(mpxdp({"help", "nope"}).exitStatus, 2);
}

TEST(testbedCli, UsageErrorsExitWithTwo) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = fmt::format("c{}-usage", getpid());
  const std::vector<std::vector<std::string>> usage = {
      {},
      {"testbed"},
      {"testbed", "up", "--links", "2"},
      {"testbed", "up", "--name", name},
      {"testbed", "up", "--name", name, "--links", "0"},
      {"testbed", "up", "--name", name, "--links", "17"},
      {"testbed", "up", "--name", "Bad_Name", "--links", "1"},
      {"testbed", "up", "--name", name, "--links", "1", "--rate", "fast"},
      {"testbed", "up", "--name", name, "--links", "3", "--rates", "1M,2M"},
      {"testbed", "up", "--name", name, "--rate", "1M", "--rates", "1M"},
      {"testbed", "down"},
      {"no-such-command"},
  };
  for (const auto& args : usage) {
    const auto result = mpxdp(args);
    EXPECT_EQ(result.exitStatus, 2) << fmt::format("mpxdp {}", fmt::join(args, " "));
    EXPECT_FALSE(result.err.empty());
  }
  EXPECT_FALSE(std::filesystem::exists("/run/netns/" + mpxdp::testbed::senderNamespaceName(name)));
}

TEST(testbedCli, UpShowDownRoundTrip) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = fmt::format("c{}-trip", getpid());
  struct Cleanup {
    std::string name;
    ~Cleanup() { (void)mpxdp::testbed::down(name); }
  } cleanup{name};

  const auto up = mpxdp({"testbed", "up", "--name", name, "--rates", "100M,2.5G", "-J"});
  ASSERT_EQ(up.exitStatus, 0) << up.err;
  const auto shown = mpxdp({"testbed", "show", "--name", name, "-J"});
  ASSERT_EQ(shown.exitStatus, 0) << shown.err;
  const auto json = nlohmann::json::parse(shown.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << shown.out;
  EXPECT_EQ(json, nlohmann::json::parse(up.out, nullptr, false));
  EXPECT_EQ(json["name"], name);
  ASSERT_EQ(json["links"].size(), 2u);
  EXPECT_EQ(json["links"][0]["rate_bps"], 100'000'000u);
  EXPECT_EQ(json["links"][1]["rate_bps"], 2'500'000'000u);
  EXPECT_EQ(json["links"][1]["sender"]["ip"], "198.18.2.1");
  EXPECT_EQ(json["links"][1]["receiver"]["ip"], "198.18.2.2");

  const auto table = mpxdp({"testbed", "show", "--name", name});
  EXPECT_EQ(table.exitStatus, 0);
  EXPECT_NE(table.out.find("2.5 Gbit/s"), std::string::npos) << table.out;

  const auto again = mpxdp({"testbed", "up", "--name", name, "--links", "1"});
  EXPECT_EQ(again.exitStatus, 1);
  EXPECT_NE(again.err.find("exists already"), std::string::npos) << again.err;

  EXPECT_EQ(mpxdp({"testbed", "down", "--name", name}).exitStatus, 0);
  EXPECT_EQ(mpxdp({"testbed", "down", "--name", name}).exitStatus, 0);
  const auto gone = mpxdp({"testbed", "show", "--name", name});
  EXPECT_EQ(gone.exitStatus, 1);
  EXPECT_NE(gone.err.find("no test bed"), std::string::npos) << gone.err;
}

}  // namespace
