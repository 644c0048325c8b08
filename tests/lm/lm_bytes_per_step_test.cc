// LmModel::LinearBytesPerStep, the weight bytes `monologue bench` sets against the memory's read speed: on
// each LM fixture family (STT with extra heads, Moshi-like with a weight set per codebook, TTS with
// cross-attention and a shared-set schedule) and in f32, int8 and int4, it equals the sum over the Linear
// shapes a step reads, worked out here from the config alone.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/lm/int4_gemm.h"
#include "core/lm/int8_gemm.h"
#include "core/lm/lm_model.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using Shape = std::pair<int64_t, int64_t>;  // [N, K] of one Linear weight, once per time a step reads it

// The Linear weights one step reads, from the config: every temporal Linear (the cross-attention's query and
// output projections; its keys and values are projected once per source), the text head, every depformer
// input projection once, and for each codebook k its weight set's layers and its output head. (The extra
// heads are plain float tensors, counted apart.)
std::vector<Shape> StepShapes(const LmConfig& c) {
  std::vector<Shape> shapes;
  auto ffn = [&](int64_t d, int64_t hidden, const std::string& gating) {
    shapes.push_back({gating == "none" ? hidden : 2 * hidden, d});
    shapes.push_back({d, hidden});
  };
  const int64_t d = c.dim;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    shapes.push_back({c.attn_in_rows(), d});
    shapes.push_back({d, d});
    ffn(d, c.gating == "none" ? c.dim_feedforward() : c.ffn_hidden(), c.gating);
    if (c.cross_attention) {
      shapes.push_back({d, d});
      shapes.push_back({d, d});
    }
  }
  shapes.push_back({c.text_card_output(), d});
  if (c.dep_q > 0) {
    const int64_t dd = c.depformer_dim;
    for (int64_t i = 0; i < c.depformer_num_in(); ++i) shapes.push_back({dd, d});
    for (int64_t k = 0; k < c.dep_q; ++k) {
      for (int64_t l = 0; l < c.depformer_num_layers; ++l) {
        shapes.push_back({c.depformer_attn_in_rows(), dd});
        shapes.push_back({dd, dd});
        ffn(dd, c.depformer_gating == "none" ? c.depformer_dim_feedforward_value() : c.depformer_ffn_hidden(),
            c.depformer_gating);
      }
      shapes.push_back({c.card, dd});
    }
  }
  return shapes;
}

class LmBytesPerStepTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LmBytesPerStepTest, SumsTheLinearWeightsAStepReads) {
  ModelConfig config;
  auto f32 = testing_lm::LoadFixtureModel(GetParam(), &config);
  ASSERT_NE(f32, nullptr);
  const std::vector<Shape> shapes = StepShapes(config.lm);
  // The extra heads stay float (f32 [extra_heads_dim, D] each) whatever the dtype.
  const int64_t extra_heads = config.lm.extra_heads_num_heads * config.lm.extra_heads_dim * config.lm.dim * 4;
  int64_t f32_bytes = extra_heads, int8_bytes = extra_heads, int4_bytes = extra_heads;
  for (const auto& [n, k] : shapes) {
    f32_bytes += n * k * 4;
    int8_bytes += lm::int8::PackedBytes(n, k) + n * 8;  // values with padding, f32 scale and int32 row sum
    int4_bytes += lm::int4::PackedBytes(n, k);          // values and group scales
  }
  EXPECT_EQ(f32->LinearBytesPerStep(), f32_bytes);

  for (const auto& [dtype, expected] :
       {std::pair<at::ScalarType, int64_t>{at::kChar, int8_bytes}, {c10::ScalarType::Int4, int4_bytes}}) {
    LmLoadOptions load;
    load.dtype = dtype;
    auto quantised =
        LmModel::LoadFile(config.lm, testing_lm::LmDataDir(GetParam()) + "/model.safetensors", load);
    ASSERT_TRUE(quantised.ok()) << quantised.status();
    EXPECT_EQ((*quantised)->LinearBytesPerStep(), expected) << c10::toString(dtype);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, LmBytesPerStepTest, ::testing::Values("stt", "moshi", "tts"));

}  // namespace
}  // namespace monologue
