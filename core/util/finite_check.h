// Whether a tensor holds only finite numbers: loaders refuse checkpoints with NaN or infinite weights (a
// corrupt or badly converted file) by name instead of producing empty transcripts or noise.
#pragma once

#include <ATen/core/Tensor.h>

namespace monologue {

// True when no element of `t` is NaN or infinite (integer tensors: always). CPU f32 / bf16 / f16 / f64
// tensors are checked on their exponent bits in parallel chunks, about the cost of reading them once; other
// devices and dtypes through ATen.
bool AllFinite(const at::Tensor& t);

}  // namespace monologue
