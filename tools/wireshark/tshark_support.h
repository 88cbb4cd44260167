// Helpers of the dissector tests: run tshark with tools/wireshark/mpxdp.lua
// loaded and read `-T fields` output, and a temporary directory that is
// removed with its contents when it goes out of scope.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mpxdp/error.h"
#include "privilege.h"

namespace mpxdp::test {

// Why tshark cannot be run here, or nullopt when it can.
std::optional<std::string> tsharkMissing();

// One row per packet, one column per field; a field that occurs several
// times in a packet gives its values in tree order.
using FieldRow = std::vector<std::vector<std::string>>;

// tshark -X lua_script:mpxdp.lua -r pcap [-Y filter] -T fields -e f...
Result<std::vector<FieldRow>> tsharkFields(const std::string& pcap, const std::vector<std::string>& fields,
                                           const std::string& filter = "");

// Numbers (frame.number) of the packets matching a display filter.
Result<std::vector<int>> tsharkMatching(const std::string& pcap, const std::string& filter);

class TempDir {
 public:
  static Result<TempDir> create(const std::string& prefix);
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace mpxdp::test

// Skips when tshark is missing, but fails under CI (CI=true), where
// scripts/install-deps.sh installs it.
#define MPXDP_REQUIRE_TSHARK()                                        \
  do {                                                                \
    auto mpxdpNoTshark_ = ::mpxdp::test::tsharkMissing();             \
    if (mpxdpNoTshark_) {                                             \
      if (::mpxdp::test::runningInCi()) {                             \
        FAIL() << "tshark is required under CI: " << *mpxdpNoTshark_; \
      }                                                               \
      GTEST_SKIP() << *mpxdpNoTshark_;                                \
    }                                                                 \
  } while (0)
