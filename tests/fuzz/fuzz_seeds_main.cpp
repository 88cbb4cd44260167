// fuzz_seeds OUTDIR [TARGET...]: writes each target's seeds (seeds.cpp) as
// OUTDIR/TARGET/seed-NN, for scripts/fuzz.sh to start the corpus with.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "seeds.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUTDIR [TARGET...]\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  int written = 0;
  for (const mpxdp::fuzz::SeedSet& set : mpxdp::fuzz::seedSets()) {
    bool wanted = argc == 2;
    for (int i = 2; i < argc; ++i) wanted = wanted || set.target == argv[i];
    if (!wanted) continue;
    const std::filesystem::path dir = out / std::string(set.target);
    std::filesystem::create_directories(dir);
    int n = 0;
    for (const mpxdp::fuzz::Bytes& seed : set.make()) {
      char name[32];
      std::snprintf(name, sizeof(name), "seed-%02d", n++);
      std::ofstream file(dir / name, std::ios::binary);
      file.write(reinterpret_cast<const char*>(seed.data()), static_cast<std::streamsize>(seed.size()));
      if (!file) {
        std::fprintf(stderr, "fuzz_seeds: cannot write %s\n", (dir / name).c_str());
        return 1;
      }
    }
    std::printf("fuzz_seeds: %s: %d seeds in %s\n", std::string(set.target).c_str(), n, dir.c_str());
    ++written;
  }
  for (int i = 2; i < argc; ++i) {
    if (mpxdp::fuzz::findSeedSet(argv[i]) == nullptr) {
      std::fprintf(stderr, "fuzz_seeds: no seeds for target %s\n", argv[i]);
      return 1;
    }
  }
  return written > 0 ? 0 : 1;
}
