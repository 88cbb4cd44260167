#include "umem.h"

#include <sys/mman.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <cerrno>
#include <string>

#include "bits.h"

namespace mpxdp::xsk {
Result<std::unique_ptr<Umem>> Umem::create(const UmemConfig& config) {
  const long pageSize = sysconf(_SC_PAGESIZE);
  if (!isPowerOfTwo(config.frameSize) || config.frameSize < 2048 ||
      config.frameSize > static_cast<std::uint32_t>(pageSize)) {
    return Error(EINVAL, "UMEM frame size " + std::to_string(config.frameSize) +
                             " must be a power of two between 2048 and the page size (" +
                             std::to_string(pageSize) + ")");
  }
  if (config.frameCount == 0) return Error(EINVAL, "UMEM frame count must be positive");
  if (!isPowerOfTwo(config.fillRingSize) || !isPowerOfTwo(config.completionRingSize)) {
    return Error(EINVAL, "UMEM fill ring size " + std::to_string(config.fillRingSize) +
                             " and completion ring size " + std::to_string(config.completionRingSize) +
                             " must be powers of two");
  }

  std::unique_ptr<Umem> umem(new Umem());
  umem->config_ = config;
  umem->size_ = static_cast<std::size_t>(config.frameCount) * config.frameSize;
  void* area =
      mmap(nullptr, umem->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (area == MAP_FAILED) {
    return Error::fromErrno("mmap of a " + std::to_string(umem->size_) + "-byte UMEM area");
  }
  umem->area_ = static_cast<std::uint8_t*>(area);

  xsk_umem_config umemConfig{};
  umemConfig.fill_size = config.fillRingSize;
  umemConfig.comp_size = config.completionRingSize;
  umemConfig.frame_size = config.frameSize;
  umemConfig.frame_headroom = 0;
  umemConfig.flags = 0;
  const int rc = xsk_umem__create(&umem->umem_, umem->area_, umem->size_, umem->fill_.raw(),
                                  umem->completion_.raw(), &umemConfig);
  if (rc != 0) {
    umem->umem_ = nullptr;
    return Error(-rc, "registering a UMEM of " + std::to_string(config.frameCount) + " frames of " +
                          std::to_string(config.frameSize) +
                          " bytes (needs CAP_NET_RAW and CONFIG_XDP_SOCKETS)");
  }
  return umem;
}

Umem::~Umem() {
  if (umem_ != nullptr) xsk_umem__delete(umem_);
  if (area_ != nullptr) munmap(area_, size_);
}

}  // namespace mpxdp::xsk
