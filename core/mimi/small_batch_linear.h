// y = x · wᵀ (+ bias) for few rows of x: the shape of every streaming Mimi step at small batch (a frame is 1
// or 2 transformer tokens per stream, and the deepest SEANet convolutions see 2 time steps). There the cost
// is reading the weights once from memory; MKL's sgemm with 2 rows reads them at a third of the speed of a
// plain dot-product sweep on this project's CPUs, so this kernel streams each weight row once and takes
// every x row's dot product with it. Each output is the same function of its own x row and weight row
// whatever the number of rows, so a stream's result does not depend on what else is in the batch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace monologue::mimi {

// Whether SmallBatchLinear serves `rows` rows of float32 CPU input on this machine (it needs AVX-512;
// elsewhere callers keep ATen's GEMM).
bool UseSmallBatchLinear(const at::Tensor& x, int64_t rows);

// x [..., K] float32 CPU (any strides: copied to rows if needed), weight [N, K] contiguous float32, bias
// [N] or undefined -> [..., N]. Threads: at::parallel_for over N.
at::Tensor SmallBatchLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// at::linear(x, weight, bias), through SmallBatchLinear when it serves x's row count.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace monologue::mimi
