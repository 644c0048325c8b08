#include "core/kernels/small_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/kernels/simd.h"

namespace monologue::kernels {
namespace {

constexpr int64_t kMaxQueries = 4;
// f32 keys beyond this go to ATen's kernel, the reference's own (Moshi 7B's 3000-step context keeps its
// rounding in f32); bf16 keys are read here at any context a model has, as ATen would first widen them whole.
constexpr int64_t kMaxKeys = 1024;
constexpr int64_t kMaxNarrowKeys = 16384;

#ifdef MONOLOGUE_KERNELS_AVX512

MONOLOGUE_AVX512_WARNINGS_OFF

// 16 keys or values as f32: loaded, or bf16 widened (exactly: bf16 is the high half of an f32).
MONOLOGUE_AVX512_TARGET inline __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
MONOLOGUE_AVX512_TARGET inline __m512 Load16(const uint16_t* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
MONOLOGUE_AVX512_TARGET inline __m512 MaskedLoad16(__mmask16 m, const float* p) {
  return _mm512_maskz_loadu_ps(m, p);
}
MONOLOGUE_AVX512_TARGET inline __m512 MaskedLoad16(__mmask16 m, const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// q·k over D: 16 lanes at a time, the last partial group masked.
template <typename T>
MONOLOGUE_AVX512_TARGET inline float Dot(const float* a, const T* b, int64_t d) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), Load16(b + i), acc);
  if (i < d) {
    const __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), MaskedLoad16(m, b + i), acc);
  }
  return ReduceAdd16(acc);
}

// out += p * v over D.
template <typename T>
MONOLOGUE_AVX512_TARGET inline void Axpy(float p, const T* v, float* out, int64_t d) {
  const __m512 pv = _mm512_set1_ps(p);
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    _mm512_storeu_ps(out + i, _mm512_fmadd_ps(pv, Load16(v + i), _mm512_loadu_ps(out + i)));
  }
  if (i < d) {
    const __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m,
                          _mm512_fmadd_ps(pv, MaskedLoad16(m, v + i), _mm512_maskz_loadu_ps(m, out + i)));
  }
}

// One (batch row, head, query): softmax(q·K / sqrt(D)) · V over the visible keys.
template <typename T>
MONOLOGUE_AVX512_TARGET void OneQuery(const float* q, const T* k, int64_t k_stride, const T* v,
                                      int64_t v_stride, const bool* visible, int64_t keys, int64_t d,
                                      float scale, float* scores, float* out) {
  float max_score = -INFINITY;
  for (int64_t j = 0; j < keys; ++j) {
    if (visible != nullptr && !visible[j]) continue;
    scores[j] = Dot(q, k + j * k_stride, d) * scale;
    max_score = std::max(max_score, scores[j]);
  }
  for (int64_t i = 0; i < d; ++i) out[i] = 0;
  if (max_score == -INFINITY) return;
  float sum = 0;
  for (int64_t j = 0; j < keys; ++j) {
    if (visible != nullptr && !visible[j]) continue;
    const float p = std::exp(scores[j] - max_score);
    sum += p;
    Axpy(p, v + j * v_stride, out, d);
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < d; ++i) out[i] *= inv;
}
MONOLOGUE_AVX512_WARNINGS_ON
#endif  // MONOLOGUE_KERNELS_AVX512

#ifdef MONOLOGUE_KERNELS_AVX2
// The AVX-512 code's arithmetic on AVX2 + FMA: Dot keeps the 16 lanes as two halves of 8 and sums them by
// the same tree, Axpy is elementwise; so the same bits.
struct Avx2 {
  MONOLOGUE_AVX2_TARGET static inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
  MONOLOGUE_AVX2_TARGET static inline __m256 Load8(const uint16_t* p) {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
  // The first `count` (< 16) values of p and zeros after them, as two halves.
  template <typename T>
  MONOLOGUE_AVX2_TARGET static inline void LoadFirst(const T* p, int64_t count, __m256* lo, __m256* hi) {
    alignas(32) T buf[16] = {};
    std::memcpy(buf, p, static_cast<size_t>(count) * sizeof(T));
    *lo = Load8(buf);
    *hi = Load8(buf + 8);
  }

  template <typename T>
  MONOLOGUE_AVX2_TARGET static inline float Dot(const float* a, const T* b, int64_t d) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= d; i += 16) {
      lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), Load8(b + i), lo);
      hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), Load8(b + i + 8), hi);
    }
    if (i < d) {
      __m256 alo, ahi, blo, bhi;
      LoadFirst(a + i, d - i, &alo, &ahi);
      LoadFirst(b + i, d - i, &blo, &bhi);
      lo = _mm256_fmadd_ps(alo, blo, lo);
      hi = _mm256_fmadd_ps(ahi, bhi, hi);
    }
    return ReduceAdd16(lo, hi);
  }

  template <typename T>
  MONOLOGUE_AVX2_TARGET static inline void Axpy(float p, const T* v, float* out, int64_t d) {
    const __m256 pv = _mm256_set1_ps(p);
    int64_t i = 0;
    for (; i + 8 <= d; i += 8) {
      _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, Load8(v + i), _mm256_loadu_ps(out + i)));
    }
    for (; i < d; ++i) out[i] = std::fma(p, static_cast<float>(Widen(v[i])), out[i]);
  }
  static inline float Widen(float x) { return x; }
  static inline float Widen(uint16_t x) {
    const uint32_t bits = static_cast<uint32_t>(x) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
};

template <typename T>
MONOLOGUE_AVX2_TARGET void OneQueryAvx2(const float* q, const T* k, int64_t k_stride, const T* v,
                                        int64_t v_stride, const bool* visible, int64_t keys, int64_t d,
                                        float scale, float* scores, float* out) {
  float max_score = -INFINITY;
  for (int64_t j = 0; j < keys; ++j) {
    if (visible != nullptr && !visible[j]) continue;
    scores[j] = Avx2::Dot(q, k + j * k_stride, d) * scale;
    max_score = std::max(max_score, scores[j]);
  }
  for (int64_t i = 0; i < d; ++i) out[i] = 0;
  if (max_score == -INFINITY) return;
  float sum = 0;
  for (int64_t j = 0; j < keys; ++j) {
    if (visible != nullptr && !visible[j]) continue;
    const float p = std::exp(scores[j] - max_score);
    sum += p;
    Avx2::Axpy(p, v + j * v_stride, out, d);
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < d; ++i) out[i] *= inv;
}
#endif  // MONOLOGUE_KERNELS_AVX2

template <typename T>
struct Strided {
  const T* data;
  int64_t stride_b, stride_h, stride_l;
};

// The (batch row, head) pairs [begin, end) of Attend, on the calling thread.
template <typename T>
void AttendPairs(const float* q, int64_t h, int64_t lq, int64_t d, Strided<T> k, Strided<T> v, int64_t l,
                 const bool* mask, int64_t mask_batch_stride, float* out, int64_t begin, int64_t end) {
  const float scale = 1.f / std::sqrt(static_cast<float>(d));
  const bool avx512 = CpuHasAvx512();
  thread_local std::vector<float> scores;
  if (static_cast<int64_t>(scores.size()) < l) scores.resize(static_cast<size_t>(l));
  for (int64_t bh = begin; bh < end; ++bh) {
    const int64_t bi = bh / h, hi = bh % h;
    const T* kb = k.data + bi * k.stride_b + hi * k.stride_h;
    const T* vb = v.data + bi * v.stride_b + hi * v.stride_h;
    for (int64_t i = 0; i < lq; ++i) {
      const bool* visible = mask != nullptr ? mask + bi * mask_batch_stride + i * l : nullptr;
      const float* qi = q + (bh * lq + i) * d;
      float* oi = out + (bh * lq + i) * d;
#ifdef MONOLOGUE_KERNELS_AVX512
      if (avx512) {
        OneQuery(qi, kb, k.stride_l, vb, v.stride_l, visible, l, d, scale, scores.data(), oi);
        continue;
      }
#endif
#ifdef MONOLOGUE_KERNELS_AVX2
      OneQueryAvx2(qi, kb, k.stride_l, vb, v.stride_l, visible, l, d, scale, scores.data(), oi);
#endif
    }
  }
}

// Every (batch row, head, query) of q [B, H, Lq, D] into out (same layout); mask rows [Lq, L] per batch row
// `mask_batch_stride` apart (0: one mask for all rows), or none.
template <typename T>
void Attend(const float* q, int64_t b, int64_t h, int64_t lq, int64_t d, Strided<T> k, Strided<T> v,
            int64_t l, const bool* mask, int64_t mask_batch_stride, float* out) {
  // (batch row, head) pairs; small problems stay on the calling thread (a parallel region costs more).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, lq * l * d));
  at::parallel_for(0, b * h, grain, [&](int64_t begin, int64_t end) {
    AttendPairs(q, h, lq, d, k, v, l, mask, mask_batch_stride, out, begin, end);
  });
}

}  // namespace

bool ServesSmallAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask) {
  if (!CpuHasAvx2()) return false;
  for (const at::Tensor* t : {&q, &k, &v}) {
    if (!t->device().is_cpu() || t->dim() != 4 || t->stride(3) != 1) return false;
  }
  if (q.scalar_type() != at::kFloat || v.scalar_type() != k.scalar_type() ||
      (k.scalar_type() != at::kFloat && k.scalar_type() != at::kBFloat16))
    return false;
  const int64_t b = q.size(0), h = q.size(1), lq = q.size(2), d = q.size(3), l = k.size(2);
  if (lq > kMaxQueries || l > SmallAttentionMaxKeys(k.scalar_type()) || l == 0 || d == 0) return false;
  if (k.size(0) != b || k.size(1) != h || k.size(3) != d || v.sizes() != k.sizes()) return false;
  if (mask.has_value() && mask->defined()) {
    const at::Tensor& m = *mask;
    if (m.scalar_type() != at::kBool || !m.device().is_cpu() || m.dim() != 4) return false;
    if ((m.size(0) != 1 && m.size(0) != b) || m.size(1) != 1 || m.size(2) != lq || m.size(3) != l)
      return false;
  }
  return true;
}

at::Tensor SmallAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask) {
  TORCH_CHECK(ServesSmallAttention(q, k, v, mask), "SmallAttention: operands not served (", q.sizes(), " x ",
              k.sizes(), ")");
  const int64_t b = q.size(0), h = q.size(1), lq = q.size(2), d = q.size(3), l = k.size(2);
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty({b, h, lq, d}, q.options());
  at::Tensor m;
  if (mask.has_value() && mask->defined()) m = mask->contiguous();
  const bool* mp = m.defined() ? m.data_ptr<bool>() : nullptr;
  const int64_t m_batch_stride = m.defined() && m.size(0) == b ? lq * l : 0;
  if (k.scalar_type() == at::kBFloat16) {
    const auto* kp = reinterpret_cast<const uint16_t*>(k.data_ptr());
    const auto* vp = reinterpret_cast<const uint16_t*>(v.data_ptr());
    Attend<uint16_t>(qc.data_ptr<float>(), b, h, lq, d, {kp, k.stride(0), k.stride(1), k.stride(2)},
                     {vp, v.stride(0), v.stride(1), v.stride(2)}, l, mp, m_batch_stride,
                     out.data_ptr<float>());
  } else {
    Attend<float>(qc.data_ptr<float>(), b, h, lq, d,
                  {k.data_ptr<float>(), k.stride(0), k.stride(1), k.stride(2)},
                  {v.data_ptr<float>(), v.stride(0), v.stride(1), v.stride(2)}, l, mp, m_batch_stride,
                  out.data_ptr<float>());
  }
  return out;
}

int64_t SmallAttentionMaxKeys(at::ScalarType kv_dtype) {
  return kv_dtype == at::kBFloat16 ? kMaxNarrowKeys : kMaxKeys;
}

bool ServesSmallAttentionRows(int64_t keys, int64_t d) {
  return CpuHasAvx2() && keys >= 1 && keys <= kMaxKeys && d >= 1;
}

void SmallAttentionRowsPart(const float* q, int64_t batch, int64_t heads, int64_t d, const float* k,
                            const float* v, int64_t stride_b, int64_t stride_h, int64_t stride_l,
                            int64_t keys, float* out, int64_t pair_begin, int64_t pair_end) {
  TORCH_CHECK(ServesSmallAttentionRows(keys, d) && 0 <= pair_begin && pair_begin <= pair_end &&
                  pair_end <= batch * heads,
              "SmallAttentionRowsPart: pairs [", pair_begin, ", ", pair_end, ") of ", batch * heads, ", ",
              keys, " keys of width ", d, " are not served here");
  AttendPairs<float>(q, heads, 1, d, {k, stride_b, stride_h, stride_l}, {v, stride_b, stride_h, stride_l},
                     keys, nullptr, 0, out, pair_begin, pair_end);
}

void SmallAttentionRows(const float* q, int64_t batch, int64_t heads, int64_t d, const float* k,
                        const float* v, int64_t stride_b, int64_t stride_h, int64_t stride_l, int64_t keys,
                        float* out) {
  TORCH_CHECK(ServesSmallAttentionRows(keys, d), "SmallAttentionRows: ", keys, " keys of width ", d,
              " are not served here");
  Attend<float>(q, batch, heads, 1, d, {k, stride_b, stride_h, stride_l}, {v, stride_b, stride_h, stride_l},
                keys, nullptr, 0, out);
}

at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const std::optional<at::Tensor>& mask) {
  if (ServesSmallAttention(q, k, v, mask)) return SmallAttention(q, k, v, mask);
  if (k.scalar_type() != q.scalar_type()) {
    // Keys and values stored narrower than the queries (bf16 cross-attention memory of a quantised model):
    // ATen wants one dtype.
    return at::scaled_dot_product_attention(q, k.to(q.scalar_type()), v.to(q.scalar_type()), mask);
  }
  return at::scaled_dot_product_attention(q, k, v, mask);
}

}  // namespace monologue::kernels
