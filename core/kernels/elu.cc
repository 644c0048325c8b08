#include "core/kernels/elu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>

#include "core/kernels/simd.h"

namespace monologue::kernels {
namespace {

// Values per parallel task: small tensors stay on one thread.
constexpr int64_t kGrain = 16384;

// expm1(x) for x <= 0 in Cody-Waite form: x = n ln2 + r with |r| <= ln2 / 2, expm1(r) by its Taylor series to
// r^8 / 8! (truncation below 2^-27 relative at |r| = ln2 / 2), then expm1(x) = (2^n - 1) + 2^n expm1(r), with
// 2^n - 1 exact for -24 <= n <= 0 and one rounding in the final fused multiply-add. Below -17.5 the result
// rounds to -1 in f32 (e^-17.5 < 2^-25), so x is clamped there first (n >= -25). Measured worst error 0.84
// ulp (at::elu: 1.00) over every 2^-12 step of [-20, 4] and 10^5 random values (elu_test).

#ifdef MONOLOGUE_KERNELS_AVX512
MONOLOGUE_AVX512_WARNINGS_OFF

MONOLOGUE_AVX512_TARGET inline __m512 Elu16(__m512 x) {
  const __m512 zero = _mm512_setzero_ps();
  const __mmask16 negative = _mm512_cmp_ps_mask(x, zero, _CMP_LE_OQ);
  const __m512 v = _mm512_max_ps(_mm512_min_ps(x, zero), _mm512_set1_ps(-17.5f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 split so that n * kLn2Hi is exact for |n| < 2^8.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), v);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.f / 40320.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 5040.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  const __m512 q = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r);  // expm1(r)
  const __m512 two_n = _mm512_scalef_ps(_mm512_set1_ps(1.f), n);
  const __m512 e = _mm512_fmadd_ps(two_n, q, _mm512_sub_ps(two_n, _mm512_set1_ps(1.f)));
  return _mm512_mask_blend_ps(negative, x, e);
}

MONOLOGUE_AVX512_TARGET void EluRange(const float* x, float* y, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + 16 <= end; i += 16) _mm512_storeu_ps(y + i, Elu16(_mm512_loadu_ps(x + i)));
  if (i < end) {
    const __mmask16 m = static_cast<__mmask16>((1u << (end - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, Elu16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

MONOLOGUE_AVX512_WARNINGS_ON
#endif

#ifdef MONOLOGUE_KERNELS_AVX2
// Elu16's operations 8 lanes wide, so the same bits: 2^n (n an integer in [-25, 0]) is built in the exponent
// field, the value _mm512_scalef_ps gives.
MONOLOGUE_AVX2_TARGET inline __m256 Elu8(__m256 x) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 negative = _mm256_cmp_ps(x, zero, _CMP_LE_OQ);
  const __m256 v = _mm256_max_ps(_mm256_min_ps(x, zero), _mm256_set1_ps(-17.5f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), v);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
  __m256 p = _mm256_set1_ps(1.f / 40320.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 5040.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  const __m256 q = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r);  // expm1(r)
  const __m256 two_n = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  const __m256 e = _mm256_fmadd_ps(two_n, q, _mm256_sub_ps(two_n, _mm256_set1_ps(1.f)));
  return _mm256_blendv_ps(x, e, negative);
}

MONOLOGUE_AVX2_TARGET void EluRangeAvx2(const float* x, float* y, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) _mm256_storeu_ps(y + i, Elu8(_mm256_loadu_ps(x + i)));
  if (i < end) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(end - i)), lanes);
    _mm256_maskstore_ps(y + i, m, Elu8(_mm256_maskload_ps(x + i, m)));
  }
}
#endif

}  // namespace

bool ServesElu(const at::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && CpuHasAvx2();
}

at::Tensor Elu(const at::Tensor& x) {
  TORCH_CHECK(ServesElu(x), "kernels::Elu: needs an f32 CPU tensor on an AVX2 or AVX-512 CPU, got ",
              x.scalar_type(), " on ", x.device());
  // Elementwise, so a dense tensor in any layout (the convolutions' channels-last outputs) is one run over
  // its storage; the result keeps the input's strides, as at::elu's does.
  const at::Tensor in = x.is_non_overlapping_and_dense() ? x : x.contiguous();
  at::Tensor out = at::empty_strided(in.sizes(), in.strides(), in.options());
  const float* xp = in.data_ptr<float>();
  float* yp = out.data_ptr<float>();
  const bool avx512 = CpuHasAvx512();
  at::parallel_for(0, in.numel(), kGrain, [&](int64_t b, int64_t e) {
#ifdef MONOLOGUE_KERNELS_AVX512
    if (avx512) {
      EluRange(xp, yp, b, e);
      return;
    }
#endif
#ifdef MONOLOGUE_KERNELS_AVX2
    EluRangeAvx2(xp, yp, b, e);
#endif
  });
  return out;
}

at::Tensor EluOrAten(const at::Tensor& x) { return ServesElu(x) ? Elu(x) : at::elu(x); }

}  // namespace monologue::kernels
