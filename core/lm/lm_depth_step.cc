// The depformer's step on plain buffers (Transformer::RawStep). A tts-1.6b frame runs 32 depformer steps of
// 4 layers, and each layer, written with ATen ops, is ~45 calls (views, selects, copies, adds) around its 4
// products. With the tts-1.6b depformer's shapes shrunk until its products cost nothing, those calls took
// 2.9 ms a frame at batch 1 and take 1.3 ms here (the rest: embeddings, sampling). Here the same operations
// run on the rows' few values directly: the products through the same kernels (LinearWeight::ForwardRows),
// the norms, the attention and the gating through the same functions as the ATen path, the adds in place, so
// every output is bitwise the ATen path's. The whole step is one parallel region (kernels::ThreadTeam): its
// 17 products would otherwise each open and join one, ~2-5 µs apiece on the 2-vCPU VMs (in-process A/B over
// 200 tts-1.6b int8 steps: 1-2 ms a frame), and the attention's (row, head) pairs, on one thread before, are
// split too. The split is by output feature and by pair, so it changes no bits.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/kernels/small_attention.h"
#include "core/kernels/thread_team.h"
#include "core/lm/lm_transformer.h"

namespace monologue::lm {
namespace {

// The most rows the raw step serves: the products' kernels serve at least 16 rows (the f32 few-row kernel's
// limit); beyond, a step is bound by its products and the ATen calls around them no longer matter.
constexpr int64_t kMaxRawRows = 16;

bool ServesCache(const at::Tensor& cache, int64_t batch, int64_t heads, int64_t dh) {
  return cache.defined() && cache.device().is_cpu() && cache.scalar_type() == at::kFloat &&
         cache.is_contiguous() && cache.dim() == 4 && cache.size(0) == batch && cache.size(1) == heads &&
         cache.size(3) == dh;
}

void AddInPlace(float* x, const float* update, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += update[i];
}

}  // namespace

bool Transformer::ServesRawStep(const KvState& state, const StepContext& ctx, const at::Tensor& x) const {
  if (!x.defined() || !x.device().is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 3 || x.size(1) != 1)
    return false;
  const int64_t batch = x.size(0), dim = spec.dim, heads = spec.num_heads, dh = spec.head_dim();
  if (batch < 1 || batch > kMaxRawRows || x.size(2) != dim || heads * dh != dim) return false;
  // The depformer's kind of step: every row writes one slot and sees the entries before it, unmasked, with
  // no positional embedding.
  if (spec.positional != PositionalEmbedding::kNone || ctx.write_slot < 0 || ctx.attn_mask.defined() ||
      ctx.kv_len < ctx.write_slot + 1 || !kernels::ServesSmallAttentionRows(ctx.kv_len, dh))
    return false;
  if (state.keys.size() != layers.size() || state.values.size() != layers.size()) return false;
  for (size_t l = 0; l < layers.size(); ++l) {
    const TransformerLayer& layer = layers[l];
    if (layer.cross || layer.layer_scale_1.defined() || layer.layer_scale_2.defined()) return false;
    if (!layer.norm1.ServesRows(dim) || !layer.norm2.ServesRows(dim)) return false;
    if (!ServesCache(state.keys[l], batch, heads, dh) || !ServesCache(state.values[l], batch, heads, dh) ||
        state.keys[l].size(2) < ctx.kv_len || state.values[l].size(2) < ctx.kv_len)
      return false;
    const size_t w = layer.in_proj.size() == 1 ? 0 : static_cast<size_t>(ctx.weight_set);
    const size_t wf = layer.ffn.size() == 1 ? 0 : static_cast<size_t>(ctx.weight_set);
    if (w >= layer.in_proj.size() || w >= layer.out_proj.size() || wf >= layer.ffn.size()) return false;
    const LinearWeight& in_proj = layer.in_proj[w];
    const LinearWeight& out_proj = layer.out_proj[w];
    if (!in_proj.ServesRows(batch) || in_proj.in_features() != dim || in_proj.out_features() != 3 * dim ||
        !out_proj.ServesRows(batch) || out_proj.in_features() != dim || out_proj.out_features() != dim ||
        !layer.ffn[wf].ServesRows(batch) || layer.ffn[wf].w_in.in_features() != dim ||
        layer.ffn[wf].w_out.out_features() != dim)
      return false;
  }
  return true;
}

at::Tensor Transformer::RawStep(KvState& state, const StepContext& ctx, const at::Tensor& input) const {
  const int64_t batch = input.size(0), dim = spec.dim, heads = spec.num_heads, dh = spec.head_dim();
  const int64_t keys = ctx.kv_len, slot = ctx.write_slot;
  at::Tensor out = input.contiguous().clone();
  float* x = out.data_ptr<float>();
  int64_t ffn_width = 0;  // the widest feed-forward's w_in output plus hidden activations
  for (const TransformerLayer& layer : layers) {
    for (const FeedForward& ffn : layer.ffn) {
      ffn_width = std::max(ffn_width, ffn.w_in.out_features() + ffn.w_out.in_features());
    }
  }
  std::vector<float> buffer(static_cast<size_t>(batch * (7 * dim + ffn_width)));
  float* h = buffer.data();          // [B, D] normed input
  float* qkv = h + batch * dim;      // [B, 3D]
  float* q = qkv + batch * 3 * dim;  // [B, D] the queries, contiguous
  float* attn = q + batch * dim;     // [B, D] (heads side by side, as the ATen path's transpose + reshape)
  float* update = attn + batch * dim;    // [B, D]
  float* ffn_in = update + batch * dim;  // [B, w_in N], then the activations [B, hidden]
  // One parallel region for the whole step: the members split each product's output features and the
  // attention's (row, head) pairs; member 0 alone runs the norms, the residual adds and the activation
  // between them (a few µs each), the others waiting at the barrier.
  kernels::RunTeam([&](kernels::ThreadTeam& team) {
    const bool lead = team.rank() == 0;
    const auto [pair_begin, pair_end] = team.Share(batch * heads);
    const auto product = [&](const LinearWeight& w, const float* in, float* result) {
      const auto [n_begin, n_end] = team.Share(w.out_features(), w.RowsAlign());
      w.ForwardRowsPart(in, batch, result, n_begin, n_end);
      team.Sync();
    };
    for (size_t l = 0; l < layers.size(); ++l) {
      const TransformerLayer& layer = layers[l];
      const size_t w = layer.in_proj.size() == 1 ? 0 : static_cast<size_t>(ctx.weight_set);
      const size_t wf = layer.ffn.size() == 1 ? 0 : static_cast<size_t>(ctx.weight_set);
      const FeedForward& ffn = layer.ffn[wf];
      // Self-attention: each pair's new key and value go to slot `slot` of its row's cache, then the pair
      // attends to entries 0 .. keys - 1.
      if (lead) layer.norm1.ForwardRows(x, batch, dim, h);
      team.Sync();
      product(layer.in_proj[w], h, qkv);
      float* kc = state.keys[l].data_ptr<float>();
      float* vc = state.values[l].data_ptr<float>();
      const int64_t cap = state.keys[l].size(2);
      const int64_t stride_h = cap * dh, stride_b = heads * stride_h;
      for (int64_t pair = pair_begin; pair < pair_end; ++pair) {
        const int64_t b = pair / heads, hd = pair % heads;
        const float* row = qkv + b * 3 * dim;
        const int64_t at = b * stride_b + hd * stride_h + slot * dh;
        const size_t bytes = static_cast<size_t>(dh) * sizeof(float);
        std::memcpy(q + b * dim + hd * dh, row + hd * dh, bytes);
        std::memcpy(kc + at, row + dim + hd * dh, bytes);
        std::memcpy(vc + at, row + 2 * dim + hd * dh, bytes);
      }
      kernels::SmallAttentionRowsPart(q, batch, heads, dh, kc, vc, stride_b, stride_h, dh, keys, attn,
                                      pair_begin, pair_end);
      team.Sync();
      product(layer.out_proj[w], attn, update);
      // Feed-forward.
      if (lead) {
        AddInPlace(x, update, batch * dim);
        layer.norm2.ForwardRows(x, batch, dim, h);
      }
      team.Sync();
      product(ffn.w_in, h, ffn_in);
      float* hidden = ffn_in + batch * ffn.w_in.out_features();
      if (lead) ffn.ActivateRows(ffn_in, batch, hidden);
      team.Sync();
      product(ffn.w_out, hidden, update);
      if (lead) AddInPlace(x, update, batch * dim);
    }
  });
  return out;
}

}  // namespace monologue::lm
