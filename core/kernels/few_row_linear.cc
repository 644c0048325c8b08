#include "core/kernels/few_row_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/kernels/few_row_linear_avx2.h"
#include "core/kernels/simd.h"

namespace monologue::kernels {
namespace {

// Above this many rows the weights are re-read often enough that MKL's blocked GEMM wins (measured on the
// development VM: at 16 rows the two are even for the Mimi transformer's shapes).
constexpr int64_t kMaxRows = 16;
// bf16 weights: ATen's alternative widens the whole weight first (a write and a re-read of twice its bytes),
// so the kernel keeps the rows longer (a 32-slot batch step reads each weight row from memory once and
// from cache for the other row groups).
constexpr int64_t kMaxRowsBf16 = 64;
// Up to this many bytes of x rows, the weight rows are read one at a time (RowDot); beyond, x no longer stays
// in L1 (32 KB per core here) next to the streaming weights, and re-reading it per weight row costs more than
// the interleaved streams of 4 rows at once (Mimi's deepest convolution, 2 rows of K = 8192: 0.8 -> 2.1 ms a
// frame). 8-16 KB measured best.
constexpr int64_t kRowDotInputBytes = 16384;
// How far ahead of its loads RowDot and Block prefetch the weight stream into L2. On an Intel VM
// (docs/benchmarks.md "An Intel VM"): the stt-1b f32 LM step (bf16 weights) 68-73 -> 65-69 ms, 78-81 -> 66-69
// ms in the AVX2 code; Mimi encode / decode ~5% faster; Block's 4 streams: the stt-1b f32 LM step at batch 8
// 98-101 -> 92-93 ms.
constexpr int64_t kPrefetchBytes = 4096;

#ifdef MONOLOGUE_KERNELS_AVX512

MONOLOGUE_AVX512_WARNINGS_OFF

// 16 weights as f32 lanes. bf16 is the top half of an f32, so widening is a 16-bit shift (exact).
MONOLOGUE_AVX512_TARGET inline __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
MONOLOGUE_AVX512_TARGET inline __m512 Load16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
MONOLOGUE_AVX512_TARGET inline __m512 Load16Masked(const float* p, __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
MONOLOGUE_AVX512_TARGET inline __m512 Load16Masked(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// The lane sums of 4 accumulators at once, out = [sum(a), sum(b), sum(c), sum(d)], by a fixed tree of adds
// (far cheaper than four separate reductions when K is short).
MONOLOGUE_AVX512_TARGET inline void SumLanes4(const __m512* v, float* out) {
  __m256 h[4];
  for (int i = 0; i < 4; ++i) {
    h[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[i]), 1)));
  }
  const __m256 ab = _mm256_hadd_ps(h[0], h[1]);  // a01 a23 b01 b23 | a45 a67 b45 b67
  const __m256 cd = _mm256_hadd_ps(h[2], h[3]);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}

// Dot products of R x rows with 4 weight rows over K, 16 lanes at a time; lanes are summed at the end by a
// fixed tree (SumLanes4), so the rounding of y[m][n] depends only on x[m] and w[n].
template <int R, typename W>
MONOLOGUE_AVX512_TARGET void Block(const float* x, int64_t ldx, const W* w, int64_t k, int64_t nw,
                                   const float* bias, float* y, int64_t ldy) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  const int64_t full = k / 16 * 16;
  for (int64_t i = 0; i < full; i += 16) {
    __m512 wv[4];
    for (int j = 0; j < 4; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(w + j * k + i) + kPrefetchBytes, _MM_HINT_T1);
    }
    for (int j = 0; j < 4; ++j) wv[j] = j < nw ? Load16(w + j * k + i) : _mm512_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * ldx + i);
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
  if (full < k) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1);
    __m512 wv[4];
    for (int j = 0; j < 4; ++j) wv[j] = j < nw ? Load16Masked(w + j * k + full, tail) : _mm512_setzero_ps();
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

// One weight row against R x rows with Block's arithmetic (one accumulator per x row over K, then SumLanes4's
// tree), so each output is bitwise Block's. Reading one row at a time keeps a thread's weights one sequential
// stream, which the hardware prefetchers follow at full speed; Block's 4 rows side by side are 4 short
// interleaved streams (Mimi's transformer and RVQ shapes on the development VM: 25-30 GB/s against 31-50).
template <int R, typename W>
MONOLOGUE_AVX512_TARGET void RowDot(const float* x, int64_t ldx, const W* w, int64_t k, const float* bias,
                                    float* y, int64_t ldy) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  const int64_t full = k / 16 * 16;
  for (int64_t i = 0; i < full; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(w + i) + kPrefetchBytes, _MM_HINT_T1);
    const __m512 wv = Load16(w + i);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * ldx + i), wv, acc[r]);
  }
  if (full < k) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1);
    const __m512 wv = Load16Masked(w + full, tail);
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + r * ldx + full), wv, acc[r]);
  }
  float dot[4];
  SumLanes4(acc, dot);
  for (int r = 0; r < R; ++r) y[r * ldy] = bias != nullptr ? dot[r] + bias[0] : dot[r];
}

MONOLOGUE_AVX512_WARNINGS_ON

// Calls body(std::integral_constant<int, R>, r) for the x rows [r, r + R) in groups of up to 4.
template <typename Body>
void ForRowGroups(int64_t m, Body&& body) {
  for (int64_t r = 0; r < m; r += 4) {
    switch (std::min<int64_t>(4, m - r)) {
      case 1:
        body(std::integral_constant<int, 1>{}, r);
        break;
      case 2:
        body(std::integral_constant<int, 2>{}, r);
        break;
      case 3:
        body(std::integral_constant<int, 3>{}, r);
        break;
      default:
        body(std::integral_constant<int, 4>{}, r);
        break;
    }
  }
}

// Output columns [n0, n1) for every row on an AVX-512 CPU. While the x rows fit in L1 they stay there and the
// weight rows stream past them one by one (RowDot); bigger inputs take 4 weight rows per pass over x (Block),
// so x is re-read a quarter as often. Both give the same bits.
template <typename W>
void ColumnsAvx512(const float* x, int64_t m, int64_t k, const W* w, const float* bias, float* y, int64_t n,
                   int64_t n0, int64_t n1) {
  if (m * k * static_cast<int64_t>(sizeof(float)) <= kRowDotInputBytes) {
    for (int64_t j = n0; j < n1; ++j) {
      const float* bj = bias != nullptr ? bias + j : nullptr;
      ForRowGroups(m, [&](auto rows, int64_t r) {
        RowDot<decltype(rows)::value>(x + r * k, k, w + j * k, k, bj, y + r * n + j, n);
      });
    }
    return;
  }
  for (int64_t j = n0; j < n1; j += 4) {
    const int64_t nw = std::min<int64_t>(4, n1 - j);
    const float* bj = bias != nullptr ? bias + j : nullptr;
    ForRowGroups(m, [&](auto rows, int64_t r) {
      Block<decltype(rows)::value>(x + r * k, k, w + j * k, k, nw, bj, y + r * n + j, n);
    });
  }
}

#endif  // MONOLOGUE_KERNELS_AVX512

// Output columns [n0, n1) on the calling thread. Needs CpuHasAvx2(); AVX-512 CPUs take ColumnsAvx512, the
// others the AVX2 code: the same bits either way.
template <typename W>
void Columns(const float* x, int64_t m, int64_t k, const W* w, const float* bias, float* y, int64_t n,
             int64_t n0, int64_t n1) {
#ifdef MONOLOGUE_KERNELS_AVX512
  if (CpuHasAvx512()) {
    ColumnsAvx512(x, m, k, w, bias, y, n, n0, n1);
    return;
  }
#endif
  avx2::FewRowColumns(x, m, k, w, bias, y, n, n0, n1);
}

template <typename W>
void Run(const float* x, int64_t m, int64_t k, const W* w, const float* bias, float* y, int64_t n,
         int64_t weight_bytes) {
  // Split N in multiples of 4 with at least ~256 KB of weights per task, so small layers stay on one thread.
  const int64_t row_bytes = std::max<int64_t>(k * weight_bytes, 1);
  const int64_t grain = std::max<int64_t>(4, (int64_t{1} << 18) / row_bytes / 4 * 4);
  at::parallel_for(0, (n + 3) / 4, (grain + 3) / 4, [&](int64_t b0, int64_t b1) {
    Columns(x, m, k, w, bias, y, n, b0 * 4, std::min(n, b1 * 4));
  });
}

bool ServesWeight(const at::Tensor& weight) {
  return weight.dim() == 2 && weight.device().is_cpu() &&
         (weight.scalar_type() == at::kFloat || weight.scalar_type() == at::kBFloat16);
}

}  // namespace

bool HasFewRowKernel() { return CpuHasAvx2(); }

int64_t MaxFewRows(at::ScalarType weight_dtype) {
  return weight_dtype == at::kBFloat16 ? kMaxRowsBf16 : kMaxRows;
}

bool ServesFewRows(const at::Tensor& x, int64_t rows, at::ScalarType weight_dtype) {
  return rows <= MaxFewRows(weight_dtype) && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
         CpuHasAvx2();
}

at::Tensor FewRowLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  TORCH_CHECK(ServesWeight(weight), "FewRowLinear: weight must be a 2-D f32 or bf16 CPU tensor");
  const int64_t k = weight.size(1), n = weight.size(0);
  TORCH_CHECK(x.size(-1) == k, "FewRowLinear: input has ", x.size(-1), " features, the weight ", k);
  const at::Tensor rows = x.reshape({-1, k}).contiguous();
  const int64_t m = rows.size(0);
  TORCH_CHECK(ServesFewRows(x, m, weight.scalar_type()), "FewRowLinear: ", m, " rows of ", x.scalar_type(),
              " on ", x.device(), " with ", weight.scalar_type(), " weights are not served here (at most ",
              kMaxRows, " rows (", kMaxRowsBf16, " for bf16 weights) of f32 on an AVX2 or AVX-512 CPU)");
  const at::Tensor w = weight.contiguous();
  const at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = n;
  at::Tensor y = at::empty({m, n}, x.options());
  const float* xp = rows.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  if (w.scalar_type() == at::kBFloat16) {
    Run(xp, m, k, reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), bp, yp, n, 2);
  } else {
    Run(xp, m, k, w.data_ptr<float>(), bp, yp, n, 4);
  }
  return y.view(out_shape);
}

namespace {
// The raw entry points' shared body: checks the row count, then sweeps W (sizeof(W) bytes a weight).
template <typename W>
void RawRows(const char* name, int64_t max_rows, const float* x, int64_t m, int64_t k, const W* w, int64_t n,
             float* y) {
  TORCH_CHECK(CpuHasAvx2() && m >= 1 && m <= max_rows, name, ": ", m, " rows are not served here (1 to ",
              max_rows, " rows on an AVX2 or AVX-512 CPU)");
  Run(x, m, k, w, nullptr, y, n, static_cast<int64_t>(sizeof(W)));
}

// The same checks for output columns [n0, n1) on the calling thread.
template <typename W>
void RawColumns(const char* name, int64_t max_rows, const float* x, int64_t m, int64_t k, const W* w,
                int64_t n, float* y, int64_t n0, int64_t n1) {
  TORCH_CHECK(CpuHasAvx2() && m >= 1 && m <= max_rows && 0 <= n0 && n0 <= n1 && n1 <= n, name, ": ", m,
              " rows, columns [", n0, ", ", n1, ") of ", n, " are not served here (1 to ", max_rows,
              " rows on an AVX2 or AVX-512 CPU)");
  Columns(x, m, k, w, nullptr, y, n, n0, n1);
}
}  // namespace

void FewRowLinearF32(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y) {
  RawRows("FewRowLinearF32", kMaxRows, x, m, k, w, n, y);
}

void FewRowLinearBf16(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y) {
  RawRows("FewRowLinearBf16", kMaxRowsBf16, x, m, k, w, n, y);
}

void FewRowLinearColumnsF32(const float* x, int64_t m, int64_t k, const float* w, int64_t n, float* y,
                            int64_t n0, int64_t n1) {
  RawColumns("FewRowLinearColumnsF32", kMaxRows, x, m, k, w, n, y, n0, n1);
}

void FewRowLinearColumnsBf16(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y,
                             int64_t n0, int64_t n1) {
  RawColumns("FewRowLinearColumnsBf16", kMaxRowsBf16, x, m, k, w, n, y, n0, n1);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t rows = x.numel() / std::max<int64_t>(x.size(-1), 1);
  if (ServesWeight(weight) && ServesFewRows(x, rows, weight.scalar_type()))
    return FewRowLinear(x, weight, bias);
  // Many rows (a prompt, a cross-attention source): compute-bound, ATen's GEMM in the input's dtype.
  if (weight.scalar_type() != x.scalar_type()) return at::linear(x, weight.to(x.scalar_type()), bias);
  return at::linear(x, weight, bias);
}

}  // namespace monologue::kernels
