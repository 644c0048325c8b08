#include "core/model/presets.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"

namespace monologue {
namespace {

// Released configs, as config.json text (parsed by the same code as a real model directory).
constexpr char kStt1b[] = R"json({
  "model_type": "stt", "moshi_name": "model.safetensors", "mimi_name": "mimi-pytorch-e351c8d8@125.safetensors",
  "tokenizer_name": "tokenizer_en_fr_audio_8000.model",
  "lm_gen_config": {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50},
  "stt_config": {"audio_delay_seconds": 0.5, "audio_silence_prefix_seconds": 0.0},
  "dim": 2048, "text_card": 8000, "existing_text_padding_id": 3, "n_q": 32, "dep_q": 0, "card": 2048,
  "num_heads": 16, "num_layers": 16, "hidden_scale": 4.125, "causal": true, "layer_scale": null, "context": 750,
  "max_period": 100000, "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
  "depformer_dim": 1024, "depformer_num_heads": 16, "depformer_num_layers": 6, "depformer_dim_feedforward": null,
  "depformer_multi_linear": true, "depformer_pos_emb": "none", "depformer_weights_per_step": true,
  "delays": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],
  "extra_heads_num_heads": 4, "extra_heads_dim": 6, "fuser": null})json";

constexpr char kStt26b[] = R"json({
  "model_type": "stt", "moshi_name": "model.safetensors", "mimi_name": "mimi-pytorch-e351c8d8@125.safetensors",
  "tokenizer_name": "tokenizer_en_audio_4000.model",
  "lm_gen_config": {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50},
  "stt_config": {"audio_delay_seconds": 2.5, "audio_silence_prefix_seconds": 1.0},
  "dim": 2048, "text_card": 4000, "existing_text_padding_id": 3, "n_q": 32, "dep_q": 0, "card": 2048,
  "num_heads": 32, "num_layers": 48, "hidden_scale": 4.125, "causal": true, "layer_scale": null, "context": 375,
  "max_period": 100000, "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
  "depformer_dim": 1024, "depformer_num_heads": 16, "depformer_num_layers": 6, "depformer_dim_feedforward": null,
  "depformer_multi_linear": true, "depformer_pos_emb": "none", "depformer_weights_per_step": true,
  "delays": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0], "fuser": null})json";

constexpr char kTts16b[] = R"json({
  "card": 2048, "n_q": 32, "dep_q": 32, "delays": [0,0,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2],
  "dim": 2048, "text_card": 8000, "existing_text_padding_id": 3, "num_heads": 16, "num_layers": 16,
  "hidden_scale": 4.125, "causal": true, "layer_scale": null, "context": 500, "max_period": 10000,
  "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope", "depformer_dim": 1024,
  "depformer_num_heads": 16, "depformer_num_layers": 4, "depformer_dim_feedforward": 3072,
  "depformer_multi_linear": true, "depformer_pos_emb": "none", "depformer_weights_per_step": true,
  "depformer_low_rank_embeddings": 128,
  "depformer_weights_per_step_schedule": [0,1,2,3,4,5,6,7,8,8,8,8,8,8,8,8,9,9,9,9,9,9,9,9,10,10,10,10,10,10,10,10],
  "demux_second_stream": true, "text_card_out": null, "cross_attention": true,
  "conditioners": {
    "speaker_wavs": {"type": "tensor", "tensor": {"dim": 512}},
    "cfg": {"type": "lut", "lut": {"n_bins": 7, "dim": 16, "tokenizer": "noop",
            "possible_values": ["1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0"]}},
    "control": {"type": "lut", "lut": {"dim": 2048, "n_bins": 1, "tokenizer": "noop", "possible_values": ["ok"]}}},
  "fuser": {"cross_attention_pos_emb": true, "cross_attention_pos_emb_scale": 1, "sum": ["control", "cfg"],
            "prepend": [], "cross": ["speaker_wavs"]},
  "tts_config": {"audio_delay": 1.28, "second_stream_ahead": 2}, "model_id": {"sig": "1e68beda", "epoch": 240},
  "model_type": "tts", "lm_gen_config": {"temp": 0.6, "text_temp": 0.6},
  "tokenizer_name": "tokenizer_spm_8k_en_fr_audio.model",
  "mimi_name": "tokenizer-e351c8d8-checkpoint125.safetensors", "moshi_name": "dsm_tts_1e68beda@240.safetensors"})json";

constexpr char kTinyMoshi[] = R"json({
  "model_type": "moshi", "moshi_name": "model.safetensors", "mimi_name": "mimi.safetensors",
  "mimi_config_name": "mimi_config.json", "tokenizer_name": "tokenizer.model",
  "dim": 64, "text_card": 400, "existing_text_padding_id": 3, "n_q": 8, "dep_q": 4, "card": 64,
  "num_heads": 4, "num_layers": 2, "hidden_scale": 4.125, "causal": true, "layer_scale": null, "context": 64,
  "max_period": 10000, "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
  "depformer_dim": 32, "depformer_dim_feedforward": 132, "depformer_num_heads": 2, "depformer_num_layers": 2,
  "depformer_layer_scale": null, "depformer_multi_linear": true, "depformer_context": 8,
  "depformer_max_period": 10000, "depformer_gating": "silu", "depformer_pos_emb": "none",
  "depformer_weights_per_step": true, "delays": [0, 0, 1, 1, 1, 0, 1, 1, 1]})json";

// tiny-moshi-8: the released Moshi stream layout (dep_q 8 generated, n_q 16, delays 0 | 0,1x7 | 0,1x7) at
// tiny size, for the full-duplex dialogue fixtures.
constexpr char kTinyMoshi8[] = R"json({
  "model_type": "moshi", "moshi_name": "model.safetensors", "mimi_name": "mimi.safetensors",
  "mimi_config_name": "mimi_config.json", "tokenizer_name": "tokenizer.model",
  "dim": 64, "text_card": 400, "existing_text_padding_id": 3, "n_q": 16, "dep_q": 8, "card": 64,
  "num_heads": 4, "num_layers": 2, "hidden_scale": 4.125, "causal": true, "layer_scale": null, "context": 64,
  "max_period": 10000, "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
  "depformer_dim": 32, "depformer_dim_feedforward": 132, "depformer_num_heads": 2, "depformer_num_layers": 2,
  "depformer_layer_scale": null, "depformer_multi_linear": true, "depformer_context": 8,
  "depformer_max_period": 10000, "depformer_gating": "silu", "depformer_pos_emb": "none",
  "depformer_weights_per_step": true, "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]})json";

constexpr char kTinyStt[] = R"json({
  "model_type": "stt", "moshi_name": "model.safetensors", "mimi_name": "mimi.safetensors",
  "mimi_config_name": "mimi_config.json", "tokenizer_name": "tokenizer.model",
  "lm_gen_config": {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50},
  "stt_config": {"audio_delay_seconds": 0.5, "audio_silence_prefix_seconds": 0.0},
  "dim": 64, "text_card": 400, "existing_text_padding_id": 3, "n_q": 8, "dep_q": 0, "card": 64,
  "num_heads": 4, "num_layers": 2, "hidden_scale": 4.125, "causal": true, "layer_scale": null, "context": 64,
  "max_period": 100000, "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
  "depformer_dim": 32, "depformer_num_heads": 2, "depformer_num_layers": 2, "depformer_dim_feedforward": null,
  "depformer_multi_linear": true, "depformer_pos_emb": "none", "depformer_weights_per_step": true,
  "delays": [0, 0, 0, 0, 0, 0, 0, 0, 0], "extra_heads_num_heads": 4, "extra_heads_dim": 6, "fuser": null})json";

constexpr char kTinyTts[] = R"json({
  "model_type": "tts", "moshi_name": "model.safetensors", "mimi_name": "mimi.safetensors",
  "mimi_config_name": "mimi_config.json", "tokenizer_name": "tokenizer.model",
  "lm_gen_config": {"temp": 0.6, "text_temp": 0.6},
  "tts_config": {"audio_delay": 1.28, "second_stream_ahead": 2}, "model_id": {"sig": "0000tiny", "epoch": 0},
  "card": 64, "n_q": 8, "dep_q": 8, "delays": [0, 0, 2, 2, 2, 2, 2, 2, 2], "dim": 64, "text_card": 400,
  "existing_text_padding_id": 3, "num_heads": 4, "num_layers": 2, "hidden_scale": 4.125, "causal": true,
  "layer_scale": null, "context": 64, "max_period": 10000, "gating": "silu", "norm": "rms_norm_f32",
  "positional_embedding": "rope", "depformer_dim": 32, "depformer_num_heads": 2, "depformer_num_layers": 2,
  "depformer_dim_feedforward": 96, "depformer_multi_linear": true, "depformer_pos_emb": "none",
  "depformer_weights_per_step": true, "depformer_low_rank_embeddings": 16,
  "depformer_weights_per_step_schedule": [0, 1, 2, 2, 3, 3, 3, 3],
  "demux_second_stream": true, "text_card_out": null, "cross_attention": true,
  "conditioners": {
    "speaker_wavs": {"type": "tensor", "tensor": {"dim": 16}},
    "cfg": {"type": "lut", "lut": {"n_bins": 7, "dim": 8, "tokenizer": "noop",
            "possible_values": ["1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0"]}},
    "control": {"type": "lut", "lut": {"dim": 64, "n_bins": 1, "tokenizer": "noop", "possible_values": ["ok"]}}},
  "fuser": {"cross_attention_pos_emb": true, "cross_attention_pos_emb_scale": 1, "sum": ["control", "cfg"],
            "prepend": [], "cross": ["speaker_wavs"]}})json";

absl::StatusOr<ModelConfig> FromJson(const char* text, const std::string& name) {
  nlohmann::json json = nlohmann::json::parse(text);
  return ParseModelConfigJson(json, absl::StrCat("preset ", name));
}

}  // namespace

MimiConfig TinyMimiConfig() {
  MimiConfig m;
  m.seanet.dimension = 32;
  m.seanet.n_filters = 4;
  m.transformer.d_model = 32;
  m.transformer.num_heads = 4;
  m.transformer.num_layers = 2;
  m.transformer.dim_feedforward = 64;
  m.transformer.input_dimension = 32;
  m.transformer.output_dimensions = {32};
  m.quantizer.dimension = 16;
  m.quantizer.n_q = 32;
  m.quantizer.bins = 64;
  m.quantizer.input_dimension = 32;
  m.quantizer.output_dimension = 32;
  return m;
}

std::vector<std::string> PresetNames() {
  return {"tiny-moshi",   "tiny-moshi-8", "tiny-stt",    "tiny-tts",       "tiny-mimi", "moshi-7b",
          "stt-1b-en_fr", "stt-2.6b-en", "tts-1.6b-en_fr", "mimi"};
}

absl::StatusOr<ModelPreset> GetPreset(std::string_view name_view) {
  const std::string name(name_view.data(), name_view.size());
  ModelPreset p;
  p.name = name;
  if (name == "moshi-7b") {
    p.description = "Moshi 7B (moshiko/moshika layout: no config.json, built-in defaults)";
    p.config.legacy = true;
    p.config.lm = LmConfig::Moshi7B();
  } else if (name == "stt-1b-en_fr") {
    p.description = "Kyutai STT 1B en/fr (extra VAD heads as in the -candle config)";
    ASSIGN_OR_RETURN(p.config, FromJson(kStt1b, name));
  } else if (name == "stt-2.6b-en") {
    p.description = "Kyutai STT 2.6B en";
    ASSIGN_OR_RETURN(p.config, FromJson(kStt26b, name));
  } else if (name == "tts-1.6b-en_fr") {
    p.description = "Kyutai TTS 1.6B en/fr";
    ASSIGN_OR_RETURN(p.config, FromJson(kTts16b, name));
  } else if (name == "mimi") {
    p.description = "the released Mimi codec alone";
    p.mimi_only = true;
  } else if (name == "tiny-moshi") {
    p.description = "tiny full-duplex Moshi (8 streams, dep_q 4) with the tiny Mimi";
    ASSIGN_OR_RETURN(p.config, FromJson(kTinyMoshi, name));
    p.config.mimi = TinyMimiConfig();
  } else if (name == "tiny-moshi-8") {
    p.description = "tiny full-duplex Moshi, released stream layout (16 streams, dep_q 8), tiny Mimi";
    ASSIGN_OR_RETURN(p.config, FromJson(kTinyMoshi8, name));
    p.config.mimi = TinyMimiConfig();
  } else if (name == "tiny-stt") {
    p.description = "tiny DSM STT (8 streams, dep_q 0, 4 VAD heads) with the tiny Mimi";
    ASSIGN_OR_RETURN(p.config, FromJson(kTinyStt, name));
    p.config.mimi = TinyMimiConfig();
  } else if (name == "tiny-tts") {
    p.description = "tiny DSM TTS (demuxed text, cross-attention, conditioners, 4 depformer weight sets)";
    ASSIGN_OR_RETURN(p.config, FromJson(kTinyTts, name));
    p.config.mimi = TinyMimiConfig();
  } else if (name == "tiny-mimi") {
    p.description = "the tiny Mimi alone";
    p.mimi_only = true;
    p.config.mimi = TinyMimiConfig();
    p.config.mimi_name = "mimi.safetensors";
    p.config.mimi_config_name = "mimi_config.json";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown preset '", name, "' (known: ", absl::StrJoin(PresetNames(), ", "), ")"));
  }
  return p;
}

}  // namespace monologue
