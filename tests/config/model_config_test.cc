// Parsing of the released model families' config.json files (tests/data/configs/, values from
// moshi-reference.md §2.5) and the errors for bad input.
#include "core/config/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/config/test_dirs.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const fs::path kConfigs = fs::path(MONOLOGUE_TEST_DATA_DIR) / "configs";

fs::path TmpDir(const std::string& name) { return testing_dirs::FreshDir("model_config_test", name); }

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// A valid config.json (tiny STT) as a JSON object to mutate in error tests.
nlohmann::json TinyJson() {
  std::ifstream f(kConfigs / "tiny-stt" / "config.json");
  return nlohmann::json::parse(f);
}

TEST(ModelConfigTest, LegacyMoshiDirectoryUsesBuiltIn7B) {
  auto config = LoadModelConfig(kConfigs / "moshiko-legacy");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->legacy);
  EXPECT_EQ(config->model_type, ModelType::kMoshi);
  EXPECT_EQ(config->moshi_name, "model.safetensors");
  EXPECT_EQ(config->mimi_name, "tokenizer-e351c8d8-checkpoint125.safetensors");
  EXPECT_EQ(config->tokenizer_name, "tokenizer_spm_32k_3.model");
  const LmConfig& lm = config->lm;
  EXPECT_EQ(lm.dim, 4096);
  EXPECT_EQ(lm.num_layers, 32);
  EXPECT_EQ(lm.num_heads, 32);
  EXPECT_EQ(lm.text_card, 32000);
  EXPECT_EQ(lm.n_q, 16);
  EXPECT_EQ(lm.dep_q, 8);
  EXPECT_EQ(lm.context, 3000);
  EXPECT_EQ(lm.ffn_hidden(), 11264);
  EXPECT_EQ(lm.depformer_dim_feedforward_value(), 4224);
  EXPECT_EQ(lm.depformer_ffn_hidden(), 2816);
  EXPECT_EQ(lm.depformer_weight_sets(), 8);
  EXPECT_EQ(lm.depformer_num_in(), 8);
  EXPECT_THAT(lm.delays, ElementsAre(0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1));
  EXPECT_EQ(lm.max_delay(), 1);
  EXPECT_EQ(config->mimi_codebooks(), 8);
  EXPECT_EQ(config->mimi.quantizer.n_q, 32);
  EXPECT_EQ(config->mimi.frame_size(), 1920);
  EXPECT_EQ(config->mimi.encoder_hop(), 960);
  EXPECT_TRUE(config->lm_gen_config.empty());
  EXPECT_TRUE(lm.Validate().ok());
}

TEST(ModelConfigTest, Stt1bEnFr) {
  auto config = LoadModelConfig(kConfigs / "stt-1b-en_fr");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->legacy);
  EXPECT_EQ(config->model_type, ModelType::kStt);
  EXPECT_EQ(config->mimi_name, "mimi-pytorch-e351c8d8@125.safetensors");
  EXPECT_EQ(config->tokenizer_name, "tokenizer_en_fr_audio_8000.model");
  const LmConfig& lm = config->lm;
  EXPECT_EQ(lm.dim, 2048);
  EXPECT_EQ(lm.num_layers, 16);
  EXPECT_EQ(lm.num_heads, 16);
  EXPECT_EQ(lm.head_dim(), 128);
  EXPECT_EQ(lm.context, 750);
  EXPECT_EQ(lm.max_period, 100000);
  EXPECT_EQ(lm.text_card, 8000);
  EXPECT_EQ(lm.n_q, 32);
  EXPECT_EQ(lm.dep_q, 0);
  EXPECT_EQ(lm.ffn_hidden(), 5632);
  EXPECT_EQ(lm.depformer_weight_sets(), 0);
  EXPECT_EQ(lm.depformer_num_in(), 0);
  EXPECT_EQ(lm.delays, std::vector<int64_t>(33, 0));
  EXPECT_EQ(lm.extra_heads_num_heads, 4);
  EXPECT_EQ(lm.extra_heads_dim, 6);
  EXPECT_FALSE(lm.fuser.has_value());
  EXPECT_EQ(config->mimi_codebooks(), 32);
  EXPECT_EQ(config->stt_config["audio_delay_seconds"].get<double>(), 0.5);
  EXPECT_EQ(config->stt_config["audio_silence_prefix_seconds"].get<double>(), 0.0);
  EXPECT_EQ(config->lm_gen_config["top_k_text"].get<int>(), 50);
  EXPECT_EQ(config->lm_gen_config["temp"].get<double>(), 0.0);
}

TEST(ModelConfigTest, Stt26bEn) {
  auto config = LoadModelConfig(kConfigs / "stt-2.6b-en");
  ASSERT_TRUE(config.ok()) << config.status();
  const LmConfig& lm = config->lm;
  EXPECT_EQ(lm.num_layers, 48);
  EXPECT_EQ(lm.num_heads, 32);
  EXPECT_EQ(lm.head_dim(), 64);
  EXPECT_EQ(lm.context, 375);
  EXPECT_EQ(lm.text_card, 4000);
  EXPECT_EQ(lm.ffn_hidden(), 5632);
  EXPECT_EQ(lm.extra_heads_num_heads, 0);
  EXPECT_EQ(config->tokenizer_name, "tokenizer_en_audio_4000.model");
  EXPECT_EQ(config->stt_config["audio_delay_seconds"].get<double>(), 2.5);
  EXPECT_EQ(config->mimi_codebooks(), 32);
}

TEST(ModelConfigTest, Tts16bEnFr) {
  auto config = LoadModelConfig(kConfigs / "tts-1.6b-en_fr");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model_type, ModelType::kTts);
  EXPECT_EQ(config->moshi_name, "dsm_tts_1e68beda@240.safetensors");
  EXPECT_EQ(config->mimi_name, "tokenizer-e351c8d8-checkpoint125.safetensors");
  EXPECT_EQ(config->tokenizer_name, "tokenizer_spm_8k_en_fr_audio.model");
  const LmConfig& lm = config->lm;
  EXPECT_EQ(lm.n_q, 32);
  EXPECT_EQ(lm.dep_q, 32);
  EXPECT_EQ(lm.delays.size(), 33u);
  EXPECT_EQ(lm.delays[0], 0);
  EXPECT_EQ(lm.delays[1], 0);
  EXPECT_EQ(lm.delays[32], 2);
  EXPECT_EQ(lm.max_delay(), 2);
  EXPECT_TRUE(lm.demux_second_stream);
  EXPECT_TRUE(lm.cross_attention);
  EXPECT_EQ(lm.context, 500);
  EXPECT_EQ(lm.ffn_hidden(), 5632);
  EXPECT_EQ(lm.depformer_num_layers, 4);
  EXPECT_EQ(lm.depformer_ffn_hidden(), 2048);
  EXPECT_EQ(lm.depformer_low_rank_embeddings, 128);
  EXPECT_EQ(lm.depformer_weights_per_step_schedule.size(), 32u);
  EXPECT_EQ(lm.depformer_weight_sets(), 11);
  EXPECT_EQ(lm.depformer_num_in(), 11);
  EXPECT_EQ(lm.depformer_weight_set_for_step(7), 7);
  EXPECT_EQ(lm.depformer_weight_set_for_step(8), 8);
  EXPECT_EQ(lm.depformer_weight_set_for_step(31), 10);
  ASSERT_EQ(lm.conditioners.size(), 3u);
  const ConditionerConfig& speaker = lm.conditioners.at("speaker_wavs");
  EXPECT_EQ(speaker.type, ConditionerConfig::Type::kTensor);
  EXPECT_EQ(speaker.dim, 512);
  const ConditionerConfig& cfg = lm.conditioners.at("cfg");
  EXPECT_EQ(cfg.type, ConditionerConfig::Type::kLut);
  EXPECT_EQ(cfg.n_bins, 7);
  EXPECT_EQ(cfg.dim, 16);
  EXPECT_THAT(cfg.possible_values, ElementsAre("1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0"));
  const ConditionerConfig& control = lm.conditioners.at("control");
  EXPECT_EQ(control.dim, 2048);
  EXPECT_EQ(control.n_bins, 1);
  EXPECT_THAT(control.possible_values, ElementsAre("ok"));
  ASSERT_TRUE(lm.fuser.has_value());
  EXPECT_THAT(lm.fuser->sum, ElementsAre("control", "cfg"));
  EXPECT_THAT(lm.fuser->cross, ElementsAre("speaker_wavs"));
  EXPECT_TRUE(lm.fuser->prepend.empty());
  EXPECT_TRUE(lm.fuser->cross_attention_pos_emb);
  EXPECT_EQ(lm.fuser->cross_attention_pos_emb_scale, 1.0);
  EXPECT_EQ(config->tts_config["audio_delay"].get<double>(), 1.28);
  EXPECT_EQ(config->tts_config["second_stream_ahead"].get<int>(), 2);
  EXPECT_EQ(config->model_id["sig"], "1e68beda");
  EXPECT_EQ(config->model_id["epoch"].get<int>(), 240);
  EXPECT_EQ(config->lm_gen_config["temp"].get<double>(), 0.6);
  EXPECT_EQ(config->mimi_codebooks(), 32);
}

TEST(ModelConfigTest, MoshikaRlSeamlessLike) {
  auto config = LoadModelConfig(kConfigs / "moshika-rl-seamless");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->legacy);
  EXPECT_EQ(config->model_type, ModelType::kMoshi);
  ASSERT_TRUE(config->lora_name.has_value());
  EXPECT_EQ(*config->lora_name, "loras/rl_lora.safetensors");
  EXPECT_TRUE(config->lora);
  EXPECT_EQ(config->lora_rank, 128);
  EXPECT_EQ(config->lora_scaling, 2.0);
  EXPECT_EQ(config->lm_gen_config["temp"].get<double>(), 0.8);
  EXPECT_EQ(config->lm_gen_config["top_k_text"].get<int>(), 25);
  // Same architecture as the legacy 7B (depformer_causal is accepted and dropped).
  EXPECT_EQ(config->lm.ffn_hidden(), 11264);
  EXPECT_EQ(config->lm.depformer_ffn_hidden(), 2816);
  EXPECT_EQ(config->lm.delays, LmConfig::Moshi7B().delays);
  EXPECT_EQ(config->mimi_codebooks(), 8);
}

TEST(ModelConfigTest, TinyPresetsLoadTheirMimiConfig) {
  for (const char* name : {"tiny-moshi", "tiny-stt", "tiny-tts"}) {
    auto config = LoadModelConfig(kConfigs / name);
    ASSERT_TRUE(config.ok()) << name << ": " << config.status();
    ASSERT_TRUE(config->mimi_config_name.has_value());
    EXPECT_EQ(config->mimi.seanet.n_filters, 4) << name;
    EXPECT_EQ(config->mimi.seanet.dimension, 32) << name;
    EXPECT_EQ(config->mimi.transformer.num_layers, 2) << name;
    EXPECT_EQ(config->mimi.quantizer.bins, 64) << name;
    EXPECT_EQ(config->mimi.quantizer.bins, config->lm.card) << name;
    EXPECT_EQ(config->mimi.frame_size(), 1920) << name;
  }
}

TEST(ModelConfigTest, ReferenceDefaultsApplyToAbsentKeys) {
  // Only the required keys: everything else takes the reference LMModel defaults, and the depformer
  // inherits the temporal transformer's heads/layers/gating.
  nlohmann::json json = {{"num_layers", 3}, {"context", 10}, {"n_q", 2}, {"dep_q", 1}, {"delays", {0, 0, 0}}};
  auto config = ParseModelConfigJson(json, "mini.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->lm.dim, 128);
  EXPECT_EQ(config->lm.card, 1024);
  EXPECT_EQ(config->lm.norm, "layer_norm");
  EXPECT_EQ(config->lm.gating, "none");
  EXPECT_EQ(config->lm.positional_embedding, "sin");
  EXPECT_EQ(config->lm.depformer_num_layers, 3);
  EXPECT_EQ(config->lm.depformer_num_heads, 8);
  EXPECT_EQ(config->lm.depformer_gating, "none");
  EXPECT_EQ(config->lm.depformer_pos_emb, "sin");
  EXPECT_FALSE(config->lm.depformer_weights_per_step);
  EXPECT_EQ(config->lm.depformer_weight_sets(), 1);
  EXPECT_EQ(config->lm.ffn_hidden(), 512);  // gating none: MLP of int(4 * 128)
  EXPECT_EQ(config->model_type, ModelType::kMoshi);
  EXPECT_EQ(config->moshi_name, "model.safetensors");
}

TEST(ModelConfigTest, DemuxRenameAndJsonRoundTrip) {
  nlohmann::json json = TinyJson();
  json["demux_second_text_stream"] = true;
  auto config = ParseModelConfigJson(json, "x.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->lm.demux_second_stream);
  json["demux_second_stream"] = true;
  EXPECT_THAT(std::string(ParseModelConfigJson(json, "x.json").status().message()), HasSubstr("both given"));

  for (const char* name : {"tts-1.6b-en_fr", "stt-1b-en_fr", "moshika-rl-seamless"}) {
    auto original = LoadModelConfig(kConfigs / name);
    ASSERT_TRUE(original.ok());
    auto again = ParseModelConfigJson(ModelConfigToJson(*original), "roundtrip");
    ASSERT_TRUE(again.ok()) << name << ": " << again.status();
    EXPECT_EQ(ModelConfigToJson(*again), ModelConfigToJson(*original)) << name;
  }
}

TEST(ModelConfigErrorsTest, UnknownKeyIsRejectedWithItsNameAndFile) {
  nlohmann::json json = TinyJson();
  json["hiden_scale"] = 4;
  auto config = ParseModelConfigJson(json, "dir/config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("dir/config.json"));
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("unknown key 'hiden_scale'"));

  json = TinyJson();
  json["conditioners"] = {
      {"cfg", {{"type", "lut"}, {"lut", {{"n_bins", 2}, {"dim", 4}, {"tokenizer", "noop"}, {"colour", 1}}}}}};
  config = ParseModelConfigJson(json, "c.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("'conditioners.cfg.lut.colour'"));
}

TEST(ModelConfigErrorsTest, WrongTypesNameTheKey) {
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expected;
  };
  const Case cases[] = {
      {"dim", "64", "key 'dim' must be an integer, got string"},
      {"dim", 64.5, "key 'dim' must be an integer, got number"},
      {"causal", 1, "key 'causal' must be a boolean"},
      {"delays", {0, "1"}, "key 'delays' must be a list of integers"},
      {"norm", 3, "key 'norm' must be a string"},
      {"lm_gen_config", {1, 2}, "key 'lm_gen_config' must be an object"},
      {"model_type", "asr", "key 'model_type' must be one of"},
      {"fuser", 3, "key 'fuser' must be a JSON object"},
  };
  for (const Case& c : cases) {
    nlohmann::json json = TinyJson();
    json[c.key] = c.value;
    auto config = ParseModelConfigJson(json, "t.json");
    ASSERT_FALSE(config.ok()) << c.key;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expected)) << config.status();
    EXPECT_THAT(std::string(config.status().message()), HasSubstr("t.json"));
  }
}

TEST(ModelConfigErrorsTest, SanityChecks) {
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expected;
  };
  const Case cases[] = {
      {"delays", {0, 0, 0}, "key 'delays' must have 1 + n_q = 9 entries"},
      {"dep_q", 9, "key 'dep_q' must be between 0 and n_q (8)"},
      {"num_heads", 5, "key 'dim' (64) must be divisible by num_heads (5)"},
      {"norm", "batch_norm", "key 'norm' 'batch_norm' is not one of"},
      {"context", nullptr, "key 'context' is null"},
      {"num_layers", 0, "key 'num_layers' must be positive"},
      // The rotary base: 0 or -1 ran and silently changed the model (found by a bad-input audit).
      {"max_period", 0, "key 'max_period' must be a finite number above 1"},
      {"max_period", -1, "key 'max_period' must be a finite number above 1"},
  };
  for (const Case& c : cases) {
    nlohmann::json json = TinyJson();
    json[c.key] = c.value;
    auto config = ParseModelConfigJson(json, "s.json");
    ASSERT_FALSE(config.ok()) << c.key;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expected)) << config.status();
  }
  // The depformer schedule must have dep_q entries.
  std::ifstream f(kConfigs / "tiny-tts" / "config.json");
  nlohmann::json tts = nlohmann::json::parse(f);
  tts["depformer_weights_per_step_schedule"] = {0, 1, 2};
  auto config = ParseModelConfigJson(tts, "tts.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("'depformer_weights_per_step_schedule' must have dep_q = 8 entries, got 3"));
  // A fuser naming an undeclared conditioner.
  tts = nlohmann::json::parse(std::ifstream(kConfigs / "tiny-tts" / "config.json"));
  tts["fuser"]["sum"] = {"control", "speed"};
  config = ParseModelConfigJson(tts, "tts.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("'speed', which is not in conditioners"));
  // lora_name without lora: the reference refuses.
  nlohmann::json json = TinyJson();
  json["lora_name"] = "l.safetensors";
  config = ParseModelConfigJson(json, "l.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("'lora' is false"));
}

TEST(ModelConfigErrorsTest, MissingOrEmptyDirectory) {
  auto missing = LoadModelConfig(TmpDir("parent") / "does-not-exist");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("does-not-exist does not exist"));

  auto empty = LoadModelConfig(TmpDir("empty"));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("no config.json and no model.safetensors"));
}

TEST(ModelConfigErrorsTest, BrokenJsonNamesFileAndLine) {
  const fs::path dir = TmpDir("broken");
  WriteFile(dir / "config.json", "{\n  \"dim\": 64,\n  \"n_q\": ,\n}\n");
  auto config = LoadModelConfig(dir);
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr((dir / "config.json").string()));
  EXPECT_THAT(message, HasSubstr("invalid JSON at line 3"));
}

TEST(ModelConfigErrorsTest, MissingOrBadMimiConfig) {
  const fs::path dir = TmpDir("mimi");
  nlohmann::json json = TinyJson();
  WriteFile(dir / "config.json", json.dump());
  auto config = LoadModelConfig(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("mimi_config.json"));

  std::ifstream f(kConfigs / "tiny-stt" / "mimi_config.json");
  nlohmann::json mimi = nlohmann::json::parse(f);
  mimi["quantizer"]["input_dimension"] = 48;
  WriteFile(dir / "mimi_config.json", mimi.dump());
  config = LoadModelConfig(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("key 'quantizer.input_dimension' (48) must equal seanet.dimension (32)"));
  mimi["quantizer"]["input_dimension"] = 32;
  mimi["seanet"]["n_filter"] = 8;
  WriteFile(dir / "mimi_config.json", mimi.dump());
  config = LoadModelConfig(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("unknown key 'seanet.n_filter'"));
}

TEST(ModelConfigTest, MimiConfigJsonRoundTripsAndReleasedDefaultsValidate) {
  EXPECT_TRUE(MimiConfig{}.Validate().ok());
  EXPECT_EQ(MimiConfig{}.resample_stride(), 2);
  auto parsed = ParseMimiConfigJson(MimiConfigToJson(MimiConfig{}), "released");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(MimiConfigToJson(*parsed), MimiConfigToJson(MimiConfig{}));
}

TEST(ModelConfigTest, ResolveModelFile) {
  const fs::path dir = TmpDir("resolve");
  WriteFile(dir / "a.bin", "x");
  auto plain = ResolveModelFile(dir, "a.bin");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, dir / "a.bin");
  auto file = ResolveModelFile("/nonexistent", "file://" + (dir / "a.bin").string());
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(*file, dir / "a.bin");
  auto absolute = ResolveModelFile("/nonexistent", (dir / "a.bin").string());
  ASSERT_TRUE(absolute.ok());
  auto missing = ResolveModelFile(dir, "b.bin");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("b.bin"));

  // hf:// against a fake local cache.
  const fs::path cache = dir / "hub";
  fs::create_directories(cache / "models--kyutai--tts-voices" / "snapshots" / "abc123" / "expresso");
  WriteFile(cache / "models--kyutai--tts-voices" / "snapshots" / "abc123" / "expresso" / "v.safetensors",
            "x");
  setenv("HF_HUB_CACHE", cache.c_str(), 1);
  auto hf = ResolveModelFile(dir, "hf://kyutai/tts-voices/expresso/v.safetensors");
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ(*hf,
            cache / "models--kyutai--tts-voices" / "snapshots" / "abc123" / "expresso" / "v.safetensors");
  auto hf_missing = ResolveModelFile(dir, "hf://kyutai/other/x.safetensors");
  ASSERT_FALSE(hf_missing.ok());
  EXPECT_THAT(std::string(hf_missing.status().message()), HasSubstr("models--kyutai--other"));
  unsetenv("HF_HUB_CACHE");
  EXPECT_FALSE(ResolveModelFile(dir, "hf://justone").ok());
}

}  // namespace
}  // namespace monologue
