#include "core/lm/int8_gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/kernels/cpu_isa.h"

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

// How far ahead of its loads a vector kernel prefetches the packed weight stream. 4-8 KB ahead gave the
// highest rate on the development VM (depformer-size products at batch 1: 18.5 GB/s without prefetch, 33-42
// GB/s at 4 KB, 29 GB/s at 1 KB, 32 GB/s at 16 KB). Into L1 (T0) for the VNNI path (T1 measured the same on
// an AMD Zen 4 and an Intel VM); into L2 (T1) for the AVX-512 and AVX2 paths, whose longer per-line work
// follows an L1 prefetch worse on the Intel VM (from memory, 2 threads: AVX2 15.7-16.3 GB/s with
// T0, 18.1-18.3 with T1; AVX-512 15.7-16.4 and 17.3-20.5; tts-1.6b LM step 128-134 -> 104-109 and 123-128 ->
// 101-107 ms, docs/benchmarks.md "An Intel VM").
constexpr int64_t kPrefetchBytes = 4096;

// The block of RB rows holding `row` starts at the RB-aligned row below it; RB divides kRowGroup, so a block
// never straddles two groups.
template <int RB>
int64_t BlockStart(int64_t row) {
  return row - row % RB;
}

// The fixed-point input rows of the kVnni, kAvx2 and kScalar paths: q = round(x / s) (an IEEE division, ties
// to even) clamped to [-32767, 32767], s = max |x| / 32767 in f32 (1 for an all-zero row); kpad >= k values
// per row, zero past k. Then each (row, input row) value is the exact integer sum of q * w, scaled once in
// double: y = f32(sum * s * scale) + bias, the same bits on every path and CPU.
struct Fixed16 {
  std::vector<int16_t> q;    // [batch, kpad]
  std::vector<double> step;  // s per input row
  int64_t kpad = 0;
};

// A vector lane's 32-bit sum takes 2 products of at most 32767 * 128 per `vpmaddwd` and 8 per 64 inputs: past
// 4096 inputs (512 products) it could overflow, so the AVX2 path widens its sums to 64 bits every kFlushK.
constexpr int64_t kFlushK = 4096;

float Fixed16Step(const float* xr, int64_t k) {
  float m = 0;
  for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(xr[i]));
  return m > 0 ? m / 32767.f : 1.f;
}

// One value's rounding, written as the vector code's min/max so a NaN lands where theirs does (on 32767).
int16_t Fixed16Value(float x, float s) {
  float q = std::nearbyint(x / s);
  q = q < 32767.f ? q : 32767.f;
  q = q > -32767.f ? q : -32767.f;
  return static_cast<int16_t>(q);
}

void ScalarQuantizeRows(const float* x, int64_t ldx, int64_t batch, int64_t k, int64_t kpad, Fixed16& f) {
  for (int64_t b = 0; b < batch; ++b) {
    const float* xr = x + b * ldx;
    const float s = Fixed16Step(xr, k);
    f.step[b] = s;
    int16_t* q = f.q.data() + b * kpad;
    for (int64_t i = 0; i < k; ++i) q[i] = Fixed16Value(xr[i], s);
    std::fill(q + k, q + kpad, int16_t{0});
  }
}

void Fixed16Output(int64_t sum, double step, float scale, const float* bias, int64_t n, float* out) {
  *out = static_cast<float>(static_cast<double>(sum) * step * static_cast<double>(scale)) +
         (bias != nullptr ? bias[n] : 0.f);
}

// Rows [n_begin, n_end): plain loops, 64-bit sums (any order gives the same exact integer).
void ScalarRows(const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w, const float* scale,
                const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  thread_local Fixed16 f;
  const int64_t kp = PaddedK(k);
  f.q.resize(static_cast<size_t>(std::max<int64_t>(static_cast<int64_t>(f.q.size()), batch * kp)));
  f.step.resize(batch);
  ScalarQuantizeRows(x, ldx, batch, k, kp, f);
  for (int64_t n = n_begin; n < n_end; ++n) {
    for (int64_t b = 0; b < batch; ++b) {
      const int16_t* q = f.q.data() + b * kp;
      int64_t sum = 0;
      for (int64_t i = 0; i < k; ++i) {
        sum += static_cast<int64_t>(q[i]) * static_cast<int64_t>(w[PackedOffset(n, i, kp)]);
      }
      Fixed16Output(sum, f.step[b], scale[n], bias, n, y + b * ldy + n);
    }
  }
}

#ifdef MONOLOGUE_INT8_AVX512
#define MONOLOGUE_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 int8 weights -> 16 f32 lanes (sign extension then conversion, in registers).
MONOLOGUE_AVX512_TARGET inline __m512 LoadWeights(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// A block of RB output rows (from row n, RB-aligned) times BB batch rows: RB * BB vector accumulators over
// the whole K, so each weight vector is converted once and used BB times, and RB independent weight streams
// keep the FMA pipes busy while the loads arrive. Only rows in [n_lo, n_hi) are stored.
template <int RB, int BB>
MONOLOGUE_AVX512_TARGET void Avx512Block(const float* x, int64_t ldx, int64_t k, const int8_t* w,
                                         const float* scale, const float* bias, float* y, int64_t ldy,
                                         int64_t n, int64_t n_lo, int64_t n_hi) {
  __m512 acc[RB][BB];
  for (int r = 0; r < RB; ++r)
    for (int b = 0; b < BB; ++b) acc[r][b] = _mm512_setzero_ps();
  const int64_t kp = PaddedK(k);
  const int8_t* base = w + PackedOffset(n, 0, kp);
  for (int64_t i = 0; i < k; i += 16) {
    // Past k the packed weights are zero; the input is masked to zero too (its memory ends at k).
    const __mmask16 m =
        i + 16 <= k ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (k - i)) - 1);
    const int8_t* chunk = base + (i / kChunk) * (kRowGroup * kChunk) + i % kChunk;
    __m512 wv[RB];
    for (int r = 0; r < RB; ++r) {
      if (i % kChunk == 0)
        _mm_prefetch(reinterpret_cast<const char*>(chunk + r * kChunk + kPrefetchBytes), _MM_HINT_T1);
      wv[r] = LoadWeights(chunk + r * kChunk);
    }
    for (int b = 0; b < BB; ++b) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + b * ldx + i);
      for (int r = 0; r < RB; ++r) acc[r][b] = _mm512_fmadd_ps(wv[r], xv, acc[r][b]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    if (n + r < n_lo || n + r >= n_hi) continue;
    const float s = scale[n + r], add = bias != nullptr ? bias[n + r] : 0.f;
    for (int b = 0; b < BB; ++b) y[b * ldy + n + r] = _mm512_reduce_add_ps(acc[r][b]) * s + add;
  }
}

template <int RB, int BB>
MONOLOGUE_AVX512_TARGET void Avx512Rows(const float* x, int64_t ldx, int64_t k, const int8_t* w,
                                        const float* scale, const float* bias, float* y, int64_t ldy,
                                        int64_t n_begin, int64_t n_end) {
  for (int64_t n = BlockStart<RB>(n_begin); n < n_end; n += RB) {
    Avx512Block<RB, BB>(x, ldx, k, w, scale, bias, y, ldy, n, n_begin, n_end);
  }
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
#define MONOLOGUE_AVX2_TARGET __attribute__((target("avx2,fma")))

// Fixed16Step and Fixed16Value 8 values at a time: the same division, rounding and min/max order.
MONOLOGUE_AVX2_TARGET void Avx2QuantizeRow(const float* xr, int64_t k, int64_t kpad, int16_t* q,
                                           double& step) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 mv = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) mv = _mm256_max_ps(mv, _mm256_andnot_ps(sign, _mm256_loadu_ps(xr + i)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  float m = 0;
  for (float v : lanes) m = std::max(m, v);
  for (; i < k; ++i) m = std::max(m, std::fabs(xr[i]));
  const float s = m > 0 ? m / 32767.f : 1.f;
  step = s;
  const __m256 sv = _mm256_set1_ps(s), lim = _mm256_set1_ps(32767.f), neg = _mm256_set1_ps(-32767.f);
  for (i = 0; i + 16 <= k; i += 16) {
    __m256i halves[2];
    for (int h = 0; h < 2; ++h) {
      __m256 v = _mm256_div_ps(_mm256_loadu_ps(xr + i + 8 * h), sv);
      v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      halves[h] = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(v, lim), neg));
    }
    // packs interleaves the 128-bit halves; the permute puts the 16 values back in order (none saturates).
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(halves[0], halves[1]), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), packed);
  }
  for (; i < k; ++i) q[i] = Fixed16Value(xr[i], s);
  std::fill(q + k, q + kpad, int16_t{0});
}

// One row group (8 output rows from row n) x input row b. Per 64-byte chunk and row: four sign extensions of
// 16 weights to 16 bits and four `vpmaddwd` with the input's fixed point, half the instructions of converting
// the weights to f32 for FMAs (the AVX2 path before: 12-13 GB/s on depformer-size products at batch 1 on an
// AVX2 AMD EPYC, against 19-24 GB/s this way). Each lane's 32-bit sum is exact for kFlushK inputs, then
// widened.
MONOLOGUE_AVX2_TARGET void Avx2RowGroup(const Fixed16& f, int64_t b, const int8_t* w, const float* scale,
                                        const float* bias, float* y, int64_t ldy, int64_t n, int64_t n_lo,
                                        int64_t n_hi) {
  static_assert(kRowGroup == 8 && kChunk == 64, "the kernel is written for 8 rows of 64-byte chunks");
  const int16_t* q = f.q.data() + b * f.kpad;
  const int8_t* chunk = w + PackedOffset(n, 0, f.kpad);
  int64_t sums[8] = {};
  for (int64_t i0 = 0; i0 < f.kpad; i0 += kFlushK) {
    __m256i acc[8];
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_si256();
    const int64_t i1 = std::min(f.kpad, i0 + kFlushK);
    for (int64_t i = i0; i < i1; i += kChunk, chunk += kRowGroup * kChunk) {
      __m256i xv[4];
      for (int j = 0; j < 4; ++j)
        xv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i + 16 * j));
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        const int8_t* c = chunk + r * kChunk;
        _mm_prefetch(reinterpret_cast<const char*>(c + kPrefetchBytes), _MM_HINT_T1);
        __m256i p[4];
        for (int j = 0; j < 4; ++j) {
          const __m256i wv =
              _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16 * j)));
          p[j] = _mm256_madd_epi16(wv, xv[j]);
        }
        acc[r] = _mm256_add_epi32(
            acc[r], _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])));
      }
    }
    for (int r = 0; r < 8; ++r) {
      const __m256i wide = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc[r])),
                                            _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc[r], 1)));
      alignas(32) int64_t lanes[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), wide);
      sums[r] += lanes[0] + lanes[1] + lanes[2] + lanes[3];
    }
  }
  for (int r = 0; r < 8; ++r) {
    if (n + r < n_lo || n + r >= n_hi) continue;
    Fixed16Output(sums[r], f.step[b], scale[n + r], bias, n + r, y + b * ldy + n + r);
  }
}

// The kVnni path's loop order (each row group once per input row while its weights stay in L1/L2).
void Avx2(const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w, const float* scale,
          const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  thread_local Fixed16 f;
  f.kpad = PaddedK(k);
  f.q.resize(static_cast<size_t>(std::max<int64_t>(static_cast<int64_t>(f.q.size()), batch * f.kpad)));
  f.step.resize(batch);
  for (int64_t b = 0; b < batch; ++b) {
    Avx2QuantizeRow(x + b * ldx, k, f.kpad, f.q.data() + b * f.kpad, f.step[b]);
  }
  for (int64_t n = BlockStart<kRowGroup>(n_begin); n < n_end; n += kRowGroup) {
    for (int64_t b = 0; b < batch; ++b) Avx2RowGroup(f, b, w, scale, bias, y, ldy, n, n_begin, n_end);
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

// One row's limbs, 16 values at a time with the scalar definition's arithmetic (an IEEE division, rounding to
// nearest even as nearbyint does, the same clamp).
MONOLOGUE_VNNI_TARGET void SplitRow(const float* xr, int64_t k, int64_t kpad, uint8_t* lo, uint8_t* hi,
                                    double& step) {
  __m512 mv = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) mv = _mm512_max_ps(mv, _mm512_abs_ps(_mm512_loadu_ps(xr + i)));
  float m = _mm512_reduce_max_ps(mv);
  for (; i < k; ++i) m = std::max(m, std::fabs(xr[i]));
  const float s = m > 0 ? m / 32767.f : 1.f;
  step = s;
  const __m512 sv = _mm512_set1_ps(s), lim = _mm512_set1_ps(32767.f), neg = _mm512_set1_ps(-32767.f);
  const __m512i byte = _mm512_set1_epi32(0xFF), bias = _mm512_set1_epi32(128);
  for (i = 0; i < kpad; i += 16) {
    const __mmask16 valid = i + 16 <= k ? static_cast<__mmask16>(0xFFFF)
                            : i < k     ? static_cast<__mmask16>((1u << (k - i)) - 1)
                                        : static_cast<__mmask16>(0);
    __m512 q = _mm512_div_ps(_mm512_maskz_loadu_ps(valid, xr + i), sv);
    q = _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i qi = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(q, lim), neg));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + i), _mm512_cvtepi32_epi8(_mm512_and_si512(qi, byte)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + i),
                     _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_srai_epi32(qi, 8), bias)));
  }
}

void SplitRows(const float* x, int64_t ldx, int64_t batch, int64_t k, Limbs& l) {
  l.kpad = PaddedK(k);
  if (static_cast<int64_t>(l.lo.size()) < batch * l.kpad) {
    l.lo.resize(batch * l.kpad);
    l.hi.resize(batch * l.kpad);
  }
  l.step.resize(batch);
  for (int64_t b = 0; b < batch; ++b) {
    SplitRow(x + b * ldx, k, l.kpad, l.lo.data() + b * l.kpad, l.hi.data() + b * l.kpad, l.step[b]);
  }
}

// Sixteen vectors of int32 lanes -> one vector whose lane j is the sum of a[j]'s lanes: one add tree over
// unpacks and lane shuffles (30 instructions) where sixteen separate reductions took ~130, a fifth of a row
// group's instructions at K = 1024 (the depformer's products).
MONOLOGUE_VNNI_TARGET inline __m512i SumEach(const __m512i a[16]) {
  __m512i pairs[8], quads[4], halves[2];
  for (int i = 0; i < 8; ++i) {
    pairs[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]),
                                _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]));
  }
  for (int i = 0; i < 4; ++i) {
    quads[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(pairs[2 * i], pairs[2 * i + 1]),
                                _mm512_unpackhi_epi64(pairs[2 * i], pairs[2 * i + 1]));
  }
  // Each 128-bit lane of quads[i] now holds one partial sum of a[4i .. 4i + 3]; add the four lanes.
  for (int i = 0; i < 2; ++i) {
    halves[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(quads[2 * i], quads[2 * i + 1], 0x88),
                                 _mm512_shuffle_i32x4(quads[2 * i], quads[2 * i + 1], 0xDD));
  }
  return _mm512_add_epi32(_mm512_shuffle_i32x4(halves[0], halves[1], 0x88),
                          _mm512_shuffle_i32x4(halves[0], halves[1], 0xDD));
}

// One row group (kRowGroup = 8 output rows from row n) x input row b: 16 integer accumulators (exact: |sum| <
// 2^31 for k < 66000), summed once at the end by SumEach. Only rows in [n_lo, n_hi) are stored. This layout
// and SumEach took 4-14% off a tts-1.6b frame's products (the more, the faster the memory that minute;
// bench/kernel_ab/int8_gemv_ab.sh); keeping the weights in registers (an empty asm) ran faster from L2 but
// 19% slower from memory.
MONOLOGUE_VNNI_TARGET void VnniRowGroup(const Limbs& l, int64_t b, const int8_t* w, const float* scale,
                                        const int32_t* row_sums, const float* bias, float* y, int64_t ldy,
                                        int64_t n, int64_t n_lo, int64_t n_hi) {
  static_assert(kRowGroup == 8 && kChunk == 64, "the kernel is written for 8 rows of 64-byte chunks");
  __m512i acc[16];  // [0, 8): the low limb of rows n + r, [8, 16): the high limb
  for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_si512();
  const uint8_t* lo = l.lo.data() + b * l.kpad;
  const uint8_t* hi = l.hi.data() + b * l.kpad;
  // Padding beyond k: the weights are zero, so lo's 0 and hi's 128 add nothing.
  const int8_t* chunk = w + PackedOffset(n, 0, l.kpad);
  for (int64_t i = 0; i < l.kpad; i += kChunk, chunk += kRowGroup * kChunk) {
    const __m512i xl = _mm512_loadu_si512(lo + i);
    const __m512i xh = _mm512_loadu_si512(hi + i);
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(chunk + r * kChunk + kPrefetchBytes), _MM_HINT_T0);
      const __m512i wv = _mm512_loadu_si512(chunk + r * kChunk);
      acc[r] = _mm512_dpbusd_epi32(acc[r], xl, wv);
      acc[8 + r] = _mm512_dpbusd_epi32(acc[8 + r], xh, wv);
    }
  }
  alignas(64) int32_t sums[16];
  _mm512_store_si512(sums, SumEach(acc));
  for (int r = 0; r < 8; ++r) {
    if (n + r < n_lo || n + r >= n_hi) continue;
    const double s = scale[n + r], rs = row_sums[n + r];
    const float add = bias != nullptr ? bias[n + r] : 0.f;
    const double q = 256.0 * (static_cast<double>(sums[8 + r]) - 128.0 * rs) + static_cast<double>(sums[r]);
    y[b * ldy + n + r] = static_cast<float>(q * l.step[b] * s) + add;
  }
}

// Each group of 8 output rows once per input row while its packed weights (8 x K bytes) stay in L1/L2: one
// contiguous stream from memory. Blocks of fewer output rows and several input rows (4 x 2, 1 x 8) read each
// group's chunks in interleaved parts, which the prefetchers follow badly: this order is 1.2-1.4x faster at
// batch 2-16 on stt-1b shapes (docs/benchmarks.md), and each (row, input row) sum is the same either way.
void Vnni(const float* x, int64_t ldx, int64_t batch, int64_t k, const int8_t* w, const float* scale,
          const int32_t* row_sums, const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  thread_local Limbs limbs;
  SplitRows(x, ldx, batch, k, limbs);
  for (int64_t n = BlockStart<kRowGroup>(n_begin); n < n_end; n += kRowGroup) {
    for (int64_t b = 0; b < batch; ++b) {
      VnniRowGroup(limbs, b, w, scale, row_sums, bias, y, ldy, n, n_begin, n_end);
    }
  }
}
#endif  // MONOLOGUE_INT8_AVX512

// What the CPU has (kernels/cpu_isa.h detects it once for every kernel), whatever the process-wide cap:
// GemmRows runs an explicitly requested path wherever the CPU can.
bool HasAvx512() { return kernels::DetectedCpuIsa() >= kernels::CpuIsa::kAvx512; }
bool HasAvx2() { return kernels::DetectedCpuIsa() >= kernels::CpuIsa::kAvx2; }

bool HasVnni() {
#ifdef MONOLOGUE_INT8_AVX512
  static const bool yes = HasAvx512() && __builtin_cpu_supports("avx512vnni");
  return yes;
#else
  return false;
#endif
}

#ifdef MONOLOGUE_INT8_AVX512
// QuantizeRow's rounding 16 values at a time: the same division, rounding and clamp, so the same values.
MONOLOGUE_AVX512_TARGET int32_t RoundRow(const float* w, int64_t k, float s, int8_t* q) {
  const __m512 sv = _mm512_set1_ps(s), lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  __m512i sum = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m512 v = _mm512_div_ps(_mm512_loadu_ps(w + i), sv);
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i qi = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, lo), hi));
    sum = _mm512_add_epi32(sum, qi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtepi32_epi8(qi));
  }
  int32_t total = _mm512_reduce_add_epi32(sum);
  for (; i < k; ++i) {
    q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(w[i] / s), -127.f, 127.f));
    total += q[i];
  }
  return total;
}
#endif

}  // namespace

float QuantizeRow(const float* w, int64_t k, int8_t* q, int32_t* sum) {
  float m = 0;
  for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(w[i]));
  const float s = m > 0 ? m / 127.f : 1.f;
#ifdef MONOLOGUE_INT8_AVX512
  if (HasAvx512()) {
    *sum = RoundRow(w, k, s, q);
    return s;
  }
#endif
  int32_t total = 0;
  for (int64_t i = 0; i < k; ++i) {
    q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(w[i] / s), -127.f, 127.f));
    total += q[i];
  }
  *sum = total;
  return s;
}

int64_t PaddedK(int64_t k) { return (k + kChunk - 1) / kChunk * kChunk; }

int64_t PackedBytes(int64_t n, int64_t k) { return (n + kRowGroup - 1) / kRowGroup * kRowGroup * PaddedK(k); }

void PackRows(const int8_t* w, int64_t n, int64_t k, int8_t* packed) {
  const int64_t kp = PaddedK(k);
  std::memset(packed, 0, static_cast<size_t>(PackedBytes(n, k)));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; i += kChunk) {
      std::memcpy(packed + PackedOffset(r, i, kp), w + r * k + i,
                  static_cast<size_t>(std::min(kChunk, k - i)));
    }
  }
}

void UnpackRows(const int8_t* packed, int64_t n, int64_t k, int8_t* w) {
  const int64_t kp = PaddedK(k);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; i += kChunk) {
      std::memcpy(w + r * k + i, packed + PackedOffset(r, i, kp),
                  static_cast<size_t>(std::min(kChunk, k - i)));
    }
  }
}

namespace {
std::atomic<KernelPath> path_limit{KernelPath::kVnni};
}  // namespace

void SetPathLimit(KernelPath limit) { path_limit.store(limit); }

KernelPath BestPath() {
  const KernelPath limit = path_limit.load(std::memory_order_relaxed);
  auto allowed = [&](KernelPath p) { return static_cast<int>(p) <= static_cast<int>(limit); };
  // The process-wide instruction-set cap (kernels::SetCpuIsaLimit) applies here too.
  if (allowed(KernelPath::kVnni) && kernels::CpuHasAvx512() && HasVnni()) return KernelPath::kVnni;
  if (allowed(KernelPath::kAvx512) && kernels::CpuHasAvx512()) return KernelPath::kAvx512;
  if (allowed(KernelPath::kAvx2) && kernels::CpuHasAvx2()) return KernelPath::kAvx2;
  return KernelPath::kScalar;
}

bool ParsePathName(const char* name, KernelPath* path) {
  for (KernelPath p : {KernelPath::kScalar, KernelPath::kAvx2, KernelPath::kAvx512, KernelPath::kVnni}) {
    if (std::strcmp(name, PathName(p)) == 0) {
      *path = p;
      return true;
    }
  }
  return false;
}

const char* PathName(KernelPath path) {
  switch (path) {
    case KernelPath::kVnni:
      return "avx512-vnni";
    case KernelPath::kAvx512:
      return "avx512";
    case KernelPath::kAvx2:
      return "avx2";
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
  if (path != KernelPath::kScalar && HasAvx2()) {
    Avx2(x, ldx, batch, k, w, scale, bias, y, ldy, n_begin, n_end);
    return;
  }
#endif
  ScalarRows(x, ldx, batch, k, w, scale, bias, y, ldy, n_begin, n_end);
}

}  // namespace monologue::lm::int8
