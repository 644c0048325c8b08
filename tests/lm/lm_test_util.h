// Helpers shared by the LM tests: fixture paths, loading a fixture model, tensor comparisons.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/config/model_config.h"
#include "core/io/safetensors.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"

namespace monologue::testing_lm {

// Greedy decoding for text and audio (temperature 0), the reference fixtures' setting.
inline LmGenOptions Greedy() {
  LmGenOptions o;
  o.text = {false, 0.0, 0};
  o.audio = {false, 0.0, 0};
  return o;
}

inline std::string LmDataDir(const std::string& family) {
  return std::string(MONOLOGUE_TEST_DATA_DIR) + "/lm/" + family;
}

// Loads tests/data/lm/<family>/{config.json, model.safetensors} in fp32 on CPU.
inline std::shared_ptr<const LmModel> LoadFixtureModel(const std::string& family,
                                                       ModelConfig* config_out = nullptr) {
  auto config = LoadModelConfig(LmDataDir(family));
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  if (config_out != nullptr) *config_out = *config;
  auto model = LmModel::LoadFile(config->lm, LmDataDir(family) + "/model.safetensors");
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// All tensors of a golden file, by name.
inline std::shared_ptr<const SafeTensorsFile> OpenGolden(const std::string& family, const std::string& name) {
  auto file = SafeTensorsFile::Open(LmDataDir(family) + "/" + name + ".safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? *file : nullptr;
}

inline at::Tensor Golden(const SafeTensorsFile& file, const std::string& name) {
  auto t = file.Load(name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? t->clone() : at::Tensor();
}

// Logits of `steps` teacher-forced steps through a model (text logits, then depformer logits where there is a
// depformer), from random inputs drawn after at::manual_seed(seed): the same inputs on every call, so two
// runs (two models, or one model under two settings) compare output for output.
inline std::vector<at::Tensor> TeacherForcedLogits(const LmModel& m, int64_t steps, int64_t batch,
                                                   uint64_t seed) {
  const LmConfig& c = m.config();
  at::manual_seed(seed);
  LmTemporalState state = m.NewTemporalState(batch);
  if (c.cross_attention) m.SetCrossSource(state, at::randn({batch, 5, c.dim}));
  LmDepformerState dep = m.NewDepformerState(batch);
  std::vector<at::Tensor> out;
  for (int64_t s = 0; s < steps; ++s) {
    const at::Tensor tokens = at::cat(
        {at::randint(c.text_card, {batch, 1}, at::kLong), at::randint(c.card, {batch, c.n_q}, at::kLong)}, 1);
    auto r = m.ForwardText(state, tokens);
    out.push_back(r.text_logits);
    if (c.dep_q > 0) {
      const at::Tensor text = at::randint(c.text_card, {batch}, at::kLong);
      const at::Tensor audio = at::randint(c.card, {batch, c.dep_q}, at::kLong);
      out.push_back(m.DepformerTeacherForced(dep, r.transformer_out, text, audio));
    }
  }
  return out;
}

// max |a - b| / max |b| (relative to the reference's scale).
inline double RelError(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

}  // namespace monologue::testing_lm
