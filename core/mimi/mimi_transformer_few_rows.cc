// MimiTransformer's layers for a streaming step of few rows on the CPU (MimiTransformer::LayersFewRows).
//
// A batch-1 frame runs 1-2 tokens through 8 layers. Their matrix products read 101 MB of weights at memory
// speed (~3.3-3.7 ms on the development VM); the ~75 ATen calls a layer made around them (views, RoPE as ten
// elementwise ops, scatters, copies, residual adds) cost another ~0.8 ms a frame. Here the products go straight
// into preallocated rows; RoPE, the ring writes, the heads' copy and the residual adds are plain loops; LayerNorm
// and GELU stay ATen calls and the attention is kernels::Attention, as in the general path. Every value is
// computed with the same operations in the same order as the general path (this file is compiled with
// -ffp-contract=off so that a * b - c * d is not fused into an FMA), so the results are bitwise its results.
#include <ATen/ATen.h>

#include <atomic>
#include <cstring>

#include "core/kernels/few_row_linear.h"
#include "core/kernels/small_attention.h"
#include "core/mimi/mimi_transformer.h"  // IWYU pragma: associated

namespace monologue::mimi {
namespace {

std::atomic<bool> few_row_path_enabled{true};

bool CpuF32Contiguous(const at::Tensor& t) {
  return !t.defined() || (t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous());
}

// Interleaved RoPE of one head's Dh values: pairs (re, im) rotated by (cos, sin), as MimiTransformer::Run's
// rope(): re' = re cos - im sin, im' = re sin + im cos, each product rounded on its own.
void RotateHead(const float* src, const float* cos, const float* sin, int64_t half, float* dst) {
  for (int64_t i = 0; i < half; ++i) {
    const float re = src[2 * i], im = src[2 * i + 1];
    const float a = re * cos[i], b = im * sin[i];
    const float c = re * sin[i], d = im * cos[i];
    dst[2 * i] = a - b;
    dst[2 * i + 1] = c + d;
  }
}

// x += scale * update (x + update without a scale), row by row, as ATen's two ops round it.
void AddScaled(float* x, const float* update, const at::Tensor& scale, int64_t rows, int64_t c) {
  const float* s = scale.defined() ? scale.data_ptr<float>() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * c;
    const float* ur = update + r * c;
    if (s != nullptr) {
      for (int64_t j = 0; j < c; ++j) {
        const float su = s[j] * ur[j];
        xr[j] = xr[j] + su;
      }
    } else {
      for (int64_t j = 0; j < c; ++j) xr[j] = xr[j] + ur[j];
    }
  }
}

}  // namespace

void MimiTransformer::SetFewRowPathEnabled(bool enabled) { few_row_path_enabled = enabled; }

bool MimiTransformer::ServesFewRows(const at::Tensor& x, const TransformerState& state) const {
  if (!few_row_path_enabled) return false;
  const int64_t rows = x.size(0) * x.size(1);
  if (!kernels::HasFewRowKernel() || !kernels::ServesFewRows(x, rows)) return false;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const TransformerLayerWeights& l = layers_[i];
    for (const at::Tensor* t : {&l.in_proj, &l.out_proj, &l.linear1, &l.linear2, &l.scale1, &l.scale2}) {
      if (!CpuF32Contiguous(*t)) return false;
    }
    if (!CpuF32Contiguous(state.keys[i]) || !CpuF32Contiguous(state.values[i])) return false;
  }
  return true;
}

at::Tensor MimiTransformer::LayersFewRows(const at::Tensor& input, const at::Tensor& rotr,
                                          const at::Tensor& roti, const at::Tensor& ring_index,
                                          const at::Tensor& mask, TransformerState& state,
                                          int64_t first_slot) const {
  const int64_t b = input.size(0), t = input.size(1), c = config_.d_model, h = config_.num_heads;
  const int64_t dh = c / h, half = dh / 2, m = b * t, f = config_.dim_feedforward, cap = config_.context;
  const at::TensorOptions o = input.options();
  at::Tensor x = at::empty({b, t, c}, o);
  x.copy_(input);
  at::Tensor qkv = at::empty({m, 3 * c}, o), q = at::empty({b, h, t, dh}, o), heads = at::empty({m, c}, o);
  at::Tensor update = at::empty({m, c}, o), hidden = at::empty({m, f}, o);
  const at::Tensor cos = rotr.expand({b, 1, t, half}).contiguous(),
                   sin = roti.expand({b, 1, t, half}).contiguous();
  const at::Tensor ring = ring_index.to(at::kLong).contiguous();
  float* xp = x.data_ptr<float>();
  float* qkvp = qkv.data_ptr<float>();
  float* qp = q.data_ptr<float>();
  float* headp = heads.data_ptr<float>();
  float* up = update.data_ptr<float>();
  const float* cosp = cos.data_ptr<float>();
  const float* sinp = sin.data_ptr<float>();
  const int64_t* ringp = ring.data_ptr<int64_t>();

  for (size_t li = 0; li < layers_.size(); ++li) {
    const TransformerLayerWeights& l = layers_[li];
    // Self-attention: QKV, RoPE on q (into q [B, H, T, Dh]) and k, k and v into the ring, attention.
    const at::Tensor xn1 = at::layer_norm(x, {c}, l.norm1_w, l.norm1_b, 1e-5).contiguous();
    kernels::FewRowLinearF32(xn1.data_ptr<float>(), m, c, l.in_proj.data_ptr<float>(), 3 * c, qkvp);
    // The step's slots of the rings ([B_state, H, cap, Dh], contiguous: a view of whole slots).
    const at::Tensor layer_keys = state.keys[li].narrow(0, first_slot, b);
    const at::Tensor layer_values = state.values[li].narrow(0, first_slot, b);
    float* keys = layer_keys.data_ptr<float>();
    float* values = layer_values.data_ptr<float>();
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t ti = 0; ti < t; ++ti) {
        const int64_t row = bi * t + ti, slot = ringp[row];
        const float* src = qkvp + row * 3 * c;
        const float* cr = cosp + row * half;
        const float* sr = sinp + row * half;
        for (int64_t hh = 0; hh < h; ++hh) {
          const int64_t entry = ((bi * h + hh) * cap + slot) * dh;
          RotateHead(src + hh * dh, cr, sr, half, qp + ((bi * h + hh) * t + ti) * dh);
          RotateHead(src + c + hh * dh, cr, sr, half, keys + entry);
          std::memcpy(values + entry, src + 2 * c + hh * dh, static_cast<size_t>(dh) * sizeof(float));
        }
      }
    }
    const at::Tensor a = kernels::Attention(q, layer_keys, layer_values, mask);
    // [B, H, T, Dh] (any strides) -> rows [B * T, H * Dh].
    const float* ap = a.data_ptr<float>();
    const int64_t sb = a.stride(0), sh = a.stride(1), st = a.stride(2), sd = a.stride(3);
    for (int64_t bi = 0; bi < b; ++bi) {
      for (int64_t ti = 0; ti < t; ++ti) {
        float* dst = headp + (bi * t + ti) * c;
        for (int64_t hh = 0; hh < h; ++hh) {
          const float* s = ap + bi * sb + hh * sh + ti * st;
          for (int64_t d = 0; d < dh; ++d) dst[hh * dh + d] = s[d * sd];
        }
      }
    }
    kernels::FewRowLinearF32(headp, m, c, l.out_proj.data_ptr<float>(), c, up);
    AddScaled(xp, up, l.scale1, m, c);
    // Feed-forward.
    const at::Tensor xn2 = at::layer_norm(x, {c}, l.norm2_w, l.norm2_b, 1e-5).contiguous();
    kernels::FewRowLinearF32(xn2.data_ptr<float>(), m, c, l.linear1.data_ptr<float>(), f,
                             hidden.data_ptr<float>());
    const at::Tensor g = at::gelu(hidden).contiguous();
    kernels::FewRowLinearF32(g.data_ptr<float>(), m, f, l.linear2.data_ptr<float>(), c, up);
    AddScaled(xp, up, l.scale2, m, c);
  }
  return x;
}

}  // namespace monologue::mimi
