// Counter-based pseudo-random tensors that Python (tests/reference/detinit.py) and C++ produce bit for
// bit: element i of tensor `name` is a function of (seed, FNV-1a(name), i) through splitmix64, mapped to an
// exact float32 in [-1, 1). Real-size reference fixtures therefore ship only their small inputs, outputs and
// the per-tensor (scale, offset) rule, never hundreds of MB of weights: the test regenerates the weights.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

namespace monologue {

uint64_t Fnv1a64(std::string_view text);

// Uniform values in [-1, 1) with 24 bits of precision, exactly representable in float32.
void FillDeterministicUniform(uint64_t seed, std::string_view name, float* out, int64_t count);

// A float32 CPU tensor: offset + scale * uniform(seed, name), with the product and sum done in float32.
at::Tensor DeterministicTensor(uint64_t seed, std::string_view name, at::IntArrayRef shape, float scale,
                               float offset = 0.0f);

}  // namespace monologue
