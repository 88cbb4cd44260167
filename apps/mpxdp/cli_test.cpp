#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "privilege.h"
#include "process.h"
#include "subprocess.h"
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

// Every line on stderr of a failed run starts with "mpxdp <command>:".
void expectErrorLines(const ProgramOutput& result, const std::string& prefix, const std::string& what) {
  EXPECT_FALSE(result.err.empty()) << what;
  std::size_t start = 0;
  while (start < result.err.size()) {
    std::size_t end = result.err.find('\n', start);
    if (end == std::string::npos) end = result.err.size();
    const std::string line = result.err.substr(start, end - start);
    EXPECT_EQ(line.rfind(prefix + ": ", 0), 0u)
        << what << ": line '" << line << "' does not start with '" << prefix << ": '";
    start = end + 1;
  }
}

TEST(testbedCli, BadNumbersAreUsageErrorsNamingTheCommand) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = fmt::format("c{}-numbers", getpid());
  const std::vector<std::vector<std::string>> bad = {
      {"--links", "-1"},
      {"--links", "abc"},
      {"--links", "99999999999999999999999"},
      {"--links", "1.5"},
      {"--links", "0"},
      {"--links", "17"},
      {"--links", "1", "--mtu", "-5"},
      {"--links", "1", "--mtu", "x"},
      {"--links", "1", "--mtu", "99999999999"},
      {"--links", "1", "--mtu", "100"},
      {"--links", "1", "--rate", "-1M"},
      {"--rates", "1M,-2M"},
  };
  for (const auto& options : bad) {
    std::vector<std::string> args = {"testbed", "up", "--name", name};
    args.insert(args.end(), options.begin(), options.end());
    const std::string what = fmt::format("mpxdp {}", fmt::join(args, " "));
    const auto result = mpxdp(args);
    EXPECT_EQ(result.exitStatus, 2) << what << "\n" << result.err;
    expectErrorLines(result, "mpxdp testbed up", what);
    EXPECT_EQ(result.err.find("std::"), std::string::npos) << what << ": " << result.err;
    EXPECT_EQ(result.err.find("max_size"), std::string::npos) << what << ": " << result.err;
  }
  EXPECT_FALSE(std::filesystem::exists("/run/netns/" + mpxdp::testbed::senderNamespaceName(name)));
}

TEST(testbedCli, EveryErrorLineStartsWithItsCommand) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = fmt::format("c{}-none", getpid());
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"testbed"}, "mpxdp testbed"},
      {{"testbed", "up", "--links", "2"}, "mpxdp testbed up"},
      {{"testbed", "up", "--name", "Bad_Name", "--links", "1"}, "mpxdp testbed up"},
      {{"testbed", "down"}, "mpxdp testbed down"},
      {{"testbed", "show", "--name", name}, "mpxdp testbed show"},
      {{"help", "nope"}, "mpxdp help"},
      {{"recv", "--backend", "carrier-pigeon", "--link", "lo"}, "mpxdp recv"},
      {{"send", "--bogus"}, "mpxdp send"},
      {{"no-such-command"}, "mpxdp"},
  };
  for (const auto& [args, prefix] : cases) {
    const std::string what = fmt::format("mpxdp {}", fmt::join(args, " "));
    const auto result = mpxdp(args);
    EXPECT_NE(result.exitStatus, 0) << what;
    expectErrorLines(result, prefix, what);
  }
}

TEST(testbedCli, SetChangesOneLinkAndRefusesMisuse) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = fmt::format("c{}-set", getpid());
  struct Cleanup {
    std::string name;
    ~Cleanup() { (void)mpxdp::testbed::down(name); }
  } cleanup{name};

  for (const auto& options : std::vector<std::vector<std::string>>{
           {"--rates", "100M,100M", "--delays", "5ms"},
           {"--rates", "100M", "--delays", "5"},
           {"--rates", "100M", "--loss", "abc"},
           {"--rates", "100M", "--loss", "101%"},
       }) {
    std::vector<std::string> args = {"testbed", "up", "--name", name};
    args.insert(args.end(), options.begin(), options.end());
    const auto result = mpxdp(args);
    EXPECT_EQ(result.exitStatus, 2) << fmt::format("mpxdp {}", fmt::join(args, " ")) << "\n" << result.err;
  }
  EXPECT_FALSE(std::filesystem::exists("/run/netns/" + mpxdp::testbed::senderNamespaceName(name)));

  const auto up = mpxdp(
      {"testbed", "up", "--name", name, "--rates", "100M,100M", "--delays", "0,5ms", "--loss", "1%,0", "-J"});
  ASSERT_EQ(up.exitStatus, 0) << up.err;
  const auto before = nlohmann::json::parse(up.out, nullptr, false);
  ASSERT_TRUE(before.is_object()) << up.out;
  EXPECT_EQ(before["links"][0]["loss_percent"], 1.0);
  EXPECT_EQ(before["links"][1]["delay_ns"], 5'000'000u);
  EXPECT_EQ(before["links"][1]["state"], "up");

  const std::vector<std::vector<std::string>> misuse = {
      {"--link", "0", "--down", "--up"},
      {"--link", "0"},
      {"--link", "2", "--down"},
      {"--link", "-1", "--down"},
      {"--link", "x", "--down"},
      {"--link", "0", "--loss", "-1"},
      {"--link", "0", "--loss", "200%"},
      {"--link", "0", "--delay", "5"},
      {"--link", "0", "--delay", "abc"},
      {"--link", "0", "--delay", "-5ms"},
      {"--link", "0", "--rate", "fast"},
      {"--link", "0", "--rate", "-1M"},
      {"--down"},
  };
  for (const auto& options : misuse) {
    std::vector<std::string> args = {"testbed", "set", "--name", name};
    args.insert(args.end(), options.begin(), options.end());
    const std::string what = fmt::format("mpxdp {}", fmt::join(args, " "));
    const auto result = mpxdp(args);
    EXPECT_EQ(result.exitStatus, 2) << what << "\n" << result.err;
    expectErrorLines(result, "mpxdp testbed set", what);
  }
  const auto missing = mpxdp({"testbed", "set", "--name", name + "x", "--link", "0", "--down"});
  EXPECT_EQ(missing.exitStatus, 1) << missing.err;
  EXPECT_NE(missing.err.find("no test bed"), std::string::npos) << missing.err;
  auto shown = mpxdp({"testbed", "show", "--name", name, "-J"});
  ASSERT_EQ(shown.exitStatus, 0) << shown.err;
  auto json = nlohmann::json::parse(shown.out, nullptr, false);
  for (std::size_t i = 0; i < 2; ++i) {
    for (const char* key : {"rate_bps", "delay_ns", "loss_percent", "state"}) {
      EXPECT_EQ(json["links"][i][key], before["links"][i][key]) << "link " << i << " " << key << " changed";
    }
  }

  ASSERT_EQ(mpxdp({"testbed", "set", "--name", name, "--link", "0", "--down"}).exitStatus, 0);
  const auto set = mpxdp(
      {"testbed", "set", "--name", name, "--link", "1", "--rate", "50M", "--delay", "2ms", "--loss", "0.5%"});
  ASSERT_EQ(set.exitStatus, 0) << set.err;
  shown = mpxdp({"testbed", "show", "--name", name, "-J"});
  ASSERT_EQ(shown.exitStatus, 0) << shown.err;
  json = nlohmann::json::parse(shown.out, nullptr, false);
  EXPECT_EQ(json["links"][0]["state"], "down");
  EXPECT_EQ(json["links"][1]["state"], "up");
  EXPECT_EQ(json["links"][1]["rate_bps"], 50'000'000u);
  EXPECT_EQ(json["links"][1]["delay_ns"], 2'000'000u);
  EXPECT_EQ(json["links"][1]["loss_percent"], 0.5);
  const auto table = mpxdp({"testbed", "show", "--name", name});
  EXPECT_NE(table.out.find("down"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("2 ms"), std::string::npos) << table.out;
  EXPECT_EQ(mpxdp({"testbed", "set", "--name", name, "--link", "0", "--up", "--rate", "0"}).exitStatus, 0);
  EXPECT_EQ(mpxdp({"testbed", "down", "--name", name}).exitStatus, 0);
  EXPECT_FALSE(std::filesystem::exists("/run/mpxdp/testbed/" + name));
}

// A fresh network namespace has only lo, down and without addresses.
TEST(linkCli, InterfaceWithoutAddressIsNamedWithoutBlamingIpv6) {
  MPXDP_REQUIRE_PRIVILEGED();
  const auto recv = mpxdp::testbed::runProgram(
      {"unshare", "--net", MPXDP_EXECUTABLE, "recv", "--backend", "udp", "--link", "lo"});
  ASSERT_TRUE(recv) << recv.error().message();
  EXPECT_EQ(recv->exitStatus, 2) << recv->err;
  expectErrorLines(*recv, "mpxdp recv", "recv on lo without addresses");
  EXPECT_NE(recv->err.find("interface lo has no IP address"), std::string::npos) << recv->err;

  const auto send = mpxdp::testbed::runProgram({"unshare", "--net", MPXDP_EXECUTABLE, "send", "--backend",
                                                "udp", "--link", "lo=127.0.0.1", "-t", "1"});
  ASSERT_TRUE(send) << send.error().message();
  EXPECT_EQ(send->exitStatus, 2) << send->err;
  expectErrorLines(*send, "mpxdp send", "send on lo without addresses");
  EXPECT_NE(send->err.find("interface lo has no IPv4 address (peer 127.0.0.1 is IPv4)"), std::string::npos)
      << send->err;
  EXPECT_EQ(send->err.find("IPv6"), std::string::npos) << send->err;
}

// Not root: the xdp backend says so in one line, without libbpf's account of the refusal.
TEST(linkCli, XdpBackendWithoutRootSaysSoInOneLine) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::string name = fmt::format("c{}-nobody", getpid());
  struct Cleanup {
    std::string name;
    ~Cleanup() { (void)mpxdp::testbed::down(name); }
  } cleanup{name};
  const auto up = mpxdp({"testbed", "up", "--name", name, "--links", "1"});
  ASSERT_EQ(up.exitStatus, 0) << up.err;

  // Inside the test bed's namespaces (the sender needs its peer's MAC), as nobody with no capabilities.
  const auto asNobodyIn = [](const std::string& namespaceName) {
    return std::vector<std::string>{"ip",
                                    "netns",
                                    "exec",
                                    namespaceName,
                                    "setpriv",
                                    "--reuid=65534",
                                    "--regid=65534",
                                    "--clear-groups",
                                    "--inh-caps=-all",
                                    MPXDP_EXECUTABLE};
  };
  const std::vector<std::tuple<std::string, std::vector<std::string>, std::string>> cases = {
      {mpxdp::testbed::receiverNamespaceName(name),
       {"recv", "--backend", "xdp", "--link", "r0"},
       "mpxdp recv"},
      {mpxdp::testbed::senderNamespaceName(name),
       {"send", "--backend", "xdp", "--link", "s0=198.18.1.2", "-t", "1"},
       "mpxdp send"},
  };
  for (const auto& [namespaceName, args, prefix] : cases) {
    std::vector<std::string> argv = asNobodyIn(namespaceName);
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string what = fmt::format("{}", fmt::join(argv, " "));
    const auto result = mpxdp::testbed::runProgram(argv);
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_EQ(result->exitStatus, 1) << what << "\n" << result->err;
    expectErrorLines(*result, prefix, what);
    EXPECT_EQ(std::count(result->err.begin(), result->err.end(), '\n'), 1) << what << ":\n" << result->err;
    EXPECT_NE(result->err.find("needs root"), std::string::npos) << what << ": " << result->err;
    EXPECT_EQ(result->err.find("libbpf"), std::string::npos) << what << ": " << result->err;
    EXPECT_EQ(result->err.find("verifier"), std::string::npos) << what << ": " << result->err;
  }
}

// Path control options: misuse is a usage error (2) naming the option, before any link is opened.
TEST(linkCli, PathControlMisuseIsAUsageError) {
  MPXDP_REQUIRE_PRIVILEGED();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"send", "--link", "lo=127.0.0.1", "--scheduler", "auto"}, "--scheduler auto is gone"},
      {{"send", "--link", "lo=127.0.0.1", "--scheduler", "random"}, "expected eaf, rr or wrr"},
      {{"send", "--link", "lo=127.0.0.1", "--pacing", "sometimes"}, "expected auto or fixed"},
      {{"send", "--link", "lo=127.0.0.1", "--pacing", "fixed"}, "lo has none"},
      {{"send", "--backup-link", "lo=127.0.0.1"}, "needs at least one --link"},
      {{"send", "--link", "lo=127.0.0.1", "--backup-link", "lo=127.0.0.1"}, "lo is given twice"},
      {{"send", "--link", "lo=127.0.0.1", "--backup-link", "lo=nowhere"}, "--backup-link 'lo=nowhere'"},
      {{"send", "--link", "lo=127.0.0.1", "-i", "0.0001"}, "-i must be"},
      {{"send", "--testbed", "nosuchbed", "--link", "lo=127.0.0.1"}, "drop --link"},
      {{"recv", "--backup-link", "lo"}, "needs at least one --link"},
      {{"recv", "--link", "lo", "--backup-link", "lo"}, "lo is given twice"},
      {{"recv", "--link", "lo", "--pacing", "fixed"}, "lo has none"},
      {{"recv", "--link", "lo", "--scheduler", "auto"}, "--scheduler auto is gone"},
  };
  for (const auto& [args, message] : cases) {
    const std::string what = fmt::format("mpxdp {}", fmt::join(args, " "));
    const auto result = mpxdp(args);
    EXPECT_EQ(result.exitStatus, 2) << what << "\n" << result.err;
    expectErrorLines(result, "mpxdp " + args[0], what);
    EXPECT_NE(result.err.find(message), std::string::npos) << what << ": " << result.err;
  }
}

// -F, --reliable, --redundant, --reliable-window and --abort-timeout: misuse is
// a usage error (2) naming the option or the file, before any link is opened.
TEST(fileCli, FileAndReliabilityMisuseIsAUsageError) {
  MPXDP_REQUIRE_PRIVILEGED();
  std::string tmpl = (std::filesystem::temp_directory_path() / "mpxdp-cli-file-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::filesystem::path dir = tmpl;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string file = (dir / "data.bin").string();
  { std::ofstream(file) << "some bytes"; }
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"send", "--link", "lo=127.0.0.1", "-F", (dir / "none").string()}, "no such file"},
      {{"send", "--link", "lo=127.0.0.1", "-F", dir.string()}, "is a directory"},
      {{"send", "--link", "lo=127.0.0.1", "-F", "/dev/null"}, "not a regular file"},
      {{"send", "--link", "lo=127.0.0.1", "-F", file, "-R"}, "-F with -R or --bidir is not supported yet"},
      {{"send", "--link", "lo=127.0.0.1", "-F", file, "--bidir"},
       "-F with -R or --bidir is not supported yet"},
      {{"send", "--link", "lo=127.0.0.1", "-F", file, "-t", "5"}, "drop -t"},
      {{"send", "--link", "lo=127.0.0.1", "-F", file, "-l", "32"}, "-l must be at least 64 bytes with -F"},
      {{"send", "--link", "lo=127.0.0.1", "--reliable", "--reliable-window", "100"},
       "power of two in 64..65536"},
      {{"send", "--link", "lo=127.0.0.1", "--reliable-window", "128"}, "needs --reliable (or -F)"},
      {{"send", "--link", "lo=127.0.0.1", "--abort-timeout", "0"}, "--abort-timeout must be"},
      {{"recv", "--link", "lo", "-F", (dir / "missing" / "x").string()}, "does not exist"},
      {{"recv", "--link", "lo", "-F", (dir / "data.bin" / "x").string()}, "is not a directory"},
      {{"recv", "--link", "lo", "-F", dir.string()}, "is a directory"},
      {{"recv", "--link", "lo", "-F", dir.string() + "/"}, "names a directory"},
      {{"recv", "--link", "lo", "-F", "/dev/null"}, "not a regular file"},
      {{"recv", "--link", "lo", "-F", "/proc/mpxdp-file"}, "cannot create a file in directory '/proc'"},
      {{"recv", "--link", "lo", "-F", (dir / "out").string(), "--redundant"}, "with -F it only receives"},
      {{"recv", "--link", "lo", "--reliable", "--reliable-window", "65536"}, "at most --window"},
      {{"recv", "--link", "lo", "--abort-timeout", "-2"}, "--abort-timeout must be"},
  };
  for (const auto& [args, message] : cases) {
    const std::string what = fmt::format("mpxdp {}", fmt::join(args, " "));
    const auto result = mpxdp(args);
    EXPECT_EQ(result.exitStatus, 2) << what << "\n" << result.err;
    expectErrorLines(result, "mpxdp " + args[0], what);
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << what << ":\n" << result.err;
    EXPECT_NE(result.err.find(message), std::string::npos) << what << ": " << result.err;
  }
  // Nothing was created beside the paths that were refused.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()),
            1);
}

// A run over a test bed with a backup link and 10 ms intervals: the
// receiver's JSON has the path control fields in every interval, intervals on
// the run's 10 ms ticks that add up to the totals, path events and the ACK
// overhead; the sender's text report stays within 100 columns.
TEST(linkCli, BackupLinkAndTenMillisecondIntervals) {
  MPXDP_REQUIRE_PRIVILEGED();
  using namespace std::chrono_literals;
  const std::string name = fmt::format("c{}-bk", getpid());
  struct Cleanup {
    std::string name;
    ~Cleanup() { (void)mpxdp::testbed::down(name); }
  } cleanup{name};
  const auto up = mpxdp({"testbed", "up", "--name", name, "--links", "3", "--rate", "100M"});
  ASSERT_EQ(up.exitStatus, 0) << up.err;

  auto receiver = mpxdp::testbed::Subprocess::spawn(
      {MPXDP_EXECUTABLE, "recv", "--testbed", name, "-1", "-J", "-i", "0.01", "--backup-link", "r1"});
  ASSERT_TRUE(receiver) << receiver.error().message();
  ASSERT_TRUE(receiver->waitForStderr("mpxdp recv: ready", 20s)) << receiver->err();
  auto sender = mpxdp::testbed::Subprocess::spawn({MPXDP_EXECUTABLE, "send", "--testbed", name, "-t", "1",
                                                   "-b", "50M", "-i", "0.01", "--backup-link", "s1"});
  ASSERT_TRUE(sender) << sender.error().message();
  const auto sent = sender->wait(30s);
  ASSERT_TRUE(sent && *sent == 0) << sender->err();
  const auto received = receiver->wait(20s);
  ASSERT_TRUE(received && *received == 0) << receiver->err();

  // Sender text: the backup is listed last, per-path lines follow each [SUM] line.
  std::istringstream lines(sender->out());
  std::string line;
  std::size_t sums = 0;
  std::size_t pathLines = 0;
  while (std::getline(lines, line)) {
    EXPECT_LE(line.size(), 100u) << line;
    if (line.rfind("[SUM]", 0) == 0) ++sums;
    if (line.rfind("[  1] s2", 0) == 0 || line.rfind("[  2] s1", 0) == 0) ++pathLines;
  }
  // The default backend: kernel UDP on veth, AF_XDP where a driver runs it zero-copy.
  EXPECT_TRUE(std::regex_search(sender->out(), std::regex(R"(link 2: (udp|xdp):s1)"))) << sender->out();
  // 10 ms intervals in three decimals; the first may end late on a busy
  // machine (0.000-0.012 once under ASan), the next ones are back on the grid.
  EXPECT_TRUE(std::regex_search(sender->out(), std::regex(R"(\[SUM\] +0\.0[1-9]0-0\.0[2-9]0 +sec)")))
      << sender->out();
  EXPECT_GE(sums, 50u) << sender->out();
  EXPECT_GE(pathLines, 100u) << sender->out();

  const auto j = nlohmann::json::parse(receiver->out(), nullptr, false);
  ASSERT_TRUE(j.is_object()) << receiver->out();
  EXPECT_EQ(j.at("scheduler"), "eaf");
  EXPECT_EQ(j.at("pacing"), "auto");
  ASSERT_TRUE(j.at("ack_overhead").is_number()) << j.at("ack_overhead");
  EXPECT_GT(j.at("ack_overhead").get<double>(), 0.0);
  EXPECT_LT(j.at("ack_overhead").get<double>(), 0.1);
  ASSERT_TRUE(j.at("path_events").is_array());
  for (const auto& event : j.at("path_events")) {
    for (const char* key : {"time_s", "path", "interface", "from", "to"}) EXPECT_TRUE(event.contains(key));
  }
  ASSERT_EQ(j.at("paths").size(), 3u);
  EXPECT_EQ(j.at("paths")[2].at("name"), "r1");
  EXPECT_EQ(j.at("paths")[2].at("backup"), true);
  EXPECT_EQ(j.at("paths")[0].at("backup"), false);

  const auto& intervals = j.at("intervals");
  ASSERT_GE(intervals.size(), 50u);
  std::uint64_t packets = 0;
  std::uint64_t lost = 0;
  double previousEnd = 0;
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    const auto& interval = intervals[i];
    const double start = interval.at("start_s").get<double>();
    const double end = interval.at("end_s").get<double>();
    EXPECT_DOUBLE_EQ(start, previousEnd) << i;
    // Every interval but the last ends at or after the first 10 ms tick past its start.
    if (i + 1 < intervals.size()) {
      EXPECT_GT(std::floor((end + 1e-9) / 0.01), std::floor((start + 1e-9) / 0.01))
          << i << ": " << start << "-" << end;
    }
    previousEnd = end;
    packets += interval.at("packets").get<std::uint64_t>();
    lost += interval.at("lost_packets").get<std::uint64_t>();
    ASSERT_EQ(interval.at("paths").size(), 3u);
    for (const auto& path : interval.at("paths")) {
      for (const char* key : {"state", "backup", "packets", "lost", "pacing_bps", "estimate_bps",
                              "delivery_bps", "srtt_ns", "rttvar_ns", "loss_rate", "queue_delay_ns",
                              "rate_phase", "requeued", "ack_frames_sent", "control_bytes_sent"}) {
        EXPECT_TRUE(path.contains(key)) << key;
      }
    }
    EXPECT_EQ(interval.at("paths")[2].at("backup"), true);
  }
  EXPECT_EQ(packets, j.at("delivered_packets").get<std::uint64_t>());
  EXPECT_EQ(lost, j.at("lost_packets").get<std::uint64_t>());
}

}  // namespace
