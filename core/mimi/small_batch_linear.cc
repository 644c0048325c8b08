#include "core/mimi/small_batch_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace monologue::mimi {
namespace {

// Above this many rows the weights are re-read often enough that MKL's blocked GEMM wins (measured on the
// development VM: at 16 rows the two are even for the Mimi transformer's shapes).
constexpr int64_t kMaxRows = 16;

bool HaveAvx512() {
  static const bool have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return have;
}

// GCC 12's AVX-512 cast/extract intrinsics pass an undefined operand (_mm512_undefined_*) that
// -Wuninitialized reports once inlined; the operand is ignored by the instruction.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// The lane sums of 4 accumulators at once, out = [sum(a), sum(b), sum(c), sum(d)], by a fixed tree of adds
// (far cheaper than four separate reductions when K is short).
__attribute__((target("avx512f,avx2,fma"))) inline void SumLanes4(const __m512* v, float* out) {
  __m256 h[4];
  for (int i = 0; i < 4; ++i) {
    h[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[i]), 1)));
  }
  const __m256 ab = _mm256_hadd_ps(h[0], h[1]);  // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 cd = _mm256_hadd_ps(h[2], h[3]);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);    // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}

// Dot products of R x rows with 4 weight rows over K, 16 lanes at a time; lanes are summed at the end by a
// fixed tree (SumLanes4), so the rounding of y[m][n] depends only on x[m] and w[n].
template <int R>
__attribute__((target("avx512f,avx2,fma"))) void Block(const float* x, int64_t ldx, const float* w, int64_t k,
                                                  int64_t nw, const float* bias, float* y, int64_t ldy) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  const int64_t full = k / 16 * 16;
  for (int64_t i = 0; i < full; i += 16) {
    __m512 wv[4];
    for (int j = 0; j < 4; ++j) wv[j] = j < nw ? _mm512_loadu_ps(w + j * k + i) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * ldx + i);
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
  if (full < k) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1);
    __m512 wv[4];
    for (int j = 0; j < 4; ++j) {
      wv[j] = j < nw ? _mm512_maskz_loadu_ps(tail, w + j * k + full) : _mm512_setzero_ps();
    }
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(tail, x + r * ldx + full);
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float dot[4];
    SumLanes4(acc[r], dot);
    for (int j = 0; j < nw; ++j) y[r * ldy + j] = bias != nullptr ? dot[j] + bias[j] : dot[j];
  }
}

#pragma GCC diagnostic pop

// Output columns [n0, n1) for every row: 4 weight rows at a time (read from memory once, then from cache
// for each group of up to 4 x rows).
void Columns(const float* x, int64_t m, int64_t k, const float* w, const float* bias, float* y, int64_t n,
             int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; j += 4) {
    const int64_t nw = std::min<int64_t>(4, n1 - j);
    const float* wj = w + j * k;
    const float* bj = bias != nullptr ? bias + j : nullptr;
    for (int64_t r = 0; r < m; r += 4) {
      const float* xr = x + r * k;
      float* yr = y + r * n + j;
      switch (std::min<int64_t>(4, m - r)) {
        case 1: Block<1>(xr, k, wj, k, nw, bj, yr, n); break;
        case 2: Block<2>(xr, k, wj, k, nw, bj, yr, n); break;
        case 3: Block<3>(xr, k, wj, k, nw, bj, yr, n); break;
        default: Block<4>(xr, k, wj, k, nw, bj, yr, n); break;
      }
    }
  }
}

}  // namespace

bool UseSmallBatchLinear(const at::Tensor& x, int64_t rows) {
  return rows <= kMaxRows && x.device().is_cpu() && x.scalar_type() == at::kFloat && HaveAvx512();
}

at::Tensor SmallBatchLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t k = weight.size(1), n = weight.size(0);
  const at::Tensor rows = x.reshape({-1, k}).contiguous();
  const at::Tensor w = weight.contiguous();
  const int64_t m = rows.size(0);
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = n;
  at::Tensor y = at::empty({m, n}, x.options());
  const float* xp = rows.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Split N in multiples of 4 with at least ~256 KB of weights per task, so small layers stay on one thread.
  const int64_t grain = std::max<int64_t>(4, (int64_t{1} << 16) / std::max<int64_t>(k, 1) / 4 * 4);
  at::parallel_for(0, (n + 3) / 4, (grain + 3) / 4, [&](int64_t b0, int64_t b1) {
    Columns(xp, m, k, wp, bp, yp, n, b0 * 4, std::min(n, b1 * 4));
  });
  return y.view(out_shape);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t rows = x.numel() / std::max<int64_t>(x.size(-1), 1);
  if (UseSmallBatchLinear(x, rows)) return SmallBatchLinear(x, weight, bias);
  return at::linear(x, weight, bias);
}

}  // namespace monologue::mimi
