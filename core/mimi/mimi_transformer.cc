#include "core/mimi/mimi_transformer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernels/few_row_linear.h"
#include "core/kernels/small_attention.h"
#include "core/util/huge_pages.h"
#include "core/util/status_macros.h"

namespace monologue::mimi {

absl::StatusOr<MimiTransformer> MimiTransformer::Load(const WeightReader& w, const MimiTransformerConfig& c,
                                                      const std::string& prefix) {
  auto unsupported = [&](const std::string& what) {
    return absl::UnimplementedError(
        absl::StrCat(w.source(), ": Mimi transformer ", what, " is not supported"));
  };
  if (c.norm != "layer_norm") return unsupported(absl::StrCat("norm '", c.norm, "'"));
  if (c.gating != "none") return unsupported(absl::StrCat("gating '", c.gating, "'"));
  if (c.positional_embedding != "rope") {
    return unsupported(absl::StrCat("positional_embedding '", c.positional_embedding, "'"));
  }
  if (!c.causal) return unsupported("causal=false");
  if (c.context <= 0) return unsupported("without a context (a streaming ring needs one)");
  if (c.output_dimensions.empty()) return unsupported("with no output");
  MimiTransformer t;
  t.config_ = c;
  const int64_t d = c.d_model, f = c.dim_feedforward;
  if (c.input_dimension != d) {
    ASSIGN_OR_RETURN(t.input_proj_, w.Get(prefix + "input_proj.weight", {d, c.input_dimension}));
  }
  if (c.output_dimensions[0] != d) {
    ASSIGN_OR_RETURN(t.output_proj_, w.Get(prefix + "output_projs.0.weight", {c.output_dimensions[0], d}));
  }
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat(prefix, "transformer.layers.", i, ".");
    TransformerLayerWeights l;
    ASSIGN_OR_RETURN(l.in_proj, w.Get(p + "self_attn.in_proj_weight", {3 * d, d}));
    ASSIGN_OR_RETURN(l.out_proj, w.Get(p + "self_attn.out_proj.weight", {d, d}));
    ASSIGN_OR_RETURN(l.norm1_w, w.Get(p + "norm1.weight", {d}));
    ASSIGN_OR_RETURN(l.norm1_b, w.Get(p + "norm1.bias", {d}));
    ASSIGN_OR_RETURN(l.norm2_w, w.Get(p + "norm2.weight", {d}));
    ASSIGN_OR_RETURN(l.norm2_b, w.Get(p + "norm2.bias", {d}));
    ASSIGN_OR_RETURN(l.linear1, w.Get(p + "linear1.weight", {f, d}));
    ASSIGN_OR_RETURN(l.linear2, w.Get(p + "linear2.weight", {d, f}));
    if (c.layer_scale.has_value()) {
      ASSIGN_OR_RETURN(l.scale1, w.Get(p + "layer_scale_1.scale", {d}));
      ASSIGN_OR_RETURN(l.scale2, w.Get(p + "layer_scale_2.scale", {d}));
    }
    t.layers_.push_back(std::move(l));
  }
  const at::TensorOptions fopts = t.layers_.empty() ? at::TensorOptions() : t.layers_[0].in_proj.options();
  const int64_t dh = d / c.num_heads;
  t.rope_freqs_ = at::exp(at::arange(dh / 2, fopts.dtype(at::kFloat)) *
                          (-std::log(c.max_period) * 2 / static_cast<double>(dh)));
  t.ring_slots_ = at::arange(c.context, fopts.dtype(at::kLong));
  return t;
}

TransformerState MimiTransformer::InitState(int64_t batch) const {
  TransformerState s;
  const at::TensorOptions opts =
      layers_.empty() ? at::TensorOptions().dtype(at::kFloat) : layers_[0].in_proj.options();
  s.offset = at::zeros({batch}, opts.dtype(at::kLong));
  const int64_t h = config_.num_heads, dh = config_.d_model / config_.num_heads;
  // Every layer's ring in one buffer, on 2 MB pages of its own on the CPU (a frame reads all of it).
  const int64_t n_layers = static_cast<int64_t>(layers_.size());
  const at::Tensor rings =
      EmptyOnHugePages({n_layers, 2, batch, h, config_.context, dh}, opts, /*own_mapping=*/true).zero_();
  for (int64_t i = 0; i < n_layers; ++i) {
    s.keys.push_back(rings[i][0]);
    s.values.push_back(rings[i][1]);
  }
  return s;
}

void MimiTransformer::Reset(TransformerState& state, const at::Tensor& mask) const {
  // Ring slots become invalid through their positions; their contents need no clearing.
  state.offset = at::where(mask, at::zeros_like(state.offset), state.offset);
}

at::Tensor MimiTransformer::Run(const at::Tensor& input, const at::Tensor& offset, TransformerState* state,
                                const at::Tensor& exec_mask, const monologue::StepRows* rows) const {
  at::Tensor x = input;
  if (input_proj_.defined()) x = kernels::Linear(x, input_proj_);
  const int64_t b = x.size(0), t = x.size(1), c = config_.d_model;
  const int64_t h = config_.num_heads, dh = c / h;
  const at::TensorOptions fopts = x.options().dtype(at::kFloat);
  const at::TensorOptions lopts = x.options().dtype(at::kLong);

  // RoPE angles (same for every layer): freqs_i = exp(i * (-ln(max_period) * 2 / Dh)), t = offset + j.
  const at::Tensor& freqs = rope_freqs_;
  at::Tensor ts = offset.to(at::kFloat).view({-1, 1}) + at::arange(t, fopts);
  ts = ts.view({b, 1, -1, 1});
  const at::Tensor rotr = at::cos(freqs * ts);
  const at::Tensor roti = at::sin(freqs * ts);

  // Key positions and the attention mask (same for every layer).
  at::Tensor pos_k, scatter_index, ring_index;
  if (state != nullptr) {
    const int64_t cap = config_.context;
    const at::Tensor end = offset;  // the state's offsets (of the step's rows)
    ring_index = (at::arange(t, lopts) + end.view({-1, 1})).remainder(cap);  // [B, T]
    scatter_index = ring_index.view({b, 1, t, 1}).expand({-1, h, t, dh});
    const at::Tensor& slots = ring_slots_;
    const at::Tensor last = end.view({-1, 1}) + (t - 1);
    const at::Tensor delta = slots - last.remainder(cap);
    pos_k = at::where(delta <= 0, last + delta, last + delta - cap);
    const at::Tensor new_end = exec_mask.defined() ? at::where(exec_mask, end + t, end) : end + t;
    pos_k = at::where(slots >= new_end.view({-1, 1}), at::full_like(pos_k, -1), pos_k);
  } else {
    pos_k = at::arange(t, lopts).expand({b, -1});
  }
  pos_k = pos_k.unsqueeze(1);
  const at::Tensor pos_q = offset.view({-1, 1, 1}) + at::arange(t, lopts).view({-1, 1});
  const at::Tensor dpos = pos_q - pos_k;
  const at::Tensor mask = ((pos_k >= 0) & (dpos >= 0) & (dpos < config_.context)).unsqueeze(1);

  auto rope = [&](const at::Tensor& z) {
    const at::Tensor zz = z.view({b, h, t, dh / 2, 2});
    const at::Tensor zr = zz.select(-1, 0), zi = zz.select(-1, 1);
    const at::Tensor outr = zr * rotr - zi * roti;
    const at::Tensor outi = zr * roti + zi * rotr;
    return at::stack({outr, outi}, -1).view({b, h, t, dh});
  };

  // The few-row path also serves a step over a contiguous run of slots that are all active (a lone stream in
  // an engine's batch-1 state, or every slot busy): its rows are then slots [start, start + rows) of the
  // rings, which it writes and reads in place as the general path's index_put_ and Gather view do.
  const bool rows_in_place = rows == nullptr || (rows->start >= 0 && rows->all_active());
  if (state != nullptr && rows_in_place && ServesFewRows(x, *state)) {
    x = LayersFewRows(x, rotr, roti, ring_index, mask, *state, rows != nullptr ? rows->start : 0);
    if (output_proj_.defined()) x = kernels::Linear(x, output_proj_);
    return x;
  }
  for (size_t li = 0; li < layers_.size(); ++li) {
    const TransformerLayerWeights& l = layers_[li];
    // Self-attention block.
    at::Tensor xn = at::layer_norm(x, {c}, l.norm1_w, l.norm1_b, 1e-5);
    const at::Tensor qkv = kernels::Linear(xn, l.in_proj).view({b, t, 3, h, dh}).permute({2, 0, 3, 1, 4});
    const at::Tensor q = rope(qkv.select(0, 0));
    at::Tensor k = rope(qkv.select(0, 1));
    at::Tensor v = qkv.select(0, 2);
    if (state != nullptr && rows == nullptr) {
      state->keys[li].scatter_(2, scatter_index, k);
      state->values[li].scatter_(2, scatter_index, v);
      k = state->keys[li];
      v = state->values[li];
    } else if (state != nullptr) {
      // The active rows store their new entries in the full rings ([B, H, cap, Dh] seen as [B, cap, H, Dh]:
      // the (slot, ring entry) pairs index values [A, T, H, Dh]); the step then reads its rows.
      c10::List<std::optional<at::Tensor>> at_rows;
      at_rows.push_back(rows->active_slots.view({-1, 1}));
      at_rows.push_back(rows->SelectActive(ring_index));
      state->keys[li].transpose(1, 2).index_put_(at_rows, rows->SelectActive(k).transpose(1, 2));
      state->values[li].transpose(1, 2).index_put_(at_rows, rows->SelectActive(v).transpose(1, 2));
      k = rows->Gather(state->keys[li]);
      v = rows->Gather(state->values[li]);
    }
    at::Tensor a = kernels::Attention(q, k, v, mask);
    a = a.permute({0, 2, 1, 3}).reshape({b, t, c});
    at::Tensor update = kernels::Linear(a, l.out_proj);
    x = x + (l.scale1.defined() ? l.scale1 * update : update);
    // Feed-forward block.
    xn = at::layer_norm(x, {c}, l.norm2_w, l.norm2_b, 1e-5);
    update = kernels::Linear(at::gelu(kernels::Linear(xn, l.linear1)), l.linear2);
    x = x + (l.scale2.defined() ? l.scale2 * update : update);
  }
  if (output_proj_.defined()) x = kernels::Linear(x, output_proj_);
  return x;
}

at::Tensor MimiTransformer::Step(TransformerState& state, const at::Tensor& x,
                                 const at::Tensor& exec_mask) const {
  at::Tensor y = Run(x.transpose(1, 2), state.offset, &state, exec_mask);
  const int64_t t = x.size(2);
  state.offset =
      exec_mask.defined() ? at::where(exec_mask, state.offset + t, state.offset) : state.offset + t;
  return y.transpose(1, 2);
}

at::Tensor MimiTransformer::StepRows(TransformerState& state, const at::Tensor& x,
                                     const monologue::StepRows& rows) const {
  const at::Tensor offset = rows.Gather(state.offset);
  at::Tensor y = Run(x.transpose(1, 2), offset, &state, {}, &rows);
  rows.ScatterActive(state.offset, offset + x.size(2));
  return y.transpose(1, 2);
}

at::Tensor MimiTransformer::Forward(const at::Tensor& x) const {
  const at::Tensor offset = at::zeros({x.size(0)}, x.options().dtype(at::kLong));
  return Run(x.transpose(1, 2), offset, nullptr, {}).transpose(1, 2);
}

}  // namespace monologue::mimi
