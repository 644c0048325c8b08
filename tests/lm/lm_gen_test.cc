// LmGen against the reference LMGen on tiny random-weight models shaped like each released family
// (tests/reference/make_lm_fixtures.py): per-step text and depformer logits within 1e-5 relative error
// (fp32, CPU) and output tokens identical at every step, including the -2 values while delays fill.
#include "core/lm/lm_gen.h"

#include <ATen/ATen.h>
#include <ATen/Version.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/lm/lm_model.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using testing_lm::Golden;
using testing_lm::LoadFixtureModel;
using testing_lm::OpenGolden;
using testing_lm::RelError;

constexpr double kLogitsTolerance = 1e-5;

LmGenOptions Greedy() {
  LmGenOptions o;
  o.text = {false, 0.0, 0};
  o.audio = {false, 0.0, 0};
  o.keep_audio_logits = true;
  return o;
}

struct Comparison {
  double max_text = 0, max_audio = 0, max_heads = 0;
  int64_t token_mismatches = 0;
  int64_t steps = 0;
};

// Runs `gen` over the golden inputs and compares every step. `before_step(s)` may change masks etc.;
// `replace` gives depformer replacement tokens per step; `rows` (optional per-step bool [B]) selects the
// rows whose logits are compared (all by default).
Comparison RunAndCompare(LmGen& gen, const SafeTensorsFile& golden,
                         const std::function<void(int64_t)>& before_step,
                         const std::map<int64_t, at::Tensor>& replace = {}, bool check_audio_logits = true) {
  Comparison cmp;
  at::Tensor inputs = Golden(golden, "inputs");
  at::Tensor text_logits = Golden(golden, "text_logits");
  at::Tensor tokens = Golden(golden, "tokens");
  const bool has_audio = golden.Contains("audio_logits") && check_audio_logits;
  at::Tensor audio_logits = has_audio ? Golden(golden, "audio_logits") : at::Tensor();
  at::Tensor heads = golden.Contains("extra_heads") ? Golden(golden, "extra_heads") : at::Tensor();
  at::Tensor exec = golden.Contains("exec_mask") ? Golden(golden, "exec_mask").to(at::kBool) : at::Tensor();
  const int64_t steps = inputs.size(0);
  for (int64_t s = 0; s < steps; ++s) {
    if (before_step) before_step(s);
    auto it = replace.find(s);
    auto result = gen.Step(inputs[s], it == replace.end() ? at::Tensor() : it->second);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return cmp;
    at::Tensor rows = exec.defined() ? exec[s] : at::ones({inputs.size(1)}, at::kBool);
    at::Tensor ours_text = result->text_logits.reshape({inputs.size(1), -1});
    cmp.max_text = std::max(cmp.max_text, RelError(ours_text.index({rows}), text_logits[s].index({rows})));
    if (has_audio && result->audio_logits.defined()) {  // undefined when the depformer was replaced
      cmp.max_audio = std::max(cmp.max_audio,
                               RelError(result->audio_logits.index({rows}), audio_logits[s].index({rows})));
    }
    if (heads.defined()) {
      at::Tensor ours = at::stack(result->extra_heads, 0).squeeze(2);  // [heads, B, dim]
      cmp.max_heads = std::max(cmp.max_heads, RelError(ours, heads[s]));
    }
    if (!at::equal(result->tokens, tokens[s])) {
      ++cmp.token_mismatches;
      ADD_FAILURE() << "step " << s << ": tokens\n" << result->tokens << "\nreference\n" << tokens[s];
    }
    ++cmp.steps;
  }
  return cmp;
}

TEST(LmGenTest, MoshiLikeGreedyMatchesReference) {
  auto model = LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  auto golden = OpenGolden("moshi", "greedy");
  ASSERT_NE(golden, nullptr);
  auto gen = LmGen::Create(model, 2, Greedy());
  ASSERT_TRUE(gen.ok()) << gen.status();
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 110);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_audio, kLogitsTolerance);
  // While the acoustic delay fills (step 0), the reference returns None: our frame is all -2.
  at::Tensor tokens = Golden(*golden, "tokens");
  EXPECT_TRUE(tokens[0].eq(-2).all().item<bool>());
  EXPECT_TRUE(tokens[1].ge(0).all().item<bool>());
}

TEST(LmGenTest, MoshiLikeSeededSamplingMatchesReference) {
  // The exponential-race sampler with the CPU generator seeded like torch.manual_seed(4321): same draws.
  auto model = LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  auto golden = OpenGolden("moshi", "sampled");
  ASSERT_NE(golden, nullptr);
  LmGenOptions o;
  o.text = {true, 0.7, 5};
  o.audio = {true, 0.8, 10};
  o.seed = 4321;
  o.keep_audio_logits = true;
  auto gen = LmGen::Create(model, 2, o);
  ASSERT_TRUE(gen.ok()) << gen.status();
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 40);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_audio, kLogitsTolerance);
}

TEST(LmGenTest, MoshiLikeExecMaskAndResetMatchReference) {
  // Three slots: slot 1 joins at step 5, slot 2 restarts at step 30 and pauses at 40..42, slot 0 pauses at
  // step 50 (reference run with support_out_of_sync=True, so it returns a frame every step).
  auto model = LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  auto golden = OpenGolden("moshi", "exec_reset");
  ASSERT_NE(golden, nullptr);
  auto gen_or = LmGen::Create(model, 3, Greedy());
  ASSERT_TRUE(gen_or.ok()) << gen_or.status();
  LmGen& gen = **gen_or;
  at::Tensor exec = Golden(*golden, "exec_mask").to(at::kBool);
  at::Tensor resets = Golden(*golden, "reset_mask").to(at::kBool);
  Comparison cmp = RunAndCompare(gen, *golden, [&](int64_t s) {
    if (resets[s].any().item<bool>()) {
      ASSERT_TRUE(gen.Reset(resets[s]).ok());
    }
    ASSERT_TRUE(gen.SetExecMask(exec[s]).ok());
  });
  EXPECT_EQ(cmp.steps, 64);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_audio, kLogitsTolerance);
  // Positions: slot 0 ran 63 of 64 steps, slot 1 59, slot 2 64 - 30 - 3 after its restart.
  EXPECT_EQ(gen.positions()[0].item<int64_t>(), 63);
  EXPECT_EQ(gen.positions()[1].item<int64_t>(), 59);
  EXPECT_EQ(gen.positions()[2].item<int64_t>(), 31);
}

TEST(LmGenTest, SttLikeGreedyWithExtraHeadsMatchesReference) {
  auto model = LoadFixtureModel("stt");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->num_extra_heads(), 4);
  auto golden = OpenGolden("stt", "greedy");
  ASSERT_NE(golden, nullptr);
  LmGenOptions o = Greedy();
  o.compute_extra_heads = true;
  auto gen = LmGen::Create(model, 2, o);
  ASSERT_TRUE(gen.ok()) << gen.status();
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 105);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_heads, kLogitsTolerance);
}

// The TTS fixture's conditions: per row a cfg LUT value, the control LUT "ok", a speaker tensor with a mask.
LmFusedConditions TtsConditions(const LmModel& model, const std::vector<std::optional<std::string>>& cfg,
                                const std::vector<std::optional<std::string>>& control,
                                const at::Tensor& speaker, const at::Tensor& mask) {
  std::map<std::string, LmCondition> conds;
  auto c1 = model.ConditionFromText("cfg", cfg);
  auto c2 = model.ConditionFromText("control", control);
  auto c3 = model.ConditionFromTensor("speaker_wavs", speaker, mask);
  EXPECT_TRUE(c1.ok() && c2.ok() && c3.ok());
  conds["cfg"] = *c1;
  conds["control"] = *c2;
  conds["speaker_wavs"] = *c3;
  auto fused = model.Fuse(conds);
  EXPECT_TRUE(fused.ok()) << fused.status();
  return *fused;
}

TEST(LmGenTest, TtsLikeGreedyWithHooksAndConditionsMatchesReference) {
  auto model = LoadFixtureModel("tts");
  ASSERT_NE(model, nullptr);
  auto golden = OpenGolden("tts", "greedy");
  ASSERT_NE(golden, nullptr);
  at::Tensor speaker = Golden(*golden, "speaker");
  at::Tensor speaker_mask = Golden(*golden, "speaker_mask").to(at::kBool);
  LmFusedConditions conds = TtsConditions(*model, {"2.0", "3.5"}, {"ok", "ok"}, speaker, speaker_mask);
  EXPECT_LT(RelError(conds.sum, Golden(*golden, "condition_sum")), 1e-6);
  EXPECT_LT(RelError(conds.cross, Golden(*golden, "condition_cross")), 1e-6);

  const int64_t text_card = model->text_card(), n = text_card + 1, card = model->card(),
                dep_q = model->dep_q();
  int64_t step = 0;
  LmGenOptions o = Greedy();
  // Same hooks as the fixture: force muxed two-stream text tokens and padding, and one audio codebook.
  o.on_text = [&](at::Tensor& t) {
    for (int64_t b = 0; b < t.size(0); ++b) {
      const int64_t phase = (step + b) % 4;
      if (phase == 0) {
        const int64_t left = (7 * step + b) % text_card, right = (3 * step + 2 * b) % text_card;
        t[b].fill_(left + n * (right + 1));
      } else if (phase == 2) {
        t[b].fill_(3);
      }
    }
  };
  o.on_audio = [&](at::Tensor& a) {
    if (step % 5 == 1) a.select(1, 0).fill_(5);
  };
  auto gen = LmGen::Create(model, 2, o, conds);
  ASSERT_TRUE(gen.ok()) << gen.status();
  std::map<int64_t, at::Tensor> replace = {
      {7, at::remainder(at::arange(2 * dep_q, at::kLong).view({2, dep_q, 1}), card)}};
  Comparison cmp = RunAndCompare(
      **gen, *golden, [&](int64_t s) { step = s; }, replace);
  EXPECT_EQ(cmp.steps, 104);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_audio, kLogitsTolerance);
}

TEST(LmGenTest, TtsLikeCfgMatchesReference) {
  auto model = LoadFixtureModel("tts");
  ASSERT_NE(model, nullptr);
  auto golden = OpenGolden("tts", "cfg");
  ASSERT_NE(golden, nullptr);
  // Conditional row, then the null row (every condition dropped: LUTs absent, tensor zeroed and masked).
  at::Tensor speaker = Golden(*golden, "speaker");
  at::Tensor mask = Golden(*golden, "speaker_mask").to(at::kBool);
  LmFusedConditions conds =
      TtsConditions(*model, {"1.5", std::nullopt}, {"ok", std::nullopt},
                    at::cat({speaker, at::zeros_like(speaker)}, 0), at::cat({mask, at::zeros_like(mask)}, 0));
  LmGenOptions o = Greedy();
  o.cfg_coef = 1.5;
  auto gen = LmGen::Create(model, 1, o, conds);
  ASSERT_TRUE(gen.ok()) << gen.status();
  // (The fixture recorded the depformer logits before the CFG combination; compare text logits + tokens.)
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr, {}, /*check_audio_logits=*/false);
  EXPECT_EQ(cmp.steps, 30);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

TEST(LmGenTest, LoraFusedAtLoadMatchesReference) {
  // The Moshi-like base weights plus a rank-4 LoRA on every Linear (fused attention naming, several
  // depformer weight sets), fused like the reference's get_lora_moshi.
  ModelConfig config;
  ASSERT_NE(LoadFixtureModel("moshi", &config), nullptr);
  LmLoadOptions load;
  load.lora_path = testing_lm::LmDataDir("moshi") + "/lora.safetensors";
  load.lora_scaling = 2.0;
  auto model = LmModel::LoadFile(config.lm, testing_lm::LmDataDir("moshi") + "/model.safetensors", load);
  ASSERT_TRUE(model.ok()) << model.status();
  auto golden = OpenGolden("moshi", "lora_greedy");
  ASSERT_NE(golden, nullptr);
  auto gen = LmGen::Create(*model, 2, Greedy());
  ASSERT_TRUE(gen.ok());
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 30);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_audio, kLogitsTolerance);
}

// A `quantize: true` checkpoint (tests/reference/make_q8_fixtures.py: the Moshi-like model quantised by the
// reference's own QLinear, in the released q8 files' naming) loaded in f32: its int8 weights dequantised as
// bitsandbytes does give the reference's float model of those weights, step for step.
TEST(LmGenTest, QuantisedCheckpointInF32MatchesTheReferenceFloatModelOfItsWeights) {
  auto config = LoadModelConfig(testing_lm::LmDataDir("moshi_q8"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->lm.int8_checkpoint);
  auto model = LmModel::LoadFile(config->lm, testing_lm::LmDataDir("moshi_q8") + "/" + config->moshi_name);
  ASSERT_TRUE(model.ok()) << model.status();
  auto golden = OpenGolden("moshi_q8", "dequantized_greedy");
  ASSERT_NE(golden, nullptr);
  auto gen = LmGen::Create(*model, 2, Greedy());
  ASSERT_TRUE(gen.ok()) << gen.status();
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 40);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_audio, kLogitsTolerance);
}

// The reference's bf16 run on the instruction set ATen runs here. ATen's bf16 products round differently with
// AVX2 than with AVX-512, enough to move the reference's own STT-like logits by 1.03e-2 of their largest value
// (tests/reference/measure_lm_bf16_self_agreement.py), so each is compared with the golden of its own kind:
// on AVX2 the logits then agree bit for bit (measured on an AVX2-only CPU).
std::shared_ptr<const SafeTensorsFile> Bf16Golden(const std::string& family) {
  const bool avx2 = at::get_cpu_capability() == "AVX2";
  std::printf("bf16 golden: %s (ATen runs %s)\n", avx2 ? "bf16_greedy_avx2" : "bf16_greedy",
              at::get_cpu_capability().c_str());
  return OpenGolden(family, avx2 ? "bf16_greedy_avx2" : "bf16_greedy");
}

// bfloat16: the reference loader's casting rules (weights bf16, norm math fp32, conditioners fp32) and the
// same operation order give the reference's bf16 results.
TEST(LmGenTest, SttLikeBf16MatchesReference) {
  ModelConfig config;
  ASSERT_NE(LoadFixtureModel("stt", &config), nullptr);
  LmLoadOptions load;
  load.dtype = at::kBFloat16;
  auto model = LmModel::LoadFile(config.lm, testing_lm::LmDataDir("stt") + "/model.safetensors", load);
  ASSERT_TRUE(model.ok()) << model.status();
  auto golden = Bf16Golden("stt");
  ASSERT_NE(golden, nullptr);
  LmGenOptions o = Greedy();
  o.compute_extra_heads = true;
  auto gen = LmGen::Create(*model, 2, o);
  ASSERT_TRUE(gen.ok());
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 30);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, 1e-2);
  EXPECT_LT(cmp.max_heads, 1e-2);
  std::printf("bf16 STT-like: max relative error text %.3g, extra heads %.3g\n", cmp.max_text, cmp.max_heads);
}

TEST(LmGenTest, TtsLikeBf16MatchesReference) {
  ModelConfig config;
  ASSERT_NE(LoadFixtureModel("tts", &config), nullptr);
  LmLoadOptions load;
  load.dtype = at::kBFloat16;
  auto model = LmModel::LoadFile(config.lm, testing_lm::LmDataDir("tts") + "/model.safetensors", load);
  ASSERT_TRUE(model.ok()) << model.status();
  auto golden = Bf16Golden("tts");
  ASSERT_NE(golden, nullptr);
  LmFusedConditions conds = TtsConditions(**model, {"2.0", "3.5"}, {"ok", "ok"}, Golden(*golden, "speaker"),
                                          Golden(*golden, "speaker_mask").to(at::kBool));
  EXPECT_EQ(conds.sum.scalar_type(), at::kFloat);  // conditioners run in fp32
  auto gen = LmGen::Create(*model, 2, Greedy(), conds);
  ASSERT_TRUE(gen.ok());
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 30);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, 1e-2);
  EXPECT_LT(cmp.max_audio, 1e-2);
  std::printf("bf16 TTS-like: max relative error text %.3g, audio %.3g\n", cmp.max_text, cmp.max_audio);
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

TEST(LmGenTest, TtsLikeFewerGeneratedCodebooksMatchesReference) {
  auto model = LoadFixtureModel("tts");
  ASSERT_NE(model, nullptr);
  auto golden = OpenGolden("tts", "depq4_greedy");
  ASSERT_NE(golden, nullptr);
  LmFusedConditions conds = TtsConditions(*model, {"2.0", "3.5"}, {"ok", "ok"}, Golden(*golden, "speaker"),
                                          Golden(*golden, "speaker_mask").to(at::kBool));
  LmGenOptions o = Greedy();
  o.dep_q = 4;
  auto gen = LmGen::Create(model, 2, o, conds);
  ASSERT_TRUE(gen.ok()) << gen.status();
  EXPECT_EQ((*gen)->num_input_streams(), 4);
  Comparison cmp = RunAndCompare(**gen, *golden, nullptr);
  EXPECT_EQ(cmp.steps, 30);
  EXPECT_EQ(cmp.token_mismatches, 0);
  EXPECT_LT(cmp.max_text, kLogitsTolerance);
  EXPECT_LT(cmp.max_audio, kLogitsTolerance);
  o.dep_q = 7;
  EXPECT_FALSE(LmGen::Create(model, 2, o, conds).ok());
}

}  // namespace
}  // namespace monologue

namespace monologue {
namespace {

// CFG on a model without conditions: the null rows see their inputs masked (-1) until a per-slot step, or
// get no text input; tokens and (combined) text logits match the reference.
TEST(LmGenTest, MoshiLikeCfgVariantsMatchReference) {
  auto model = LoadFixtureModel("moshi");
  ASSERT_NE(model, nullptr);
  for (const std::string name : {"cfg_masked", "cfg_no_text"}) {
    auto golden = OpenGolden("moshi", name);
    ASSERT_NE(golden, nullptr);
    LmGenOptions o = Greedy();
    if (name == "cfg_masked") {
      o.cfg_coef = 2.0;
      o.cfg_is_masked_until = {3, 6};
    } else {
      o.cfg_coef = 1.5;
      o.cfg_is_no_text = true;
    }
    auto gen = LmGen::Create(model, 2, o);
    ASSERT_TRUE(gen.ok()) << gen.status();
    Comparison cmp = RunAndCompare(**gen, *golden, nullptr, {}, /*check_audio_logits=*/false);
    EXPECT_EQ(cmp.steps, 24) << name;
    EXPECT_EQ(cmp.token_mismatches, 0) << name;
    EXPECT_LT(cmp.max_text, kLogitsTolerance) << name;
  }
}

}  // namespace
}  // namespace monologue
