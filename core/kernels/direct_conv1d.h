// 1-D convolution (cross-correlation, no padding) computed directly, vectorised over time: the
// shape of Mimi's SEANet layers at high time resolution (a streaming frame runs 64 channels over 1920 steps,
// 128 over 240, 256 over 40). There the work is arithmetic, not weight reading, and libtorch's GEMMs on such
// thin, short matrices (3 per tap set, each [32-256] x [64-768] x [40-1920]) ran at 30-86 GFLOP/s of a
// frame on the 2-vCPU VMs (profiled), well below what the FMA units give. This kernel keeps a tile of 8
// output channels x 48 time steps in registers (AVX2: 4 x 24) and streams the input rows through it.
//
// Rounding: for each block of max(1, 96 / k) input channels c (k the kernel width), the products w[o, c, j] *
// (the input value tap j reads) are accumulated from zero one fused multiply-add at a time, over c then j;
// the blocks' sums are added in order, then the bias. Every lane does the same arithmetic, so the result does
// not depend on the vector width (AVX-512 and AVX2 give the same bits), on the batch, or on how the work is
// split among threads. A strided convolution whose kernel is a multiple of its stride runs on its input split
// into phases (SplitPhases below), its weight as it is.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace monologue::kernels {

// Whether the kernel runs on this CPU (AVX2 + FMA or AVX-512, which give the same bits).
bool HasDirectConvKernel();
// Whether DirectConv1d serves `x` here: f32 on the CPU, 3 dimensions, and HasDirectConvKernel().
bool ServesDirectConv(const at::Tensor& x);

// y[b, o, t] = bias[o] + sum_{c, j} w[o, c, j] * x[b, c * phases + j % phases, t + (j / phases) * dilation],
// for t < T_out = T_in - (k / phases - 1) * dilation. With phases = 1 that is the stride-1 convolution of x
// with w; with phases = s and x = SplitPhases(input, s), the stride-s convolution of the input (k a multiple
// of s). weight [C_out, C_in, k] f32, each output channel's [C_in, k] dense (rows may be further apart: a
// view of a larger matrix), read as it is (no packed copy); x [B, C_in * phases, T_in] f32, time steps
// contiguous or copied so; bias [C_out] f32 or undefined. Returns [B, C_out, T_out], contiguous. Threads:
// at::parallel_for over (batch row, 8 output channels, 192 steps).
at::Tensor DirectConv1d(const at::Tensor& x, const at::Tensor& weight, int64_t phases, int64_t dilation,
                        const at::Tensor& bias);

// For a convolution of stride s whose kernel is a multiple of s: x [B, C, T] (T a multiple of s) ->
// [B, C * s, T / s] with row c * s + p holding x[b, c, p], x[b, c, p + s], ... (a copy).
at::Tensor SplitPhases(const at::Tensor& x, int64_t stride);

}  // namespace monologue::kernels
