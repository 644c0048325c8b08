// The random-weight generator: presets equal the committed fixture configs, output is deterministic and
// follows the per-tensor init rule, and the streaming writer produces files the reader accepts.
#include "core/model/random_model.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/io/safetensors.h"
#include "core/model/deterministic_weights.h"
#include "core/model/presets.h"
#include "core/model/safetensors_stream_writer.h"
#include "tests/config/test_dirs.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kConfigs = fs::path(MONOLOGUE_TEST_DATA_DIR) / "configs";

std::string ReadFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(PresetsTest, TinyPresetsEqualTheCommittedFixtureConfigs) {
  for (const char* name : {"tiny-moshi", "tiny-stt", "tiny-tts"}) {
    auto preset = GetPreset(name);
    ASSERT_TRUE(preset.ok()) << preset.status();
    auto fixture = LoadModelConfig(kConfigs / name);
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    EXPECT_EQ(ModelConfigToJson(preset->config), ModelConfigToJson(*fixture)) << name;
    EXPECT_EQ(MimiConfigToJson(preset->config.mimi), MimiConfigToJson(fixture->mimi)) << name;
  }
  for (const char* name : {"stt-1b-en_fr", "stt-2.6b-en", "tts-1.6b-en_fr"}) {
    auto preset = GetPreset(name);
    ASSERT_TRUE(preset.ok()) << preset.status();
    auto fixture = LoadModelConfig(kConfigs / name);
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    EXPECT_EQ(ModelConfigToJson(preset->config), ModelConfigToJson(*fixture)) << name;
  }
  auto legacy = GetPreset("moshi-7b");
  ASSERT_TRUE(legacy.ok());
  EXPECT_TRUE(legacy->config.legacy);
  EXPECT_FALSE(GetPreset("huge").ok());
  EXPECT_THAT(std::string(GetPreset("huge").status().message()), HasSubstr("tiny-stt"));
}

TEST(RandomModelTest, DeterministicAndFollowsTheInitRule) {
  auto preset = GetPreset("tiny-tts");
  ASSERT_TRUE(preset.ok());
  RandomModelOptions options;
  options.seed = 11;
  const fs::path a = testing_dirs::FreshDir("random_model_test", "a");
  const fs::path b = testing_dirs::FreshDir("random_model_test", "b");
  const fs::path c = testing_dirs::FreshDir("random_model_test", "c");
  ASSERT_TRUE(WriteRandomModelDir(preset->config, false, a, options).ok());
  ASSERT_TRUE(WriteRandomModelDir(preset->config, false, b, options).ok());
  options.seed = 12;
  auto written = WriteRandomModelDir(preset->config, false, c, options);
  ASSERT_TRUE(written.ok());
  EXPECT_THAT(written->notes.back(), HasSubstr("tokenizer.model not written"));
  EXPECT_EQ(ReadFile(a / "model.safetensors"), ReadFile(b / "model.safetensors"));
  EXPECT_EQ(ReadFile(a / "mimi.safetensors"), ReadFile(b / "mimi.safetensors"));
  EXPECT_NE(ReadFile(a / "model.safetensors"), ReadFile(c / "model.safetensors"));

  // The written directory loads back as the same config.
  auto loaded = LoadModelConfig(a);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(ModelConfigToJson(*loaded), ModelConfigToJson(preset->config));

  auto file = SafeTensorsFile::Open((a / "model.safetensors").string());
  ASSERT_TRUE(file.ok());
  for (const TensorSpec& spec : ExpectedLmTensors(preset->config.lm)) {
    auto t = (*file)->Load(spec.name);
    ASSERT_TRUE(t.ok()) << spec.name;
    const at::ScalarType want = spec.tensor_class == TensorClass::kWeight ? at::kBFloat16 : at::kFloat;
    ASSERT_EQ(t->scalar_type(), want) << spec.name;
    at::Tensor expected = (spec.init_scale == 0.0f ? at::full(spec.shape, spec.init_offset)
                                                   : DeterministicTensor(11, spec.name, spec.shape,
                                                                         spec.init_scale, spec.init_offset))
                              .to(want);
    EXPECT_TRUE(at::equal(*t, expected)) << spec.name;
  }
  // Sane magnitudes: norms are ones, projections have std ~ 1/sqrt(fan_in).
  auto alpha = (*file)->Load("out_norm.alpha");
  EXPECT_TRUE(at::equal(alpha->to(at::kFloat), at::ones({1, 1, 64})));
  auto w = (*file)->Load("transformer.layers.0.gating.linear_in.weight");
  EXPECT_NEAR(w->to(at::kFloat).std().item<float>(), 1.0 / 8.0, 0.01);
}

TEST(RandomModelTest, MimiCodebooksArePositiveAndFinite) {
  const fs::path dir = testing_dirs::FreshDir("random_model_test", "mimi");
  auto preset = GetPreset("tiny-mimi");
  ASSERT_TRUE(preset.ok());
  ASSERT_TRUE(WriteRandomModelDir(preset->config, true, dir, {}).ok());
  EXPECT_TRUE(fs::exists(dir / "mimi_config.json"));
  EXPECT_FALSE(fs::exists(dir / "config.json"));
  auto file = SafeTensorsFile::Open((dir / "mimi.safetensors").string());
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(ValidateCheckpoint(**file, ExpectedMimiTensors(TinyMimiConfig())).ok());
  auto usage = (*file)->Load("quantizer.rvq_rest.vq.layers.30._codebook.cluster_usage");
  ASSERT_TRUE(usage.ok());
  EXPECT_GE(usage->min().item<float>(), 0.5f);
  auto init = (*file)->Load("quantizer.rvq_first.vq.layers.0._codebook._initialized");
  EXPECT_EQ(init->item<float>(), 1.0f);
}

TEST(RandomModelTest, RejectsNonPlainFileNames) {
  auto preset = GetPreset("tiny-stt");
  ASSERT_TRUE(preset.ok());
  ModelConfig config = preset->config;
  config.moshi_name = "hf://kyutai/x/model.safetensors";
  auto result = WriteRandomModelDir(config, false, testing_dirs::FreshDir("random_model_test", "hf"), {});
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("only plain file names"));
}

TEST(SafeTensorsStreamWriterTest, WritesInDeclaredOrderAndChecksEachTensor) {
  const fs::path dir = testing_dirs::FreshDir("random_model_test", "writer");
  const std::string path = (dir / "w.safetensors").string();
  {
    auto writer =
        SafeTensorsStreamWriter::Create(path, {{"b", at::kFloat, {2, 3}}, {"a", at::kBFloat16, {4}}});
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->next_name(), "b");
    // Wrong shape / dtype for the next entry.
    EXPECT_FALSE((*writer)->Write(at::zeros({3, 2})).ok());
    EXPECT_FALSE((*writer)->Write(at::zeros({2, 3}, at::kDouble)).ok());
    ASSERT_TRUE((*writer)->Write(at::arange(6, at::kFloat).view({2, 3}).t().t()).ok());
    EXPECT_FALSE((*writer)->Finish().ok());  // "a" not written yet
    ASSERT_TRUE((*writer)->Write(at::full({4}, 2.5, at::kBFloat16)).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
    EXPECT_EQ(fs::file_size(path), (*writer)->file_size());
  }
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(at::equal(*(*file)->Load("b"), at::arange(6, at::kFloat).view({2, 3})));
  EXPECT_TRUE(at::equal(*(*file)->Load("a"), at::full({4}, 2.5, at::kBFloat16)));

  // An abandoned writer leaves nothing under the final name.
  const std::string abandoned = (dir / "abandoned.safetensors").string();
  {
    auto writer = SafeTensorsStreamWriter::Create(abandoned, {{"x", at::kFloat, {1}}});
    ASSERT_TRUE(writer.ok());
  }
  EXPECT_FALSE(fs::exists(abandoned));
  // Nor does it touch a file already there.
  const auto size_before = fs::file_size(path);
  {
    auto writer = SafeTensorsStreamWriter::Create(path, {{"x", at::kFloat, {1}}});
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(at::ones({1})).ok());
  }
  EXPECT_EQ(fs::file_size(path), size_before);
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_EQ(entry.path().filename(), "w.safetensors");  // no temporary file left behind
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  EXPECT_FALSE(SafeTensorsStreamWriter::Create(path, {{"x", at::kFloat, {1}}, {"x", at::kFloat, {1}}}).ok());
}

}  // namespace
}  // namespace monologue
