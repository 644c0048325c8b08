// The LM's CUDA path against the reference fixtures the CPU tests use (tests/data/lm; skipped without a GPU,
// tests never need one): f32 on the GPU gives the reference's greedy tokens at every step and logits within
// 1e-4 relative error (cuBLAS sums in another order than the CPU); bf16 on the GPU is compared with the
// reference's bf16 run (CPU): the two round differently, so a greedy token may differ now and then (tts-like:
// 6 of 30 steps, 97.9% of tokens on an H200), and logits are compared only until the first such step.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using testing_lm::Golden;
using testing_lm::LmDataDir;
using testing_lm::OpenGolden;
using testing_lm::RelError;

struct CudaRun {
  int64_t steps = 0, token_mismatches = 0, tokens = 0, token_values_equal = 0;
  // Logits errors over the steps up to the first one whose tokens differ (inclusive): the model feeds its own
  // tokens back, so past that step the two runs see different inputs and their logits are not comparable.
  double max_text = 0, max_audio = 0;
  int64_t compared_steps = 0;
};

std::shared_ptr<const LmModel> LoadOnCuda(const std::string& family, at::ScalarType dtype) {
  auto config = LoadModelConfig(LmDataDir(family));
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  LmLoadOptions load;
  load.dtype = dtype;
  load.device = at::Device(at::kCUDA);
  auto model = LmModel::LoadFile(config->lm, LmDataDir(family) + "/model.safetensors", load);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// Greedy decoding (the fixtures' setting), keeping the depformer's logits for the comparison.
LmGenOptions Greedy() {
  LmGenOptions o = testing_lm::Greedy();
  o.keep_audio_logits = true;
  return o;
}

// Steps `gen` over the golden inputs; results come back to the CPU for the comparison.
CudaRun StepAndCompare(LmGen& gen, const SafeTensorsFile& golden) {
  CudaRun run;
  const at::Tensor inputs = Golden(golden, "inputs");
  const at::Tensor text_logits = Golden(golden, "text_logits");
  const at::Tensor tokens = Golden(golden, "tokens");
  const at::Tensor audio_logits =
      golden.Contains("audio_logits") ? Golden(golden, "audio_logits") : at::Tensor();
  for (int64_t s = 0; s < inputs.size(0); ++s) {
    auto result = gen.Step(inputs[s]);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return run;
    if (run.token_mismatches == 0) {
      const at::Tensor text = result->text_logits.to(at::kCPU, at::kFloat).reshape({inputs.size(1), -1});
      run.max_text = std::max(run.max_text, RelError(text, text_logits[s]));
      if (audio_logits.defined() && result->audio_logits.defined()) {
        run.max_audio =
            std::max(run.max_audio, RelError(result->audio_logits.to(at::kCPU, at::kFloat), audio_logits[s]));
      }
      ++run.compared_steps;
    }
    const at::Tensor ours = result->tokens.to(at::kCPU);
    run.tokens += ours.numel();
    run.token_values_equal += ours.eq(tokens[s]).sum().item<int64_t>();
    if (!at::equal(ours, tokens[s])) ++run.token_mismatches;
    ++run.steps;
  }
  return run;
}

TEST(LmCudaTest, F32GreedyMatchesTheReferenceOnEveryFamily) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  for (const std::string family : {"moshi", "stt"}) {
    auto model = LoadOnCuda(family, at::kFloat);
    ASSERT_NE(model, nullptr) << family;
    auto golden = OpenGolden(family, "greedy");
    ASSERT_NE(golden, nullptr) << family;
    LmGenOptions o = Greedy();
    auto gen = LmGen::Create(model, 2, o);
    ASSERT_TRUE(gen.ok()) << family << ": " << gen.status();
    const CudaRun run = StepAndCompare(**gen, *golden);
    std::printf("CUDA f32 %s: %lld steps, %lld with other tokens, max relative error text %.3g audio %.3g\n",
                family.c_str(), static_cast<long long>(run.steps),
                static_cast<long long>(run.token_mismatches), run.max_text, run.max_audio);
    EXPECT_GT(run.steps, 0) << family;
    EXPECT_EQ(run.token_mismatches, 0) << family;
    EXPECT_LT(run.max_text, 1e-4) << family;
    EXPECT_LT(run.max_audio, 1e-4) << family;
  }
}

TEST(LmCudaTest, Bf16GreedyAgreesWithTheReferenceBf16Run) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  for (const std::string family : {"stt", "tts"}) {
    auto model = LoadOnCuda(family, at::kBFloat16);
    ASSERT_NE(model, nullptr) << family;
    auto golden = OpenGolden(family, "bf16_greedy");
    ASSERT_NE(golden, nullptr) << family;
    LmFusedConditions conds;
    if (family == "tts") {
      std::map<std::string, LmCondition> parts;
      auto cfg = model->ConditionFromText("cfg", {std::string("2.0"), std::string("3.5")});
      auto control = model->ConditionFromText("control", {std::string("ok"), std::string("ok")});
      auto speaker = model->ConditionFromTensor("speaker_wavs", Golden(*golden, "speaker").cuda(),
                                                Golden(*golden, "speaker_mask").to(at::kBool).cuda());
      ASSERT_TRUE(cfg.ok() && control.ok() && speaker.ok());
      parts["cfg"] = *cfg;
      parts["control"] = *control;
      parts["speaker_wavs"] = *speaker;
      auto fused = model->Fuse(parts);
      ASSERT_TRUE(fused.ok()) << fused.status();
      conds = *fused;
    }
    auto gen = LmGen::Create(model, 2, Greedy(), conds);
    ASSERT_TRUE(gen.ok()) << family << ": " << gen.status();
    const CudaRun run = StepAndCompare(**gen, *golden);
    const double agreement = run.tokens > 0 ? static_cast<double>(run.token_values_equal) / run.tokens : 0.0;
    std::printf(
        "CUDA bf16 %s: %lld steps, %lld with another token somewhere, token agreement %.4f; max relative "
        "error over the first %lld steps (up to the first other token) text %.3g audio %.3g\n",
        family.c_str(), static_cast<long long>(run.steps), static_cast<long long>(run.token_mismatches),
        agreement, static_cast<long long>(run.compared_steps), run.max_text, run.max_audio);
    EXPECT_GT(run.steps, 0) << family;
    EXPECT_GE(agreement, 0.9) << family;
    EXPECT_LT(run.max_text, 5e-2) << family;
    EXPECT_LT(run.max_audio, 5e-2) << family;
  }
}

}  // namespace
}  // namespace monologue
