// Weights and KV caches on 2 MB pages (core/util/huge_pages.h) change where the bytes lie, not what a step
// computes: the moshi-like fixture (text, depformer) and the tts-like one (cross-attention, conditioning)
// generate the same tokens with bitwise-equal logits with placement on and off, in f32, int8 and int4.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "core/util/huge_pages.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using testing_lm::Greedy;
using testing_lm::LmDataDir;

std::shared_ptr<const LmModel> Load(const std::string& family, at::ScalarType dtype, bool huge_pages) {
  SetHugePagesEnabled(huge_pages);
  auto config = LoadModelConfig(LmDataDir(family));
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  LmLoadOptions load;
  load.dtype = dtype;
  auto model = LmModel::LoadFile(config->lm, LmDataDir(family) + "/model.safetensors", load);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// Neutral conditions for a conditioned model (each LUT's first value, a random 6-step cross source, the
// same for both runs); none for the others.
LmFusedConditions Conditions(const LmModel& model, int64_t batch) {
  if (!model.has_fuser()) return {};
  std::map<std::string, LmCondition> conds;
  at::manual_seed(7);
  for (const auto& [name, cc] : model.config().conditioners) {
    if (cc.type == ConditionerConfig::Type::kLut) {
      std::optional<std::string> v;
      if (!cc.possible_values.empty()) v = cc.possible_values[0];
      conds[name] = model.ConditionFromText(name, std::vector<std::optional<std::string>>(batch, v)).value();
    } else {
      conds[name] =
          model.ConditionFromTensor(name, at::randn({batch, 6, cc.dim}), at::ones({batch, 6}, at::kBool))
              .value();
    }
  }
  return model.Fuse(conds).value();
}

void ExpectSameSteps(const std::string& family, at::ScalarType dtype) {
  SCOPED_TRACE(family + " " + c10::toString(dtype));
  std::shared_ptr<const LmModel> placed = Load(family, dtype, true);
  std::shared_ptr<const LmModel> plain = Load(family, dtype, false);
  ASSERT_NE(placed, nullptr);
  ASSERT_NE(plain, nullptr);
  const int64_t batch = 2, steps = 12;
  SetHugePagesEnabled(true);  // the first generator's KV caches on 2 MB pages too
  auto gen_placed = LmGen::Create(placed, batch, Greedy(), Conditions(*placed, batch));
  SetHugePagesEnabled(false);
  auto gen_plain = LmGen::Create(plain, batch, Greedy(), Conditions(*plain, batch));
  SetHugePagesEnabled(true);
  ASSERT_TRUE(gen_placed.ok()) << gen_placed.status();
  ASSERT_TRUE(gen_plain.ok()) << gen_plain.status();
  const LmConfig& c = placed->config();
  at::manual_seed(0);
  const at::Tensor inputs = at::randint(c.card, {steps, batch, c.n_q - c.dep_q}, at::kLong);
  for (int64_t s = 0; s < steps; ++s) {
    auto a = (*gen_placed)->Step(inputs[s]);
    auto b = (*gen_plain)->Step(inputs[s]);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_TRUE(at::equal(a->tokens, b->tokens)) << "step " << s;
    if (a->text_logits.defined() || b->text_logits.defined()) {
      ASSERT_TRUE(at::equal(a->text_logits, b->text_logits)) << "step " << s;
    }
  }
}

class LmHugePagesTest : public ::testing::Test {
 protected:
  void TearDown() override { SetHugePagesEnabled(true); }
};

TEST_F(LmHugePagesTest, PlacementChangesNoBitOfAStep) {
  for (const char* family : {"moshi", "tts"}) {
    for (const at::ScalarType dtype : {at::kFloat, at::kChar, c10::ScalarType::Int4}) {
      ExpectSameSteps(family, dtype);
    }
  }
}

}  // namespace
}  // namespace monologue
