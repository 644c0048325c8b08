// `--dtype int8` and `--dtype int4` (quantised Linear weights, f32 everything else) against the f32 model on
// the LM parity fixtures: teacher-forced text and depformer logits within a stated relative error, greedy
// generation's agreement with the reference tokens (reported, with a floor), and what they refuse.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "core/kernels/cpu_isa.h"
#include "core/kernels/small_attention.h"
#include "core/lm/int4_gemm.h"
#include "core/lm/int8_gemm.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using testing_lm::Golden;
using testing_lm::LmDataDir;
using testing_lm::LoadFixtureModel;
using testing_lm::OpenGolden;
using testing_lm::RelError;

struct Quantisation {
  const char* name;
  at::ScalarType dtype;
  int bits;
  // Max relative logit error allowed. int8 per-row weights on these random-weight models give 1.7-3.3%
  // (measured: see the printed values); int4 per-32 groups give 26-46% on these tiny models, whose 16-48
  // wide rows make a group nearly a whole row, so a 4-bit step (1/8 of the group's largest value) is ~16x
  // int8's (1/127 of the row's). These bounds only catch gross errors; the kernels are held to the float
  // model of their own weights to ~1e-5 below (KernelsMatchTheFloatModelOfTheirWeights).
  double tolerance;
  // Greedy STT-like tokens equal to the reference's: a floor that only a broken path falls below.
  double greedy_floor;
};

const Quantisation kInt8{"int8", at::kChar, 8, 0.06, 0.5};
const Quantisation kInt4{"int4", c10::ScalarType::Int4, 4, 0.7, 0.3};

std::shared_ptr<const LmModel> LoadQuantised(const std::string& family, const Quantisation& q,
                                             bool dequantize_after_quantizing = false,
                                             std::optional<at::ScalarType> attention_memory = std::nullopt) {
  ModelConfig config;
  if (LoadFixtureModel(family, &config) == nullptr) return nullptr;
  LmLoadOptions load;
  load.dtype = q.dtype;
  load.dequantize_after_quantizing = dequantize_after_quantizing;
  load.attention_memory_dtype = attention_memory;
  auto model = LmModel::LoadFile(config.lm, LmDataDir(family) + "/model.safetensors", load);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

struct Errors {
  double text = 0, audio = 0;
};

// Both models step through the same random tokens (teacher forcing, so one model's choices never steer the
// other's inputs); max relative error of the quantised logits over all steps.
Errors TeacherForced(const LmModel& f32, const LmModel& qm, int64_t steps) {
  Errors e;
  const LmConfig& c = f32.config();
  const int64_t batch = 2;
  at::manual_seed(7);
  LmTemporalState s32 = f32.NewTemporalState(batch), sq = qm.NewTemporalState(batch);
  if (c.cross_attention) {
    at::Tensor cross = at::randn({batch, 5, c.dim});
    f32.SetCrossSource(s32, cross);
    qm.SetCrossSource(sq, cross);
  }
  LmDepformerState d32 = f32.NewDepformerState(batch), dq = qm.NewDepformerState(batch);
  for (int64_t s = 0; s < steps; ++s) {
    at::Tensor tokens = at::cat(
        {at::randint(c.text_card, {batch, 1}, at::kLong), at::randint(c.card, {batch, c.n_q}, at::kLong)}, 1);
    auto a = f32.ForwardText(s32, tokens);
    auto b = qm.ForwardText(sq, tokens);
    e.text = std::max(e.text, RelError(b.text_logits, a.text_logits));
    if (c.dep_q > 0) {
      at::Tensor text = at::randint(c.text_card, {batch}, at::kLong);
      at::Tensor audio = at::randint(c.card, {batch, c.dep_q}, at::kLong);
      at::Tensor la = f32.DepformerTeacherForced(d32, a.transformer_out, text, audio);
      at::Tensor lb = qm.DepformerTeacherForced(dq, b.transformer_out, text, audio);
      e.audio = std::max(e.audio, RelError(lb, la));
    }
  }
  return e;
}

void ExpectLogitsCloseToF32OnEveryFamily(const Quantisation& quant) {
  for (const std::string family : {"stt", "moshi", "tts"}) {
    auto f32 = LoadFixtureModel(family);
    auto qm = LoadQuantised(family, quant);
    ASSERT_NE(f32, nullptr);
    ASSERT_NE(qm, nullptr);
    EXPECT_EQ(qm->int8_weights(), quant.bits == 8);
    EXPECT_EQ(qm->int4_weights(), quant.bits == 4);
    EXPECT_EQ(qm->weights_dtype(), quant.dtype);
    EXPECT_FALSE(f32->int8_weights() || f32->int4_weights());
    EXPECT_EQ(qm->dtype(), at::kFloat);  // activations, norms and embeddings stay f32
    const LmQuantizationStats& q = qm->quantization();
    EXPECT_EQ(q.bits, quant.bits);
    EXPECT_GT(q.linears, 0);
    EXPECT_EQ(q.float_bytes, q.parameters * 4);
    // The fixtures' 16-48 wide rows are padded to 64 (int8) or 128 (int4) columns in the packed layout, so
    // here the sizes are not a quarter or an eighth of f32 as at the released widths (Int8Gemm and Int4Gemm
    // check the sizes).
    EXPECT_LT(q.quantized_bytes, q.float_bytes);
    EXPECT_GE(q.quantized_bytes, q.parameters * quant.bits / 8);
    const Errors e = TeacherForced(*f32, *qm, 12);
    std::printf(
        "%s %s-like: max relative error text %.3g, depformer %.3g (%lld weights, %.2f ms to quantise)\n",
        quant.name, family.c_str(), e.text, e.audio, static_cast<long long>(q.linears), q.seconds * 1e3);
    EXPECT_LT(e.text, quant.tolerance) << family;
    EXPECT_LT(e.audio, quant.tolerance) << family;
    EXPECT_GT(e.text, 0) << family << ": " << quant.name
                         << " logits identical to f32 (were the weights quantised?)";
  }
}

TEST(LmInt8, LogitsCloseToF32OnEveryFamily) { ExpectLogitsCloseToF32OnEveryFamily(kInt8); }
TEST(LmInt4, LogitsCloseToF32OnEveryFamily) { ExpectLogitsCloseToF32OnEveryFamily(kInt4); }

// The kernels against the f32 model of exactly their weights (each quantised Linear dequantised): what is
// left is the activations' 16-bit rounding in the kernels and the summation order, ~1e-4 (measured 0.8-1.4e-4
// over 12 steps); a wrong value, scale,
// layout or zero point anywhere in the model shows as an error of the weights' own rounding or more (the
// previous test's 2-45%). Both keep their cross-attention memory in f32 here: in bf16 (the default) a key
// that the two models' ~1e-5 differences round to neighbouring bf16 values spreads to ~1e-3.
void ExpectKernelsMatchTheFloatModelOfTheirWeights(const Quantisation& quant) {
  for (const std::string family : {"stt", "moshi", "tts"}) {
    auto qm = LoadQuantised(family, quant, false, at::kFloat);
    auto deq = LoadQuantised(family, quant, /*dequantize_after_quantizing=*/true, at::kFloat);
    ASSERT_NE(qm, nullptr);
    ASSERT_NE(deq, nullptr);
    EXPECT_FALSE(deq->int8_weights() || deq->int4_weights()) << "dequantised weights are float";
    const Errors e = TeacherForced(*deq, *qm, 12);
    std::printf(
        "%s %s-like against its dequantised weights in f32: max relative error text %.3g, depformer %.3g\n",
        quant.name, family.c_str(), e.text, e.audio);
    EXPECT_LT(e.text, 1e-3) << family;
    EXPECT_LT(e.audio, 1e-3) << family;
  }
}

// A quantised CPU model stores its attention memory in bf16: the temporal transformer's KV cache (every
// family) and the cross-attention keys and values (tts). Half the bytes a step reads from them: with a full
// context, 131 MB of a tts-1.6b step's KV cache in f32, 3.1 GB of Moshi 7B's. A float model keeps its own
// dtype. The logits move by the bf16 rounding of those keys and values only, far less than the weights' own
// quantisation error (the first test above).
void ExpectAttentionMemoryInBf16(const Quantisation& quant) {
  if (!kernels::ServesSmallAttentionRows(1, 16)) {
    GTEST_SKIP() << "no AVX2 attention kernel here: the memory stays f32 (ATen would widen it every step)";
  }
  for (const std::string family : {"stt", "moshi", "tts"}) {
    auto bf16_memory = LoadQuantised(family, quant);
    auto f32_memory = LoadQuantised(family, quant, false, at::kFloat);
    ModelConfig config;
    auto f32_model = LoadFixtureModel(family, &config);
    ASSERT_NE(bf16_memory, nullptr);
    ASSERT_NE(f32_memory, nullptr);
    ASSERT_NE(f32_model, nullptr);
    const LmConfig& c = bf16_memory->config();
    LmTemporalState state = bf16_memory->NewTemporalState(1);
    LmTemporalState f32_state = f32_memory->NewTemporalState(1);
    LmTemporalState float_state = f32_model->NewTemporalState(1);
    ASSERT_FALSE(state.kv.keys.empty());
    for (size_t l = 0; l < state.kv.keys.size(); ++l) {
      EXPECT_EQ(state.kv.keys[l].scalar_type(), at::kBFloat16) << family;
      EXPECT_EQ(state.kv.values[l].scalar_type(), at::kBFloat16) << family;
      EXPECT_EQ(f32_state.kv.keys[l].scalar_type(), at::kFloat) << family;
      EXPECT_EQ(float_state.kv.keys[l].scalar_type(), at::kFloat)
          << family << ": a float model keeps its dtype";
    }
    if (c.cross_attention) {
      const at::Tensor source = at::randn({1, 9, c.dim});
      bf16_memory->SetCrossSource(state, source);
      f32_memory->SetCrossSource(f32_state, source);
      f32_model->SetCrossSource(float_state, source);
      int64_t layers = 0;
      for (size_t l = 0; l < state.kv.cross_keys.size(); ++l) {
        if (!state.kv.cross_keys[l].defined()) continue;
        ++layers;
        EXPECT_EQ(state.kv.cross_keys[l].scalar_type(), at::kBFloat16);
        EXPECT_EQ(state.kv.cross_values[l].scalar_type(), at::kBFloat16);
        EXPECT_EQ(f32_state.kv.cross_keys[l].scalar_type(), at::kFloat);
        EXPECT_EQ(float_state.kv.cross_keys[l].scalar_type(), at::kFloat) << "a float model keeps its dtype";
        // The stored values are the f32 projection rounded once.
        EXPECT_TRUE(at::equal(state.kv.cross_keys[l], f32_state.kv.cross_keys[l].to(at::kBFloat16)));
      }
      EXPECT_GT(layers, 0) << "the tts-like fixture has cross-attention layers";
    }
    // The first step's first layer sees the same input in both models, so its new cache entry is the f32
    // entry rounded once (later layers differ by the rounding of what the first one read).
    at::manual_seed(3);
    const at::Tensor tokens =
        at::cat({at::randint(c.text_card, {1, 1}, at::kLong), at::randint(c.card, {1, c.n_q}, at::kLong)}, 1);
    bf16_memory->ForwardText(state, tokens);
    f32_memory->ForwardText(f32_state, tokens);
    EXPECT_TRUE(
        at::equal(state.kv.keys[0].narrow(2, 0, 1), f32_state.kv.keys[0].narrow(2, 0, 1).to(at::kBFloat16)))
        << family;
    EXPECT_TRUE(at::equal(state.kv.values[0].narrow(2, 0, 1),
                          f32_state.kv.values[0].narrow(2, 0, 1).to(at::kBFloat16)))
        << family;
    EXPECT_GT(at::abs(state.kv.keys[0].narrow(2, 0, 1)).max().item<float>(), 0)
        << family << ": entry written";
    const Errors e = TeacherForced(*f32_memory, *bf16_memory, 12);
    std::printf(
        "%s %s-like, bf16 against f32 attention memory: max relative error text %.3g, depformer %.3g\n",
        quant.name, family.c_str(), e.text, e.audio);
    EXPECT_LT(e.text, 1e-2) << family;
    EXPECT_LT(e.audio, 1e-2) << family;
  }
}

TEST(LmInt8, AttentionMemoryIsBf16) { ExpectAttentionMemoryInBf16(kInt8); }
TEST(LmInt4, AttentionMemoryIsBf16) { ExpectAttentionMemoryInBf16(kInt4); }

TEST(LmInt8, KernelsMatchTheFloatModelOfTheirWeights) {
  ExpectKernelsMatchTheFloatModelOfTheirWeights(kInt8);
}
TEST(LmInt4, KernelsMatchTheFloatModelOfTheirWeights) {
  ExpectKernelsMatchTheFloatModelOfTheirWeights(kInt4);
}

// Greedy generation with quantised weights on the STT-like fixture, tokens compared with the reference's
// (f32) greedy run: the agreement rate is printed; the floor only catches a broken path.
void ExpectSttGreedyTokensAgreeWithReference(const Quantisation& quant) {
  auto model = LoadQuantised("stt", quant);
  ASSERT_NE(model, nullptr);
  auto golden = OpenGolden("stt", "greedy");
  ASSERT_NE(golden, nullptr);
  auto gen = LmGen::Create(model, 2, testing_lm::Greedy());
  ASSERT_TRUE(gen.ok()) << gen.status();
  at::Tensor inputs = Golden(*golden, "inputs");
  at::Tensor tokens = Golden(*golden, "tokens");
  int64_t equal = 0, total = 0, first_diff = -1;
  for (int64_t s = 0; s < inputs.size(0); ++s) {
    auto r = (*gen)->Step(inputs[s]);
    ASSERT_TRUE(r.ok()) << r.status();
    at::Tensor same = r->tokens.eq(tokens[s]);
    equal += same.sum().item<int64_t>();
    total += same.numel();
    if (first_diff < 0 && !same.all().item<bool>()) first_diff = s;
  }
  const double rate = static_cast<double>(equal) / static_cast<double>(total);
  std::printf(
      "%s STT-like greedy: %.1f%% of %lld tokens equal to the reference's, first difference at step "
      "%lld of %lld\n",
      quant.name, 100 * rate, static_cast<long long>(total), static_cast<long long>(first_diff),
      static_cast<long long>(inputs.size(0)));
  EXPECT_GT(rate, quant.greedy_floor);
}

TEST(LmInt8, SttGreedyTokensAgreeWithReference) { ExpectSttGreedyTokensAgreeWithReference(kInt8); }
TEST(LmInt4, SttGreedyTokensAgreeWithReference) { ExpectSttGreedyTokensAgreeWithReference(kInt4); }

// An int4 model on a CPU without AVX-512 (the int4 AVX2 path, the other kernels' AVX2 code) gives the same
// bits as on this one: every kernel's AVX2 code repeats its AVX-512 arithmetic.
TEST(LmInt4, SameBitsCappedAtAvx2) {
  if (kernels::DetectedCpuIsa() < kernels::CpuIsa::kAvx512 ||
      lm::int4::BestPath() != lm::int4::KernelPath::kVnni)
    GTEST_SKIP() << "no AVX-512 VNNI to compare with";
  for (const std::string family : {"stt", "moshi", "tts"}) {
    auto qm = LoadQuantised(family, kInt4);
    ASSERT_NE(qm, nullptr);
    const std::vector<at::Tensor> wide = testing_lm::TeacherForcedLogits(*qm, 4, 2, 9);
    kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx2);
    ASSERT_EQ(lm::int4::BestPath(), lm::int4::KernelPath::kAvx2);
    const std::vector<at::Tensor> narrow = testing_lm::TeacherForcedLogits(*qm, 4, 2, 9);
    kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx512);
    ASSERT_EQ(wide.size(), narrow.size());
    for (size_t i = 0; i < wide.size(); ++i)
      EXPECT_TRUE(at::equal(wide[i], narrow[i])) << family << " output " << i;
  }
}

// The int8 kernel's fixed-point paths (AVX-512 VNNI, AVX2, scalar) compute the same exact integer sums, so an
// int8 model gives the same bits on every CPU, laptops and ARM included (only kAvx512, for AVX-512 CPUs
// without VNNI, keeps f32 arithmetic).
TEST(LmInt8, SameBitsOnEveryFixedPointPath) {
  const lm::int8::KernelPath best = lm::int8::BestPath();
  if (best == lm::int8::KernelPath::kAvx512) GTEST_SKIP() << "this CPU's int8 path is the f32 AVX-512 one";
  std::vector<lm::int8::KernelPath> others = {lm::int8::KernelPath::kScalar};
  if (best == lm::int8::KernelPath::kVnni) others.push_back(lm::int8::KernelPath::kAvx2);
  for (const std::string family : {"stt", "moshi", "tts"}) {
    auto qm = LoadQuantised(family, kInt8);
    ASSERT_NE(qm, nullptr);
    const std::vector<at::Tensor> want = testing_lm::TeacherForcedLogits(*qm, 4, 2, 9);
    for (lm::int8::KernelPath path : others) {
      lm::int8::SetPathLimit(path);
      ASSERT_EQ(lm::int8::BestPath(), path);
      const std::vector<at::Tensor> got = testing_lm::TeacherForcedLogits(*qm, 4, 2, 9);
      lm::int8::SetPathLimit(lm::int8::KernelPath::kVnni);
      ASSERT_EQ(want.size(), got.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_TRUE(at::equal(want[i], got[i]))
            << family << " output " << i << ": " << lm::int8::PathName(best) << " vs "
            << lm::int8::PathName(path);
      }
    }
  }
}

TEST(LmQuantised, RefusesCuda) {
  ModelConfig config;
  ASSERT_NE(LoadFixtureModel("stt", &config), nullptr);
  for (const Quantisation& quant : {kInt8, kInt4}) {
    LmLoadOptions load;
    load.dtype = quant.dtype;
    load.device = at::Device(at::kCUDA);
    auto model = LmModel::LoadFile(config.lm, LmDataDir("stt") + "/model.safetensors", load);
    ASSERT_FALSE(model.ok());
    EXPECT_NE(model.status().message().find("CPU only"), std::string::npos) << model.status();
    EXPECT_NE(model.status().message().find(quant.name), std::string::npos) << model.status();
  }
}

}  // namespace
}  // namespace monologue
