// ExpectedLmTensors / ExpectedMimiTensors against the reference implementation's own module inventories
// (tests/data/configs/reference_schemas.json, written by tests/reference/check_schemas.py from the
// reference loaders on the meta device), the released totals, and ValidateCheckpoint's reports.
#include "core/model/checkpoint_schema.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/config/model_config.h"
#include "core/io/safetensors.h"
#include "core/model/random_model.h"
#include "tests/config/test_dirs.h"

namespace monologue {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kConfigs = fs::path(MONOLOGUE_TEST_DATA_DIR) / "configs";

fs::path TmpDir(const std::string& name) { return testing_dirs::FreshDir("checkpoint_schema_test", name); }

const nlohmann::json& ReferenceSchemas() {
  static const nlohmann::json* json = [] {
    std::ifstream f(kConfigs / "reference_schemas.json");
    return new nlohmann::json(nlohmann::json::parse(f));
  }();
  return *json;
}

std::string ClassName(TensorClass c) {
  switch (c) {
    case TensorClass::kWeight:
      return "weight";
    case TensorClass::kConditioner:
      return "conditioner";
    case TensorClass::kBuffer:
      return "buffer";
    case TensorClass::kInt8Weight:
      return "int8 weight";
    case TensorClass::kInt8Scale:
      return "int8 scale";
  }
  return "";
}

void ExpectSameInventory(const std::vector<TensorSpec>& ours, const nlohmann::json& reference,
                         const std::string& what) {
  std::map<std::string, std::pair<std::vector<int64_t>, std::string>> expected, actual;
  for (const auto& item : reference) {
    expected[item["name"]] = {item["shape"].get<std::vector<int64_t>>(), item["class"].get<std::string>()};
  }
  for (const TensorSpec& spec : ours) {
    EXPECT_TRUE(actual.emplace(spec.name, std::make_pair(spec.shape, ClassName(spec.tensor_class))).second)
        << what << ": duplicate " << spec.name;
  }
  for (const auto& [name, value] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      ADD_FAILURE() << what << ": we do not expect reference tensor " << name;
      continue;
    }
    EXPECT_EQ(it->second.first, value.first) << what << ": shape of " << name;
    EXPECT_EQ(it->second.second, value.second) << what << ": class of " << name;
  }
  for (const auto& [name, value] : actual) {
    EXPECT_TRUE(expected.count(name)) << what << ": reference has no tensor " << name;
  }
  EXPECT_EQ(actual.size(), expected.size()) << what;
}

TEST(CheckpointSchemaTest, MatchesReferenceInventoriesForEveryFixtureConfig) {
  int compared = 0;
  for (auto it = ReferenceSchemas().begin(); it != ReferenceSchemas().end(); ++it) {
    const std::string name = it.key();
    const fs::path dir = kConfigs / name;
    MimiConfig mimi;
    if (it.value().contains("lm")) {
      auto config = LoadModelConfig(dir);
      ASSERT_TRUE(config.ok()) << name << ": " << config.status();
      ExpectSameInventory(ExpectedLmTensors(config->lm), it.value()["lm"], name + " lm");
      mimi = config->mimi;
    } else {
      std::ifstream f(dir / "mimi_config.json");
      auto parsed = ParseMimiConfigJson(nlohmann::json::parse(f), name);
      ASSERT_TRUE(parsed.ok()) << parsed.status();
      mimi = *parsed;
    }
    ExpectSameInventory(ExpectedMimiTensors(mimi), it.value()["mimi"], name + " mimi");
    ++compared;
  }
  EXPECT_GE(compared, 9);  // 5 released families + 4 tiny presets
}

TEST(CheckpointSchemaTest, ReleasedTotals) {
  const std::vector<TensorSpec> moshi = ExpectedLmTensors(LmConfig::Moshi7B());
  EXPECT_EQ(CountParameters(moshi), 7'687'729'152);

  auto stt26 = LoadModelConfig(kConfigs / "stt-2.6b-en");
  ASSERT_TRUE(stt26.ok());
  EXPECT_EQ(CountParameters(ExpectedLmTensors(stt26->lm)), 2'617'118'720);

  auto tts = LoadModelConfig(kConfigs / "tts-1.6b-en_fr");
  ASSERT_TRUE(tts.ok());
  const std::vector<TensorSpec> tts_specs = ExpectedLmTensors(tts->lm);
  EXPECT_EQ(tts_specs.size(), 418u);
  int conditioners = 0;
  for (const TensorSpec& s : tts_specs) conditioners += s.tensor_class == TensorClass::kConditioner;
  EXPECT_EQ(conditioners, 8);
  // 3 683 672 576 bytes of data: 410 bf16 tensors + 8 f32 ones.
  EXPECT_EQ(2 * CountParameters(tts_specs, TensorClass::kWeight) +
                4 * CountParameters(tts_specs, TensorClass::kConditioner),
            3'683'672'576);

  const std::vector<TensorSpec> mimi = ExpectedMimiTensors(MimiConfig{});
  EXPECT_EQ(mimi.size(), 318u);
  // 384 644 900-byte file, all F32.
  EXPECT_EQ(4 * CountParameters(mimi), 96'151'393 * 4);
}

TEST(CheckpointSchemaTest, SpecificReleasedShapes) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const TensorSpec& s : ExpectedLmTensors(LmConfig::Moshi7B())) shapes[s.name] = s.shape;
  EXPECT_EQ(shapes["depformer.layers.0.self_attn.in_proj_weight"], (std::vector<int64_t>{24576, 1024}));
  EXPECT_EQ(shapes["depformer.layers.5.gating.7.linear_out.weight"], (std::vector<int64_t>{1024, 2816}));
  EXPECT_EQ(shapes["transformer.layers.31.gating.linear_in.weight"], (std::vector<int64_t>{22528, 4096}));
  EXPECT_EQ(shapes["out_norm.alpha"], (std::vector<int64_t>{1, 1, 4096}));
}

TEST(ValidateCheckpointTest, GeneratedCheckpointValidates) {
  auto config = LoadModelConfig(kConfigs / "tiny-tts");
  ASSERT_TRUE(config.ok());
  const fs::path path = TmpDir("ok") / "lm.safetensors";
  const auto specs = ExpectedLmTensors(config->lm);
  ASSERT_TRUE(WriteRandomCheckpoint(path.string(), specs, 3, at::kBFloat16).ok());
  auto file = SafeTensorsFile::Open(path.string());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(ValidateCheckpoint(**file, specs).ok());
  EXPECT_EQ((*file)->Find("text_emb.weight")->dtype, "BF16");
  EXPECT_EQ((*file)->Find("condition_provider.conditioners.cfg.embed.weight")->dtype, "F32");
}

TEST(ValidateCheckpointTest, ListsEveryProblem) {
  auto config = LoadModelConfig(kConfigs / "tiny-stt");
  ASSERT_TRUE(config.ok());
  const auto specs = ExpectedLmTensors(config->lm);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const TensorSpec& s : specs) {
    if (s.name == "out_norm.alpha") continue;  // missing
    if (s.name == "text_emb.weight") {
      tensors.emplace_back(s.name, at::zeros({10, 64}));  // wrong shape
    } else if (s.name == "extra_heads.2.weight") {
      tensors.emplace_back(s.name, at::zeros(s.shape, at::kInt));  // wrong dtype
    } else {
      tensors.emplace_back(s.name, at::zeros(s.shape));
    }
  }
  tensors.emplace_back("depformer_in.0.weight", at::zeros({32, 64}));  // unexpected
  const fs::path path = TmpDir("bad") / "lm.safetensors";
  ASSERT_TRUE(WriteSafeTensors(path.string(), tensors).ok());
  auto file = SafeTensorsFile::Open(path.string());
  ASSERT_TRUE(file.ok());
  absl::Status status = ValidateCheckpoint(**file, specs);
  ASSERT_FALSE(status.ok());
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr(path.string()));
  EXPECT_THAT(message, HasSubstr("1 missing, 1 unexpected, 1 wrong shape, 1 wrong dtype"));
  EXPECT_THAT(message, HasSubstr("missing tensor out_norm.alpha [1, 1, 64]"));
  EXPECT_THAT(message, HasSubstr("tensor text_emb.weight has shape [10, 64], expected [401, 64]"));
  EXPECT_THAT(message, HasSubstr("tensor extra_heads.2.weight has dtype I32"));
  EXPECT_THAT(message, HasSubstr("unexpected tensor depformer_in.0.weight [32, 64]"));
}

TEST(ValidateCheckpointTest, LongListsAreCapped) {
  // A tiny Mimi checked against the released Mimi schema: hundreds of problems, ~50 listed.
  auto tiny = LoadModelConfig(kConfigs / "tiny-stt");
  ASSERT_TRUE(tiny.ok());
  const fs::path path = TmpDir("cap") / "mimi.safetensors";
  ASSERT_TRUE(WriteRandomCheckpoint(path.string(), ExpectedMimiTensors(tiny->mimi), 0, at::kFloat).ok());
  auto file = SafeTensorsFile::Open(path.string());
  ASSERT_TRUE(file.ok());
  absl::Status status = ValidateCheckpoint(**file, ExpectedMimiTensors(MimiConfig{}));
  ASSERT_FALSE(status.ok());
  const std::string message(status.message());
  EXPECT_THAT(message, HasSubstr("more"));
  EXPECT_LE(std::count(message.begin(), message.end(), '\n'), 51);
  EXPECT_THAT(message, HasSubstr("318 tensors expected, 198 in the file"));
}

}  // namespace
}  // namespace monologue
