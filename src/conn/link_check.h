// Checks shared by Sender::create and Receiver::create.
#pragma once

#include <cstdint>
#include <vector>

#include "mpxdp/connection.h"

namespace mpxdp::conn {

// Validates the config and the links; returns the largest payload that fits
// every link after the multipath header.
Result<std::uint32_t> checkConnection(const ConnectionConfig& config, const std::vector<Link>& links);

}  // namespace mpxdp::conn
