// The reference package's own LM test (kyutai-labs/moshi, moshi/tests/test_lm.py) on its committed assets
// (tests/data/lm/upstream_test_lm/, copied unchanged from moshi/tests/assets/): a tiny LMModel with
// LayerNorm, sinusoidal positions, a GELU MLP, delays [0, 1, 2, 4], a depformer with a weight schedule and
// low-rank embeddings. The reference runs its training forward (whole sequence at once); we run the same
// computation step by step through the streaming API (ring KV cache of `context` steps, teacher-forced
// depformer) and require the reference's tolerance: per-codebook mean cross-entropy within 1e-6 relative.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "core/config/lm_config.h"
#include "core/lm/lm_model.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using testing_lm::LmDataDir;

LmConfig UpstreamConfig() {
  // moshi/tests/test_lm.py::_get_lm, on top of the LMModel keyword defaults.
  LmConfig c = LmConfig::ReferenceDefaults();
  c.delays = {0, 1, 2, 4};
  c.n_q = 3;
  c.dep_q = 3;
  c.card = 32;
  c.text_card = 48;
  c.dim = 16;
  c.num_layers = 2;
  c.num_heads = 1;
  c.hidden_scale = 1;
  c.depformer_dim = 16;
  c.depformer_multi_linear = true;
  c.depformer_weights_per_step = true;
  c.depformer_weights_per_step_schedule = {0, 1, 1};
  c.depformer_low_rank_embeddings = 8;
  c.depformer_num_heads = 1;
  c.depformer_num_layers = 2;
  c.depformer_gating = "silu";
  c.context = 4;
  return c;
}

// Reference utils.cross_entropy: logsumexp - logit[target], zero where masked; mean over (B, T) per codebook.
at::Tensor MeanCrossEntropy(const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& mask) {
  at::Tensor safe = at::where(mask, targets, at::zeros({1}, targets.options()));
  at::Tensor lse = at::logsumexp(logits, -1, true);
  at::Tensor ce = (lse - logits.gather(-1, safe.unsqueeze(-1))).squeeze(-1);
  ce = at::where(mask, ce, at::zeros({1}, ce.options()));
  return ce.mean(at::IntArrayRef{0, 2});
}

TEST(LmUpstreamTest, TrainingForwardMatchesReferenceAssets) {
  const std::string dir = LmDataDir("upstream_test_lm");
  auto model_or = LmModel::LoadFile(UpstreamConfig(), dir + "/test_lm_model.safetensors");
  ASSERT_TRUE(model_or.ok()) << model_or.status();
  const LmModel& model = **model_or;
  auto codes_file = SafeTensorsFile::Open(dir + "/test_lm_codes.safetensors");
  auto out_file = SafeTensorsFile::Open(dir + "/test_lm_out.safetensors");
  ASSERT_TRUE(codes_file.ok() && out_file.ok());
  at::Tensor codes = testing_lm::Golden(**codes_file, "codes");  // [3, 4, 7]
  const int64_t batch = codes.size(0), streams = codes.size(1), steps = codes.size(2);
  const std::vector<int64_t> delays = {0, 1, 2, 4};

  // Delay each stream (initial token while the delay lasts) and prepend an initial column.
  at::Tensor initial = model.initial_tokens();
  at::Tensor delayed = at::empty({batch, streams, steps + 1}, at::kLong);
  for (int64_t k = 0; k < streams; ++k) {
    delayed.select(1, k).fill_(initial[k]);
    const int64_t d = delays[k];
    if (steps - d > 0)
      delayed.select(1, k).narrow(1, 1 + d, steps - d).copy_(codes.select(1, k).narrow(1, 0, steps - d));
  }

  LmTemporalState state = model.NewTemporalState(batch);
  LmDepformerState dep = model.NewDepformerState(batch);
  std::vector<at::Tensor> text_logits, audio_logits;
  for (int64_t t = 0; t < steps; ++t) {
    LmModel::TextStep step = model.ForwardText(state, delayed.select(2, t));
    text_logits.push_back(step.text_logits.view({batch, -1}));
    at::Tensor next = delayed.select(2, t + 1);
    audio_logits.push_back(model.DepformerTeacherForced(dep, step.transformer_out, next.select(1, 0),
                                                        next.narrow(1, 1, model.dep_q())));
  }
  at::Tensor text = at::stack(text_logits, 1).unsqueeze(1);  // [B, 1, T, 48]
  at::Tensor audio = at::stack(audio_logits, 2);             // [B, 3, T, 32]

  // Undelay the audio logits (reference _undelay_sequence), NaN where no prediction exists.
  at::Tensor mask = at::ones({batch, 3, steps}, at::kBool);
  at::Tensor undelayed = at::full_like(audio, NAN);
  for (int64_t k = 0; k < 3; ++k) {
    const int64_t d = delays[k + 1];
    undelayed.select(1, k).narrow(1, 0, steps - d).copy_(audio.select(1, k).narrow(1, d, steps - d));
    mask.select(1, k).narrow(1, steps - d, d).fill_(false);
  }
  mask = mask & codes.narrow(1, 1, 3).ne(-1);
  at::Tensor text_mask = codes.narrow(1, 0, 1).ne(-1);

  at::Tensor ref_logits = testing_lm::Golden(**out_file, "logits");
  at::Tensor ref_text = testing_lm::Golden(**out_file, "text_logits");
  EXPECT_TRUE(at::equal(testing_lm::Golden(**out_file, "mask"), mask));
  EXPECT_TRUE(at::equal(testing_lm::Golden(**out_file, "text_mask"), text_mask));

  at::Tensor ce = MeanCrossEntropy(undelayed, codes.narrow(1, 1, 3), mask);
  at::Tensor ce_ref = MeanCrossEntropy(ref_logits, codes.narrow(1, 1, 3), mask);
  EXPECT_LE(((ce - ce_ref).abs() / ce_ref).max().item<double>(), 1e-6) << ce << ce_ref;
  at::Tensor tce = MeanCrossEntropy(text, codes.narrow(1, 0, 1), text_mask);
  at::Tensor tce_ref = MeanCrossEntropy(ref_text, codes.narrow(1, 0, 1), text_mask);
  EXPECT_LE(((tce - tce_ref).abs() / tce_ref).max().item<double>(), 1e-6) << tce << tce_ref;

  // Stronger than the reference test: the logits themselves, where defined.
  at::Tensor valid = mask.unsqueeze(-1).expand_as(undelayed);
  EXPECT_LT((undelayed.masked_select(valid) - ref_logits.masked_select(valid)).abs().max().item<double>(),
            1e-5);
  EXPECT_LT((text - ref_text).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace monologue
