// End-to-end tests of `monologue info`: the built binary on random-weight model directories generated here
// through the library (tiny ones of each family, a real-size Mimi file, a real-size config), and on broken
// directories (missing file, truncated weights, wrong shapes, bad config).
#include <ftw.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/config/model_config.h"
#include "core/model/checkpoint_schema.h"
#include "core/model/presets.h"
#include "core/model/random_model.h"
#include "tests/common/process.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kData(MONOLOGUE_TEST_DATA_DIR);
const fs::path kTokenizer = kData / "tokenizers" / "tiny_en_fr_400.model";

// std::filesystem::remove_all is avoided: libtorch.so exports a copy that crashes on non-empty dirs.
int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }
fs::path FreshDir(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "info_test" / name;
  ::nftw(dir.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  fs::create_directories(dir);
  return dir;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

using test_process::RunResult;

RunResult RunInfo(const std::string& args) { return test_process::RunMonologue("info " + args); }

fs::path MakeTiny(const std::string& preset, const std::string& name, at::ScalarType dtype = at::kBFloat16) {
  auto p = GetPreset(preset);
  EXPECT_TRUE(p.ok()) << p.status();
  const fs::path dir = FreshDir(name);
  RandomModelOptions options;
  options.seed = 5;
  options.lm_dtype = dtype;
  options.tokenizer = kTokenizer;
  auto written = WriteRandomModelDir(p->config, p->mimi_only, dir, options);
  EXPECT_TRUE(written.ok()) << written.status();
  return dir;
}

TEST(InfoCommandTest, TinyFamiliesAreDescribedAndValid) {
  struct Case {
    const char* preset;
    const char* type;
    const char* expected_text;
  };
  const Case cases[] = {
      {"tiny-moshi", "moshi", "depformer: dim 32, 2 layers, 2 heads"},
      {"tiny-stt", "stt", "extra heads: 4 x 6"},
      {"tiny-tts", "tts", "conditioners: cfg (lut, 7 values, dim 8), control (lut, 1 values, dim 64)"},
  };
  for (const Case& c : cases) {
    const fs::path dir = MakeTiny(c.preset, c.preset);
    RunResult r = RunInfo(dir.string());
    EXPECT_EQ(r.exit_code, 0) << c.preset << "\n" << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("type: ", c.type, " (config.json)"))) << r.out;
    EXPECT_THAT(r.out, HasSubstr(c.expected_text)) << r.out;
    EXPECT_THAT(r.out, HasSubstr("vocabulary 400 [ok]")) << r.out;
    EXPECT_THAT(r.out, HasSubstr("lm weights: model.safetensors")) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;

    // The JSON report carries the numbers.
    RunResult j = RunInfo(dir.string() + " --json");
    ASSERT_EQ(j.exit_code, 0) << j.err;
    nlohmann::json report = nlohmann::json::parse(j.out);
    auto config = LoadModelConfig(dir);
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(report["model_type"], c.type);
    EXPECT_EQ(report["lm"]["parameters"].get<int64_t>(), CountParameters(ExpectedLmTensors(config->lm)));
    EXPECT_EQ(report["lm"]["dim"].get<int64_t>(), 64);
    EXPECT_EQ(report["mimi"]["codebooks_used"].get<int64_t>(), config->mimi_codebooks());
    EXPECT_TRUE(report["problems"].empty());
    for (const auto& f : report["files"]) EXPECT_EQ(f["status"], "ok") << f.dump();
  }
}

TEST(InfoCommandTest, JsonReportsLmDtypes) {
  const fs::path dir = MakeTiny("tiny-stt", "f32", at::kFloat);
  RunResult r = RunInfo(dir.string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["lm"]["dtypes"], nlohmann::json({"F32"}));
  EXPECT_EQ(report["stt_config"]["audio_delay_seconds"].get<double>(), 0.5);
}

TEST(InfoCommandTest, RealSizeConfigOnly) {
  RunResult r = RunInfo((kData / "configs" / "stt-2.6b-en").string() + " --config-only");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("LM: dim 2048, 48 layers, 32 heads (head dim 64), FFN hidden 5632"));
  EXPECT_THAT(r.out, HasSubstr("parameters: 2 617 118 720 in 323 tensors"));
  EXPECT_THAT(r.out, HasSubstr("codebooks used 32"));
  EXPECT_THAT(r.out, HasSubstr("not checked"));

  r = RunInfo((kData / "configs" / "tts-1.6b-en_fr").string() + " --config-only --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["lm"]["tensors"].get<int>(), 418);
  EXPECT_EQ(report["lm"]["depformer"]["weight_sets"].get<int>(), 11);
  EXPECT_EQ(report["tts_config"]["second_stream_ahead"].get<int>(), 2);
}

TEST(InfoCommandTest, RealSizeMimiFile) {
  auto preset = GetPreset("mimi");
  ASSERT_TRUE(preset.ok());
  const fs::path dir = FreshDir("real-mimi");
  auto written = WriteRandomModelDir(preset->config, /*mimi_only=*/true, dir, RandomModelOptions{});
  ASSERT_TRUE(written.ok()) << written.status();
  const fs::path file = dir / kDefaultMimiName;
  RunResult r = RunInfo(file.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("type: mimi"));
  EXPECT_THAT(r.out, HasSubstr("318 tensors (F32) [ok]"));
  EXPECT_THAT(r.out, HasSubstr("parameters: 96 151 393"));
  // The same file checked against the tiny Mimi config fails with the list of mismatches.
  r = RunInfo(file.string() + " --mimi-config " +
              (kData / "configs" / "tiny-mimi" / "mimi_config.json").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("198 tensors expected, 318 in the file"));
  fs::remove(file);
}

TEST(InfoCommandTest, MissingFilesAreAllListed) {
  const fs::path dir = MakeTiny("tiny-moshi", "missing");
  fs::remove(dir / "model.safetensors");
  fs::remove(dir / "tokenizer.model");
  RunResult r = RunInfo(dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("monologue info: 2 problems"));
  EXPECT_THAT(r.err, HasSubstr("lm weights: missing file " + (dir / "model.safetensors").string()));
  EXPECT_THAT(r.err, HasSubstr("text tokenizer: missing file"));
  EXPECT_THAT(r.err, Not(HasSubstr("mimi weights")));
  EXPECT_THAT(r.out, HasSubstr("[missing]"));
}

TEST(InfoCommandTest, TruncatedWeights) {
  const fs::path dir = MakeTiny("tiny-stt", "truncated");
  const fs::path lm = dir / "model.safetensors";
  fs::resize_file(lm, fs::file_size(lm) / 2);
  RunResult r = RunInfo(dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("lm weights: " + lm.string()));
  EXPECT_THAT(r.out, HasSubstr("[unreadable]"));
}

TEST(InfoCommandTest, WeightsThatDoNotMatchTheConfig) {
  // Weights of a 2-layer model under a config that says 3 layers and a larger text vocabulary.
  const fs::path dir = MakeTiny("tiny-stt", "mismatch");
  nlohmann::json config = nlohmann::json::parse(ReadFile(dir / "config.json"));
  config["num_layers"] = 3;
  config["text_card"] = 500;
  std::ofstream(dir / "config.json") << config.dump();
  RunResult r = RunInfo(dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(
      r.err,
      HasSubstr("lm weights: " + (dir / "model.safetensors").string() +
                ": checkpoint does not match the model config (6 missing, 0 unexpected, 2 wrong shape"));
  EXPECT_THAT(r.err, HasSubstr("missing tensor transformer.layers.2.self_attn.in_proj_weight [192, 64]"));
  EXPECT_THAT(r.err, HasSubstr("tensor text_emb.weight has shape [401, 64], expected [501, 64]"));
  EXPECT_THAT(r.err, HasSubstr("tensor text_linear.weight has shape [400, 64], expected [500, 64]"));
  EXPECT_THAT(r.out, HasSubstr("vocabulary 400 [ok]"));
  EXPECT_THAT(r.out, HasSubstr("note: tokenizer vocabulary (400) differs from text_card (500)"));
}

// What a mode reads from config.json (stt_config, tts_config, lm_gen_config) is checked as its engine's Load
// checks it: `info` used to pass values that then failed (or aborted) when the model was used.
TEST(InfoCommandTest, ModeSettingsAreCheckedAsTheEnginesCheckThem) {
  struct Case {
    const char* preset;
    const char* section;
    const char* key;
    nlohmann::json value;
    const char* expected;
  };
  for (const Case& c :
       {Case{"tiny-stt", "stt_config", "audio_delay_seconds", 1e9,
             "stt_config.audio_delay_seconds must be from 0 to 60 seconds (got 1000000000.0)"},
        Case{"tiny-stt", "lm_gen_config", "temp", -1,
             "lm_gen_config: temp must be a finite number >= 0 (got -1)"},
        Case{"tiny-tts", "tts_config", "max_speakers", 0,
             "tts_config.max_speakers must be from 1 to 64 (got 0)"},
        Case{"tiny-moshi", "lm_gen_config", "top_k", 2.5,
             "lm_gen_config: top_k must be a whole number >= 1 (got 2.5)"}}) {
    const fs::path dir = MakeTiny(c.preset, std::string(c.preset) + "-settings");
    RunResult good = RunInfo(dir.string() + " --config-only");
    EXPECT_EQ(good.exit_code, 0) << c.preset << ": " << good.err;
    nlohmann::json config = nlohmann::json::parse(ReadFile(dir / "config.json"));
    config[c.section][c.key] = c.value;
    std::ofstream(dir / "config.json") << config.dump();
    RunResult bad = RunInfo(dir.string() + " --config-only");
    EXPECT_EQ(bad.exit_code, 1) << c.preset << " " << c.key;
    EXPECT_THAT(bad.err, HasSubstr((dir / "config.json").string() + ": " + c.expected)) << c.preset;
  }
}

TEST(InfoCommandTest, BadConfigAndBadPaths) {
  const fs::path dir = MakeTiny("tiny-stt", "badconfig");
  nlohmann::json config = nlohmann::json::parse(ReadFile(dir / "config.json"));
  config["num_layer"] = 3;
  std::ofstream(dir / "config.json") << config.dump();
  RunResult r = RunInfo(dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err,
              HasSubstr("monologue info: " + (dir / "config.json").string() + ": unknown key 'num_layer'"));
  EXPECT_TRUE(r.out.empty());

  std::ofstream(dir / "config.json") << "{\"dim\": 64,\n \"n_q\" 8}";
  r = RunInfo(dir.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("invalid JSON at line 2"));

  r = RunInfo((dir / "nope").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));

  r = RunInfo(FreshDir("empty").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is not a model directory"));

  // A file that is not a Mimi checkpoint: named before any Mimi report is printed (it printed the released
  // Mimi's architecture, then a safetensors error).
  r = RunInfo(std::string(MONOLOGUE_TEST_DATA_DIR) + "/asr/speech_en.wav");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not a model directory or a Mimi checkpoint"));
  EXPECT_TRUE(r.out.empty());
  r = RunInfo((MakeTiny("tiny-stt", "lmfile") / "model.safetensors").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("a safetensors file but not a Mimi checkpoint"));
  EXPECT_TRUE(r.out.empty());
}

}  // namespace
}  // namespace monologue
