// f32 models from bf16 checkpoints on the CPU (every released LM checkpoint stores its Linear weights in
// bf16): the loader keeps those weights in bf16 and the few-row kernel widens them in registers. Widening is
// exact, so the model must give the same bits as one loaded from the widened f32 tensors, at half the bytes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/kernels/cpu_isa.h"
#include "core/kernels/few_row_linear.h"
#include "core/lm/lm_model.h"
#include "tests/lm/lm_test_util.h"

namespace monologue {
namespace {

using testing_lm::LmDataDir;

// The fixture's tensors with every float tensor rounded to bf16 (`widen`: and back to f32).
std::map<std::string, at::Tensor> Bf16Tensors(const std::string& family, bool widen) {
  std::map<std::string, at::Tensor> out;
  auto file = SafeTensorsFile::Open(LmDataDir(family) + "/model.safetensors");
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return out;
  for (const auto& info : (*file)->tensors()) {
    auto t = (*file)->Load(info.name);
    EXPECT_TRUE(t.ok()) << t.status();
    if (!t.ok()) continue;
    at::Tensor v = t->clone();
    if (at::isFloatingType(v.scalar_type())) v = v.to(at::kBFloat16);
    if (widen && v.scalar_type() == at::kBFloat16) v = v.to(at::kFloat);
    out[info.name] = v;
  }
  return out;
}

std::shared_ptr<const LmModel> Load(const LmConfig& config, const std::map<std::string, at::Tensor>& tensors,
                                    at::ScalarType dtype) {
  LmLoadOptions load;
  load.dtype = dtype;
  auto model = LmModel::FromTensors(config, tensors, load);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

std::vector<at::Tensor> TeacherForced(const LmModel& m) {
  return testing_lm::TeacherForcedLogits(m, /*steps=*/6, /*batch=*/3, /*seed=*/11);
}

void ExpectSameBits(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b,
                    const std::string& family) {
  ASSERT_EQ(a.size(), b.size()) << family;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(at::equal(a[i], b[i])) << family << " output " << i;
}

void ExpectSameBits(const LmModel& a, const LmModel& b, const std::string& family) {
  ExpectSameBits(TeacherForced(a), TeacherForced(b), family);
}

TEST(LmBf16Storage, F32FromBf16CheckpointKeepsLinearsInBf16WithTheSameResults) {
  if (!kernels::HasFewRowKernel()) GTEST_SKIP() << "no AVX2 on this CPU: bf16 weights are widened at load";
  for (const std::string family : {"stt", "moshi", "tts"}) {
    auto config = LoadModelConfig(LmDataDir(family));
    ASSERT_TRUE(config.ok()) << config.status();
    auto kept = Load(config->lm, Bf16Tensors(family, /*widen=*/false), at::kFloat);
    auto widened = Load(config->lm, Bf16Tensors(family, /*widen=*/true), at::kFloat);
    ASSERT_NE(kept, nullptr);
    ASSERT_NE(widened, nullptr);
    EXPECT_EQ(kept->dtype(), at::kFloat);
    const LmQuantizationStats& q = kept->quantization();
    EXPECT_GT(q.bf16_linears, 0) << family;
    EXPECT_EQ(widened->quantization().bf16_linears, 0) << family;
    EXPECT_NE(DescribeQuantization(q).find("bf16 weights, f32 arithmetic"), std::string::npos);
    ExpectSameBits(*kept, *widened, family);
  }
}

// On a CPU without AVX-512 the few-row kernel runs its AVX2 code (kernels/cpu_isa.h): the same bits.
TEST(LmBf16Storage, F32ModelsGiveTheSameBitsCappedAtAvx2) {
  if (kernels::DetectedCpuIsa() < kernels::CpuIsa::kAvx512) GTEST_SKIP() << "no AVX-512 to compare with";
  for (const std::string family : {"stt", "moshi", "tts"}) {
    auto config = LoadModelConfig(LmDataDir(family));
    ASSERT_TRUE(config.ok()) << config.status();
    auto model = Load(config->lm, Bf16Tensors(family, /*widen=*/false), at::kFloat);
    ASSERT_NE(model, nullptr);
    ASSERT_GT(model->quantization().bf16_linears, 0) << family;
    const std::vector<at::Tensor> wide = TeacherForced(*model);
    kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx2);
    const std::vector<at::Tensor> narrow = TeacherForced(*model);
    kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx512);
    ExpectSameBits(wide, narrow, family);
  }
}

TEST(LmBf16Storage, Int8FromBf16CheckpointEqualsInt8FromWidened) {
  auto config = LoadModelConfig(LmDataDir("tts"));
  ASSERT_TRUE(config.ok()) << config.status();
  auto a = Load(config->lm, Bf16Tensors("tts", false), at::kChar);
  auto b = Load(config->lm, Bf16Tensors("tts", true), at::kChar);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(a->int8_weights());
  EXPECT_EQ(a->quantization().bf16_linears, 0);
  ExpectSameBits(*a, *b, "tts int8");
}

}  // namespace
}  // namespace monologue
