// A main() for the fuzz targets when they are built without libFuzzer (the normal gcc build): runs the
// target on every file of a seed corpus, then on `mutations` deterministic mutations of each (byte flips,
// truncations, splices, inserted bytes). The test suite runs this as a smoke test of every target; real
// fuzzing links the same target with -fsanitize=fuzzer instead (MONOLOGUE_FUZZ=ON, see tests/fuzz/README.md).
//
//   <target>_fuzzer CORPUS_DIR [mutations]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> Mutate(const std::vector<uint8_t>& seed, std::mt19937_64& rng) {
  std::vector<uint8_t> out = seed;
  const int edits = 1 + static_cast<int>(rng() % 8);
  for (int e = 0; e < edits; ++e) {
    const size_t n = out.size();
    switch (rng() % 5) {
      case 0:  // flip a byte
        if (n > 0) out[rng() % n] ^= static_cast<uint8_t>(1 + rng() % 255);
        break;
      case 1:  // truncate
        if (n > 0) out.resize(rng() % n);
        break;
      case 2:  // an interesting value
        if (n > 0) out[rng() % n] = std::vector<uint8_t>{0, 0xff, 0x7f, 0x80, '"', '{', '0'}[rng() % 7];
        break;
      case 3:  // insert bytes
        out.insert(out.begin() + static_cast<std::ptrdiff_t>(n > 0 ? rng() % n : 0), 1 + rng() % 16,
                   static_cast<uint8_t>(rng()));
        break;
      default:  // duplicate a slice
        if (n > 1) {
          const size_t a = rng() % n, len = 1 + rng() % std::min<size_t>(n - a, 64);
          std::vector<uint8_t> slice(out.begin() + static_cast<std::ptrdiff_t>(a),
                                     out.begin() + static_cast<std::ptrdiff_t>(a + len));
          out.insert(out.begin() + static_cast<std::ptrdiff_t>(rng() % n), slice.begin(), slice.end());
        }
        break;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [mutations per seed]\n", argv[0]);
    return 2;
  }
  const int mutations = argc > 2 ? std::atoi(argv[2]) : 200;
  std::vector<std::filesystem::path> seeds;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    if (entry.is_regular_file()) seeds.push_back(entry.path());
  }
  std::sort(seeds.begin(), seeds.end());
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: no seed files in %s\n", argv[0], argv[1]);
    return 2;
  }
  std::mt19937_64 rng(20261130);
  long runs = 0;
  for (const auto& path : seeds) {
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(seed.data(), seed.size());
    ++runs;
    for (int m = 0; m < mutations; ++m, ++runs) {
      const std::vector<uint8_t> input = Mutate(seed, rng);
      LLVMFuzzerTestOneInput(input.data(), input.size());
    }
  }
  LLVMFuzzerTestOneInput(nullptr, 0);
  std::printf("%ld inputs ran clean (%zu seeds)\n", runs + 1, seeds.size());
  return 0;
}
