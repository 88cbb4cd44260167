// Loss and link-down for the test bed: a small XDP program (impair.bpf.c) on
// the ingress of a link's middle veths, one program and config map per device.
// It is attached through netlink, not a bpf_link, so it stays after the
// process that attached it exits, until the namespace goes. Later calls find
// its map from the device alone: device -> attached program id (bpf_xdp_query) -> the
// program's map ids (bpf_obj_get_info_by_fd: libbpf 1.1 has no bpf_prog_get_info_by_fd) -> the map
// whose type and value size are the config's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "impair_shared.h"
#include "mpxdp/error.h"

namespace mpxdp::testbed {

struct ImpairState {
  mpxdp_impair_config config{};
  mpxdp_impair_counters counters{};  // summed over CPUs
};

// Threshold for bpf_get_prandom_u32() that drops `lossPpm` parts per million.
std::uint32_t lossThresholdFor(std::uint32_t lossPpm);

// Makes sure the impairment program is on `device` in network namespace
// `namespaceName` (attaches it with a pass-everything config when there is no
// XDP program). EBUSY names a foreign XDP program that is there instead.
Result<void> attachImpair(const std::string& namespaceName, const std::string& device);

// The program's config and counters, or nullopt when no impairment program is attached.
Result<std::optional<ImpairState>> readImpair(const std::string& namespaceName, const std::string& device);

// Replaces the config of the attached program (ENOENT when there is none).
Result<void> writeImpair(const std::string& namespaceName, const std::string& device,
                         const mpxdp_impair_config& config);

}  // namespace mpxdp::testbed
