// Architecture of a Moshi-family language model: every keyword argument the reference `LMModel`
// accepts from a released config.json (see moshi-reference.md §2.5). Field names are the config.json keys
// (after the reference loader's renames). Parsing lives in model_config.h.
//
// The member defaults are the legacy Moshi 7B configuration (`loaders._lm_kwargs`), which is what a
// model directory without config.json gets. A config.json is parsed starting from the reference
// `LMModel` constructor's own defaults instead (LmConfig::ReferenceDefaults()), because keys absent from a
// config.json take those values in the reference.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace monologue {

// One conditioner of the TTS checkpoint ("conditioners" in config.json), e.g.
//   "cfg": {"type": "lut", "lut": {"n_bins": 7, "dim": 16, "tokenizer": "noop", "possible_values": [...]}}
//   "speaker_wavs": {"type": "tensor", "tensor": {"dim": 512}}
struct ConditionerConfig {
  enum class Type { kLut, kTensor };
  Type type = Type::kLut;
  int64_t dim = 0;                           // LUT embedding dim, or tensor input dim
  int64_t n_bins = 0;                        // LUT only
  std::string tokenizer = "noop";            // LUT only ("noop" is the only one the reference has)
  std::vector<std::string> possible_values;  // LUT only; empty = hash trick (reference: None)
  double init_scale = 1.0;                   // LUT only, training-time
  // BaseConditioner kwargs (released values: true, true, false, true).
  bool force_linear = true;  // output_proj Linear(dim -> LM dim) even when dims match
  bool pad_empty = true;
  bool output_bias = false;   // must be false (the reference asserts it)
  bool learn_padding = true;  // learnt_padding [1, 1, D]
  // Derived: whether `output_proj.weight` exists.
  bool has_output_proj(int64_t lm_dim) const { return force_linear || dim != lm_dim; }
};

// "fuser" in config.json: how conditions reach the LM. Only `sum` and `cross` are supported by the
// reference (a non-empty `prepend` is an error there and here).
struct FuserConfig {
  std::vector<std::string> sum;
  std::vector<std::string> cross;
  std::vector<std::string> prepend;
  bool cross_attention_pos_emb = false;
  double cross_attention_pos_emb_scale = 1.0;
};

struct LmConfig {
  int64_t dim = 4096;
  int64_t text_card = 32000;
  std::optional<int64_t> text_card_out;  // defaults to text_card
  int64_t existing_text_padding_id = 3;
  int64_t existing_text_end_padding_id = 0;
  int64_t n_q = 16;
  int64_t dep_q = 8;
  int64_t card = 2048;
  int64_t num_heads = 32;
  int64_t num_layers = 32;
  double hidden_scale = 4.125;
  bool causal = true;
  std::optional<double> layer_scale;  // LayerScale init; present => layer_scale_{1,2}.scale tensors
  // Attention window in steps. The reference allows None, but cannot stream without it; we require it.
  int64_t context = 3000;
  double max_period = 10000;
  double positional_scale = 1.0;              // only used by "sin" embeddings
  std::string gating = "silu";                // "none" (GELU MLP linear1/linear2) | silu | gelu | relu | ...
  std::string norm = "rms_norm_f32";          // rms_norm_f32 | rms_norm | layer_norm | layer_norm_f32
  std::string positional_embedding = "rope";  // rope | rope_concat | sin | sin_rope | none
  int64_t kv_repeat = 1;                      // GQA factor (1 in every released model)
  bool bias_proj = false;                     // bias on text_linear and linears.*
  bool norm_emb = false;                      // LayerNorm after embeddings (unused by released models)
  // config.json `quantize: true` (kyutai/moshi{ka,ko}-pytorch-q8): every Linear weight is stored as the
  // reference's bitsandbytes int8 form, `<weight>` int8 [out, in] with `<weight>_scb` f32 [out] (each row's
  // absolute maximum), the weight being int8 * scb / 127. Embeddings and norms stay float.
  bool int8_checkpoint = false;

  // Depformer. Keys absent from a config.json inherit the temporal transformer's value (reference
  // behaviour for num_heads, num_layers, layer_scale, gating, max_period, kv_repeat).
  int64_t depformer_dim = 1024;
  std::optional<int64_t> depformer_dim_feedforward;  // None: int(hidden_scale * depformer_dim)
  int64_t depformer_num_heads = 16;
  int64_t depformer_num_layers = 6;
  std::optional<double> depformer_layer_scale;
  bool depformer_multi_linear = true;
  std::optional<int64_t> depformer_context = 8;  // ignored by the reference (forced to None)
  double depformer_max_period = 10000;
  std::string depformer_gating = "silu";
  std::string depformer_pos_emb = "none";
  int64_t depformer_kv_repeat = 1;
  std::optional<std::string> depformer_norm;  // per-codebook norm before `linears` (None: Identity)
  bool depformer_weights_per_step = true;
  std::vector<int64_t> depformer_weights_per_step_schedule;  // empty: one weight set per step
  std::optional<int64_t> depformer_low_rank_embeddings;

  std::vector<int64_t> delays = {0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};
  // config.json key `demux_second_stream` (renamed by the reference loader to demux_second_text_stream;
  // both spellings are accepted).
  bool demux_second_stream = false;
  bool cross_attention = false;
  int64_t extra_heads_num_heads = 0;
  int64_t extra_heads_dim = 6;

  std::map<std::string, ConditionerConfig> conditioners;  // empty: none (no condition_provider)
  std::optional<FuserConfig> fuser;

  // The legacy Moshi 7B configuration (== the member defaults).
  static LmConfig Moshi7B() { return LmConfig{}; }
  // The reference `LMModel(...)` / `StreamingTransformer(...)` keyword defaults: what a config.json key
  // that is absent takes. (num_layers has no default in the reference; it is left at 0 here.)
  static LmConfig ReferenceDefaults();

  // Derived quantities used everywhere.
  int64_t num_streams() const { return 1 + n_q; }  // text + audio streams ("num_codebooks" in Python)
  int64_t text_card_output() const { return text_card_out.value_or(text_card); }
  int64_t head_dim() const { return dim / num_heads; }
  int64_t depformer_head_dim() const { return depformer_dim / depformer_num_heads; }
  int64_t max_delay() const;
  // Temporal FFN: dim_feedforward = int(hidden_scale * dim); depformer: depformer_dim_feedforward or
  // int(hidden_scale * depformer_dim).
  int64_t dim_feedforward() const;
  int64_t depformer_dim_feedforward_value() const;
  // SiLU-gated FFN hidden size H (reference ActivationGating rule: 21*D//8 when dim_feedforward == 4*D,
  // else 2*dim_feedforward//3): 11264 for Moshi 7B, 5632 for the 2048-dim models. With gating "none" the
  // MLP hidden size is dim_feedforward itself (see MlpHidden()).
  int64_t ffn_hidden() const;
  int64_t depformer_ffn_hidden() const;
  // Rows of a fused self-attention in-projection for one weight set: D + 2 * (D / H) * (H / kv_repeat).
  int64_t attn_in_rows() const;
  int64_t depformer_attn_in_rows() const;
  // Number of depformer weight sets: max(schedule) + 1, dep_q (weights per step), or 1. 0 when dep_q == 0.
  int64_t depformer_weight_sets() const;
  // Weight set used by depformer step k (schedule[k], k, or 0).
  int64_t depformer_weight_set_for_step(int64_t k) const;
  // Number of depformer_in projections: max(schedule)+1 or dep_q when multi_linear (so 0 for dep_q == 0),
  // else 1 (the reference builds that one even when dep_q == 0).
  int64_t depformer_num_in() const;
  // Mimi codebooks the model uses: max(dep_q, n_q - dep_q) (before tts_config.multistream halving).
  int64_t mimi_codebooks() const;

  // Consistency checks (delays length == 1 + n_q, dep_q <= n_q, dim % num_heads == 0, schedule length ==
  // dep_q, known norm/gating/positional embedding names, conditioner/fuser references, ...).
  // INVALID_ARGUMENT naming the offending field; `source` (a file name) prefixes the message.
  absl::Status Validate(const std::string& source = "") const;
};

}  // namespace monologue
