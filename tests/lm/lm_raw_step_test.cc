// The depformer's step on plain buffers (lm::Transformer::RawStep) against the ATen step it replaces: the
// same outputs and the same KV caches bit for bit, for f32, bf16, int8 and int4 weights, gated (SiLU, GELU)
// and plain feed-forwards, per-step weight sets, 1 to 16 rows; and the operands it does not serve still take
// the ATen step.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/kernels/few_row_linear.h"
#include "core/lm/lm_transformer.h"

namespace monologue {
namespace {

enum class WeightForm { kF32, kBf16, kInt8, kInt4 };

lm::LinearWeight Weight(int64_t n, int64_t k, WeightForm form) {
  const at::Tensor w = at::randn({n, k}) / std::sqrt(static_cast<double>(k));
  lm::LinearWeight out;
  switch (form) {
    case WeightForm::kF32:
      out.weight = w;
      break;
    case WeightForm::kBf16:
      out.weight = w.to(at::kBFloat16);
      break;
    case WeightForm::kInt8:
      out = lm::QuantizeInt8(w);
      break;
    case WeightForm::kInt4:
      out = lm::QuantizeInt4(w);
      break;
  }
  return out;
}

lm::Norm RmsNorm(int64_t dim, lm::NormType type) {
  lm::Norm n;
  n.type = type;
  n.weight = (1 + 0.1 * at::randn({1, 1, dim})).contiguous();
  return n;
}

struct DepthSpec {
  int64_t dim = 64, heads = 4, hidden = 96, layers = 2, sets = 3, steps = 5;
  bool gated = true;
  lm::Activation activation = lm::Activation::kSilu;
  WeightForm form = WeightForm::kF32;
};

lm::Transformer Depformer(const DepthSpec& s) {
  lm::Transformer t;
  t.spec.dim = s.dim;
  t.spec.num_heads = s.heads;
  t.spec.capacity = s.steps;
  t.spec.context = s.steps;
  t.spec.positional = lm::PositionalEmbedding::kNone;
  for (int64_t l = 0; l < s.layers; ++l) {
    lm::TransformerLayer layer;
    layer.norm1 = RmsNorm(s.dim, lm::NormType::kRmsNormF32);
    layer.norm2 = RmsNorm(s.dim, l % 2 == 0 ? lm::NormType::kRmsNormF32 : lm::NormType::kRmsNorm);
    for (int64_t w = 0; w < s.sets; ++w) {
      layer.in_proj.push_back(Weight(3 * s.dim, s.dim, s.form));
      layer.out_proj.push_back(Weight(s.dim, s.dim, s.form));
      lm::FeedForward ffn;
      ffn.gated = s.gated;
      ffn.activation = s.activation;
      ffn.w_in = Weight(s.gated ? 2 * s.hidden : s.hidden, s.dim, s.form);
      ffn.w_out = Weight(s.dim, s.hidden, s.form);
      layer.ffn.push_back(ffn);
    }
    t.layers.push_back(layer);
  }
  return t;
}

// Runs the depformer's steps 0..steps-1 on `batch` rows with the raw step allowed or not; returns every
// step's output, then the final key and value caches of every layer.
std::vector<at::Tensor> Run(lm::Transformer& t, const DepthSpec& s, int64_t batch, bool raw,
                            const std::vector<at::Tensor>& inputs, bool* served = nullptr) {
  t.use_raw_step = raw;
  lm::KvState state = t.NewState(batch, at::kFloat, at::kCPU);
  std::vector<at::Tensor> out;
  for (int64_t k = 0; k < s.steps; ++k) {
    const lm::StepContext ctx = t.DepthContext(k, batch, k % s.sets, at::kFloat, at::kCPU);
    if (served != nullptr && k == 0) *served = t.ServesRawStep(state, ctx, inputs[static_cast<size_t>(k)]);
    out.push_back(t.Step(state, ctx, inputs[static_cast<size_t>(k)]));
  }
  for (size_t l = 0; l < t.layers.size(); ++l) {
    out.push_back(state.keys[l]);
    out.push_back(state.values[l]);
  }
  return out;
}

void ExpectSameBits(const DepthSpec& s, int64_t batch, const std::string& what) {
  at::manual_seed(batch * 7 + static_cast<int64_t>(s.form));
  lm::Transformer t = Depformer(s);
  std::vector<at::Tensor> inputs;
  for (int64_t k = 0; k < s.steps; ++k) inputs.push_back(at::randn({batch, 1, s.dim}));
  bool served = false;
  const std::vector<at::Tensor> raw = Run(t, s, batch, /*raw=*/true, inputs, &served);
  const std::vector<at::Tensor> aten = Run(t, s, batch, /*raw=*/false, inputs);
  ASSERT_TRUE(served) << what << ": the raw step should serve these operands";
  ASSERT_EQ(raw.size(), aten.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    ASSERT_EQ(raw[i].sizes(), aten[i].sizes()) << what << " tensor " << i;
    EXPECT_TRUE(raw[i].equal(aten[i]))
        << what << " tensor " << i << ": max |diff| " << (raw[i] - aten[i]).abs().max().item<double>();
    EXPECT_TRUE(raw[i].isfinite().all().item<bool>()) << what << " tensor " << i;
  }
  // The step changed its input (a step that returned its input unchanged would pass the comparison).
  EXPECT_FALSE(raw[0].equal(inputs[0])) << what;
}

TEST(LmRawStepTest, BitwiseTheAtenStepForEveryWeightForm) {
  if (!kernels::HasFewRowKernel())
    GTEST_SKIP() << "the raw step serves float weights through the few-row kernel (AVX2)";
  for (WeightForm form : {WeightForm::kF32, WeightForm::kBf16, WeightForm::kInt8, WeightForm::kInt4}) {
    for (int64_t batch : {1, 3, 16}) {
      DepthSpec s;
      s.form = form;
      ExpectSameBits(s, batch,
                     "form " + std::to_string(static_cast<int>(form)) + " batch " + std::to_string(batch));
    }
  }
}

// The raw step is one parallel region whose members split the products and the attention: the same bits on
// one thread (a team of one) and on three (uneven shares).
TEST(LmRawStepTest, BitwiseTheAtenStepOnOneAndThreeThreads) {
  if (!kernels::HasFewRowKernel()) {
    GTEST_SKIP() << "the raw step serves float weights through the few-row kernel (AVX2)";
  }
  const int before = at::get_num_threads();
  for (int threads : {1, 3}) {
    at::set_num_threads(threads);
    for (WeightForm form : {WeightForm::kF32, WeightForm::kInt8}) {
      DepthSpec s;
      s.form = form;
      s.heads = 8;
      s.dim = 96;
      for (int64_t batch : {1, 3}) {
        ExpectSameBits(s, batch,
                       "threads " + std::to_string(threads) + ", form " +
                           std::to_string(static_cast<int>(form)) + ", batch " + std::to_string(batch));
      }
    }
  }
  at::set_num_threads(std::max(1, before));
}

TEST(LmRawStepTest, BitwiseTheAtenStepForOtherFeedForwards) {
  if (!kernels::HasFewRowKernel())
    GTEST_SKIP() << "the raw step serves float weights through the few-row kernel (AVX2)";
  DepthSpec gelu_gate;
  gelu_gate.activation = lm::Activation::kGelu;
  ExpectSameBits(gelu_gate, 2, "gated GELU");
  DepthSpec plain;
  plain.gated = false;
  ExpectSameBits(plain, 2, "plain GELU feed-forward");
  DepthSpec odd;  // widths that are not multiples of the kernels' vectors
  odd.dim = 40;
  odd.heads = 5;
  odd.hidden = 37;
  odd.form = WeightForm::kInt8;
  ExpectSameBits(odd, 3, "odd widths, int8");
  odd.form = WeightForm::kInt4;
  ExpectSameBits(odd, 3, "odd widths, int4");
  DepthSpec one_set;  // one weight set shared by every step
  one_set.sets = 1;
  ExpectSameBits(one_set, 1, "one weight set");
}

TEST(LmRawStepTest, OperandsNotServedTakeTheAtenStep) {
  DepthSpec s;
  at::manual_seed(3);
  lm::Transformer t = Depformer(s);
  lm::KvState state = t.NewState(2, at::kFloat, at::kCPU);
  const lm::StepContext ctx = t.DepthContext(0, 2, 0, at::kFloat, at::kCPU);
  const at::Tensor x = at::randn({2, 1, s.dim});
  EXPECT_EQ(t.ServesRawStep(state, ctx, x), kernels::HasFewRowKernel());
  // bf16 activations, a temporal context (ring write), too many rows for f32 weights, a layer scale, a
  // LayerNorm: each goes to the ATen step.
  EXPECT_FALSE(t.ServesRawStep(state, ctx, x.to(at::kBFloat16)));
  EXPECT_FALSE(t.ServesRawStep(state, t.TemporalContext(at::zeros({2}, at::kLong), at::kFloat), x));
  lm::KvState big = t.NewState(17, at::kFloat, at::kCPU);
  EXPECT_FALSE(
      t.ServesRawStep(big, t.DepthContext(0, 17, 0, at::kFloat, at::kCPU), at::randn({17, 1, s.dim})));
  lm::Transformer scaled = t;
  scaled.layers[1].layer_scale_2 = at::ones({s.dim});
  EXPECT_FALSE(scaled.ServesRawStep(state, ctx, x));
  lm::Transformer layer_norm = t;
  layer_norm.layers[0].norm1.type = lm::NormType::kLayerNorm;
  EXPECT_FALSE(layer_norm.ServesRawStep(state, ctx, x));
  // The ATen step still runs them: 17 rows give 17 finite outputs.
  const at::Tensor y = t.Step(big, t.DepthContext(0, 17, 0, at::kFloat, at::kCPU), at::randn({17, 1, s.dim}));
  EXPECT_EQ(y.size(0), 17);
  EXPECT_TRUE(y.isfinite().all().item<bool>());
}

TEST(LmRawStepTest, EmbeddingRowsAddAreForwardPlusInput) {
  if (!kernels::HasFewRowKernel())
    GTEST_SKIP() << "the raw embedding projects through the few-row kernel (AVX2)";
  at::manual_seed(11);
  for (at::ScalarType low_rank : {at::kFloat, at::kBFloat16, at::ScalarType::Undefined}) {
    lm::Embedding emb;
    const int64_t dim = 48;
    emb.table = at::randn({33, low_rank == at::ScalarType::Undefined ? dim : 12});
    if (low_rank != at::ScalarType::Undefined) emb.low_rank = at::randn({dim, 12}).to(low_rank);
    ASSERT_TRUE(emb.ServesRows(4));
    const at::Tensor tokens = at::tensor(std::vector<int64_t>{5, -1, 0, 32}, at::kLong);
    const at::Tensor input = at::randn({4, 1, dim});
    at::Tensor out = at::empty({4, 1, dim});
    emb.ForwardRowsAdd(tokens.data_ptr<int64_t>(), 4, input.data_ptr<float>(), out.data_ptr<float>());
    const at::Tensor expected = input + emb.Forward(tokens.view({4, 1}));
    EXPECT_TRUE(out.equal(expected)) << "low rank " << low_rank;
    EXPECT_TRUE(out[1].equal(input[1])) << "token -1 adds exactly zero";
    // A token outside the table is an error that names it, as at::embedding's.
    const at::Tensor bad = at::tensor(std::vector<int64_t>{33}, at::kLong);
    EXPECT_THROW(
        emb.ForwardRowsAdd(bad.data_ptr<int64_t>(), 1, input.data_ptr<float>(), out.data_ptr<float>()),
        c10::Error);
  }
  lm::Embedding demux;
  demux.table = at::randn({8, 4});
  demux.demux = true;
  EXPECT_FALSE(demux.ServesRows(1));
}

TEST(LmRawStepTest, LinearRowsAreForward) {
  at::manual_seed(12);
  for (WeightForm form : {WeightForm::kF32, WeightForm::kBf16, WeightForm::kInt8, WeightForm::kInt4}) {
    const lm::LinearWeight w = Weight(70, 96, form);
    for (int64_t rows : {1, 5, 16}) {
      if (!w.ServesRows(rows)) {
        EXPECT_TRUE(form != WeightForm::kInt8 && form != WeightForm::kInt4)
            << "quantised weights always serve up to 32 rows";
        continue;
      }
      const at::Tensor x = at::randn({rows, 96});
      at::Tensor y = at::empty({rows, 70});
      w.ForwardRows(x.data_ptr<float>(), rows, y.data_ptr<float>());
      EXPECT_TRUE(y.equal(w.Forward(x))) << "form " << static_cast<int>(form) << " rows " << rows;
    }
  }
}

// A team member's share: parts of the output features, cut at the weight's alignment or anywhere, put
// together give ForwardRows's bits; a part out of range is an error.
TEST(LmRawStepTest, LinearRowsPartsMakeUpForwardRows) {
  at::manual_seed(13);
  for (WeightForm form : {WeightForm::kF32, WeightForm::kBf16, WeightForm::kInt8, WeightForm::kInt4}) {
    const lm::LinearWeight w = Weight(70, 96, form);
    for (int64_t rows : {1, 3}) {
      if (!w.ServesRows(rows)) continue;
      const at::Tensor x = at::randn({rows, 96});
      at::Tensor whole = at::empty({rows, 70});
      w.ForwardRows(x.data_ptr<float>(), rows, whole.data_ptr<float>());
      const int64_t a = w.RowsAlign();
      for (const std::vector<int64_t>& cuts : {std::vector<int64_t>{0, a, 5 * a, 70}, {0, 3, 37, 69, 70}}) {
        at::Tensor parts = at::full({rows, 70}, std::nanf(""));
        for (size_t i = 0; i + 1 < cuts.size(); ++i) {
          w.ForwardRowsPart(x.data_ptr<float>(), rows, parts.data_ptr<float>(), cuts[i], cuts[i + 1]);
        }
        EXPECT_TRUE(parts.equal(whole)) << "form " << static_cast<int>(form) << " rows " << rows
                                        << " cuts at " << cuts[1] << ", " << cuts[2];
      }
    }
  }
  if (kernels::HasFewRowKernel()) {
    const at::Tensor w = at::randn({8, 16});
    const at::Tensor x = at::randn({1, 16});
    at::Tensor y = at::empty({1, 8});
    EXPECT_THROW(kernels::FewRowLinearColumnsF32(x.data_ptr<float>(), 1, 16, w.data_ptr<float>(), 8,
                                                 y.data_ptr<float>(), 4, 9),
                 c10::Error);
    EXPECT_THROW(kernels::FewRowLinearColumnsF32(x.data_ptr<float>(), 1, 16, w.data_ptr<float>(), 8,
                                                 y.data_ptr<float>(), 5, 4),
                 c10::Error);
  }
}

}  // namespace
}  // namespace monologue
