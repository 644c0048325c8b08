// The weight of one of the LM's Linear layers, in the model's float dtype or quantised, weight-only, to int8
// (one scale per output row; `--dtype int8` on CPU) or to 4 bits (one scale per 32 inputs; `--dtype int4`).
// Forward runs the few-row kernel (core/kernels) for a step's few rows of f32 on the CPU (it reads the
// weights at memory speed, where ATen's GEMM reaches ~60-75% of it), ATen's GEMM otherwise, and the int8 or
// int4 kernel (int8_gemm.h, int4_gemm.h) for quantised weights, with f32 activations.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/lm/int4_gemm.h"
#include "core/lm/int8_gemm.h"

namespace monologue::lm {

struct LinearWeight {
  at::Tensor weight;   // float [N, K]; undefined once quantised
  // int8: the [N, K] values in the kernel's packed layout (int8::PackRows), 1-D int8; int4: the packed values
  // and group scales (int4::Quantize), 1-D uint8.
  at::Tensor qweight;
  at::Tensor scale;                // int8: f32 [N], w[n, k] ~ scale[n] * q[n, k]
  at::Tensor row_sum;              // int8: int32 [N], sum_k q[n, k] (the VNNI kernel's zero-point correction)
  int64_t q_rows = 0, q_cols = 0;  // N and K of a quantised weight
  bool int4 = false;               // qweight holds 4-bit values

  bool defined() const { return weight.defined() || qweight.defined(); }
  bool quantized() const { return qweight.defined(); }
  int64_t out_features() const { return quantized() ? q_rows : weight.size(0); }
  int64_t in_features() const { return quantized() ? q_cols : weight.size(1); }
  // Bytes the weight occupies (packed int8 values with their padding, scales and row sums; packed int4 values
  // and scales; or the float tensor).
  int64_t nbytes() const;
  // Output rows [start, start + n) (a weight set of a fused projection): a view, or for a quantised weight a
  // repacked copy when `start` is not a multiple of the packed row group.
  LinearWeight Rows(int64_t start, int64_t n) const;
  // x [..., K] -> [..., N] (+ bias [N]).
  at::Tensor Forward(const at::Tensor& x, const at::Tensor& bias = at::Tensor()) const;
  // The raw form, for steps that keep their few rows in plain buffers (the depformer's, lm_depth_step.cc):
  // whether `rows` f32 rows are served without ATen (a quantised weight, or a contiguous f32/bf16 CPU weight
  // with the few-row kernel), and y [rows, N] = Forward(x [rows, K]) with the same bits (no bias).
  bool ServesRows(int64_t rows) const;
  void ForwardRows(const float* x, int64_t rows, float* y) const;
  // Output features [n_begin, n_end) of ForwardRows (y keeps its [rows, N] layout) on the calling thread
  // alone: a kernels::ThreadTeam member's share, best cut at multiples of RowsAlign().
  void ForwardRowsPart(const float* x, int64_t rows, float* y, int64_t n_begin, int64_t n_end) const;
  int64_t RowsAlign() const;
  // A quantised weight's integer values [N, K] (row-major int8; for int4 in [-8, 7]) and its dequantised
  // f32 [N, K].
  at::Tensor Int8Values() const;
  at::Tensor Dequantized() const;
  // An int4 weight's group scales, f32 [N, ceil(K / 32)].
  at::Tensor Int4Scales() const;
};

// Per-output-row symmetric quantisation of a float weight [N, K]: scale[n] = max_k |w[n, k]| / 127 (1 for
// an all-zero row), q = round(w / scale) in [-127, 127]; row_sum[n] = sum_k q[n, k]. q is stored packed.
LinearWeight QuantizeInt8(const at::Tensor& weight);

// An int8 weight already quantised per output row, as a `quantize: true` checkpoint stores it (bitsandbytes'
// int8 values with row scales): values int8 [N, K] in [-127, 127] and scale f32 [N], w[n, k] = scale[n] *
// values[n, k]. Packed as QuantizeInt8 packs, the values unchanged; a -128 (outside what bitsandbytes writes
// and what the kernels take) throws naming the row.
LinearWeight Int8WeightFromValues(const at::Tensor& values, const at::Tensor& scale);

// Per-group 4-bit quantisation of a float weight [N, K] (int4_gemm.h: groups of 32 inputs, f16 scale = the
// group's extreme value / -8, values in [-8, 7]), stored packed. Rows are split among the threads.
LinearWeight QuantizeInt4(const at::Tensor& weight);

// y = x W^T scale (+ bias) with the given kernel path; x f32 [..., K], `w` quantised. Row groups of W are
// split among the intra-op threads (at::parallel_for, so `--threads` applies). Many input rows (a prompt, a
// cross-attention source) dequantise W once and use the float GEMM instead: there the product is
// compute-bound.
at::Tensor Int8Linear(const at::Tensor& x, const LinearWeight& w, const at::Tensor& bias,
                      int8::KernelPath path = int8::BestPath());

// The same for an int4 weight (QuantizeInt4).
at::Tensor Int4Linear(const at::Tensor& x, const LinearWeight& w, const at::Tensor& bias,
                      int4::KernelPath path = int4::BestPath());

}  // namespace monologue::lm
