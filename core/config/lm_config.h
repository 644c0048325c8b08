// Architecture of a Moshi-family language model: every keyword argument the reference `LMModel`
// accepts from a released config.json (see moshi-reference.md §2.5). Parsing lives in model_config.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace monologue {

// One conditioner of the TTS checkpoint ("conditioners" in config.json).
struct ConditionerConfig {
  enum class Type { kLut, kTensor };
  Type type = Type::kLut;
  int64_t dim = 0;                           // LUT embedding dim, or tensor input dim
  int64_t n_bins = 0;                        // LUT only
  std::string tokenizer = "noop";            // LUT only
  std::vector<std::string> possible_values;  // LUT only
};

// "fuser" in config.json: how conditions reach the LM.
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
  int64_t n_q = 16;
  int64_t dep_q = 8;
  int64_t card = 2048;
  int64_t num_heads = 32;
  int64_t num_layers = 32;
  double hidden_scale = 4.125;
  std::optional<int64_t> dim_feedforward;  // overrides hidden_scale when set
  bool causal = true;
  std::optional<double> layer_scale;
  int64_t context = 3000;
  double max_period = 10000;
  std::string gating = "silu";               // "silu" | "none" | ...
  std::string norm = "rms_norm_f32";         // "rms_norm_f32" | "rms_norm" | "layer_norm" | ...
  std::string positional_embedding = "rope"; // "rope" | "rope_concat" | "sin" | "none"
  bool bias_proj = false;

  int64_t depformer_dim = 1024;
  std::optional<int64_t> depformer_dim_feedforward;
  int64_t depformer_num_heads = 16;
  int64_t depformer_num_layers = 6;
  std::optional<double> depformer_layer_scale;
  bool depformer_multi_linear = true;
  std::optional<int64_t> depformer_context = 8;  // ignored by the reference
  double depformer_max_period = 10000;
  std::string depformer_gating = "silu";
  std::string depformer_pos_emb = "none";
  bool depformer_weights_per_step = true;
  std::vector<int64_t> depformer_weights_per_step_schedule;  // empty: one weight set per step
  std::optional<int64_t> depformer_low_rank_embeddings;

  std::vector<int64_t> delays = {0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};
  bool demux_second_stream = false;
  bool cross_attention = false;
  int64_t extra_heads_num_heads = 0;
  int64_t extra_heads_dim = 6;

  std::map<std::string, ConditionerConfig> conditioners;  // empty: none
  std::optional<FuserConfig> fuser;

  // Derived quantities used everywhere.
  int64_t num_streams() const { return 1 + n_q; }
  int64_t text_card_output() const { return text_card_out.value_or(text_card); }
  int64_t max_delay() const;
  // SiLU-gated FFN hidden size H (reference ActivationGating rule), temporal and depformer.
  int64_t ffn_hidden() const;
  int64_t depformer_ffn_hidden() const;
  // Number of depformer weight sets: distinct schedule entries, dep_q, or 1.
  int64_t depformer_weight_sets() const;
};

}  // namespace monologue
