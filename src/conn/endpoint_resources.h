// What an Endpoint owns besides its paths (e.g. the XDP steering program),
// kept alive until every path is closed.
#pragma once

#include <memory>
#include <vector>

#include "mpxdp/endpoint.h"

namespace mpxdp::conn {

class EndpointResources {
 public:
  virtual ~EndpointResources() = default;
  // Adds what the resources count (e.g. the steering program's counters).
  virtual void addStats(EndpointStats& stats) const = 0;
};

// Endpoint::create, plus resources destroyed after the paths.
Result<std::unique_ptr<Endpoint>> createEndpoint(const EndpointConfig& config,
                                                 std::vector<EndpointPath> paths,
                                                 std::shared_ptr<Clock> clock,
                                                 std::unique_ptr<EndpointResources> resources);

}  // namespace mpxdp::conn
