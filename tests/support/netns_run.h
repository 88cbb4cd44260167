// Running programs inside a test bed's network namespaces (ip netns exec),
// and a scratch directory for key files: shared by the integration tests.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "process.h"

namespace mpxdp::test {

// `ip netns exec NS argv...`; a gtest failure (and exit status -1) when it cannot run.
testbed::ProgramOutput runIn(const std::string& ns, const std::vector<std::string>& argv,
                             std::chrono::milliseconds timeout = std::chrono::seconds(15));

// Pings `to` from ns, once a try, until one answer arrives or the limit passes.
bool waitForPing(const std::string& ns, const std::string& to, std::chrono::milliseconds limit);

// A fresh directory under the temporary directory, removed with everything in it.
struct ScratchDir {
  explicit ScratchDir(const std::string& prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::filesystem::path path;  // empty when it could not be made
};

}  // namespace mpxdp::test
