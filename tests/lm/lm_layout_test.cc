// Checkpoint key layouts: the Moshi-like (per-step depformer) and STT-like fixtures saved in the reference's
// state_dict naming (`in_projs.{i}.weight` / `out_projs.{i}.weight`,
// tests/reference/make_layout_fixtures.py), in the nn.Linear naming (`in_proj.weight`), and a LoRA file in
// the per-step naming, give exactly the reference's tokens, as the released naming does. Broken layouts are
// listed by validation.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/io/checkpoint_view.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "core/model/checkpoint_schema.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using testing_lm::Golden;
using testing_lm::LmDataDir;
using testing_lm::OpenGolden;

std::string LayoutPath(const std::string& name) {
  return std::string(MONOLOGUE_TEST_DATA_DIR) + "/layouts/" + name;
}

std::string Scratch(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  return std::string(base != nullptr ? base : ".") + "/" + name;
}

// Greedy run over a golden's inputs: the number of steps whose tokens differ from the reference's.
int64_t TokenMismatches(const std::shared_ptr<const LmModel>& model, const std::string& family,
                        const std::string& golden_name) {
  auto golden = OpenGolden(family, golden_name);
  EXPECT_NE(golden, nullptr);
  if (golden == nullptr) return -1;
  LmGenOptions o;
  o.text = {false, 0.0, 0};
  o.audio = {false, 0.0, 0};
  const at::Tensor inputs = Golden(*golden, "inputs");
  const at::Tensor tokens = Golden(*golden, "tokens");
  auto gen = LmGen::Create(model, inputs.size(1), o);
  EXPECT_TRUE(gen.ok()) << gen.status();
  if (!gen.ok()) return -1;
  int64_t mismatches = 0;
  for (int64_t s = 0; s < inputs.size(0); ++s) {
    auto r = (*gen)->Step(inputs[s], at::Tensor());
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !at::equal(r->tokens, tokens[s])) ++mismatches;
  }
  return mismatches;
}

ModelConfig Config(const std::string& family) {
  auto config = LoadModelConfig(LmDataDir(family));
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ModelConfig{};
}

TEST(LmLayoutTest, MoshiStateDictNamingWithPerStepDepformerGivesTheReferenceTokens) {
  const ModelConfig config = Config("moshi");
  auto model = LmModel::LoadFile(config.lm, LayoutPath("moshi_state_dict.safetensors"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(TokenMismatches(*model, "moshi", "greedy"), 0);
}

TEST(LmLayoutTest, SttStateDictNamingGivesTheReferenceTokens) {
  const ModelConfig config = Config("stt");
  auto model = LmModel::LoadFile(config.lm, LayoutPath("stt_state_dict.safetensors"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(TokenMismatches(*model, "stt", "greedy"), 0);
}

TEST(LmLayoutTest, PerStepLoraFileIsFusedLikeTheReference) {
  const ModelConfig config = Config("moshi");
  LmLoadOptions load;
  load.lora_path = LayoutPath("moshi_lora_state_dict.safetensors");
  load.lora_scaling = 2.0;
  auto model = LmModel::LoadFile(config.lm, LayoutPath("moshi_state_dict.safetensors"), load);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(TokenMismatches(*model, "moshi", "lora_greedy"), 0);
  // The same LoRA in the fused naming on the released weights: the same tokens.
  load.lora_path = LmDataDir("moshi") + "/lora.safetensors";
  auto released = LmModel::LoadFile(config.lm, LmDataDir("moshi") + "/model.safetensors", load);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(TokenMismatches(*released, "moshi", "lora_greedy"), 0);
}

// Rewrites the released Moshi-like file with `rename` applied to every key.
std::string Renamed(const std::string& out_name, const std::function<std::string(const std::string&)>& rename,
                    const std::string& drop = "") {
  auto file = SafeTensorsFile::Open(LmDataDir("moshi") + "/model.safetensors");
  EXPECT_TRUE(file.ok());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const SafeTensorInfo& info : (*file)->tensors()) {
    if (!drop.empty() && info.name == drop) continue;
    tensors.emplace_back(rename(info.name), *(*file)->Load(info.name));
  }
  const std::string path = Scratch(out_name);
  EXPECT_TRUE(WriteSafeTensors(path, tensors).ok());
  return path;
}

TEST(LmLayoutTest, LinearNamingGivesTheReferenceTokens) {
  const std::string path = Renamed("linear.safetensors", [](const std::string& n) {
    return absl::EndsWith(n, ".in_proj_weight") ? n.substr(0, n.size() - 15) + ".in_proj.weight" : n;
  });
  auto view = CheckpointView::Open(path);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ((*view)->LayoutSummary(),
            "released (in_proj_weight, out_proj.weight) + linear (in_proj.weight, out_proj.weight)");
  const ModelConfig config = Config("moshi");
  auto model = LmModel::LoadFile(config.lm, path);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(TokenMismatches(*model, "moshi", "greedy"), 0);
}

TEST(LmLayoutTest, ValidationListsEveryProblemOfAnIncompletePerStepSet) {
  const ModelConfig config = Config("moshi");
  auto full = CheckpointView::Open(LayoutPath("moshi_state_dict.safetensors"));
  ASSERT_TRUE(full.ok());
  EXPECT_EQ((*full)->LayoutSummary(), "per-step (in_projs.{i}.weight, out_projs.{i}.weight)");
  EXPECT_TRUE(ValidateCheckpoint(**full, ExpectedLmTensors(config.lm)).ok());
  const std::string fused = "depformer.layers.0.self_attn.in_proj_weight";
  ASSERT_NE((*full)->Find(fused), nullptr);
  EXPECT_EQ((*full)->SourceNames(fused).size(), 8u);
  EXPECT_EQ((*full)->Find(fused)->shape, (std::vector<int64_t>{8 * 3 * 32, 32}));

  // Drop step 3 of one depformer layer: the set is incomplete, so its parts stay under their own names.
  auto file = SafeTensorsFile::Open(LayoutPath("moshi_state_dict.safetensors"));
  ASSERT_TRUE(file.ok());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const SafeTensorInfo& info : (*file)->tensors()) {
    if (info.name == "depformer.layers.0.self_attn.in_projs.3.weight") continue;
    tensors.emplace_back(info.name, *(*file)->Load(info.name));
  }
  const std::string broken = Scratch("broken.safetensors");
  ASSERT_TRUE(WriteSafeTensors(broken, tensors).ok());
  auto view = CheckpointView::Open(broken);
  ASSERT_TRUE(view.ok());
  absl::Status status = ValidateCheckpoint(**view, ExpectedLmTensors(config.lm));
  ASSERT_FALSE(status.ok());
  const std::string message(status.message());
  EXPECT_NE(message.find("missing tensor depformer.layers.0.self_attn.in_proj_weight [768, 32]"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("unexpected tensor depformer.layers.0.self_attn.in_projs.0.weight [96, 32]"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("1 missing, 7 unexpected"), std::string::npos) << message;
  auto load = LmModel::LoadFile(config.lm, broken);
  ASSERT_FALSE(load.ok());
  EXPECT_NE(load.status().message().find("depformer.layers.0.self_attn.in_proj_weight"), std::string::npos)
      << load.status();

  // A set with the wrong number of steps is mis-shaped, and the message names the file's keys.
  std::vector<std::pair<std::string, at::Tensor>> extra;
  for (const SafeTensorInfo& info : (*file)->tensors())
    extra.emplace_back(info.name, *(*file)->Load(info.name));
  extra.emplace_back("depformer.layers.1.self_attn.out_projs.8.weight", at::zeros({32, 32}));
  const std::string nine = Scratch("nine.safetensors");
  ASSERT_TRUE(WriteSafeTensors(nine, extra).ok());
  auto nine_view = CheckpointView::Open(nine);
  ASSERT_TRUE(nine_view.ok());
  status = ValidateCheckpoint(**nine_view, ExpectedLmTensors(config.lm));
  EXPECT_NE(status.message().find("tensor depformer.layers.1.self_attn.out_proj.weight (from "
                                  "depformer.layers.1.self_attn.out_projs.0.weight .. "
                                  "depformer.layers.1.self_attn.out_projs.8.weight) has shape [288, 32], "
                                  "expected [256, 32]"),
            std::string::npos)
      << status;
}

}  // namespace
}  // namespace monologue
