#include "reorderer.h"

#include <bit>
#include <cerrno>
#include <string>

#include "reorderer_kinds.h"

namespace mpxdp::reorder {

namespace {
constexpr std::uint32_t kMinWindow = 64;
constexpr std::uint32_t kMaxWindow = 1U << 24;
constexpr std::uint32_t kMaxSortCapacity = 1U << 16;
}  // namespace

Result<std::unique_ptr<Reorderer>> makeReorderer(const ReorderOptions& options) {
  if (options.windowPackets < kMinWindow || options.windowPackets > kMaxWindow ||
      !std::has_single_bit(options.windowPackets)) {
    return Error(EINVAL, "reorderer: windowPackets must be a power of two in [64, 2^24], got " +
                             std::to_string(options.windowPackets));
  }
  if (options.pathCount == 0 || options.pathCount > kMaxReorderPaths) {
    return Error(EINVAL, "reorderer: pathCount must be in [1, " + std::to_string(kMaxReorderPaths) +
                             "], got " + std::to_string(options.pathCount));
  }
  if (options.reliable && options.kind != ReorderKind::kWindow) {
    return Error(EINVAL, "reorderer: reliable mode needs the window reorderer, not " +
                             std::string(toString(options.kind)));
  }
  switch (options.kind) {
    case ReorderKind::kWindow:
      if (options.adaptiveTimeout) {
        if (options.minTimeoutNs > options.maxTimeoutNs) {
          return Error(EINVAL, "reorderer: minTimeoutNs is above maxTimeoutNs");
        }
      } else if (options.fixedTimeoutNs == 0) {
        return Error(EINVAL, "reorderer: fixedTimeoutNs must be positive");
      }
      if (options.fastLossThreshold == 0 || options.fastLossThreshold > kMaxFastLossThreshold) {
        return Error(EINVAL, "reorderer: fastLossThreshold must be in [1, " +
                                 std::to_string(kMaxFastLossThreshold) + "], got " +
                                 std::to_string(options.fastLossThreshold));
      }
      return detail::newWindowReorderer(options);
    case ReorderKind::kSort:
      if (options.sortCapacityPackets == 0 || options.sortCapacityPackets > kMaxSortCapacity) {
        return Error(EINVAL, "reorderer: sortCapacityPackets must be in [1, 65536], got " +
                                 std::to_string(options.sortCapacityPackets));
      }
      if (options.sortCapacityPackets > options.windowPackets) {
        return Error(EINVAL, "reorderer: sortCapacityPackets must not exceed windowPackets");
      }
      return detail::newSortReorderer(options);
    case ReorderKind::kOff:
      return detail::newOffReorderer(options);
  }
  return Error(EINVAL, "reorderer: unknown kind " + std::to_string(static_cast<int>(options.kind)));
}

}  // namespace mpxdp::reorder

// Public (include/mpxdp/options.h).
namespace mpxdp {

Result<ReorderKind> parseReorderKind(std::string_view name) {
  if (name == "window") return ReorderKind::kWindow;
  if (name == "sort") return ReorderKind::kSort;
  if (name == "off") return ReorderKind::kOff;
  return Error(EINVAL, "unknown reorderer '" + std::string(name) + "' (expected window, sort or off)");
}

std::string_view toString(ReorderKind kind) noexcept {
  switch (kind) {
    case ReorderKind::kWindow:
      return "window";
    case ReorderKind::kSort:
      return "sort";
    case ReorderKind::kOff:
      return "off";
  }
  return "unknown";
}

}  // namespace mpxdp
