#include "core/model/deterministic_weights.h"

#include <ATen/ATen.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

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

absl::StatusOr<InitRuleMetadata> InitRuleMetadata::Parse(const std::map<std::string, std::string>& metadata,
                                                         std::string source) {
  uint64_t seed = 0;
  const auto it = metadata.find("seed");
  if (it == metadata.end() || !absl::SimpleAtoi(it->second, &seed)) {
    return absl::DataLossError(absl::StrCat(source, ": no numeric \"seed\" in the init-rule metadata"));
  }
  return InitRuleMetadata(metadata, std::move(source), seed);
}

std::vector<std::string> InitRuleMetadata::TensorNames() const {
  std::vector<std::string> names;
  for (const auto& [key, value] : metadata_) {
    if (key.rfind("init:", 0) == 0) names.push_back(key.substr(5));
  }
  return names;
}

absl::StatusOr<at::Tensor> InitRuleMetadata::Tensor(const std::string& name) const {
  const auto init = metadata_.find("init:" + name);
  const auto shape_entry = metadata_.find("shape:" + name);
  if (init == metadata_.end() || shape_entry == metadata_.end()) {
    return absl::NotFoundError(absl::StrCat(source_, ": no init rule for tensor ", name));
  }
  const std::vector<std::string> rule = absl::StrSplit(init->second, ' ');
  double scale = 0, offset = 0;
  if (rule.size() != 2 || !absl::SimpleAtod(rule[0], &scale) || !absl::SimpleAtod(rule[1], &offset)) {
    return absl::DataLossError(
        absl::StrCat(source_, ": init rule of ", name, " is '", init->second, "', expected 'SCALE OFFSET'"));
  }
  std::vector<int64_t> shape;
  if (!shape_entry->second.empty()) {
    for (absl::string_view d : absl::StrSplit(shape_entry->second, ',')) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(d, &v) || v < 0) {
        return absl::DataLossError(
            absl::StrCat(source_, ": shape of ", name, " is '", shape_entry->second, "', expected 'D0,D1,...'"));
      }
      shape.push_back(v);
    }
  }
  return DeterministicTensor(seed_, name, shape, static_cast<float>(scale), static_cast<float>(offset));
}

}  // namespace monologue
