// y = x · wᵀ (+ bias) for few rows of x, f32 input and output, weights in f32 or bf16: the shape of every
// streaming step at small batch (an LM step is one token per stream; a Mimi frame is 1 or 2 transformer
// tokens per stream and the deepest SEANet convolutions see 2 time steps). There the cost is reading the
// weights once from memory: MKL's sgemm/sgemv reaches 11-16 GB/s on this project's 2-vCPU VM for the LM's
// shapes at 1 row (and a third of the sweep speed at 2 rows), while a plain dot-product sweep streams at
// the ~20 GB/s the memory gives. So this kernel streams each weight row once and takes every x row's dot
// product with it. bf16 weights are widened to f32 in registers (exact), so the arithmetic is the f32
// product of the bf16 values with half the bytes read.
//
// Each output is the same function of its own x row and weight row whatever the number of rows (fixed
// summation order: 16 lanes over K, then a fixed tree), so a stream's result does not depend on what else
// is in the batch, on how many threads run, or on whether the CPU has AVX-512 or only AVX2 (whose code keeps
// the 16 lanes as two halves of 8).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace monologue::kernels {

// Whether this CPU runs the kernel (it needs AVX2 + FMA, or AVX-512, which give the same bits; elsewhere
// everything goes to ATen's GEMM).
bool HasFewRowKernel();

// Whether FewRowLinear serves `rows` rows of x (f32 on the CPU) on this machine: up to 16 rows for f32
// weights (beyond, MKL's blocked GEMM wins), up to 64 for bf16 weights (where the alternative is widening
// the whole weight on every call). For more rows callers keep ATen's GEMM.
bool ServesFewRows(const at::Tensor& x, int64_t rows, at::ScalarType weight_dtype = at::kFloat);
// The most rows served for weights of this dtype (16 for f32, 64 for bf16).
int64_t MaxFewRows(at::ScalarType weight_dtype);

// x [..., K] f32 CPU (any strides: copied to rows if needed), weight [N, K] contiguous f32 or bf16, bias [N]
// f32 or undefined -> [..., N] f32. Threads: at::parallel_for over N.
at::Tensor FewRowLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// The raw form, for callers that loop over a few rows themselves (the RVQ's 32 levels, where the ATen calls
// around each small product cost more than the product): y[m, n] = x[m, k] · w[n, k]ᵀ with FewRowLinear's
// rounding; x and y rows contiguous, f32 weights [n, k] contiguous. Needs HasFewRowKernel() and m <= 16.
void FewRowLinearF32(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y);

// The same for bf16 weights [n, k] (their uint16 bit patterns), each widened exactly to f32; m <= 64.
void FewRowLinearBf16(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y);

// Output columns [n0, n1) of FewRowLinearF32 / FewRowLinearBf16 on the calling thread alone (a ThreadTeam
// member's share), the same bits.
void FewRowLinearColumnsF32(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                            int64_t n0, int64_t n1);
void FewRowLinearColumnsBf16(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y,
                             int64_t n0, int64_t n1);

// at::linear(x, weight, bias), through FewRowLinear when it serves x's row count and weight's dtype.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace monologue::kernels
