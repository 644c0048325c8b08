// LmModel's runtime: the temporal transformer and the depformer. Loading is in lm_model_load.cc, the
// conditioners and fuser in lm_conditioning.cc.
#include "core/lm/lm_model.h"

#include <ATen/ATen.h>

#include <vector>

namespace monologue {

using lm::Embedding;

int64_t LmModel::depformer_weight_set(int64_t k) const { return config_.depformer_weight_set_for_step(k); }

// ---- Temporal -----------------------------------------------------------------------------------------

LmTemporalState LmModel::NewTemporalState(int64_t batch) const {
  LmTemporalState state;
  state.batch = batch;
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(device_);
  state.positions = at::zeros({batch}, long_opts);
  state.exec_mask = at::ones({batch}, long_opts.dtype(at::kBool));
  state.kv = transformer_.NewState(batch, dtype_, device_);
  return state;
}

void LmModel::ResetTemporal(LmTemporalState& state, const at::Tensor& mask) const {
  at::Tensor m = mask.to(device_, at::kBool);
  state.positions.masked_fill_(m, 0);
  state.exec_mask.masked_fill_(m, true);
}

void LmModel::SetCrossSource(LmTemporalState& state, const at::Tensor& cross, const at::Tensor& rows) const {
  transformer_.SetCrossSource(state.kv, cross.to(device_, dtype_), rows.defined() ? rows.to(device_) : rows);
}

LmModel::TextStep LmModel::ForwardText(LmTemporalState& state, const at::Tensor& tokens,
                                       const at::Tensor& sum) const {
  at::Tensor z = transformer_.Step(state.kv, transformer_.TemporalContext(state.positions, dtype_),
                                   EmbedStep(tokens, sum));
  state.positions.copy_(at::where(state.exec_mask, state.positions + 1, state.positions));
  return TextHead(z);
}

LmModel::TextStep LmModel::ForwardTextRows(LmTemporalState& state, const StepRows& rows,
                                           const at::Tensor& tokens, const at::Tensor& sum) const {
  const at::Tensor positions = rows.Gather(state.positions);
  at::Tensor z = transformer_.Step(state.kv, transformer_.TemporalContext(positions, dtype_),
                                   EmbedStep(tokens, sum), &rows);
  rows.ScatterActive(state.positions, positions + 1);
  return TextHead(z);
}

at::Tensor LmModel::EmbedStep(const at::Tensor& tokens, const at::Tensor& sum) const {
  const int64_t batch = tokens.size(0);
  const int64_t n_q = config_.n_q;
  // Audio embeddings in codebook order, then the text embedding (the reference's summation order).
  at::Tensor audio = tokens.narrow(1, 1, n_q);
  at::Tensor rows = audio.clamp_min(0) + audio_row_base_;
  at::Tensor gathered = at::embedding(audio_table_, rows).masked_fill(audio.eq(-1).unsqueeze(-1), 0);
  at::Tensor x = gathered.select(1, 0);
  for (int64_t k = 1; k < n_q; ++k) x = x + gathered.select(1, k);
  x = x.view({batch, 1, config_.dim}) + text_emb_.Forward(tokens.narrow(1, 0, 1));
  if (sum.defined()) x = x + sum.to(x.scalar_type());
  return x;
}

LmModel::TextStep LmModel::TextHead(at::Tensor z) const {
  z = out_norm_.Forward(z);
  at::Tensor logits = text_linear_.Forward(z, text_linear_bias_);
  return {z, logits.unsqueeze(1)};
}

// ---- Depformer ----------------------------------------------------------------------------------------

LmDepformerState LmModel::NewDepformerState(int64_t batch) const {
  LmDepformerState state;
  state.batch = batch;
  if (config_.dep_q == 0) return state;
  state.kv = depformer_.NewState(batch, dtype_, device_);
  for (int64_t k = 0; k < config_.dep_q; ++k) {
    state.contexts.push_back(depformer_.DepthContext(k, batch, depformer_weight_set(k), dtype_, device_));
  }
  return state;
}

namespace {
int64_t DepformerInIndex(const LmConfig& c, int64_t k) {
  if (!c.depformer_multi_linear) return 0;
  if (!c.depformer_weights_per_step_schedule.empty()) return c.depformer_weights_per_step_schedule[k];
  return k;
}
}  // namespace

int64_t LmModel::LinearBytesPerStep() const {
  // Weight set `set` of a per-set list, or its only entry.
  auto of_set = [](const auto& per_set, int64_t set) -> const auto& {
    return per_set[per_set.size() == 1 ? 0 : static_cast<size_t>(set)];
  };
  auto layer_bytes = [&](const lm::TransformerLayer& layer, int64_t set) {
    const lm::FeedForward& ffn = of_set(layer.ffn, set);
    int64_t bytes = of_set(layer.in_proj, set).nbytes() + of_set(layer.out_proj, set).nbytes() +
                    ffn.w_in.nbytes() + ffn.w_out.nbytes();
    // The keys and values of the cross-attention source are projected once per source, not per step.
    if (layer.cross) bytes += layer.cross_q.nbytes() + layer.cross_out.nbytes();
    return bytes;
  };
  int64_t bytes = text_linear_.nbytes();
  for (const lm::TransformerLayer& layer : transformer_.layers) bytes += layer_bytes(layer, 0);
  for (const at::Tensor& head : extra_heads_)
    bytes += head.numel() * static_cast<int64_t>(head.element_size());
  for (const lm::LinearWeight& w : depformer_in_) bytes += w.nbytes();
  for (int64_t k = 0; k < config_.dep_q; ++k) {
    for (const lm::TransformerLayer& layer : depformer_.layers)
      bytes += layer_bytes(layer, depformer_weight_set(k));
    bytes += linears_[static_cast<size_t>(k)].nbytes();
  }
  return bytes;
}

at::Tensor LmModel::DepformerInput(const at::Tensor& transformer_out, int64_t k) const {
  return depformer_in_[DepformerInIndex(config_, k)].Forward(transformer_out);
}

std::vector<at::Tensor> LmModel::DepformerInputs(const at::Tensor& transformer_out) const {
  std::vector<at::Tensor> by_index(depformer_in_.size());
  std::vector<at::Tensor> out;
  for (int64_t k = 0; k < config_.dep_q; ++k) {
    const int64_t i = DepformerInIndex(config_, k);
    if (!by_index[i].defined()) by_index[i] = depformer_in_[i].Forward(transformer_out);
    out.push_back(by_index[i]);
  }
  return out;
}

at::Tensor LmModel::DepformerStep(LmDepformerState& state, int64_t k, const at::Tensor& prev,
                                  const at::Tensor& input) const {
  const int64_t batch = prev.size(0);
  const Embedding& emb = k == 0 ? depformer_text_emb_ : depformer_emb_[k - 1];
  // Few f32 CPU rows: the embedding and the logits' product on plain buffers, the same bits as the ATen
  // calls around them (a TTS frame runs 32 such steps; see lm_depth_step.cc).
  const bool raw = depformer_.use_raw_step && input.device().is_cpu() && input.scalar_type() == at::kFloat &&
                   input.is_contiguous() && input.numel() == batch * config_.depformer_dim &&
                   prev.device().is_cpu() && prev.scalar_type() == at::kLong && prev.is_contiguous() &&
                   emb.ServesRows(batch);
  at::Tensor x;
  if (raw) {
    x = at::empty({batch, 1, config_.depformer_dim}, input.options());
    emb.ForwardRowsAdd(prev.data_ptr<int64_t>(), batch, input.data_ptr<float>(), x.data_ptr<float>());
  } else {
    x = input + emb.Forward(prev.view({batch, 1}));
  }
  at::Tensor h = depformer_.Step(state.kv, state.contexts[k], x);
  if (!depformer_norms_.empty()) h = depformer_norms_[k].Forward(h);
  const lm::LinearWeight& head = linears_[k];
  if (raw && !linears_bias_[k].defined() && head.ServesRows(batch) && h.scalar_type() == at::kFloat &&
      h.is_contiguous() && head.in_features() == config_.depformer_dim) {
    at::Tensor logits = at::empty({batch, head.out_features()}, h.options());
    head.ForwardRows(h.data_ptr<float>(), batch, logits.data_ptr<float>());
    return logits.view({batch, config_.card});
  }
  return head.Forward(h, linears_bias_[k]).view({batch, config_.card});
}

at::Tensor LmModel::DepformerTeacherForced(LmDepformerState& state, const at::Tensor& transformer_out,
                                           const at::Tensor& text, const at::Tensor& audio) const {
  std::vector<at::Tensor> inputs = DepformerInputs(transformer_out);
  std::vector<at::Tensor> logits;
  for (int64_t k = 0; k < config_.dep_q; ++k) {
    at::Tensor prev = k == 0 ? text : audio.select(1, k - 1);
    logits.push_back(DepformerStep(state, k, prev, inputs[k]));
  }
  return at::stack(logits, 1);
}

std::vector<at::Tensor> LmModel::ExtraHeads(const at::Tensor& transformer_out) const {
  std::vector<at::Tensor> out;
  for (const at::Tensor& w : extra_heads_) out.push_back(at::softmax(at::linear(transformer_out, w), -1));
  return out;
}

}  // namespace monologue
