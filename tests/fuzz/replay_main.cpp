// A fuzz target in the normal build (any compiler, no libFuzzer): runs the
// target's seeds (seeds.cpp), deterministic mutations of them and the input
// files or directories given (regression inputs from fuzzing) through the
// target's oracles. A broken oracle aborts: the test fails.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "seeds.h"

namespace {

using mpxdp::fuzz::Bytes;

constexpr int kMutantsPerSeed = 1000;

struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
};

// A few random edits: bit flips, byte sets, inserts, erases, truncation.
Bytes mutate(Bytes in, Rng& rng) {
  const std::size_t edits = 1 + rng.below(4);
  for (std::size_t e = 0; e < edits; ++e) {
    const std::size_t at = rng.below(in.size() + 1);
    switch (rng.below(5)) {
      case 0:
        if (at < in.size()) in[at] ^= static_cast<std::uint8_t>(1U << rng.below(8));
        break;
      case 1:
        if (at < in.size()) in[at] = static_cast<std::uint8_t>(rng.next());
        break;
      case 2:
        in.insert(in.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng.next()));
        break;
      case 3:
        if (at < in.size()) in.erase(in.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      default:
        in.resize(at);
        break;
    }
  }
  return in;
}

void runOne(const Bytes& input) { LLVMFuzzerTestOneInput(input.data(), input.size()); }

bool runFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "%s: cannot read %s\n", MPXDP_FUZZ_TARGET, path.c_str());
    return false;
  }
  const Bytes input((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  runOne(input);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const mpxdp::fuzz::SeedSet* set = mpxdp::fuzz::findSeedSet(MPXDP_FUZZ_TARGET);
  std::size_t runs = 0;
  if (set != nullptr) {
    Rng rng{0x9e3779b97f4a7c15ULL};
    for (const Bytes& seed : set->make()) {
      runOne(seed);
      ++runs;
      for (int i = 0; i < kMutantsPerSeed; ++i, ++runs) runOne(mutate(seed, rng));
    }
  }
  std::size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path path = argv[i];
    if (!std::filesystem::exists(path)) continue;  // no regression inputs yet
    std::vector<std::filesystem::path> inputs;
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::directory_iterator(path)) {
        if (entry.is_regular_file()) inputs.push_back(entry.path());
      }
      std::sort(inputs.begin(), inputs.end());
    } else {
      inputs.push_back(path);
    }
    for (const auto& input : inputs) {
      if (!runFile(input)) return 1;
      ++files;
    }
  }
  std::printf("%s: %zu seeds and mutants, %zu files: every oracle held\n", MPXDP_FUZZ_TARGET, runs, files);
  return runs + files > 0 ? 0 : 1;
}
