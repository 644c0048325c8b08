#include "core/lm/int4_gemm.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/kernels/cpu_isa.h"
#include "core/kernels/simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MONOLOGUE_INT4_AVX512 1
// GCC 12's AVX-512 headers build some results from a deliberately undefined vector (_mm512_undefined_*),
// which its uninitialised-use analysis reports once the intrinsics are inlined here.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace monologue::lm::int4 {
namespace {

constexpr int64_t kNibbleBytes = 64;                        // one row's nibbles in a chunk
constexpr int64_t kScaleOffset = kRowGroup * kNibbleBytes;  // the chunk's scales after its 8 rows of nibbles
constexpr int64_t kGroupsPerChunk = kChunk / kGroup;        // 4: groups 0-1 in half 0, 2-3 in half 1

int64_t ChunksPerRow(int64_t k) { return PaddedK(k) / kChunk; }

// Where row `row`'s chunk `chunk` starts (its row group's chunk, then the row's 64 bytes).
int64_t ChunkOffset(int64_t row, int64_t chunk, int64_t chunks) {
  return ((row / kRowGroup) * chunks + chunk) * kChunkBytes;
}

// Byte offset, inside a chunk, of the f16 scale of group g (0-3) of row r (0-7).
int64_t ScaleOffset(int64_t r, int64_t g) { return kScaleOffset + (g / 2) * 32 + r * 4 + (g % 2) * 2; }

uint16_t HalfBits(float v) { return c10::Half(v).x; }
float HalfValue(uint16_t bits) { return static_cast<float>(c10::Half(bits, c10::Half::from_bits())); }

// Rows [n_begin, n_end), plain loops: each chunk of a row is dequantised into f32 once, then dotted with
// every input row's segment (f32 accumulation per chunk, summed into a double per output).
void ScalarRows(const float* x, int64_t ldx, int64_t batch, int64_t k, const uint8_t* w, const float* bias,
                float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  const int64_t chunks = ChunksPerRow(k);
  std::vector<double> acc(static_cast<size_t>(batch));
  float deq[kChunk];
  for (int64_t n = n_begin; n < n_end; ++n) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t c = 0; c < chunks; ++c) {
      const uint8_t* cb = w + ChunkOffset(n, c, chunks);
      const uint8_t* nib = cb + (n % kRowGroup) * kNibbleBytes;
      for (int64_t i = 0; i < kChunk; ++i) {
        const int v = i < 64 ? (nib[i] & 0x0F) : (nib[i - 64] >> 4);
        uint16_t bits;
        std::memcpy(&bits, cb + ScaleOffset(n % kRowGroup, i / kGroup), sizeof(bits));
        deq[i] = HalfValue(bits) * static_cast<float>(v - 8);
      }
      const int64_t len = std::min(kChunk, k - c * kChunk);
      for (int64_t b = 0; b < batch; ++b) {
        const float* xr = x + b * ldx + c * kChunk;
        float s = 0;
        for (int64_t i = 0; i < len; ++i) s += xr[i] * deq[i];
        acc[b] += s;
      }
    }
    for (int64_t b = 0; b < batch; ++b) {
      y[b * ldy + n] = static_cast<float>(acc[b]) + (bias != nullptr ? bias[n] : 0.f);
    }
  }
}

#ifdef MONOLOGUE_INT4_AVX512
#define MONOLOGUE_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// How far ahead of its loads the kernel prefetches the packed stream (the int8 kernel's measured best), into
// L2 (T1): on an Intel VM from memory, 2 threads, 17.4-18.1 GB/s against 15.0-16.1 into L1 (T0) and 10-11
// without (tts-1.6b int4 LM step 86-88 -> 68-74 ms, docs/benchmarks.md "An Intel VM").
constexpr int64_t kPrefetchBytes = 4096;
// Largest |q| of the 16-bit fixed point: q + 128 stays below 2^15, so hi = (q + 128) >> 8 fits a signed byte.
constexpr float kMaxQ = 32639.f;

// Input rows as 16-bit fixed point q = round(x / s), split into signed bytes q = 256 hi + lo (lo in [-128,
// 127]), with the zero-point term of each 4-input lane, -8 (q0 + q1 + q2 + q3), precomputed: the packed
// nibbles are q_w + 8, so sum (q_w + 8) q - 8 sum q = sum q_w q.
struct Limbs {
  std::vector<int8_t> lo, hi;  // [batch, kpad]
  std::vector<int32_t> neg_p;  // [batch, kpad / 4]: -8 x each lane's sum of q
  std::vector<double> step;    // s per input row
  int64_t kpad = 0;
};

MONOLOGUE_VNNI_TARGET void SplitRow(const float* xr, int64_t k, int64_t kpad, int8_t* lo, int8_t* hi,
                                    int32_t* neg_p, double& step) {
  __m512 mv = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) mv = _mm512_max_ps(mv, _mm512_abs_ps(_mm512_loadu_ps(xr + i)));
  float m = _mm512_reduce_max_ps(mv);
  for (; i < k; ++i) m = std::max(m, std::fabs(xr[i]));
  const float s = m > 0 ? m / kMaxQ : 1.f;
  step = s;
  const __m512 sv = _mm512_set1_ps(s), lim = _mm512_set1_ps(kMaxQ), neg = _mm512_set1_ps(-kMaxQ);
  const __m512i c128 = _mm512_set1_epi32(128), byte = _mm512_set1_epi32(0xFF);
  for (i = 0; i < kpad; i += 16) {
    const __mmask16 valid = i + 16 <= k ? static_cast<__mmask16>(0xFFFF)
                            : i < k     ? static_cast<__mmask16>((1u << (k - i)) - 1)
                                        : static_cast<__mmask16>(0);
    __m512 q = _mm512_div_ps(_mm512_maskz_loadu_ps(valid, xr + i), sv);
    q = _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i qi = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(q, lim), neg));
    const __m512i l = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(qi, c128), byte), c128);
    const __m512i h = _mm512_srai_epi32(_mm512_sub_epi32(qi, l), 8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + i), _mm512_cvtepi32_epi8(l));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + i), _mm512_cvtepi32_epi8(h));
  }
  // Each lane's sum of 4 q = 256 (sum of 4 hi) + (sum of 4 lo), by vpdpbusd against ones.
  const __m512i ones = _mm512_set1_epi8(1);
  for (i = 0; i < kpad; i += 64) {
    const __m512i sh = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(hi + i));
    const __m512i sl = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(lo + i));
    const __m512i sum = _mm512_add_epi32(_mm512_slli_epi32(sh, 8), sl);
    _mm512_storeu_si512(neg_p + i / 4, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 3)));
  }
}

void SplitRows(const float* x, int64_t ldx, int64_t batch, int64_t k, Limbs& l) {
  l.kpad = PaddedK(k);
  if (static_cast<int64_t>(l.lo.size()) < batch * l.kpad) {
    l.lo.resize(batch * l.kpad);
    l.hi.resize(batch * l.kpad);
    l.neg_p.resize(batch * l.kpad / 4);
  }
  l.step.resize(batch);
  for (int64_t b = 0; b < batch; ++b) {
    SplitRow(x + b * ldx, k, l.kpad, l.lo.data() + b * l.kpad, l.hi.data() + b * l.kpad,
             l.neg_p.data() + b * l.kpad / 4, l.step[b]);
  }
}

// The integer sum of one half chunk (64 inputs) for one input row, per lane (lanes 0-7: the half's first
// group, 8-15: its second), as f32 (exact: |t| < 2^22).
MONOLOGUE_VNNI_TARGET inline __m512 HalfSum(__m512i nibbles, const int8_t* hi, const int8_t* lo,
                                            const int32_t* neg_p) {
  const __m512i a = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles, _mm512_loadu_si512(hi));
  const __m512i b = _mm512_dpbusd_epi32(_mm512_loadu_si512(neg_p), nibbles, _mm512_loadu_si512(lo));
  return _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_slli_epi32(a, 8), b));
}

// RB output rows (from row n, RB-aligned; RB divides kRowGroup) x BB input rows, f32 accumulators per lane;
// only rows in [n_lo, n_hi) are stored.
template <int RB, int BB>
MONOLOGUE_VNNI_TARGET void VnniBlock(const Limbs& l, int64_t b0, int64_t k, const uint8_t* w,
                                     const float* bias, float* y, int64_t ldy, int64_t n, int64_t n_lo,
                                     int64_t n_hi) {
  __m512 acc[RB][BB];
  for (int r = 0; r < RB; ++r)
    for (int b = 0; b < BB; ++b) acc[r][b] = _mm512_setzero_ps();
  const int64_t chunks = ChunksPerRow(k), r0 = n % kRowGroup;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  // Scale lanes of row r: its group 0 scale in lanes 0-7, group 1 in 8-15 (of each half's 16 scales).
  __m512i pick[RB];
  for (int r = 0; r < RB; ++r) {
    pick[r] = _mm512_add_epi32(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                               _mm512_set1_epi32(static_cast<int>(2 * (r0 + r))));
  }
  const uint8_t* base = w + ChunkOffset(n, 0, chunks);
  for (int64_t c = 0; c < chunks; ++c) {
    const uint8_t* cb = base + c * kChunkBytes;
    for (int64_t line = 0; line < kChunkBytes; line += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(cb + line + kPrefetchBytes), _MM_HINT_T1);
    }
    const __m512 s0 =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(cb + kScaleOffset)));
    const __m512 s1 =
        _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(cb + kScaleOffset + 32)));
    for (int r = 0; r < RB; ++r) {
      const __m512i packed = _mm512_loadu_si512(cb + (r0 + r) * kNibbleBytes);
      const __m512i n0 = _mm512_and_si512(packed, low4);
      const __m512i n1 = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
      const __m512 sc0 = _mm512_permutexvar_ps(pick[r], s0), sc1 = _mm512_permutexvar_ps(pick[r], s1);
      for (int b = 0; b < BB; ++b) {
        const int64_t row = (b0 + b) * l.kpad + c * kChunk;
        const int32_t* np = l.neg_p.data() + row / 4;
        acc[r][b] = _mm512_fmadd_ps(HalfSum(n0, l.hi.data() + row, l.lo.data() + row, np), sc0, acc[r][b]);
        acc[r][b] = _mm512_fmadd_ps(HalfSum(n1, l.hi.data() + row + 64, l.lo.data() + row + 64, np + 16), sc1,
                                    acc[r][b]);
      }
    }
  }
  for (int r = 0; r < RB; ++r) {
    if (n + r < n_lo || n + r >= n_hi) continue;
    const float add = bias != nullptr ? bias[n + r] : 0.f;
    for (int b = 0; b < BB; ++b) {
      const double sum = kernels::ReduceAdd16(acc[r][b]);
      y[(b0 + b) * ldy + n + r] = static_cast<float>(sum * l.step[b0 + b]) + add;
    }
  }
}

void Vnni(const float* x, int64_t ldx, int64_t batch, int64_t k, const uint8_t* w, const float* bias,
          float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  thread_local Limbs limbs;
  SplitRows(x, ldx, batch, k, limbs);
  // Each group of 8 output rows once per input row while its packed weights (4.5 x K bytes) stay in L1/L2:
  // one contiguous stream from memory. Blocks of fewer output rows and several input rows read each group's
  // chunks in interleaved parts, which the prefetchers follow badly (int8: 1.2-1.4x slower at batch 2-16).
  for (int64_t n = n_begin - n_begin % kRowGroup; n < n_end; n += kRowGroup) {
    for (int64_t b = 0; b < batch; ++b) VnniBlock<8, 1>(limbs, b, k, w, bias, y, ldy, n, n_begin, n_end);
  }
}

// kAvx2: the VNNI path's arithmetic with AVX2 + FMA + F16C. Its 16 lanes are kept as two halves of 8; a
// lane's 4-byte dot product (vpdpbusd) is vpmaddubsw then vpmaddwd against ones, exact because an unsigned
// nibble times a signed byte, twice, stays within 16 bits (2 x 15 x 128); the per-lane f32 accumulation and
// the final tree are the same. So the same bits as kVnni.
#define MONOLOGUE_INT4_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

// Sums of 4 adjacent u8 x s8 products per 32-bit lane (vpdpbusd without the accumulator).
MONOLOGUE_INT4_AVX2_TARGET inline __m256i Dot4(__m256i u8, __m256i s8) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1));
}

// SplitRow's fixed point with AVX2: the same division, rounding, clamp and integer splits, so the same limbs.
MONOLOGUE_INT4_AVX2_TARGET void SplitRowAvx2(const float* xr, int64_t k, int64_t kpad, int8_t* lo, int8_t* hi,
                                             int32_t* neg_p, double& step) {
  float m = 0;
  for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(xr[i]));
  const float s = m > 0 ? m / kMaxQ : 1.f;
  step = s;
  const __m256 sv = _mm256_set1_ps(s), lim = _mm256_set1_ps(kMaxQ), neg = _mm256_set1_ps(-kMaxQ);
  const __m256i c128 = _mm256_set1_epi32(128), byte = _mm256_set1_epi32(0xFF);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i = 0; i < kpad; i += 8) {
    const __m256i valid =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(k - i, 0, 8))), lanes);
    __m256 q = _mm256_div_ps(_mm256_maskload_ps(xr + i, valid), sv);
    q = _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i qi = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(q, lim), neg));
    const __m256i l = _mm256_sub_epi32(_mm256_and_si256(_mm256_add_epi32(qi, c128), byte), c128);
    const __m256i h = _mm256_srai_epi32(_mm256_sub_epi32(qi, l), 8);
    alignas(32) int32_t lv[8], hv[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lv), l);
    _mm256_store_si256(reinterpret_cast<__m256i*>(hv), h);
    for (int j = 0; j < 8; ++j) {
      lo[i + j] = static_cast<int8_t>(lv[j]);
      hi[i + j] = static_cast<int8_t>(hv[j]);
    }
  }
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < kpad; i += 32) {
    const __m256i sh = Dot4(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + i)));
    const __m256i sl = Dot4(ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + i)));
    const __m256i sum = _mm256_add_epi32(_mm256_slli_epi32(sh, 8), sl);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(neg_p + i / 4),
                        _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(sum, 3)));
  }
}

// HalfSum for 8 lanes (32 inputs): nibbles, the input limbs and the zero-point terms of those lanes.
MONOLOGUE_INT4_AVX2_TARGET inline __m256 HalfSum8(__m256i nibbles, const int8_t* hi, const int8_t* lo,
                                                  const int32_t* neg_p) {
  const __m256i a = Dot4(nibbles, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)));
  const __m256i b = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(neg_p)),
                                     Dot4(nibbles, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))));
  return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_slli_epi32(a, 8), b));
}

// RB output rows from row n (RB divides kRowGroup) against input row b; only rows in [n_lo, n_hi) are stored.
template <int RB>
MONOLOGUE_INT4_AVX2_TARGET void Avx2Block(const Limbs& l, int64_t b, int64_t k, const uint8_t* w,
                                          const float* bias, float* y, int64_t ldy, int64_t n, int64_t n_lo,
                                          int64_t n_hi) {
  __m256 acc[RB][2];
  for (int r = 0; r < RB; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const int64_t chunks = ChunksPerRow(k), r0 = n % kRowGroup;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const uint8_t* base = w + ChunkOffset(n, 0, chunks);
  const int64_t row = b * l.kpad;
  for (int64_t c = 0; c < chunks; ++c) {
    const uint8_t* cb = base + c * kChunkBytes;
    const int8_t* hi = l.hi.data() + row + c * kChunk;
    const int8_t* lo = l.lo.data() + row + c * kChunk;
    const int32_t* np = l.neg_p.data() + (row + c * kChunk) / 4;
    // Half h's scales: [row 0 group 0, row 0 group 1, row 1 group 0, ...] as f16 (exact in f32).
    const __m256 s0a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cb + kScaleOffset)));
    const __m256 s0b =
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cb + kScaleOffset + 16)));
    const __m256 s1a =
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cb + kScaleOffset + 32)));
    const __m256 s1b =
        _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(cb + kScaleOffset + 48)));
    alignas(32) float sc[4][8];
    _mm256_store_ps(sc[0], s0a);
    _mm256_store_ps(sc[1], s0b);
    _mm256_store_ps(sc[2], s1a);
    _mm256_store_ps(sc[3], s1b);
    for (int r = 0; r < RB; ++r) {
      const int64_t rr =
          r0 + r;  // the row's place in its group: scales 2 rr (group 0) and 2 rr + 1 (group 1)
      const float* half0 = sc[(2 * rr) / 8];
      const float* half1 = sc[2 + (2 * rr) / 8];
      const int64_t at = (2 * rr) % 8;
      const uint8_t* nib = cb + rr * kNibbleBytes;
      const __m256i p0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(nib));
      const __m256i p1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(nib + 32));
      // Inputs 0-31 and 32-63 (low nibbles), 64-95 and 96-127 (high nibbles).
      const __m256i n0a = _mm256_and_si256(p0, low4), n0b = _mm256_and_si256(p1, low4);
      const __m256i n1a = _mm256_and_si256(_mm256_srli_epi16(p0, 4), low4);
      const __m256i n1b = _mm256_and_si256(_mm256_srli_epi16(p1, 4), low4);
      acc[r][0] = _mm256_fmadd_ps(HalfSum8(n0a, hi, lo, np), _mm256_set1_ps(half0[at]), acc[r][0]);
      acc[r][1] =
          _mm256_fmadd_ps(HalfSum8(n0b, hi + 32, lo + 32, np + 8), _mm256_set1_ps(half0[at + 1]), acc[r][1]);
      acc[r][0] =
          _mm256_fmadd_ps(HalfSum8(n1a, hi + 64, lo + 64, np + 16), _mm256_set1_ps(half1[at]), acc[r][0]);
      acc[r][1] =
          _mm256_fmadd_ps(HalfSum8(n1b, hi + 96, lo + 96, np + 24), _mm256_set1_ps(half1[at + 1]), acc[r][1]);
    }
  }
  for (int r = 0; r < RB; ++r) {
    if (n + r < n_lo || n + r >= n_hi) continue;
    const float add = bias != nullptr ? bias[n + r] : 0.f;
    const double sum = kernels::ReduceAdd16(acc[r][0], acc[r][1]);
    y[b * ldy + n + r] = static_cast<float>(sum * l.step[b]) + add;
  }
}

void Avx2(const float* x, int64_t ldx, int64_t batch, int64_t k, const uint8_t* w, const float* bias,
          float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  thread_local Limbs limbs;
  limbs.kpad = PaddedK(k);
  if (static_cast<int64_t>(limbs.lo.size()) < batch * limbs.kpad) {
    limbs.lo.resize(batch * limbs.kpad);
    limbs.hi.resize(batch * limbs.kpad);
    limbs.neg_p.resize(batch * limbs.kpad / 4);
  }
  limbs.step.resize(batch);
  for (int64_t b = 0; b < batch; ++b) {
    SplitRowAvx2(x + b * ldx, k, limbs.kpad, limbs.lo.data() + b * limbs.kpad,
                 limbs.hi.data() + b * limbs.kpad, limbs.neg_p.data() + b * limbs.kpad / 4, limbs.step[b]);
  }
  // A whole row group per pass, as the VNNI path: its 16 accumulators spill, which measured 5% faster (from
  // L3, one thread) than two passes of 4 rows that keep them in registers.
  for (int64_t n = n_begin - n_begin % kRowGroup; n < n_end; n += kRowGroup) {
    for (int64_t b = 0; b < batch; ++b) Avx2Block<8>(limbs, b, k, w, bias, y, ldy, n, n_begin, n_end);
  }
}
#endif  // MONOLOGUE_INT4_AVX512

bool HasVnni() {
#ifdef MONOLOGUE_INT4_AVX512
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return yes;
#else
  return false;
#endif
}

bool HasAvx2() {
#ifdef MONOLOGUE_INT4_AVX512
  static const bool yes =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return yes;
#else
  return false;
#endif
}

#ifdef MONOLOGUE_INT4_AVX512
// A whole group's values with AVX-512: the same IEEE division, round-to-nearest-even and clamp as the scalar
// loop below, so the same values (Int4Gemm tests compare the two).
__attribute__((target("avx512f,avx512bw,avx512vl"))) void RoundGroup32(const float* w, float df, int8_t* q) {
  const __m512 d = _mm512_set1_ps(df), lo = _mm512_set1_ps(-8.f), hi = _mm512_set1_ps(7.f);
  for (int h = 0; h < 2; ++h) {
    __m512 v = _mm512_div_ps(_mm512_loadu_ps(w + 16 * h), d);
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * h), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
}

bool HasAvx512Bw() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return yes;
}
#endif

// The f16 scale of one group of w (its value of largest magnitude / -8), and its values q in [-8, 7].
uint16_t QuantizeGroup(const float* w, int64_t len, int8_t* q) {
  float extreme = 0, magnitude = 0;
  for (int64_t i = 0; i < len; ++i) {
    const float a = std::fabs(w[i]);
    if (a > magnitude) {
      magnitude = a;
      extreme = w[i];
    }
  }
  // Beyond f16's range the scale saturates (and the values clamp): no real LM weight is near 5e5.
  const float d = std::clamp(extreme / -8.f, -65504.f, 65504.f);
  const uint16_t bits = HalfBits(d);
  const float df = HalfValue(bits);
  if (df == 0.f) {
    std::fill(q, q + len, int8_t{0});
    return HalfBits(0.f);
  }
#ifdef MONOLOGUE_INT4_AVX512
  if (len == kGroup && HasAvx512Bw()) {
    RoundGroup32(w, df, q);
    return bits;
  }
#endif
  for (int64_t i = 0; i < len; ++i) {
    q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(w[i] / df), -8.f, 7.f));
  }
  return bits;
}

}  // namespace

int64_t PaddedK(int64_t k) { return (k + kChunk - 1) / kChunk * kChunk; }

int64_t PackedBytes(int64_t n, int64_t k) {
  return (n + kRowGroup - 1) / kRowGroup * ChunksPerRow(k) * kChunkBytes;
}

void Pack(const int8_t* values, const float* scales, int64_t n, int64_t k, uint8_t* packed) {
  const int64_t chunks = ChunksPerRow(k), groups = (k + kGroup - 1) / kGroup;
  std::memset(packed, 0, static_cast<size_t>(PackedBytes(n, k)));
  // Padding inputs and padding rows hold the zero weight: nibble 8 (scale 0 as well).
  for (int64_t g = 0; g < (n + kRowGroup - 1) / kRowGroup; ++g) {
    for (int64_t c = 0; c < chunks; ++c) {
      std::memset(packed + (g * chunks + c) * kChunkBytes, 0x88, static_cast<size_t>(kScaleOffset));
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; ++i) {
      const int64_t c = i / kChunk, j = i % kChunk;
      uint8_t* byte = packed + ChunkOffset(r, c, chunks) + (r % kRowGroup) * kNibbleBytes + j % 64;
      const uint8_t v = static_cast<uint8_t>(values[r * k + i] + 8);
      *byte =
          j < 64 ? static_cast<uint8_t>((*byte & 0xF0) | v) : static_cast<uint8_t>((*byte & 0x0F) | (v << 4));
    }
    for (int64_t g = 0; g < groups; ++g) {
      const uint16_t bits = HalfBits(scales[r * groups + g]);
      std::memcpy(packed + ChunkOffset(r, g / kGroupsPerChunk, chunks) +
                      ScaleOffset(r % kRowGroup, g % kGroupsPerChunk),
                  &bits, sizeof(bits));
    }
  }
}

void Quantize(const float* w, int64_t n, int64_t k, uint8_t* packed, int8_t* values, float* scales) {
  const int64_t chunks = ChunksPerRow(k), groups = (k + kGroup - 1) / kGroup;
  // Padding rows of the last row group hold the zero weight (nibble 8, scale 0).
  for (int64_t r = n; r < (n + kRowGroup - 1) / kRowGroup * kRowGroup; ++r) {
    for (int64_t c = 0; c < chunks; ++c) {
      uint8_t* cb = packed + ChunkOffset(r, c, chunks);
      std::memset(cb + (r % kRowGroup) * kNibbleBytes, 0x88, kNibbleBytes);
      for (int64_t g = 0; g < kGroupsPerChunk; ++g) std::memset(cb + ScaleOffset(r % kRowGroup, g), 0, 2);
    }
  }
  int8_t q[kChunk];
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < chunks; ++c) {
      uint8_t* cb = packed + ChunkOffset(r, c, chunks);
      for (int64_t g = 0; g < kGroupsPerChunk; ++g) {
        const int64_t start = c * kChunk + g * kGroup, len = std::clamp<int64_t>(k - start, 0, kGroup);
        uint16_t bits = 0;
        if (len > 0) bits = QuantizeGroup(w + r * k + start, len, q + g * kGroup);
        for (int64_t i = std::max<int64_t>(len, 0); i < kGroup; ++i) q[g * kGroup + i] = 0;  // padding inputs
        std::memcpy(cb + ScaleOffset(r % kRowGroup, g), &bits, sizeof(bits));
        if (len > 0) {
          if (values != nullptr)
            std::memcpy(values + r * k + start, q + g * kGroup, static_cast<size_t>(len));
          if (scales != nullptr) scales[r * groups + start / kGroup] = HalfValue(bits);
        }
      }
      uint8_t* nib = cb + (r % kRowGroup) * kNibbleBytes;
      for (int64_t j = 0; j < 64; ++j) {
        nib[j] = static_cast<uint8_t>((q[j] + 8) | ((q[j + 64] + 8) << 4));
      }
    }
  }
}

void Unpack(const uint8_t* packed, int64_t n, int64_t k, int8_t* values, float* scales) {
  const int64_t chunks = ChunksPerRow(k), groups = (k + kGroup - 1) / kGroup;
  for (int64_t r = 0; r < n; ++r) {
    if (values != nullptr) {
      for (int64_t i = 0; i < k; ++i) {
        const int64_t c = i / kChunk, j = i % kChunk;
        const uint8_t byte = packed[ChunkOffset(r, c, chunks) + (r % kRowGroup) * kNibbleBytes + j % 64];
        values[r * k + i] = static_cast<int8_t>((j < 64 ? (byte & 0x0F) : (byte >> 4)) - 8);
      }
    }
    if (scales != nullptr) {
      for (int64_t g = 0; g < groups; ++g) {
        uint16_t bits;
        std::memcpy(&bits,
                    packed + ChunkOffset(r, g / kGroupsPerChunk, chunks) +
                        ScaleOffset(r % kRowGroup, g % kGroupsPerChunk),
                    sizeof(bits));
        scales[r * groups + g] = HalfValue(bits);
      }
    }
  }
}

// The process-wide instruction-set cap (kernels::SetCpuIsaLimit) applies here too.
KernelPath BestPath() {
  if (kernels::CpuHasAvx512() && HasVnni()) return KernelPath::kVnni;
  if (kernels::CpuHasAvx2() && HasAvx2()) return KernelPath::kAvx2;
  return KernelPath::kScalar;
}

const char* PathName(KernelPath path) {
  switch (path) {
    case KernelPath::kVnni:
      return "avx512-vnni";
    case KernelPath::kAvx2:
      return "avx2";
    case KernelPath::kScalar:
      break;
  }
  return "scalar";
}

void GemmRows(KernelPath path, const float* x, int64_t ldx, int64_t batch, int64_t k, const uint8_t* w,
              const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
#ifdef MONOLOGUE_INT4_AVX512
  if (path == KernelPath::kVnni && HasVnni()) {
    Vnni(x, ldx, batch, k, w, bias, y, ldy, n_begin, n_end);
    return;
  }
  if (path != KernelPath::kScalar && HasAvx2()) {
    Avx2(x, ldx, batch, k, w, bias, y, ldy, n_begin, n_end);
    return;
  }
#endif
  ScalarRows(x, ldx, batch, k, w, bias, y, ldy, n_begin, n_end);
}

}  // namespace monologue::lm::int4
