// One temporal layer at the released STT-1B dimensions (dim 2048, heads of 128, FFN 5632, RoPE max_period
// 1e5, context 750, text_card 8000), weights regenerated from the counter-based deterministic rule stored in
// the fixture (tests/reference/make_lm_fixtures.py::make_real_size): text logits and extra heads match the
// reference within 1e-5 relative, tokens identical.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/config/model_config.h"
#include "core/lm/lm_gen.h"
#include "core/model/deterministic_weights.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

TEST(LmRealSizeTest, Stt1bDimensionsSingleLayerMatchesReference) {
  auto golden = testing_lm::OpenGolden("stt1b_layer", "golden");
  ASSERT_NE(golden, nullptr);
  const auto& meta = golden->metadata();
  auto rules = InitRuleMetadata::Parse(meta, "stt1b_layer golden");
  ASSERT_TRUE(rules.ok()) << rules.status();
  auto config = ParseModelConfigJson(nlohmann::json::parse(meta.at("config")), "stt1b_layer config");
  ASSERT_TRUE(config.ok()) << config.status();
  std::map<std::string, at::Tensor> tensors;
  for (const std::string& name : rules->TensorNames()) {
    auto tensor = rules->Tensor(name);
    ASSERT_TRUE(tensor.ok()) << tensor.status();
    tensors[name] = *tensor;
  }
  auto model = LmModel::FromTensors(config->lm, tensors);
  ASSERT_TRUE(model.ok()) << model.status();
  tensors.clear();
  LmGenOptions o;
  o.text = {false, 0.0, 0};
  o.audio = {false, 0.0, 0};
  o.compute_extra_heads = true;
  auto gen = LmGen::Create(*model, 2, o);
  ASSERT_TRUE(gen.ok());
  at::Tensor inputs = testing_lm::Golden(*golden, "inputs");
  at::Tensor text_logits = testing_lm::Golden(*golden, "text_logits");
  at::Tensor tokens = testing_lm::Golden(*golden, "tokens");
  at::Tensor heads = testing_lm::Golden(*golden, "extra_heads");
  for (int64_t s = 0; s < inputs.size(0); ++s) {
    auto r = (*gen)->Step(inputs[s]);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_LT(testing_lm::RelError(r->text_logits.reshape({2, -1}), text_logits[s]), 1e-5) << "step " << s;
    EXPECT_LT(testing_lm::RelError(at::stack(r->extra_heads, 0).squeeze(2), heads[s]), 1e-5) << "step " << s;
    EXPECT_TRUE(at::equal(r->tokens, tokens[s])) << "step " << s;
  }
}

}  // namespace
}  // namespace monologue
