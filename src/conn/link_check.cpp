#include "link_check.h"

#include <algorithm>
#include <string>

#include "wire/codec.h"

namespace mpxdp::conn {

Result<std::uint32_t> checkConnection(const ConnectionConfig& config, const std::vector<Link>& links) {
  if (links.empty()) return Error(EINVAL, "connection needs at least one link");
  if (links.size() > UINT16_MAX) return Error(EINVAL, "too many links (path id is 16 bits)");
  if (config.batchSize == 0 || config.batchSize > 4096) {
    return Error(EINVAL, "batch size must be in [1, 4096], got " + std::to_string(config.batchSize));
  }
  std::uint32_t maxPayload = UINT16_MAX;  // payload_len is a 16-bit field
  for (std::size_t i = 0; i < links.size(); ++i) {
    if (!links[i].io) return Error(EINVAL, "link " + std::to_string(i) + " has no packet I/O");
    const std::uint32_t linkMax = links[i].io->maxPayload();
    if (linkMax <= wire::kMpHeaderLen) {
      return Error(EINVAL, "link " + std::to_string(i) + " (" + links[i].io->describe() + ") carries only " +
                               std::to_string(linkMax) + " bytes, not more than the multipath header");
    }
    maxPayload =
        std::min<std::uint32_t>(maxPayload, linkMax - static_cast<std::uint32_t>(wire::kMpHeaderLen));
  }
  return maxPayload;
}

}  // namespace mpxdp::conn
