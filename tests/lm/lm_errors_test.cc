// Bad input gives clear statuses (naming the file, tensor or argument), never a crash.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "core/io/safetensors.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "nlohmann/json.hpp"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using ::testing::HasSubstr;

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("MONOLOGUE_TEST_TMP");
  return std::string(dir != nullptr ? dir : ".") + "/" + name;
}

ModelConfig SttConfig() {
  ModelConfig config;
  EXPECT_NE(testing_lm::LoadFixtureModel("stt", &config), nullptr);
  return config;
}

TEST(LmErrorsTest, MissingTensorIsNotFoundNamingIt) {
  ModelConfig config = SttConfig();
  auto file = SafeTensorsFile::Open(testing_lm::LmDataDir("stt") + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& info : (*file)->tensors()) {
    if (info.name == "transformer.layers.1.gating.linear_out.weight") continue;
    tensors.emplace_back(info.name, *(*file)->Load(info.name));
  }
  const std::string path = TmpPath("missing.safetensors");
  ASSERT_TRUE(WriteSafeTensors(path, tensors).ok());
  auto model = LmModel::LoadFile(config.lm, path);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("transformer.layers.1.gating.linear_out.weight"));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("missing.safetensors"));
}

// A checkpoint with a NaN or an infinity in a weight (a corrupt or badly converted file) is refused at load,
// naming the file and the tensor: it used to run and transcribe nothing.
TEST(LmErrorsTest, NonFiniteWeightsAreRefusedNamingTheTensor) {
  ModelConfig config = SttConfig();
  auto file = SafeTensorsFile::Open(testing_lm::LmDataDir("stt") + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  for (const std::string& bad : {std::string("transformer.layers.1.gating.linear_out.weight"),
                                 std::string("text_emb.weight"), std::string("out_norm.alpha")}) {
    for (const double value :
         {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::infinity()}) {
      std::vector<std::pair<std::string, at::Tensor>> tensors;
      for (const auto& info : (*file)->tensors()) {
        at::Tensor t = (*file)->Load(info.name)->clone();
        if (info.name == bad) t.view(-1)[t.numel() - 1] = value;
        tensors.emplace_back(info.name, t);
      }
      const std::string path = TmpPath("nonfinite.safetensors");
      ASSERT_TRUE(WriteSafeTensors(path, tensors).ok());
      for (const at::ScalarType dtype : {at::kFloat, at::kChar}) {
        LmLoadOptions options;
        options.dtype = dtype;
        auto model = LmModel::LoadFile(config.lm, path, options);
        ASSERT_FALSE(model.ok()) << bad;
        EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(std::string(model.status().message()),
                    HasSubstr("nonfinite.safetensors: tensor '" + bad + "' holds NaN or infinite values"));
      }
    }
  }
}

TEST(LmErrorsTest, ConfigMismatchIsInvalidArgumentNamingTensor) {
  ModelConfig config = SttConfig();
  LmConfig wrong_dim = config.lm;
  wrong_dim.text_card = 47;  // text_emb / text_linear shapes no longer match
  auto model = LmModel::LoadFile(wrong_dim, testing_lm::LmDataDir("stt") + "/model.safetensors");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("text_emb.weight"));

  LmConfig fewer_layers = config.lm;
  fewer_layers.num_layers = 1;  // layer 1's tensors are left over
  model = LmModel::LoadFile(fewer_layers, testing_lm::LmDataDir("stt") + "/model.safetensors");
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("transformer.layers.1."));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("not used"));

  model = LmModel::LoadFile(config.lm, TmpPath("does_not_exist.safetensors"));
  EXPECT_FALSE(model.ok());
}

TEST(LmErrorsTest, StepRejectsBadShapes) {
  auto model = testing_lm::LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  auto gen = LmGen::Create(model, 2);
  ASSERT_TRUE(gen.ok());
  auto r = (*gen)->Step(at::zeros({2, 7}, at::kLong));  // needs 8 input streams
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("[2, >=8]"));
  EXPECT_FALSE((*gen)->Step(at::zeros({3, 8}, at::kLong)).ok());
  EXPECT_FALSE((*gen)->Step(at::zeros({2, 8}, at::kLong), at::zeros({2, 7}, at::kLong)).ok());
  EXPECT_FALSE((*gen)->SetExecMask(at::ones({3}, at::kBool)).ok());
  EXPECT_FALSE((*gen)->Reset(at::ones({1}, at::kBool)).ok());
  EXPECT_FALSE(LmGen::Create(model, 0).ok());
}

TEST(LmErrorsTest, ConditionsAreCheckedAgainstTheModel) {
  auto model = testing_lm::LoadFixtureModel("tts");
  ASSERT_NE(model, nullptr);
  auto gen = LmGen::Create(model, 1);
  ASSERT_FALSE(gen.ok());
  EXPECT_THAT(std::string(gen.status().message()), HasSubstr("conditions"));
  auto bad_value = model->ConditionFromText("cfg", {"9.0"});
  ASSERT_FALSE(bad_value.ok());
  EXPECT_THAT(std::string(bad_value.status().message()), HasSubstr("9.0"));
  EXPECT_FALSE(model->ConditionFromText("nope", {"1.0"}).ok());
  EXPECT_FALSE(
      model->ConditionFromTensor("speaker_wavs", at::zeros({1, 3, 11}), at::ones({1, 3}, at::kBool)).ok());
  // CFG needs conditional + null rows: B rows are not enough.
  std::map<std::string, LmCondition> conds;
  conds["cfg"] = *model->ConditionFromText("cfg", {"1.0"});
  conds["control"] = *model->ConditionFromText("control", {"ok"});
  conds["speaker_wavs"] =
      *model->ConditionFromTensor("speaker_wavs", at::zeros({1, 3, 12}), at::ones({1, 3}, at::kBool));
  auto fused = model->Fuse(conds);
  ASSERT_TRUE(fused.ok());
  LmGenOptions o;
  o.cfg_coef = 2.0;
  auto cfg_gen = LmGen::Create(model, 1, o, *fused);
  ASSERT_FALSE(cfg_gen.ok());
  EXPECT_THAT(std::string(cfg_gen.status().message()), HasSubstr("CFG"));
  // An STT model takes no conditions.
  auto stt = testing_lm::LoadFixtureModel("stt");
  EXPECT_FALSE(LmGen::Create(stt, 1, {}, *fused).ok());
}

TEST(LmErrorsTest, LmGenConfigJson) {
  auto o = LmGenOptionsFromJson(
      nlohmann::json::parse(R"({"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50})"));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->audio.temperature, 0.0);
  EXPECT_EQ(o->text.top_k, 50);
  auto bad = LmGenOptionsFromJson(nlohmann::json::parse(R"({"temperature": 1})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("temperature"));
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

TEST(LmLoadTest, HibikiPatchCopiesPadEmbeddingOverEos) {
  ModelConfig config;
  auto plain = testing_lm::LoadFixtureModel("stt", &config);
  ASSERT_NE(plain, nullptr);
  LmLoadOptions load;
  load.hibiki_text_emb_patch = true;
  auto patched = LmModel::LoadFile(config.lm, testing_lm::LmDataDir("stt") + "/model.safetensors", load);
  ASSERT_TRUE(patched.ok()) << patched.status();
  LmTemporalState a = plain->NewTemporalState(1), b = (*patched)->NewTemporalState(1);
  at::Tensor eos = at::zeros({1, 33}, at::kLong), pad = at::zeros({1, 33}, at::kLong);
  eos[0][0] = 2;
  pad[0][0] = 3;
  // Patched: EOS behaves exactly like PAD; unpatched it does not.
  at::Tensor patched_eos = (*patched)->ForwardText(b, eos).text_logits;
  at::Tensor plain_pad = plain->ForwardText(a, pad).text_logits;
  EXPECT_TRUE(at::equal(patched_eos, plain_pad));
  LmTemporalState c = plain->NewTemporalState(1);
  EXPECT_FALSE(at::equal(plain->ForwardText(c, eos).text_logits, plain_pad));
  // The file is unchanged for later loads.
  auto again = testing_lm::LoadFixtureModel("stt");
  LmTemporalState d = again->NewTemporalState(1);
  EXPECT_TRUE(at::equal(again->ForwardText(d, eos).text_logits,
                        plain->ForwardText(c = plain->NewTemporalState(1), eos).text_logits));
}

}  // namespace
}  // namespace monologue
