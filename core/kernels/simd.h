// What the kernels' vector code needs: the intrinsics where the compiler offers them (x86-64 GCC or Clang)
// and the target attributes their functions carry, so the rest of the build stays portable. Which of them
// runs is decided once at run time (core/kernels/cpu_isa.h).
#pragma once

#include "core/kernels/cpu_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MONOLOGUE_KERNELS_AVX512 1
#define MONOLOGUE_KERNELS_AVX2 1
#define MONOLOGUE_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define MONOLOGUE_AVX2_TARGET __attribute__((target("avx2,fma")))
// GCC 12's AVX-512 cast/extract/reduce intrinsics pass an undefined operand (_mm512_undefined_*) that
// -Wuninitialized reports once inlined; the instruction ignores it. AVX-512 code sits between these two.
#define MONOLOGUE_AVX512_WARNINGS_OFF                                                  \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define MONOLOGUE_AVX512_WARNINGS_ON _Pragma("GCC diagnostic pop")

namespace monologue::kernels {

// The sum of 16 f32 lanes by a fixed tree (lanes l + l+8, then l + l+4, l + l+2, l + l+1): GCC's
// _mm512_reduce_add_ps written out, so that AVX2 code (ReduceAdd16 of two halves below) repeats it exactly,
// whatever the compiler.
MONOLOGUE_AVX512_WARNINGS_OFF
MONOLOGUE_AVX512_TARGET inline float ReduceAdd16(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
}
MONOLOGUE_AVX512_WARNINGS_ON

// The same tree over 16 lanes held as two halves of 8 (lanes 0-7 and 8-15).
MONOLOGUE_AVX2_TARGET inline float ReduceAdd16(__m256 lo, __m256 hi) {
  const __m256 h = _mm256_add_ps(lo, hi);
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 p = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
}

}  // namespace monologue::kernels
#endif
