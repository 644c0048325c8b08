// FewRowLinear's arithmetic on AVX2 + FMA CPUs (most laptops and desktops): the AVX-512 kernel's 16 lanes
// over K kept as two 8-lane halves, each lane the same chain of fused multiply-adds, then the same fixed
// tree, so every output is the same bits as on an AVX-512 CPU. Internal to core/kernels (few_row_linear.cc
// calls it).
#pragma once

#include <cstdint>

namespace monologue::kernels::avx2 {

// y[r, j] = x[r] · w[j] (+ bias[j]) for every row r < m and output column j in [n0, n1); x [m, k] and y
// [m, n] row-major, w [n, k] contiguous (f32, or bf16 as its uint16 bit patterns). Needs CpuHasAvx2().
void FewRowColumns(const float* x, int64_t m, int64_t k, const float* w, const float* bias, float* y,
                   int64_t n, int64_t n0, int64_t n1);
void FewRowColumns(const float* x, int64_t m, int64_t k, const uint16_t* w, const float* bias, float* y,
                   int64_t n, int64_t n0, int64_t n1);

}  // namespace monologue::kernels::avx2
