// Privileged tests: skip with a reason when not root, but fail under CI
// (CI=true), where a skip would hide a missing install step.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace mpxdp::test {

// Why privileged tests cannot run here, or nullopt when they can.
std::optional<std::string> privilegeMissing();
// Why a kernel feature needed by AF_XDP/XDP tests is missing, or nullopt.
std::optional<std::string> xdpFeatureMissing();
bool runningInCi();

}  // namespace mpxdp::test

// Use at the top of a TEST body.
#define MPXDP_REQUIRE_PRIVILEGED()                                           \
  do {                                                                       \
    auto mpxdpMissing_ = ::mpxdp::test::privilegeMissing();                  \
    if (!mpxdpMissing_) mpxdpMissing_ = ::mpxdp::test::xdpFeatureMissing();  \
    if (mpxdpMissing_) {                                                     \
      if (::mpxdp::test::runningInCi()) {                                    \
        FAIL() << "privileged test cannot run under CI: " << *mpxdpMissing_; \
      }                                                                      \
      GTEST_SKIP() << *mpxdpMissing_;                                        \
    }                                                                        \
  } while (0)
