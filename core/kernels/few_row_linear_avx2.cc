#include "core/kernels/few_row_linear_avx2.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/kernels/simd.h"

namespace monologue::kernels::avx2 {

#ifdef MONOLOGUE_KERNELS_AVX2
namespace {

// x rows up to this many bytes stay in L1 while the weight rows stream past them one at a time (RowDot), as
// in the AVX-512 kernel; bigger inputs take 2 weight rows per pass (Block). Both give the same bits.
constexpr int64_t kRowDotInputBytes = 16384;
// How far ahead of its loads RowDot prefetches the weight stream into L2 (as the AVX-512 kernel).
constexpr int64_t kPrefetchBytes = 4096;

// 16 lanes of the AVX-512 kernel: lanes 0-7 and 8-15.
struct V16 {
  __m256 lo, hi;
};

MONOLOGUE_AVX2_TARGET inline V16 Zero16() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
MONOLOGUE_AVX2_TARGET inline V16 Load16(const float* p) {
  return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
// bf16 is the top half of an f32: widening is a 16-bit shift (exact).
MONOLOGUE_AVX2_TARGET inline __m256 Widen8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
MONOLOGUE_AVX2_TARGET inline V16 Load16(const uint16_t* p) { return {Widen8(p), Widen8(p + 8)}; }
// The first `count` (< 16) values and zeros after them: the AVX-512 kernel's masked load. Once per row, so a
// copy through a small buffer costs nothing that matters.
template <typename T>
MONOLOGUE_AVX2_TARGET inline V16 LoadFirst(const T* p, int64_t count) {
  alignas(32) T buf[16] = {};
  std::memcpy(buf, p, static_cast<size_t>(count) * sizeof(T));
  return Load16(buf);
}
MONOLOGUE_AVX2_TARGET inline V16 Fma(V16 a, V16 b, V16 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}

// The AVX-512 kernel's SumLanes4: its first step folds 512 bits to 256 (lane l + lane l + 8), which is
// lo + hi here; the rest is the same hadd tree.
MONOLOGUE_AVX2_TARGET inline void SumLanes4(const V16* v, int count, float* out) {
  __m256 h[4];
  for (int i = 0; i < 4; ++i) h[i] = i < count ? _mm256_add_ps(v[i].lo, v[i].hi) : _mm256_setzero_ps();
  const __m256 ab = _mm256_hadd_ps(h[0], h[1]);
  const __m256 cd = _mm256_hadd_ps(h[2], h[3]);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}

// One weight row against R x rows (R <= 4).
template <int R, typename W>
MONOLOGUE_AVX2_TARGET void RowDot(const float* x, int64_t ldx, const W* w, int64_t k, const float* bias,
                                  float* y, int64_t ldy) {
  V16 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = Zero16();
  const int64_t full = k / 16 * 16;
  for (int64_t i = 0; i < full; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(w + i) + kPrefetchBytes, _MM_HINT_T1);
    const V16 wv = Load16(w + i);
    for (int r = 0; r < R; ++r) acc[r] = Fma(Load16(x + r * ldx + i), wv, acc[r]);
  }
  if (full < k) {
    const V16 wv = LoadFirst(w + full, k - full);
    for (int r = 0; r < R; ++r) acc[r] = Fma(LoadFirst(x + r * ldx + full, k - full), wv, acc[r]);
  }
  float dot[4];
  SumLanes4(acc, R, dot);
  for (int r = 0; r < R; ++r) y[r * ldy] = bias != nullptr ? dot[r] + bias[0] : dot[r];
}

// nw (1 or 2) weight rows against R x rows (R <= 2: 16 registers hold the accumulators, weights and input).
template <int R, typename W>
MONOLOGUE_AVX2_TARGET void Block(const float* x, int64_t ldx, const W* w, int64_t k, int64_t nw,
                                 const float* bias, float* y, int64_t ldy) {
  V16 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = Zero16();
  const int64_t full = k / 16 * 16;
  for (int64_t i = 0; i < full; i += 16) {
    const V16 w0 = Load16(w + i);
    const V16 w1 = nw > 1 ? Load16(w + k + i) : Zero16();
    for (int r = 0; r < R; ++r) {
      const V16 xv = Load16(x + r * ldx + i);
      acc[r][0] = Fma(xv, w0, acc[r][0]);
      acc[r][1] = Fma(xv, w1, acc[r][1]);
    }
  }
  if (full < k) {
    const V16 w0 = LoadFirst(w + full, k - full);
    const V16 w1 = nw > 1 ? LoadFirst(w + k + full, k - full) : Zero16();
    for (int r = 0; r < R; ++r) {
      const V16 xv = LoadFirst(x + r * ldx + full, k - full);
      acc[r][0] = Fma(xv, w0, acc[r][0]);
      acc[r][1] = Fma(xv, w1, acc[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float dot[4];
    SumLanes4(acc[r], 2, dot);
    for (int j = 0; j < nw; ++j) y[r * ldy + j] = bias != nullptr ? dot[j] + bias[j] : dot[j];
  }
}

template <typename W>
void Columns(const float* x, int64_t m, int64_t k, const W* w, const float* bias, float* y, int64_t n,
             int64_t n0, int64_t n1) {
  if (m * k * static_cast<int64_t>(sizeof(float)) <= kRowDotInputBytes) {
    for (int64_t j = n0; j < n1; ++j) {
      const float* bj = bias != nullptr ? bias + j : nullptr;
      for (int64_t r = 0; r < m; r += 4) {
        const float* xr = x + r * k;
        float* yr = y + r * n + j;
        switch (std::min<int64_t>(4, m - r)) {
          case 1:
            RowDot<1>(xr, k, w + j * k, k, bj, yr, n);
            break;
          case 2:
            RowDot<2>(xr, k, w + j * k, k, bj, yr, n);
            break;
          case 3:
            RowDot<3>(xr, k, w + j * k, k, bj, yr, n);
            break;
          default:
            RowDot<4>(xr, k, w + j * k, k, bj, yr, n);
            break;
        }
      }
    }
    return;
  }
  for (int64_t j = n0; j < n1; j += 2) {
    const int64_t nw = std::min<int64_t>(2, n1 - j);
    const float* bj = bias != nullptr ? bias + j : nullptr;
    for (int64_t r = 0; r < m; r += 2) {
      if (m - r >= 2) {
        Block<2>(x + r * k, k, w + j * k, k, nw, bj, y + r * n + j, n);
      } else {
        Block<1>(x + r * k, k, w + j * k, k, nw, bj, y + r * n + j, n);
      }
    }
  }
}

}  // namespace

void FewRowColumns(const float* x, int64_t m, int64_t k, const float* w, const float* bias, float* y,
                   int64_t n, int64_t n0, int64_t n1) {
  Columns(x, m, k, w, bias, y, n, n0, n1);
}

void FewRowColumns(const float* x, int64_t m, int64_t k, const uint16_t* w, const float* bias, float* y,
                   int64_t n, int64_t n0, int64_t n1) {
  Columns(x, m, k, w, bias, y, n, n0, n1);
}

#else  // no AVX2 code in this build: CpuHasAvx2() is false, so nothing calls these.

void FewRowColumns(const float*, int64_t, int64_t, const float*, const float*, float*, int64_t, int64_t,
                   int64_t) {}
void FewRowColumns(const float*, int64_t, int64_t, const uint16_t*, const float*, float*, int64_t, int64_t,
                   int64_t) {}

#endif

}  // namespace monologue::kernels::avx2
