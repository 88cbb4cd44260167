// Internal: constructors of the reorderer kinds; options are validated by makeReorderer().
#pragma once

#include <memory>

#include "reorderer.h"

namespace mpxdp::reorder::detail {

std::unique_ptr<Reorderer> newWindowReorderer(const ReorderOptions& options);
std::unique_ptr<Reorderer> newSortReorderer(const ReorderOptions& options);
std::unique_ptr<Reorderer> newOffReorderer(const ReorderOptions& options);

}  // namespace mpxdp::reorder::detail
