#include "core/lm/int8_gemm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MONOLOGUE_INT8_AVX512 1
// GCC 12's AVX-512 headers build some results from a deliberately undefined vector (_mm512_undefined_*),
// which its uninitialised-use analysis reports once the intrinsics are inlined here.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace monologue::lm::int8 {
namespace {

// Rows [n_begin, n_end), batch rows [b0, b0 + bb): plain loops, f32 accumulation.
void ScalarRows(const float* x, int64_t ldx, int64_t b0, int64_t bb, int64_t k, const int8_t* w,
                const float* scale, const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* wr = w + n * k;
    for (int64_t b = b0; b < b0 + bb; ++b) {
      const float* xr = x + b * ldx;
      float acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += xr[i] * static_cast<float>(wr[i]);
      y[b * ldy + n] = acc * scale[n] + (bias != nullptr ? bias[n] : 0.f);
    }
  }
}

#ifdef MONOLOGUE_INT8_AVX512
#define MONOLOGUE_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 int8 weights -> 16 f32 lanes (sign extension then conversion, in registers).
MONOLOGUE_AVX512_TARGET inline __m512 LoadWeights(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
MONOLOGUE_AVX512_TARGET inline __m512 LoadWeightsMasked(const int8_t* p, __mmask16 m) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

// A block of RB output rows times BB batch rows: RB * BB vector accumulators over the whole K, so each
// weight vector is converted once and used BB times, and RB independent weight streams keep the FMA
// pipes busy while the loads arrive.
template <int RB, int BB>
MONOLOGUE_AVX512_TARGET void Avx512Block(const float* x, int64_t ldx, int64_t k, const int8_t* w,
                                         const float* scale, const float* bias, float* y, int64_t ldy,
                                         int64_t n) {
  __m512 acc[RB][BB];
  for (int r = 0; r < RB; ++r)
    for (int b = 0; b < BB; ++b) acc[r][b] = _mm512_setzero_ps();
  const int8_t* wr[RB];
  for (int r = 0; r < RB; ++r) wr[r] = w + (n + r) * k;
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 wv[RB];
    for (int r = 0; r < RB; ++r) wv[r] = LoadWeights(wr[r] + i);
    for (int b = 0; b < BB; ++b) {
      const __m512 xv = _mm512_loadu_ps(x + b * ldx + i);
      for (int r = 0; r < RB; ++r) acc[r][b] = _mm512_fmadd_ps(wv[r], xv, acc[r][b]);
    }
  }
  if (i < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - i)) - 1);
    __m512 wv[RB];
    for (int r = 0; r < RB; ++r) wv[r] = LoadWeightsMasked(wr[r] + i, m);
    for (int b = 0; b < BB; ++b) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + b * ldx + i);
      for (int r = 0; r < RB; ++r) acc[r][b] = _mm512_fmadd_ps(wv[r], xv, acc[r][b]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    const float s = scale[n + r], add = bias != nullptr ? bias[n + r] : 0.f;
    for (int b = 0; b < BB; ++b) y[b * ldy + n + r] = _mm512_reduce_add_ps(acc[r][b]) * s + add;
  }
}

template <int RB, int BB>
MONOLOGUE_AVX512_TARGET void Avx512Rows(const float* x, int64_t ldx, int64_t k, const int8_t* w,
                                        const float* scale, const float* bias, float* y, int64_t ldy,
                                        int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + RB <= n_end; n += RB) Avx512Block<RB, BB>(x, ldx, k, w, scale, bias, y, ldy, n);
  for (; n < n_end; ++n) Avx512Block<1, BB>(x, ldx, k, w, scale, bias, y, ldy, n);
}

// Batch rows in groups of 8 (2 output rows per block: each converted weight vector feeds 8 FMAs, 16
// accumulators; ~20% faster than two groups of 4 at batch 8), then the rest in a group of at most 4 (8
// output rows per block when 8 * BB accumulators fit in the 32 vector registers). Each (row, batch row)
// result is summed in the same order whatever the grouping, so a row's output does not depend on the batch.
void Avx512(const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w, const float* scale,
            const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  int64_t b0 = 0;
  for (; batch - b0 >= 8; b0 += 8) {
    Avx512Rows<2, 8>(x + b0 * ldx, ldx, k, w, scale, bias, y + b0 * ldy, ldy, n_begin, n_end);
  }
  for (; b0 < batch; b0 += 4) {
    const float* xb = x + b0 * ldx;
    float* yb = y + b0 * ldy;
    switch (std::min<int64_t>(4, batch - b0)) {
      case 1:
        Avx512Rows<8, 1>(xb, ldx, k, w, scale, bias, yb, ldy, n_begin, n_end);
        break;
      case 2:
        Avx512Rows<8, 2>(xb, ldx, k, w, scale, bias, yb, ldy, n_begin, n_end);
        break;
      case 3:
        Avx512Rows<4, 3>(xb, ldx, k, w, scale, bias, yb, ldy, n_begin, n_end);
        break;
      default:
        Avx512Rows<4, 4>(xb, ldx, k, w, scale, bias, yb, ldy, n_begin, n_end);
        break;
    }
  }
}
#define MONOLOGUE_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// Input rows as 16-bit fixed point split in two unsigned bytes: q = round(x / s) in [-32767, 32767],
// lo = q mod 256 in [0, 255], hi = floor(q / 256) + 128 in [0, 255], so q = 256 (hi - 128) + lo.
struct Limbs {
  std::vector<uint8_t> lo, hi;  // [batch, kpad]
  std::vector<double> step;     // s per input row
  int64_t kpad = 0;             // k rounded up to 64 (zero padding: contributes nothing)
};

void SplitRows(const float* x, int64_t ldx, int64_t batch, int64_t k, Limbs& l) {
  l.kpad = (k + 63) / 64 * 64;
  l.lo.assign(batch * l.kpad, 0);
  l.hi.assign(batch * l.kpad, 128);
  l.step.resize(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const float* xr = x + b * ldx;
    float m = 0;
    for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(xr[i]));
    const float s = m > 0 ? m / 32767.f : 1.f;
    l.step[b] = s;
    for (int64_t i = 0; i < k; ++i) {
      const int32_t q = static_cast<int32_t>(std::clamp(std::nearbyint(xr[i] / s), -32767.f, 32767.f));
      l.lo[b * l.kpad + i] = static_cast<uint8_t>(q & 0xFF);
      l.hi[b * l.kpad + i] = static_cast<uint8_t>((q >> 8) + 128);
    }
  }
}

// RB output rows x BB input rows: 2 * RB * BB integer accumulators (exact: |sum| < 2^31 for k < 66000).
template <int RB, int BB>
MONOLOGUE_VNNI_TARGET void VnniBlock(const Limbs& l, int64_t b0, int64_t k, const int8_t* w, const float* scale,
                                     const int32_t* row_sums, const float* bias, float* y, int64_t ldy,
                                     int64_t n) {
  __m512i acc_lo[RB][BB], acc_hi[RB][BB];
  for (int r = 0; r < RB; ++r) {
    for (int b = 0; b < BB; ++b) {
      acc_lo[r][b] = _mm512_setzero_si512();
      acc_hi[r][b] = _mm512_setzero_si512();
    }
  }
  const uint8_t* lo = l.lo.data() + b0 * l.kpad;
  const uint8_t* hi = l.hi.data() + b0 * l.kpad;
  // Whole 64-weight blocks with plain loads, then the tail with a masked weight load (padding beyond k: lo is
  // 0 and w is masked to 0, so hi's 128 adds nothing either).
  for (int64_t i = 0; i < k; i += 64) {
    const bool tail = i + 64 > k;
    const __mmask64 m = tail ? (__mmask64{1} << (k - i)) - 1 : ~__mmask64{0};
    __m512i wv[RB];
    for (int r = 0; r < RB; ++r) {
      const int8_t* p = w + (n + r) * k + i;
      wv[r] = tail ? _mm512_maskz_loadu_epi8(m, p) : _mm512_loadu_si512(p);
    }
    for (int b = 0; b < BB; ++b) {
      const __m512i xl = _mm512_loadu_si512(lo + b * l.kpad + i);
      const __m512i xh = _mm512_loadu_si512(hi + b * l.kpad + i);
      for (int r = 0; r < RB; ++r) {
        acc_lo[r][b] = _mm512_dpbusd_epi32(acc_lo[r][b], xl, wv[r]);
        acc_hi[r][b] = _mm512_dpbusd_epi32(acc_hi[r][b], xh, wv[r]);
      }
    }
  }
  for (int r = 0; r < RB; ++r) {
    const double s = scale[n + r], rs = row_sums[n + r];
    const float add = bias != nullptr ? bias[n + r] : 0.f;
    for (int b = 0; b < BB; ++b) {
      const double q = 256.0 * (static_cast<double>(_mm512_reduce_add_epi32(acc_hi[r][b])) - 128.0 * rs) +
                       static_cast<double>(_mm512_reduce_add_epi32(acc_lo[r][b]));
      y[(b0 + b) * ldy + n + r] = static_cast<float>(q * l.step[b0 + b] * s) + add;
    }
  }
}

template <int RB, int BB>
MONOLOGUE_VNNI_TARGET void VnniRows(const Limbs& l, int64_t b0, int64_t k, const int8_t* w, const float* scale,
                                    const int32_t* row_sums, const float* bias, float* y, int64_t ldy,
                                    int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + RB <= n_end; n += RB) VnniBlock<RB, BB>(l, b0, k, w, scale, row_sums, bias, y, ldy, n);
  for (; n < n_end; ++n) VnniBlock<1, BB>(l, b0, k, w, scale, row_sums, bias, y, ldy, n);
}

// Input rows in groups of 8 (1 output row per block: 16 accumulators), the rest in one group of at most 4.
void Vnni(const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w, const float* scale,
          const int32_t* row_sums, const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  thread_local Limbs limbs;
  SplitRows(x, ldx, batch, k, limbs);
  int64_t b0 = 0;
  for (; batch - b0 >= 8; b0 += 8) VnniRows<1, 8>(limbs, b0, k, w, scale, row_sums, bias, y, ldy, n_begin, n_end);
  for (; b0 < batch; b0 += 4) {
    switch (std::min<int64_t>(4, batch - b0)) {
      case 1:
        VnniRows<8, 1>(limbs, b0, k, w, scale, row_sums, bias, y, ldy, n_begin, n_end);
        break;
      case 2:
        VnniRows<4, 2>(limbs, b0, k, w, scale, row_sums, bias, y, ldy, n_begin, n_end);
        break;
      case 3:
        VnniRows<2, 3>(limbs, b0, k, w, scale, row_sums, bias, y, ldy, n_begin, n_end);
        break;
      default:
        VnniRows<2, 4>(limbs, b0, k, w, scale, row_sums, bias, y, ldy, n_begin, n_end);
        break;
    }
  }
}
#endif  // MONOLOGUE_INT8_AVX512

bool HasAvx512() {
#ifdef MONOLOGUE_INT8_AVX512
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return yes;
#else
  return false;
#endif
}

bool HasVnni() {
#ifdef MONOLOGUE_INT8_AVX512
  static const bool yes = HasAvx512() && __builtin_cpu_supports("avx512vnni");
  return yes;
#else
  return false;
#endif
}

}  // namespace

KernelPath BestPath() {
  if (HasVnni()) return KernelPath::kVnni;
  if (HasAvx512()) return KernelPath::kAvx512;
  return KernelPath::kScalar;
}

const char* PathName(KernelPath path) {
  switch (path) {
    case KernelPath::kVnni:
      return "avx512-vnni";
    case KernelPath::kAvx512:
      return "avx512";
    case KernelPath::kScalar:
      break;
  }
  return "scalar";
}

void GemmRows(KernelPath path, const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w,
              const float* scale, const int32_t* row_sums, const float* bias, float* y, int64_t ldy,
              int64_t n_begin, int64_t n_end) {
#ifdef MONOLOGUE_INT8_AVX512
  if (path == KernelPath::kVnni && HasVnni() && row_sums != nullptr) {
    Vnni(x, ldx, batch, k, w, scale, row_sums, bias, y, ldy, n_begin, n_end);
    return;
  }
  if ((path == KernelPath::kVnni || path == KernelPath::kAvx512) && HasAvx512()) {
    Avx512(x, ldx, batch, k, w, scale, bias, y, ldy, n_begin, n_end);
    return;
  }
#endif
  ScalarRows(x, ldx, 0, batch, k, w, scale, bias, y, ldy, n_begin, n_end);
}

}  // namespace monologue::lm::int8
