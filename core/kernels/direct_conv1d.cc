#include "core/kernels/direct_conv1d.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/kernels/simd.h"

namespace monologue::kernels {
namespace {

constexpr int64_t kRows = 8;
// Output steps per parallel task: a multiple of both tile widths (48 and 24). A task then reads its input
// rows' 192 + halo steps (C_in x ~0.8 KB), which stay in L2 while the tile sweeps them.
constexpr int64_t kChunkSteps = 192;
// Products summed in one chain of fused multiply-adds before the chain is added to the output: the input
// channels come in blocks of max(1, 96 / k) (32 for k = 3), all of a block's k taps in one chain, then one
// add per block. A single chain over every (channel, tap) of the deepest layers (768 x 2 after a phase split)
// doubled the encoder latent's distance to the reference (relative L2 1.0e-6 -> 2.4e-6, released
// architecture); with chains of at most ~96 products it is 1.0e-6, as with ATen's GEMMs.
constexpr int64_t kChainProducts = 96;
int64_t ChannelBlock(int64_t k) { return std::max<int64_t>(1, kChainProducts / k); }

// The convolution's shape as the tiles read it. A block of `block` input channels is one flat loop over its
// (channel, tap) pairs in the weight's own order: pair i reads weight value c0 * k + i of each output row and
// the input at offsets[i] floats from the block's first input row (offsets: one table per call).
struct Geometry {
  int64_t cin, k, phases, block;
  const int64_t* offsets;
};

#ifdef MONOLOGUE_KERNELS_AVX512
MONOLOGUE_AVX512_WARNINGS_OFF

// Output channels o0..o0+7 (rows past `rows` repeat the last one and are not stored) over V vectors of 16
// steps starting at x (the tile's first output step); the last vector is `last` (1..16) lanes wide. w points
// at output channel o0's weights, rows ldw apart.
template <int V>
MONOLOGUE_AVX512_TARGET void Tile16(const float* x, int64_t ldc, const Geometry& g, const float* w,
                                    int64_t ldw, const float* bias, int64_t rows, float* y, int64_t ldy,
                                    int64_t last) {
  const float* wrow[kRows];
  for (int r = 0; r < kRows; ++r) wrow[r] = w + std::min<int64_t>(r, rows - 1) * ldw;
  const __mmask16 tail = static_cast<__mmask16>((1u << last) - 1);
  for (int64_t c0 = 0; c0 < g.cin; c0 += g.block) {
    const int64_t pairs = (std::min(g.cin, c0 + g.block) - c0) * g.k;
    const float* xb = x + c0 * g.phases * ldc;
    const float* wb[kRows];
    for (int r = 0; r < kRows; ++r) wb[r] = wrow[r] + c0 * g.k;
    __m512 acc[kRows][V];
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < pairs; ++i) {
      const float* xs = xb + g.offsets[i];
      __m512 xv[V];
#pragma GCC unroll 4
      for (int v = 0; v + 1 < V; ++v) xv[v] = _mm512_loadu_ps(xs + 16 * v);
      xv[V - 1] = _mm512_maskz_loadu_ps(tail, xs + 16 * (V - 1));
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        const __m512 wv = _mm512_set1_ps(wb[r][i]);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(wv, xv[v], acc[r][v]);
      }
    }
    // Fold the block's sums into y (fully unrolled, compile-time r and v: indexing acc with a run-time row
    // would make the compiler keep the whole tile in memory and store it on every pass of the loops above,
    // half the speed, measured).
    const bool first = c0 == 0, final = c0 + g.block >= g.cin;
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      if (r >= rows) break;
      float* yr = y + r * ldy;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __mmask16 lanes = v + 1 < V ? static_cast<__mmask16>(0xFFFF) : tail;
        __m512 sum = acc[r][v];
        if (!first) sum = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, yr + 16 * v), sum);
        if (final && bias != nullptr) sum = _mm512_add_ps(sum, _mm512_set1_ps(bias[r]));
        _mm512_mask_storeu_ps(yr + 16 * v, lanes, sum);
      }
    }
  }
}

MONOLOGUE_AVX512_TARGET void Steps16(const float* x, int64_t ldc, const Geometry& g, const float* w,
                                     int64_t ldw, const float* bias, int64_t rows, float* y, int64_t ldy,
                                     int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; t += 48) {
    const int64_t n = std::min<int64_t>(48, t1 - t);
    const int64_t vectors = (n + 15) / 16, last = n - 16 * (vectors - 1);
    if (vectors == 3) {
      Tile16<3>(x + t, ldc, g, w, ldw, bias, rows, y + t, ldy, last);
    } else if (vectors == 2) {
      Tile16<2>(x + t, ldc, g, w, ldw, bias, rows, y + t, ldy, last);
    } else {
      Tile16<1>(x + t, ldc, g, w, ldw, bias, rows, y + t, ldy, last);
    }
  }
}

MONOLOGUE_AVX512_WARNINGS_ON
#endif

#ifdef MONOLOGUE_KERNELS_AVX2
// Tile16's arithmetic 8 lanes wide, for 4 of the 8 rows (r0 = 0 or 4): AVX2 has 16 vector registers, so 4
// rows x 3 vectors of accumulators.
template <int V>
MONOLOGUE_AVX2_TARGET void Tile8(const float* x, int64_t ldc, const Geometry& g, const float* w, int64_t ldw,
                                 int64_t r0, const float* bias, int64_t rows, float* y, int64_t ldy,
                                 int64_t last) {
  constexpr int kHalf = kRows / 2;
  const float* wrow[kHalf];
  for (int r = 0; r < kHalf; ++r) wrow[r] = w + std::min<int64_t>(r0 + r, rows - 1) * ldw;
  const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(last)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i all = _mm256_set1_epi32(-1);
  for (int64_t c0 = 0; c0 < g.cin; c0 += g.block) {
    const int64_t pairs = (std::min(g.cin, c0 + g.block) - c0) * g.k;
    const float* xb = x + c0 * g.phases * ldc;
    const float* wb[kHalf];
    for (int r = 0; r < kHalf; ++r) wb[r] = wrow[r] + c0 * g.k;
    __m256 acc[kHalf][V];
#pragma GCC unroll 4
    for (int r = 0; r < kHalf; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < pairs; ++i) {
      const float* xs = xb + g.offsets[i];
      __m256 xv[V];
#pragma GCC unroll 4
      for (int v = 0; v + 1 < V; ++v) xv[v] = _mm256_loadu_ps(xs + 8 * v);
      xv[V - 1] = _mm256_maskload_ps(xs + 8 * (V - 1), tail);
#pragma GCC unroll 4
      for (int r = 0; r < kHalf; ++r) {
        const __m256 wv = _mm256_broadcast_ss(wb[r] + i);
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(wv, xv[v], acc[r][v]);
      }
    }
    const bool first = c0 == 0, final = c0 + g.block >= g.cin;
#pragma GCC unroll 4
    for (int r = 0; r < kHalf; ++r) {  // unrolled, as in Tile16
      if (r0 + r >= rows) break;
      float* yr = y + (r0 + r) * ldy;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __m256i lanes = v + 1 < V ? all : tail;
        __m256 sum = acc[r][v];
        if (!first) sum = _mm256_add_ps(_mm256_maskload_ps(yr + 8 * v, lanes), sum);
        if (final && bias != nullptr) sum = _mm256_add_ps(sum, _mm256_set1_ps(bias[r0 + r]));
        _mm256_maskstore_ps(yr + 8 * v, lanes, sum);
      }
    }
  }
}

MONOLOGUE_AVX2_TARGET void Steps8(const float* x, int64_t ldc, const Geometry& g, const float* w, int64_t ldw,
                                  const float* bias, int64_t rows, float* y, int64_t ldy, int64_t t0,
                                  int64_t t1) {
  for (int64_t t = t0; t < t1; t += 24) {
    const int64_t n = std::min<int64_t>(24, t1 - t);
    const int64_t vectors = (n + 7) / 8, last = n - 8 * (vectors - 1);
    for (int64_t r0 = 0; r0 < rows; r0 += kRows / 2) {
      if (vectors == 3) {
        Tile8<3>(x + t, ldc, g, w, ldw, r0, bias, rows, y + t, ldy, last);
      } else if (vectors == 2) {
        Tile8<2>(x + t, ldc, g, w, ldw, r0, bias, rows, y + t, ldy, last);
      } else {
        Tile8<1>(x + t, ldc, g, w, ldw, r0, bias, rows, y + t, ldy, last);
      }
    }
  }
}
#endif

}  // namespace

bool HasDirectConvKernel() { return CpuHasAvx2(); }

bool ServesDirectConv(const at::Tensor& x) {
  return x.defined() && x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 3 &&
         HasDirectConvKernel();
}

at::Tensor DirectConv1d(const at::Tensor& x, const at::Tensor& weight, int64_t phases, int64_t dilation,
                        const at::Tensor& bias) {
  TORCH_CHECK(ServesDirectConv(x),
              "DirectConv1d: needs an f32 CPU input [B, C, T] on an AVX2 or AVX-512 CPU, got ", x.sizes(),
              " ", x.scalar_type(), " on ", x.device());
  TORCH_CHECK(weight.dim() == 3 && weight.scalar_type() == at::kFloat && weight.device().is_cpu() &&
                  weight.stride(2) == 1 && weight.stride(1) == weight.size(2),
              "DirectConv1d: needs an f32 CPU weight [C_out, C_in, k] with each row's (C_in, k) dense, got ",
              weight.sizes(), " strides ", weight.strides(), " ", weight.scalar_type(), " on ",
              weight.device());
  TORCH_CHECK(phases >= 1 && weight.size(2) % phases == 0 && dilation >= 1 && (phases == 1 || dilation == 1),
              "DirectConv1d: kernel ", weight.size(2), " in ", phases, " phases with dilation ", dilation);
  const int64_t batch = x.size(0), cout = weight.size(0), tin = x.size(2);
  const int64_t k = weight.size(2), channel_block = ChannelBlock(k);
  const at::Tensor in = x.stride(2) == 1 ? x : x.contiguous();
  // Pair i = (channel c, tap j) of a block, in the weight's order (i = c * k + j): tap j = q * phases + p
  // reads phase p of channel c (input row c * phases + p) q * dilation steps on.
  std::vector<int64_t> offsets(static_cast<size_t>(channel_block * k));
  for (int64_t c = 0; c < channel_block; ++c) {
    for (int64_t j = 0; j < k; ++j) {
      offsets[static_cast<size_t>(c * k + j)] =
          (c * phases + j % phases) * in.stride(1) + j / phases * dilation;
    }
  }
  const Geometry g{weight.size(1), k, phases, channel_block, offsets.data()};
  TORCH_CHECK(x.size(1) == g.cin * phases, "DirectConv1d: input of ", x.size(1), " channels for a weight of ",
              g.cin, " input channels in ", phases, " phases");
  const int64_t span = (k / phases - 1) * dilation + 1;
  TORCH_CHECK(tin >= span, "DirectConv1d: ", tin, " input steps are fewer than the kernel's span ", span);
  const int64_t tout = tin - span + 1;
  at::Tensor b;
  if (bias.defined()) {
    TORCH_CHECK(bias.numel() == cout && bias.scalar_type() == at::kFloat && bias.device().is_cpu(),
                "DirectConv1d: bias ", bias.sizes(), " for ", cout, " output channels");
    b = bias.contiguous();
  }
  at::Tensor y = at::empty({batch, cout, tout}, x.options());
  const float* xp = in.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const int64_t groups = (cout + kRows - 1) / kRows, chunks = (tout + kChunkSteps - 1) / kChunkSteps;
  const int64_t xb = in.stride(0), ldc = in.stride(1), ldw = weight.stride(0);
  const bool avx512 = CpuHasAvx512();
  // Tasks: (batch row, group of 8 output channels, chunk of 192 steps).
  at::parallel_for(0, batch * groups * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row = task / (groups * chunks), group = task / chunks % groups, chunk = task % chunks;
      const float* xr = xp + row * xb;
      const float* w = wp + group * kRows * ldw;
      const float* bb = bp != nullptr ? bp + group * kRows : nullptr;
      const int64_t rows = std::min(kRows, cout - group * kRows);
      float* yr = yp + (row * cout + group * kRows) * tout;
      const int64_t t0 = chunk * kChunkSteps, t1 = std::min(tout, t0 + kChunkSteps);
#ifdef MONOLOGUE_KERNELS_AVX512
      if (avx512) {
        Steps16(xr, ldc, g, w, ldw, bb, rows, yr, tout, t0, t1);
        continue;
      }
#endif
#ifdef MONOLOGUE_KERNELS_AVX2
      Steps8(xr, ldc, g, w, ldw, bb, rows, yr, tout, t0, t1);
#endif
    }
  });
  return y;
}

at::Tensor SplitPhases(const at::Tensor& x, int64_t stride) {
  TORCH_CHECK(x.dim() == 3 && stride >= 1 && x.size(2) % stride == 0, "SplitPhases: ", x.sizes(),
              " by stride ", stride);
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2);
  return x.reshape({b, c, t / stride, stride}).permute({0, 1, 3, 2}).reshape({b, c * stride, t / stride});
}

}  // namespace monologue::kernels
