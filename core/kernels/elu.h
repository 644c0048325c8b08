// ELU (alpha 1) for f32 CPU tensors: x where x > 0, expm1(x) elsewhere. Mimi's SEANet runs 13 ELUs a frame
// each way, over up to 64 x 1920 values; ATen's vectorised ELU spends most of its time in Sleef's expm1 (90
// µs for 64 x 1920 values on the development VM, ~0.8 ms a frame). This one computes expm1 only from a short
// polynomial after the usual range reduction: within 0.84 ulp of the exact value where at::elu is within 1.00
// (measured, elu_test), so outputs may differ from at::elu in the last bit.
#pragma once

#include <ATen/core/Tensor.h>

namespace monologue::kernels {

// Whether Elu serves `x` on this machine (f32 on the CPU, AVX2 or AVX-512, the same bits on both); otherwise
// callers keep at::elu.
bool ServesElu(const at::Tensor& x);

// elu(x) with alpha 1, as a new tensor of x's shape and (for a dense x) strides. Needs ServesElu(x).
at::Tensor Elu(const at::Tensor& x);

// at::elu(x) or, where it serves x, Elu(x).
at::Tensor EluOrAten(const at::Tensor& x);

}  // namespace monologue::kernels
