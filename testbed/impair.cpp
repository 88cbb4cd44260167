#include "impair.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "mpxdp_impair.skel.h"
#include "testbed.h"

#include "unique_fd.h"

namespace mpxdp::testbed {
namespace {

Result<int> ifindexOf(const std::string& device) {
  const unsigned ifindex = if_nametoindex(device.c_str());
  if (ifindex == 0) return Error::fromErrno("no device " + device);
  return static_cast<int>(ifindex);
}

// Id of the XDP program attached to ifindex, 0 when none.
Result<std::uint32_t> attachedProgram(int ifindex, const std::string& device) {
  bpf_xdp_query_opts query{};
  query.sz = sizeof(query);
  if (const int err = bpf_xdp_query(ifindex, 0, &query); err != 0) {
    return Error(-err, "query XDP program on " + device);
  }
  for (const std::uint32_t id : {query.prog_id, query.drv_prog_id, query.skb_prog_id}) {
    if (id != 0) return id;
  }
  return 0u;
}

struct ImpairMaps {
  int config = -1;    // owned by the caller
  int counters = -1;  // owned by the caller
};

// The impairment program's maps, recognised by type and value size; ENOENT
// when the program is not ours.
Result<ImpairMaps> mapsOfProgram(std::uint32_t programId, const std::string& device) {
  UniqueFd program(bpf_prog_get_fd_by_id(programId));
  if (program.get() < 0)
    return Error::fromErrno(fmt::format("open XDP program id {} on {}", programId, device));
  std::vector<std::uint32_t> mapIds(8);
  bpf_prog_info info{};
  info.nr_map_ids = static_cast<std::uint32_t>(mapIds.size());
  info.map_ids = reinterpret_cast<std::uintptr_t>(mapIds.data());
  std::uint32_t length = sizeof(info);
  if (const int err = bpf_obj_get_info_by_fd(program.get(), &info, &length); err != 0) {
    return Error(-err, fmt::format("read XDP program id {} on {}", programId, device));
  }
  ImpairMaps maps;
  const std::uint32_t count = std::min<std::uint32_t>(info.nr_map_ids, mapIds.size());
  for (std::uint32_t i = 0; i < count; ++i) {
    const int fd = bpf_map_get_fd_by_id(mapIds[i]);
    if (fd < 0) continue;
    bpf_map_info mapInfo{};
    std::uint32_t mapLength = sizeof(mapInfo);
    if (bpf_obj_get_info_by_fd(fd, &mapInfo, &mapLength) == 0 && mapInfo.max_entries == 1) {
      if (maps.config < 0 && mapInfo.type == BPF_MAP_TYPE_ARRAY &&
          mapInfo.value_size == sizeof(mpxdp_impair_config)) {
        maps.config = fd;
        continue;
      }
      if (maps.counters < 0 && mapInfo.type == BPF_MAP_TYPE_PERCPU_ARRAY &&
          mapInfo.value_size == sizeof(mpxdp_impair_counters)) {
        maps.counters = fd;
        continue;
      }
    }
    close(fd);
  }
  if (maps.config >= 0 && maps.counters >= 0) return maps;
  if (maps.config >= 0) close(maps.config);
  if (maps.counters >= 0) close(maps.counters);
  return Error(ENOENT, fmt::format("XDP program id {} on {} is not the test bed's impairment program "
                                   "(\"{}\")",
                                   programId, device, info.name));
}

// Looks up the impairment maps on a device in the current namespace; nullopt without any XDP program.
Result<std::optional<ImpairMaps>> findMaps(const std::string& device) {
  auto ifindex = ifindexOf(device);
  if (!ifindex) return ifindex.error();
  auto id = attachedProgram(*ifindex, device);
  if (!id) return id.error();
  if (*id == 0) return std::optional<ImpairMaps>();
  auto maps = mapsOfProgram(*id, device);
  if (!maps) return maps.error();
  return std::optional<ImpairMaps>(*maps);
}

}  // namespace

std::uint32_t lossThresholdFor(std::uint32_t lossPpm) {
  if (lossPpm == 0) return 0;
  if (lossPpm >= MPXDP_IMPAIR_PPM) return 0xffffffffu;
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(lossPpm) << 32) / MPXDP_IMPAIR_PPM);
}

Result<void> attachImpair(const std::string& namespaceName, const std::string& device) {
  auto scope = NetnsScope::enter(namespaceName);
  if (!scope) return scope.error();
  auto found = findMaps(device);
  if (!found) {
    if (found.error().code() == ENOENT) return Error(EBUSY, found.error().context());
    return found.error();
  }
  if (*found) {
    close((*found)->config);
    close((*found)->counters);
    return {};
  }
  auto ifindex = ifindexOf(device);
  if (!ifindex) return ifindex.error();
  mpxdp_impair* skeleton = mpxdp_impair__open_and_load();
  if (skeleton == nullptr) return Error::fromErrno("load the impairment XDP program for " + device);
  const mpxdp_impair_config pass{};
  const std::uint32_t key = 0;
  int err = bpf_map__update_elem(skeleton->maps.impair_config, &key, sizeof(key), &pass, sizeof(pass), 0);
  if (err == 0) {
    // Netlink attach (no bpf_link): it outlives this process.
    err = bpf_xdp_attach(*ifindex, bpf_program__fd(skeleton->progs.xdp_impair),
                         XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr);
  }
  mpxdp_impair__destroy(skeleton);  // the attached program keeps itself and its maps alive
  if (err != 0) return Error(-err, "attach the impairment XDP program to " + device + " (native mode)");
  return {};
}

Result<std::optional<ImpairState>> readImpair(const std::string& namespaceName, const std::string& device) {
  auto scope = NetnsScope::enter(namespaceName);
  if (!scope) return scope.error();
  auto found = findMaps(device);
  if (!found) return found.error();
  if (!*found) return std::optional<ImpairState>();
  UniqueFd config((*found)->config);
  UniqueFd counters((*found)->counters);
  ImpairState state;
  const std::uint32_t key = 0;
  if (bpf_map_lookup_elem(config.get(), &key, &state.config) != 0) {
    return Error::fromErrno("read the impairment config of " + device);
  }
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error(-cpus, "count possible CPUs");
  std::vector<mpxdp_impair_counters> perCpu(static_cast<std::size_t>(cpus));
  if (bpf_map_lookup_elem(counters.get(), &key, perCpu.data()) != 0) {
    return Error::fromErrno("read the impairment counters of " + device);
  }
  for (const auto& c : perCpu) {
    state.counters.passed += c.passed;
    state.counters.lost += c.lost;
    state.counters.down_dropped += c.down_dropped;
  }
  return std::optional<ImpairState>(state);
}

Result<void> writeImpair(const std::string& namespaceName, const std::string& device,
                         const mpxdp_impair_config& config) {
  auto scope = NetnsScope::enter(namespaceName);
  if (!scope) return scope.error();
  auto found = findMaps(device);
  if (!found) return found.error();
  if (!*found) return Error(ENOENT, "no impairment program on " + device);
  UniqueFd configFd((*found)->config);
  UniqueFd countersFd((*found)->counters);
  const std::uint32_t key = 0;
  if (bpf_map_update_elem(configFd.get(), &key, &config, BPF_ANY) != 0) {
    return Error::fromErrno("write the impairment config of " + device);
  }
  return {};
}

}  // namespace mpxdp::testbed
