// Mimi's encoder/decoder transformer (moshi-reference.md §1.5, §3.3): pre-norm layers (LayerNorm eps 1e-5),
// fused-QKV self-attention with interleaved RoPE and a causal window of `context` steps, GELU MLP, learnt
// LayerScale; `[B, C, T]` in and out (conv layout).
//
// Streaming keeps, per layer, a ring KV cache of `context` slots shared by all batch slots, and per slot an
// offset (the RoPE position of the next step, equal to the number of steps seen since the last reset).
// The ring replicates the reference exactly, including that with 2 new steps per chunk the first of them
// sees one key fewer once the ring has wrapped.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/mimi_config.h"
#include "core/mimi/weights.h"
#include "core/util/step_rows.h"

namespace monologue::mimi {

struct TransformerState {
  at::Tensor offset;               // [B] int64: steps seen per slot
  std::vector<at::Tensor> keys;    // per layer [B, H, context, Dh]
  std::vector<at::Tensor> values;  // per layer [B, H, context, Dh]
};

struct TransformerLayerWeights {
  at::Tensor in_proj, out_proj;  // [3C, C], [C, C]
  at::Tensor norm1_w, norm1_b, norm2_w, norm2_b;
  at::Tensor linear1, linear2;  // [F, C], [C, F]
  at::Tensor scale1, scale2;    // [C] (undefined without layer scale)
};

class MimiTransformer {
 public:
  // Weights under `prefix` ("encoder_transformer.").
  static absl::StatusOr<MimiTransformer> Load(const WeightReader& weights,
                                              const MimiTransformerConfig& config, const std::string& prefix);

  TransformerState InitState(int64_t batch) const;
  void Reset(TransformerState& state, const at::Tensor& mask) const;
  // x [B, C, T] -> [B, C, T].
  at::Tensor Step(TransformerState& state, const at::Tensor& x, const at::Tensor& exec_mask = {}) const;
  // One step of the rows of `rows` only: x [R, C, T] holds those rows; the KV rings are read through
  // rows.index and only the active rows store their new entries and advance (padding rows store nothing).
  at::Tensor StepRows(TransformerState& state, const at::Tensor& x, const monologue::StepRows& rows) const;
  at::Tensor Forward(const at::Tensor& x) const;

  // Whether streaming steps of few rows on the CPU take the fast path (on by default). Both paths give the
  // same bits; tests switch it off to compare them.
  static void SetFewRowPathEnabled(bool enabled);

 private:
  // x [B, T, C]; `offset` [B] the position of its first step; `state` null offline (keys are the
  // input's own) or the ring to update.
  at::Tensor Run(const at::Tensor& x, const at::Tensor& offset, TransformerState* state,
                 const at::Tensor& exec_mask, const monologue::StepRows* rows = nullptr) const;

  // The streaming step's fast path (mimi_transformer_few_rows.cc): whether it serves x [B, T, C] with this
  // state (CPU f32, B * T within the few-row kernel's rows, contiguous weights and rings), and the layers
  // themselves, bitwise equal to Run's general loop. `rotr`/`roti` [B, 1, T, Dh/2], `ring_index` [B, T],
  // `mask` [B, 1, T, context] as Run computes them; x's rows are the state's slots [first_slot, first_slot +
  // B).
  bool ServesFewRows(const at::Tensor& x, const TransformerState& state) const;
  at::Tensor LayersFewRows(const at::Tensor& x, const at::Tensor& rotr, const at::Tensor& roti,
                           const at::Tensor& ring_index, const at::Tensor& mask, TransformerState& state,
                           int64_t first_slot) const;

  MimiTransformerConfig config_;
  std::vector<TransformerLayerWeights> layers_;
  at::Tensor input_proj_;   // undefined when input_dimension == d_model
  at::Tensor output_proj_;  // undefined when output_dimensions[0] == d_model
  // Made once at load rather than at every step: RoPE frequencies (f32 [Dh/2]) and the ring's entry indices
  // (int64 [context]).
  at::Tensor rope_freqs_, ring_slots_;
};

}  // namespace monologue::mimi
