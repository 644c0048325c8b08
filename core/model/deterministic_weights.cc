#include "core/model/deterministic_weights.h"

#include <ATen/ATen.h>

namespace monologue {
namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

inline uint64_t SplitMix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

uint64_t Fnv1a64(std::string_view text) {
  uint64_t hash = 0xCBF29CE484222325ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001B3ULL;
  }
  return hash;
}

void FillDeterministicUniform(uint64_t seed, std::string_view name, float* out, int64_t count) {
  const uint64_t base = seed ^ Fnv1a64(name);
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t bits = SplitMix64(base + static_cast<uint64_t>(i + 1) * kGolden);
    // Top 24 bits -> integer in [0, 2^24) -> [-1, 1) exactly.
    out[i] = static_cast<float>(static_cast<int64_t>(bits >> 40) - (1 << 23)) * (1.0f / (1 << 23));
  }
}

at::Tensor DeterministicTensor(uint64_t seed, std::string_view name, at::IntArrayRef shape, float scale,
                               float offset) {
  at::Tensor t = at::empty(shape, at::kFloat);
  float* data = t.data_ptr<float>();
  FillDeterministicUniform(seed, name, data, t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = offset + scale * data[i];
  return t;
}

}  // namespace monologue
