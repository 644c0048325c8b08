#include "core/config/model_config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/config/json_fields.h"
#include "core/hub/hub.h"
#include "core/util/status_macros.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using internal::JsonFields;
using internal::JsonTypeName;

nlohmann::json OptionalToJson(const std::optional<int64_t>& v) {
  return v.has_value() ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
nlohmann::json OptionalToJson(const std::optional<double>& v) {
  return v.has_value() ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

absl::Status ParseConditioner(const std::string& name, const nlohmann::json& json, const std::string& source,
                              ConditionerConfig* out) {
  const std::string prefix = absl::StrCat("conditioners.", name, ".");
  JsonFields f(json, source, prefix);
  RETURN_IF_ERROR(f.status());
  f.Require("type");
  std::string type;
  f.String("type", &type);
  RETURN_IF_ERROR(f.status());
  ConditionerConfig c;
  if (type == "lut") {
    c.type = ConditionerConfig::Type::kLut;
  } else if (type == "tensor") {
    c.type = ConditionerConfig::Type::kTensor;
  } else {
    f.Fail("type", absl::StrCat("must be 'lut' or 'tensor', got '", type, "'"));
    return f.Finish();
  }
  f.Require(type);
  f.Skip(type);
  RETURN_IF_ERROR(f.Finish());

  JsonFields g(json[type], source, absl::StrCat(prefix, type, "."));
  RETURN_IF_ERROR(g.status());
  g.Require("dim");
  g.Int("dim", &c.dim);
  if (c.type == ConditionerConfig::Type::kLut) {
    g.Require("n_bins");
    g.Require("tokenizer");
    g.Int("n_bins", &c.n_bins);
    g.String("tokenizer", &c.tokenizer);
    if (g.Has("possible_values") && json[type]["possible_values"].is_null()) {
      g.Skip("possible_values");
    } else {
      g.StringList("possible_values", &c.possible_values);
    }
    g.Double("init_scale", &c.init_scale);
  }
  g.Bool("force_linear", &c.force_linear);
  g.Bool("pad_empty", &c.pad_empty);
  g.Bool("output_bias", &c.output_bias);
  g.Bool("learn_padding", &c.learn_padding);
  RETURN_IF_ERROR(g.Finish());
  *out = std::move(c);
  return absl::OkStatus();
}

absl::Status ParseFuser(const nlohmann::json& json, const std::string& source, FuserConfig* out) {
  JsonFields f(json, source, "fuser.");
  RETURN_IF_ERROR(f.status());
  FuserConfig fuser;
  f.StringList("sum", &fuser.sum);
  f.StringList("cross", &fuser.cross);
  f.StringList("prepend", &fuser.prepend);
  f.Bool("cross_attention_pos_emb", &fuser.cross_attention_pos_emb);
  f.Double("cross_attention_pos_emb_scale", &fuser.cross_attention_pos_emb_scale);
  RETURN_IF_ERROR(f.Finish());
  *out = std::move(fuser);
  return absl::OkStatus();
}

// The LMModel keyword arguments (everything left after the CheckpointInfo pops).
absl::Status ParseLmKwargs(const nlohmann::json& json, JsonFields& f, ModelConfig* config) {
  LmConfig c = LmConfig::ReferenceDefaults();
  f.Require("num_layers");
  f.Require("context");
  f.IntList("delays", &c.delays);
  f.Int("n_q", &c.n_q);
  f.Int("dep_q", &c.dep_q);
  f.Int("card", &c.card);
  f.Int("text_card", &c.text_card);
  f.OptionalInt("text_card_out", &c.text_card_out);
  if (f.Has("demux_second_stream") && f.Has("demux_second_text_stream")) {
    f.Fail("demux_second_stream", "and 'demux_second_text_stream' are both given");
  }
  f.Bool("demux_second_stream", &c.demux_second_stream);
  f.Bool("demux_second_text_stream", &c.demux_second_stream);
  f.Int("dim", &c.dim);
  f.Int("num_heads", &c.num_heads);
  f.Int("num_layers", &c.num_layers);
  f.Double("hidden_scale", &c.hidden_scale);
  f.String("norm", &c.norm);
  f.Bool("norm_emb", &c.norm_emb);
  f.Bool("bias_proj", &c.bias_proj);
  f.Int("existing_text_padding_id", &c.existing_text_padding_id);
  f.Int("existing_text_end_padding_id", &c.existing_text_end_padding_id);
  f.Int("extra_heads_num_heads", &c.extra_heads_num_heads);
  f.Int("extra_heads_dim", &c.extra_heads_dim);
  if (f.Has("context") && json["context"].is_null()) {
    f.Fail("context", "is null: the reference cannot stream without an attention context");
  }
  f.Int("context", &c.context);
  f.Bool("causal", &c.causal);
  // StreamingTransformer / layer kwargs.
  f.String("positional_embedding", &c.positional_embedding);
  f.Double("max_period", &c.max_period);
  f.Double("positional_scale", &c.positional_scale);
  f.OptionalDouble("layer_scale", &c.layer_scale);
  f.String("gating", &c.gating);
  f.Int("kv_repeat", &c.kv_repeat);
  f.Bool("cross_attention", &c.cross_attention);

  // Depformer: absent keys inherit the temporal transformer's values (kwargs_dep = main kwargs updated
  // with the depformer_* ones).
  c.depformer_num_heads = c.num_heads;
  c.depformer_num_layers = c.num_layers;
  c.depformer_layer_scale = c.layer_scale;
  c.depformer_gating = c.gating;
  c.depformer_max_period = c.max_period;
  c.depformer_kv_repeat = c.kv_repeat;
  f.Int("depformer_dim", &c.depformer_dim);
  if (f.Has("depformer_dim_feedforward") && json["depformer_dim_feedforward"].is_array()) {
    f.Fail("depformer_dim_feedforward", "as a list (one size per weight set) is not supported");
  }
  f.OptionalInt("depformer_dim_feedforward", &c.depformer_dim_feedforward);
  f.Bool("depformer_multi_linear", &c.depformer_multi_linear);
  f.Bool("depformer_weights_per_step", &c.depformer_weights_per_step);
  f.OptionalIntList("depformer_weights_per_step_schedule", &c.depformer_weights_per_step_schedule);
  f.OptionalInt("depformer_low_rank_embeddings", &c.depformer_low_rank_embeddings);
  f.String("depformer_pos_emb", &c.depformer_pos_emb);
  f.OptionalString("depformer_norm", &c.depformer_norm);
  f.Int("depformer_num_heads", &c.depformer_num_heads);
  f.Int("depformer_num_layers", &c.depformer_num_layers);
  f.OptionalDouble("depformer_layer_scale", &c.depformer_layer_scale);
  f.String("depformer_gating", &c.depformer_gating);
  f.Double("depformer_max_period", &c.depformer_max_period);
  f.Int("depformer_kv_repeat", &c.depformer_kv_repeat);
  f.OptionalInt("depformer_context", &c.depformer_context);
  bool ignored = false;
  f.Bool("depformer_causal", &ignored);  // deprecated, dropped by get_moshi_lm

  // Loader-level kwargs.
  f.Bool("lora", &config->lora);
  f.Int("lora_rank", &config->lora_rank);
  f.Double("lora_scaling", &config->lora_scaling);
  f.Bool("quantize", &c.int8_checkpoint);
  if (c.int8_checkpoint && config->lora) {
    f.Fail("quantize",
           "= true cannot be combined with lora = true (the reference refuses LoRA on a quantised model)");
  }
  f.Bool("gradient_checkpointing", &ignored);  // training only

  // Conditioning.
  if (f.Has("conditioners")) {
    const nlohmann::json& conds = json["conditioners"];
    f.Skip("conditioners");
    if (!conds.is_null()) {
      if (!conds.is_object()) {
        f.Fail("conditioners", absl::StrCat("must be an object, got ", JsonTypeName(conds)));
      } else {
        for (auto it = conds.begin(); it != conds.end(); ++it) {
          ConditionerConfig cond;
          RETURN_IF_ERROR(f.status());
          RETURN_IF_ERROR(ParseConditioner(it.key(), it.value(), f.source(), &cond));
          c.conditioners[it.key()] = std::move(cond);
        }
      }
    }
  }
  if (f.Has("fuser")) {
    const nlohmann::json& fuser = json["fuser"];
    f.Skip("fuser");
    if (!fuser.is_null()) {
      FuserConfig parsed;
      RETURN_IF_ERROR(f.status());
      RETURN_IF_ERROR(ParseFuser(fuser, f.source(), &parsed));
      c.fuser = std::move(parsed);
    }
  }
  RETURN_IF_ERROR(f.Finish());
  RETURN_IF_ERROR(c.Validate(f.source()));
  config->lm = std::move(c);
  return absl::OkStatus();
}

std::string LineAndColumn(const std::string& text, size_t byte) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < text.size() && i + 1 < byte; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return absl::StrCat("line ", line, ", column ", column);
}

std::optional<fs::path> HfCacheRoot() {
  if (const char* v = std::getenv("HF_HUB_CACHE"); v != nullptr && *v) return fs::path(v);
  if (const char* v = std::getenv("HF_HOME"); v != nullptr && *v) return fs::path(v) / "hub";
  if (const char* v = std::getenv("HOME"); v != nullptr && *v)
    return fs::path(v) / ".cache" / "huggingface" / "hub";
  return std::nullopt;
}

}  // namespace

const char* ModelTypeName(ModelType type) {
  switch (type) {
    case ModelType::kMoshi:
      return "moshi";
    case ModelType::kStt:
      return "stt";
    case ModelType::kTts:
      return "tts";
    case ModelType::kHibiki:
      return "hibiki";
  }
  return "moshi";
}

int64_t ModelConfig::mimi_codebooks() const {
  if (legacy) return 8;
  int64_t n = lm.mimi_codebooks();
  auto it = tts_config.find("multistream");
  if (it != tts_config.end() && it->is_boolean() && it->get<bool>()) n /= 2;
  return n;
}

absl::StatusOr<ModelConfig> ParseModelConfigJson(const nlohmann::json& json, const std::string& source) {
  JsonFields f(json, source);
  RETURN_IF_ERROR(f.status());
  ModelConfig config;
  config.legacy = false;
  f.String("moshi_name", &config.moshi_name);
  f.String("mimi_name", &config.mimi_name);
  f.OptionalString("mimi_config_name", &config.mimi_config_name);
  f.String("tokenizer_name", &config.tokenizer_name);
  f.OptionalString("lora_name", &config.lora_name);
  std::string model_type = "moshi";
  f.String("model_type", &model_type);
  if (model_type == "moshi") {
    config.model_type = ModelType::kMoshi;
  } else if (model_type == "stt") {
    config.model_type = ModelType::kStt;
  } else if (model_type == "tts") {
    config.model_type = ModelType::kTts;
  } else if (model_type == "hibiki") {
    config.model_type = ModelType::kHibiki;
  } else {
    f.Fail("model_type", absl::StrCat("must be one of moshi, stt, tts, hibiki; got '", model_type, "'"));
  }
  f.Object("lm_gen_config", &config.lm_gen_config);
  f.Object("tts_config", &config.tts_config);
  f.Object("stt_config", &config.stt_config);
  f.Object("model_id", &config.model_id);
  RETURN_IF_ERROR(f.status());
  RETURN_IF_ERROR(ParseLmKwargs(json, f, &config));
  if (config.lora_name.has_value() && !config.lora) {
    // The reference asserts `lora_weights is None` when `lora` is false.
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": key 'lora_name' is set but 'lora' is false (the reference refuses LoRA weights "
                     "without lora: true)"));
  }
  return config;
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": invalid JSON at ", LineAndColumn(text, e.byte), ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": invalid JSON: ", e.what()));
  }
}

absl::StatusOr<fs::path> ResolveModelFile(const fs::path& dir, const std::string& reference) {
  std::error_code ec;
  if (absl::StartsWith(reference, "hf://")) {
    std::vector<std::string> parts = absl::StrSplit(reference.substr(5), '/');
    if (parts.size() < 3 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("file reference '", reference, "' must look like hf://owner/repo/path"));
    }
    std::string rel;
    for (size_t i = 2; i < parts.size(); ++i) rel += (i > 2 ? "/" : "") + parts[i];
    // The cache (refs/main's snapshot, else any snapshot holding it), else a download (core/hub).
    auto fetched = hub::DownloadFile(hub::HubOptions::FromEnvironment(), parts[0] + "/" + parts[1], rel);
    if (fetched.ok()) return *fetched;
    if (!hub::IsCacheOnlyMiss(fetched.status())) {
      return absl::Status(fetched.status().code(),
                          absl::StrCat("cannot resolve '", reference, "': ", fetched.status().message()));
    }
    std::optional<fs::path> root = HfCacheRoot();
    if (!root.has_value()) {
      return absl::NotFoundError(absl::StrCat("cannot resolve '", reference,
                                              "': no Hugging Face cache (set HF_HOME or HF_HUB_CACHE)"));
    }
    const fs::path snapshots = *root / absl::StrCat("models--", parts[0], "--", parts[1]) / "snapshots";
    std::vector<fs::path> candidates;
    if (fs::is_directory(snapshots, ec)) {
      for (const auto& entry : fs::directory_iterator(snapshots, ec)) {
        if (fs::exists(entry.path() / rel, ec)) candidates.push_back(entry.path() / rel);
      }
    }
    if (candidates.empty()) {
      return absl::NotFoundError(absl::StrCat("'", reference, "' is not in the local Hugging Face cache (looked for ",
                                              (snapshots / "*" / rel).string(), "): ", fetched.status().message()));
    }
    std::sort(candidates.begin(), candidates.end());
    return candidates.front();
  }
  fs::path path;
  if (absl::StartsWith(reference, "file://")) {
    path = fs::path(reference.substr(7));
  } else if (fs::path(reference).is_absolute()) {
    path = fs::path(reference);
  } else {
    path = dir / reference;
  }
  if (!fs::exists(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("missing file ", path.string(), " (referenced as '", reference, "')"));
  }
  return path;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("model directory ", dir.string(), " does not exist"));
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(dir.string(), " is not a directory"));
  }
  ModelConfig config;
  const fs::path config_path = dir / "config.json";
  if (fs::exists(config_path, ec)) {
    ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(config_path));
    ASSIGN_OR_RETURN(config, ParseModelConfigJson(json, config_path.string()));
  } else {
    if (!fs::exists(dir / kDefaultMoshiName, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir.string(), " is not a model directory: it has no config.json and no ",
                       kDefaultMoshiName, " (the legacy Moshi 7B layout)"));
    }
    config.legacy = true;
    config.lm = LmConfig::Moshi7B();
  }
  config.dir = dir;
  if (config.mimi_config_name.has_value()) {
    ASSIGN_OR_RETURN(fs::path mimi_path, ResolveModelFile(dir, *config.mimi_config_name));
    ASSIGN_OR_RETURN(nlohmann::json mimi_json, ReadJsonFile(mimi_path));
    ASSIGN_OR_RETURN(config.mimi, ParseMimiConfigJson(mimi_json, mimi_path.string()));
  }
  return config;
}

absl::StatusOr<ModelFiles> ResolveModelFiles(const fs::path& dir, const ModelConfig& config,
                                             const std::string& lora_override) {
  std::vector<std::string> missing;
  auto resolve = [&](const std::string& reference, const char* what) -> fs::path {
    auto p = ResolveModelFile(dir, reference);
    if (!p.ok()) {
      missing.push_back(absl::StrCat(what, " (", p.status().message(), ")"));
      return {};
    }
    return *p;
  };
  ModelFiles files;
  files.lm = resolve(config.moshi_name, "LM weights");
  files.mimi = resolve(config.mimi_name, "Mimi weights");
  files.tokenizer = resolve(config.tokenizer_name, "text tokenizer");
  if (!lora_override.empty()) {
    std::error_code ec;
    if (fs::is_directory(lora_override, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--lora ", lora_override, " is a directory: give the adapter's .safetensors file"));
    }
    if (!fs::is_regular_file(lora_override, ec)) {
      missing.push_back(absl::StrCat("LoRA weights (--lora ", lora_override, " does not exist)"));
    }
    files.lora = lora_override;
  } else if (config.lora && config.lora_name.has_value()) {
    files.lora = resolve(*config.lora_name, "LoRA weights");
  }
  if (!missing.empty()) {
    return absl::NotFoundError(absl::StrCat("model directory ", dir.string(), " is incomplete: missing ",
                                            absl::StrJoin(missing, "; ")));
  }
  return files;
}

nlohmann::json ModelConfigToJson(const ModelConfig& config) {
  const LmConfig& c = config.lm;
  nlohmann::json j;
  j["model_type"] = ModelTypeName(config.model_type);
  j["moshi_name"] = config.moshi_name;
  j["mimi_name"] = config.mimi_name;
  if (config.mimi_config_name.has_value()) j["mimi_config_name"] = *config.mimi_config_name;
  j["tokenizer_name"] = config.tokenizer_name;
  if (config.lora_name.has_value()) j["lora_name"] = *config.lora_name;
  if (!config.lm_gen_config.empty()) j["lm_gen_config"] = config.lm_gen_config;
  if (!config.stt_config.empty()) j["stt_config"] = config.stt_config;
  if (!config.tts_config.empty()) j["tts_config"] = config.tts_config;
  if (!config.model_id.empty()) j["model_id"] = config.model_id;
  if (config.lora) {
    j["lora"] = true;
    j["lora_rank"] = config.lora_rank;
    j["lora_scaling"] = config.lora_scaling;
  }
  j["dim"] = c.dim;
  j["text_card"] = c.text_card;
  j["text_card_out"] = OptionalToJson(c.text_card_out);
  j["existing_text_padding_id"] = c.existing_text_padding_id;
  j["n_q"] = c.n_q;
  j["dep_q"] = c.dep_q;
  j["card"] = c.card;
  j["num_heads"] = c.num_heads;
  j["num_layers"] = c.num_layers;
  j["hidden_scale"] = c.hidden_scale;
  j["causal"] = c.causal;
  j["layer_scale"] = OptionalToJson(c.layer_scale);
  j["context"] = c.context;
  j["max_period"] = c.max_period;
  j["gating"] = c.gating;
  j["norm"] = c.norm;
  j["positional_embedding"] = c.positional_embedding;
  if (c.kv_repeat != 1) j["kv_repeat"] = c.kv_repeat;
  if (c.bias_proj) j["bias_proj"] = true;
  if (c.norm_emb) j["norm_emb"] = true;
  if (c.int8_checkpoint) j["quantize"] = true;
  if (c.existing_text_end_padding_id != 0) j["existing_text_end_padding_id"] = c.existing_text_end_padding_id;
  if (c.positional_scale != 1.0) j["positional_scale"] = c.positional_scale;
  j["depformer_dim"] = c.depformer_dim;
  j["depformer_dim_feedforward"] = OptionalToJson(c.depformer_dim_feedforward);
  j["depformer_num_heads"] = c.depformer_num_heads;
  j["depformer_num_layers"] = c.depformer_num_layers;
  j["depformer_layer_scale"] = OptionalToJson(c.depformer_layer_scale);
  j["depformer_multi_linear"] = c.depformer_multi_linear;
  j["depformer_context"] = OptionalToJson(c.depformer_context);
  j["depformer_max_period"] = c.depformer_max_period;
  j["depformer_gating"] = c.depformer_gating;
  j["depformer_pos_emb"] = c.depformer_pos_emb;
  if (c.depformer_kv_repeat != 1) j["depformer_kv_repeat"] = c.depformer_kv_repeat;
  if (c.depformer_norm.has_value()) j["depformer_norm"] = *c.depformer_norm;
  j["depformer_weights_per_step"] = c.depformer_weights_per_step;
  if (!c.depformer_weights_per_step_schedule.empty()) {
    j["depformer_weights_per_step_schedule"] = c.depformer_weights_per_step_schedule;
  }
  if (c.depformer_low_rank_embeddings.has_value()) {
    j["depformer_low_rank_embeddings"] = *c.depformer_low_rank_embeddings;
  }
  j["delays"] = c.delays;
  if (c.demux_second_stream) j["demux_second_stream"] = true;
  if (c.cross_attention) j["cross_attention"] = true;
  if (c.extra_heads_num_heads > 0) {
    j["extra_heads_num_heads"] = c.extra_heads_num_heads;
    j["extra_heads_dim"] = c.extra_heads_dim;
  }
  if (!c.conditioners.empty()) {
    nlohmann::json conds = nlohmann::json::object();
    for (const auto& [name, cond] : c.conditioners) {
      if (cond.type == ConditionerConfig::Type::kLut) {
        nlohmann::json lut = {{"n_bins", cond.n_bins}, {"dim", cond.dim}, {"tokenizer", cond.tokenizer}};
        lut["possible_values"] = cond.possible_values;
        conds[name] = {{"type", "lut"}, {"lut", lut}};
      } else {
        conds[name] = {{"type", "tensor"}, {"tensor", {{"dim", cond.dim}}}};
      }
    }
    j["conditioners"] = conds;
  }
  if (c.fuser.has_value()) {
    j["fuser"] = {{"sum", c.fuser->sum},
                  {"cross", c.fuser->cross},
                  {"prepend", c.fuser->prepend},
                  {"cross_attention_pos_emb", c.fuser->cross_attention_pos_emb},
                  {"cross_attention_pos_emb_scale", c.fuser->cross_attention_pos_emb_scale}};
  } else {
    j["fuser"] = nullptr;
  }
  return j;
}

}  // namespace monologue
