// Seed inputs of every fuzz target, made with the project's encoders (so they
// follow the format as it changes). Used by fuzz_seeds (scripts/fuzz.sh writes
// them into the corpus) and by the replay tests of the normal build.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace mpxdp::fuzz {

using Bytes = std::vector<std::uint8_t>;

struct SeedSet {
  std::string_view target;  // the fuzz target's name
  std::vector<Bytes> (*make)();
};

std::span<const SeedSet> seedSets();
// nullptr for a target without seeds.
const SeedSet* findSeedSet(std::string_view target);

}  // namespace mpxdp::fuzz
