// Weight-only int8 matrix product for the LM's linear layers on CPU: y = x W^T * scale (+ bias), with W
// int8 [N, K] (one f32 scale per output row) and x, y in f32. At the LM's batch sizes (1..8 rows per step)
// the product is bound by reading W, so storing it in 8 bits instead of 32 cuts a step's time by up to
// ~4x; the activations stay f32 (no activation quantisation error), the int8 -> f32 conversion happens in
// registers.
//
// Two implementations chosen at run time by CPU feature detection: AVX-512 (F + BW) and a portable scalar
// one. Both accumulate in f32 and differ only in summation order.
#pragma once

#include <cstdint>

namespace monologue::lm::int8 {

enum class KernelPath { kScalar, kAvx512 };

// The fastest path this CPU runs (kAvx512 when it has AVX-512 F and BW).
KernelPath BestPath();
const char* PathName(KernelPath path);

// Output rows [n_begin, n_end) of y[b, n] = scale[n] * sum_k x[b, k] w[n, k] (+ bias[n] when bias is not
// null) for b < batch. x: [batch, k] with row stride ldx; w: [N, k] contiguous rows; y: [batch, N] with row
// stride ldy. Single-threaded: callers split the rows among threads.
void GemmRows(KernelPath path, const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w,
              const float* scale, const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);

}  // namespace monologue::lm::int8
