#include "netns_run.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <thread>

namespace mpxdp::test {

testbed::ProgramOutput runIn(const std::string& ns, const std::vector<std::string>& argv,
                             std::chrono::milliseconds timeout) {
  std::vector<std::string> all = {"ip", "netns", "exec", ns};
  all.insert(all.end(), argv.begin(), argv.end());
  auto out = testbed::runProgram(all, timeout);
  if (!out) {
    ADD_FAILURE() << testbed::commandLine(all) << ": " << out.error().message();
    return {.exitStatus = -1};
  }
  return *out;
}

bool waitForPing(const std::string& ns, const std::string& to, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (runIn(ns, {"ping", "-n", "-c", "1", "-W", "1", to}, std::chrono::seconds(5)).exitStatus == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

ScratchDir::ScratchDir(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) != nullptr) path = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  if (!path.empty()) std::filesystem::remove_all(path, ignored);
}

}  // namespace mpxdp::test
