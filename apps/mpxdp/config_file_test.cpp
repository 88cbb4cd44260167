// --config FILE of mpxdp tun: the TOML file becomes the arguments it stands for.
#include "config_file.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace mpxdp::cli {
namespace {

using Args = std::vector<std::string>;

// A command like `tun`: scalar, repeatable and flag options and --config.
struct Cli {
  CLI::App root{"test", "mpxdp"};
  std::string name;
  std::vector<std::string> links;
  int port = 0;
  bool quiet = false;
  std::string config;
  Cli() {
    CLI::App* tun = root.add_subcommand("tun");
    tun->add_option("--name", name);
    tun->add_option("--link", links);
    tun->add_option("-p,--port", port);
    tun->add_flag("--quiet", quiet);
    tun->add_option("--config", config);
    root.add_subcommand("send")->add_option("--name", name);
  }
};

class ConfigFileTest : public ::testing::Test {
 protected:
  std::string path_ = ::testing::TempDir() + "mpxdp_config_test_" + std::to_string(::getpid()) + ".toml";
  void write(const std::string& text) { std::ofstream(path_) << text; }
  void TearDown() override { std::remove(path_.c_str()); }
};

TEST_F(ConfigFileTest, TheFileBecomesArgumentsAfterTheCommand) {
  write("name = \"mpx0\"\nlink = [\"s0=10.0.0.2\", \"s1=10.0.1.2@300M\"]\nport = 47001\nquiet = true\n");
  Cli cli;
  auto args = expandConfigFile(cli.root, {"tun", "--config", path_});
  ASSERT_TRUE(args.ok()) << args.error().message();
  EXPECT_EQ(*args, (Args{"tun", "--name", "mpx0", "--link", "s0=10.0.0.2", "--link", "s1=10.0.1.2@300M",
                         "--port", "47001", "--quiet", "--config", path_}));
}

TEST_F(ConfigFileTest, TheCommandLineReplacesTheFilesValues) {
  write("name = \"mpx0\"\nlink = [\"s0=10.0.0.2\", \"s1=10.0.1.2\"]\nport = 47001\nquiet = false\n");
  Cli cli;
  auto args = expandConfigFile(cli.root, {"tun", "--config=" + path_, "--link", "s9=10.9.0.2", "-p", "5"});
  ASSERT_TRUE(args.ok()) << args.error().message();
  // Every --link of the file goes (repeatable options are replaced whole); a false flag adds nothing.
  EXPECT_EQ(*args, (Args{"tun", "--name", "mpx0", "--config=" + path_, "--link", "s9=10.9.0.2", "-p", "5"}));
}

TEST_F(ConfigFileTest, BadFilesAreErrorsNamingTheFile) {
  Cli cli;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bogus = 1\n", "unknown key 'bogus'"},
      {"config = \"other.toml\"\n", "unknown key 'config'"},
      {"[tun]\nname = \"x\"\n", "sections are not supported"},
      {"quiet = maybe\n", "'quiet' is a flag"},
  };
  for (const auto& [text, why] : cases) {
    write(text);
    auto args = expandConfigFile(cli.root, {"tun", "--config", path_});
    ASSERT_FALSE(args.ok()) << text;
    EXPECT_EQ(args.error().code(), EINVAL) << text;
    EXPECT_NE(args.error().message().find(why), std::string::npos) << args.error().message();
    EXPECT_NE(args.error().message().find(path_), std::string::npos) << args.error().message();
  }
  auto missing = expandConfigFile(cli.root, {"tun", "--config", path_ + ".none"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ENOENT);
  auto twice = expandConfigFile(cli.root, {"tun", "--config", path_, "--config", path_});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code(), EINVAL);
}

TEST_F(ConfigFileTest, OtherCommandsAndCommandLinesWithoutConfigAreLeftAlone) {
  write("name = \"mpx0\"\n");
  Cli cli;
  const Args send{"send", "--config", path_};  // send has no --config: CLI11 reports it
  EXPECT_EQ(*expandConfigFile(cli.root, send), send);
  const Args plain{"tun", "--name", "x"};
  EXPECT_EQ(*expandConfigFile(cli.root, plain), plain);
  EXPECT_EQ(*expandConfigFile(cli.root, {}), Args{});
}

}  // namespace
}  // namespace mpxdp::cli
