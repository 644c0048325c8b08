#include "core/config/lm_config.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace monologue {
namespace {

const std::set<std::string>& NormNames() {
  static const auto* names =
      new std::set<std::string>{"layer_norm", "layer_norm_f32", "rms_norm", "rms_norm_f32"};
  return *names;
}
const std::set<std::string>& GatingNames() {
  static const auto* names = new std::set<std::string>{
      "none", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "mish", "softsign", "identity"};
  return *names;
}
const std::set<std::string>& PosEmbNames() {
  static const auto* names = new std::set<std::string>{"sin", "rope", "sin_rope", "none", "rope_concat"};
  return *names;
}

// Gated FFN hidden size (ActivationGating) or plain MLP size (gating "none").
int64_t HiddenFor(const std::string& gating, int64_t dim, int64_t dim_feedforward) {
  if (gating == "none") return dim_feedforward;
  if (dim_feedforward == 4 * dim) return (21 * dim) / 8;
  return (2 * dim_feedforward) / 3;
}

std::string Names(const std::set<std::string>& names) { return absl::StrJoin(names, ", "); }

}  // namespace

LmConfig LmConfig::ReferenceDefaults() {
  LmConfig c;
  c.delays = {0};
  c.n_q = 8;
  c.dep_q = 8;
  c.card = 1024;
  c.text_card = 32000;
  c.text_card_out.reset();
  c.demux_second_stream = false;
  c.dim = 128;
  c.num_heads = 8;
  c.num_layers = 0;  // required key
  c.hidden_scale = 4;
  c.norm = "layer_norm";
  c.norm_emb = false;
  c.bias_proj = false;
  c.depformer_dim = 256;
  c.depformer_dim_feedforward.reset();
  c.depformer_multi_linear = false;
  c.depformer_weights_per_step = false;
  c.depformer_weights_per_step_schedule.clear();
  c.depformer_low_rank_embeddings.reset();
  c.depformer_pos_emb = "sin";
  c.depformer_norm.reset();
  c.existing_text_padding_id = 3;
  c.existing_text_end_padding_id = 0;
  c.extra_heads_num_heads = 0;
  c.extra_heads_dim = 6;
  c.context = 0;  // None in the reference; Validate rejects it
  c.causal = true;
  c.positional_embedding = "sin";
  c.max_period = 10000;
  c.positional_scale = 1.0;
  c.layer_scale.reset();
  c.gating = "none";
  c.kv_repeat = 1;
  c.cross_attention = false;
  // Depformer keys inherit the temporal values when absent (the parser applies that rule).
  c.depformer_num_heads = c.num_heads;
  c.depformer_num_layers = c.num_layers;
  c.depformer_layer_scale.reset();
  c.depformer_gating = c.gating;
  c.depformer_max_period = c.max_period;
  c.depformer_kv_repeat = 1;
  c.depformer_context.reset();
  c.conditioners.clear();
  c.fuser.reset();
  return c;
}

int64_t LmConfig::max_delay() const {
  int64_t m = 0;
  for (int64_t d : delays) m = std::max(m, d);
  return m;
}

int64_t LmConfig::dim_feedforward() const {
  return static_cast<int64_t>(hidden_scale * static_cast<double>(dim));
}

int64_t LmConfig::depformer_dim_feedforward_value() const {
  if (depformer_dim_feedforward.has_value()) return *depformer_dim_feedforward;
  return static_cast<int64_t>(hidden_scale * static_cast<double>(depformer_dim));
}

int64_t LmConfig::ffn_hidden() const { return HiddenFor(gating, dim, dim_feedforward()); }

int64_t LmConfig::depformer_ffn_hidden() const {
  return HiddenFor(depformer_gating, depformer_dim, depformer_dim_feedforward_value());
}

int64_t LmConfig::attn_in_rows() const { return dim + 2 * head_dim() * (num_heads / kv_repeat); }

int64_t LmConfig::depformer_attn_in_rows() const {
  return depformer_dim + 2 * depformer_head_dim() * (depformer_num_heads / depformer_kv_repeat);
}

int64_t LmConfig::depformer_weight_sets() const {
  if (dep_q == 0) return 0;
  if (!depformer_weights_per_step) return 1;
  if (!depformer_weights_per_step_schedule.empty()) {
    return *std::max_element(depformer_weights_per_step_schedule.begin(),
                             depformer_weights_per_step_schedule.end()) +
           1;
  }
  return dep_q;
}

int64_t LmConfig::depformer_weight_set_for_step(int64_t k) const {
  if (!depformer_weights_per_step) return 0;
  if (!depformer_weights_per_step_schedule.empty()) return depformer_weights_per_step_schedule[k];
  return k;
}

int64_t LmConfig::depformer_num_in() const {
  if (!depformer_multi_linear) return 1;  // the reference builds one even when dep_q == 0
  if (!depformer_weights_per_step_schedule.empty()) {
    return *std::max_element(depformer_weights_per_step_schedule.begin(),
                             depformer_weights_per_step_schedule.end()) +
           1;
  }
  return dep_q;
}

int64_t LmConfig::mimi_codebooks() const { return std::max(dep_q, n_q - dep_q); }

absl::Status LmConfig::Validate(const std::string& source) const {
  const std::string where = source.empty() ? std::string("LM config") : source;
  auto bad = [&](const std::string& field, const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": key '", field, "' ", message));
  };
  auto positive = [&](const char* field, int64_t value) -> absl::Status {
    if (value <= 0) return bad(field, absl::StrCat("must be positive, got ", value));
    return absl::OkStatus();
  };
#define MONOLOGUE_CHECK_POSITIVE(field) \
  if (absl::Status s = positive(#field, field); !s.ok()) return s
  MONOLOGUE_CHECK_POSITIVE(dim);
  MONOLOGUE_CHECK_POSITIVE(num_heads);
  MONOLOGUE_CHECK_POSITIVE(num_layers);
  MONOLOGUE_CHECK_POSITIVE(n_q);
  MONOLOGUE_CHECK_POSITIVE(card);
  MONOLOGUE_CHECK_POSITIVE(text_card);
  MONOLOGUE_CHECK_POSITIVE(kv_repeat);
  MONOLOGUE_CHECK_POSITIVE(extra_heads_dim);
  if (context <= 0) {
    return bad("context", absl::StrCat("must be a positive number of steps (the reference cannot stream "
                                       "without an attention context), got ",
                                       context));
  }
  if (text_card_out.has_value() && *text_card_out <= 0) {
    return bad("text_card_out", absl::StrCat("must be positive, got ", *text_card_out));
  }
  if (!(hidden_scale > 0)) return bad("hidden_scale", absl::StrCat("must be positive, got ", hidden_scale));
  // The rotary embedding's base: log(max_period) scales every frequency (0 or less gives NaN or reversed
  // positions, and a silently different model).
  if (!(max_period > 1) || !std::isfinite(max_period)) {
    return bad("max_period",
               absl::StrCat("must be a finite number above 1 (10000 in every release), got ", max_period));
  }
  if (dep_q > 0 && (!(depformer_max_period > 1) || !std::isfinite(depformer_max_period))) {
    return bad(
        "depformer_max_period",
        absl::StrCat("must be a finite number above 1 (10000 in every release), got ", depformer_max_period));
  }
  if (dim % num_heads != 0) {
    return bad("dim", absl::StrCat("(", dim, ") must be divisible by num_heads (", num_heads, ")"));
  }
  if (num_heads % kv_repeat != 0) {
    return bad("kv_repeat", absl::StrCat("(", kv_repeat, ") must divide num_heads (", num_heads, ")"));
  }
  if (dep_q < 0 || dep_q > n_q) {
    return bad("dep_q", absl::StrCat("must be between 0 and n_q (", n_q, "), got ", dep_q));
  }
  if (static_cast<int64_t>(delays.size()) != num_streams()) {
    return bad("delays", absl::StrCat("must have 1 + n_q = ", num_streams(), " entries (text + ", n_q,
                                      " audio streams), got ", delays.size()));
  }
  for (size_t i = 0; i < delays.size(); ++i) {
    if (delays[i] < 0) return bad("delays", absl::StrCat("entry ", i, " is negative (", delays[i], ")"));
  }
  if (extra_heads_num_heads < 0) {
    return bad("extra_heads_num_heads", absl::StrCat("must be >= 0, got ", extra_heads_num_heads));
  }
  if (!NormNames().count(norm))
    return bad("norm", absl::StrCat("'", norm, "' is not one of ", Names(NormNames())));
  if (!GatingNames().count(gating)) {
    return bad("gating", absl::StrCat("'", gating, "' is not one of ", Names(GatingNames())));
  }
  if (!PosEmbNames().count(positional_embedding)) {
    return bad("positional_embedding",
               absl::StrCat("'", positional_embedding, "' is not one of ", Names(PosEmbNames())));
  }
  if (gating != "none" && ffn_hidden() <= 0) return bad("hidden_scale", "gives an empty feed-forward layer");
  if (demux_second_stream && norm_emb) return bad("norm_emb", "cannot be combined with demux_second_stream");
  // The reference's QLinear takes Linears without a bias, and the conditioners' projections have one: it
  // cannot build either model quantised.
  if (int8_checkpoint && bias_proj) return bad("quantize", "= true cannot be combined with bias_proj = true");
  if (int8_checkpoint && !conditioners.empty()) {
    return bad("quantize", "= true cannot be combined with conditioners (their projections have biases)");
  }
  if (existing_text_padding_id < 0 || existing_text_padding_id >= text_card) {
    return bad("existing_text_padding_id", absl::StrCat("must be a text token id below text_card (",
                                                        text_card, "), got ", existing_text_padding_id));
  }

  // Depformer.
  if (dep_q > 0) {
    MONOLOGUE_CHECK_POSITIVE(depformer_dim);
    MONOLOGUE_CHECK_POSITIVE(depformer_num_heads);
    MONOLOGUE_CHECK_POSITIVE(depformer_num_layers);
    MONOLOGUE_CHECK_POSITIVE(depformer_kv_repeat);
    if (depformer_dim % depformer_num_heads != 0) {
      return bad("depformer_dim",
                 absl::StrCat("(", depformer_dim, ") must be divisible by depformer_num_heads (",
                              depformer_num_heads, ")"));
    }
    if (depformer_num_heads % depformer_kv_repeat != 0) {
      return bad("depformer_kv_repeat", "must divide depformer_num_heads");
    }
    if (!GatingNames().count(depformer_gating)) {
      return bad("depformer_gating",
                 absl::StrCat("'", depformer_gating, "' is not one of ", Names(GatingNames())));
    }
    if (depformer_gating == "none" && depformer_weights_per_step) {
      return bad("depformer_gating",
                 "'none' cannot be combined with depformer_weights_per_step (reference limit)");
    }
    if (!PosEmbNames().count(depformer_pos_emb)) {
      return bad("depformer_pos_emb",
                 absl::StrCat("'", depformer_pos_emb, "' is not one of ", Names(PosEmbNames())));
    }
    if (depformer_norm.has_value() && !NormNames().count(*depformer_norm)) {
      return bad("depformer_norm",
                 absl::StrCat("'", *depformer_norm, "' is not one of ", Names(NormNames())));
    }
    if (depformer_dim_feedforward.has_value() && *depformer_dim_feedforward <= 0) {
      return bad("depformer_dim_feedforward", "must be positive");
    }
    if (depformer_gating != "none" && depformer_ffn_hidden() <= 0) {
      return bad("depformer_dim_feedforward", "gives an empty feed-forward layer");
    }
    if (!depformer_weights_per_step_schedule.empty()) {
      if (!depformer_weights_per_step) {
        return bad("depformer_weights_per_step_schedule", "requires depformer_weights_per_step = true");
      }
      if (static_cast<int64_t>(depformer_weights_per_step_schedule.size()) != dep_q) {
        return bad("depformer_weights_per_step_schedule",
                   absl::StrCat("must have dep_q = ", dep_q, " entries, got ",
                                depformer_weights_per_step_schedule.size()));
      }
      for (int64_t w : depformer_weights_per_step_schedule) {
        if (w < 0) return bad("depformer_weights_per_step_schedule", "has a negative entry");
      }
    }
    if (depformer_low_rank_embeddings.has_value() && *depformer_low_rank_embeddings <= 0) {
      return bad("depformer_low_rank_embeddings", "must be positive");
    }
  }
#undef MONOLOGUE_CHECK_POSITIVE

  // Conditioning.
  for (const auto& [name, cond] : conditioners) {
    const std::string key = absl::StrCat("conditioners.", name);
    if (cond.dim <= 0) return bad(key + ".dim", absl::StrCat("must be positive, got ", cond.dim));
    if (cond.output_bias) return bad(key + ".output_bias", "must be false (the reference asserts it)");
    if (cond.type == ConditionerConfig::Type::kLut) {
      if (cond.n_bins <= 0) return bad(key + ".n_bins", absl::StrCat("must be positive, got ", cond.n_bins));
      if (cond.tokenizer != "noop") {
        return bad(key + ".tokenizer", absl::StrCat("'", cond.tokenizer, "' is not supported (only 'noop')"));
      }
      if (static_cast<int64_t>(cond.possible_values.size()) > cond.n_bins) {
        return bad(key + ".possible_values", absl::StrCat("has ", cond.possible_values.size(),
                                                          " values, more than n_bins (", cond.n_bins, ")"));
      }
    }
  }
  if (fuser.has_value()) {
    if (!fuser->prepend.empty()) {
      return bad("fuser.prepend", "is not supported (the reference only supports `sum` and `cross`)");
    }
    for (const auto* list : {&fuser->sum, &fuser->cross}) {
      for (const std::string& name : *list) {
        if (!conditioners.count(name)) {
          return bad(list == &fuser->sum ? "fuser.sum" : "fuser.cross",
                     absl::StrCat("names '", name, "', which is not in conditioners"));
        }
      }
    }
    if (!fuser->cross.empty() && !cross_attention) {
      return bad("fuser.cross", "is non-empty but cross_attention is false");
    }
  }
  return absl::OkStatus();
}

}  // namespace monologue
