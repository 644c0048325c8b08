#include "core/model/deterministic_weights.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

namespace monologue {
namespace {

// Expected values printed by tests/reference/detinit.py (the Python twin) for the same arguments:
//   deterministic_tensor(7, "encoder.model.0.conv.conv.weight", (2, 3), 0.5, 0.25)
TEST(DeterministicWeightsTest, MatchesPythonTwinBitForBit) {
  at::Tensor t = DeterministicTensor(7, "encoder.model.0.conv.conv.weight", {2, 3}, 0.5f, 0.25f);
  const float expected[] = {0x1.458d0ap-1f, -0x1.22174p-4f, 0x1.008226p-1f,
                            0x1.321c62p-1f, 0x1.d33a88p-3f, 0x1.6ebc6p-2f};
  ASSERT_EQ(t.numel(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.flatten()[i].item<float>(), expected[i]) << "element " << i;
}

TEST(DeterministicWeightsTest, UniformInRangeAndNameSensitive) {
  at::Tensor a = DeterministicTensor(1, "a", {10000}, 1.0f);
  at::Tensor b = DeterministicTensor(1, "b", {10000}, 1.0f);
  EXPECT_GE(a.min().item<float>(), -1.0f);
  EXPECT_LT(a.max().item<float>(), 1.0f);
  EXPECT_NEAR(a.mean().item<float>(), 0.0f, 0.03f);
  EXPECT_NEAR(a.std().item<float>(), 1.0f / std::sqrt(3.0f), 0.02f);
  EXPECT_FALSE(at::equal(a, b));
  EXPECT_TRUE(at::equal(a, DeterministicTensor(1, "a", {10000}, 1.0f)));
}

// The metadata form the fixture scripts write: the rule, read back, gives DeterministicTensor's tensor.
TEST(InitRuleMetadataTest, RegeneratesTensorsFromTheStoredRule) {
  const std::map<std::string, std::string> meta = {{"seed", "7"},
                                                   {"init:w", "0.5 0.25"},
                                                   {"shape:w", "2,3"},
                                                   {"init:bias", "0.1 0.0"},
                                                   {"shape:bias", "4"},
                                                   {"config", "{}"}};
  auto rules = InitRuleMetadata::Parse(meta, "test.safetensors");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ(rules->seed(), 7u);
  EXPECT_EQ(rules->TensorNames(), (std::vector<std::string>{"bias", "w"}));
  auto w = rules->Tensor("w");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(at::equal(*w, DeterministicTensor(7, "w", {2, 3}, 0.5f, 0.25f)));
  EXPECT_TRUE(absl::IsNotFound(rules->Tensor("absent").status()));
}

TEST(InitRuleMetadataTest, MalformedMetadataNamesTheFileAndTheTensor) {
  auto no_seed = InitRuleMetadata::Parse({{"init:w", "1 0"}}, "a.safetensors");
  EXPECT_TRUE(absl::IsDataLoss(no_seed.status()));
  EXPECT_NE(no_seed.status().message().find("a.safetensors"), std::string::npos);
  auto rules = InitRuleMetadata::Parse(
      {{"seed", "1"}, {"init:w", "1"}, {"shape:w", "2"}, {"init:v", "1 0"}, {"shape:v", "2,x"}}, "b.safetensors");
  ASSERT_TRUE(rules.ok());
  auto w = rules->Tensor("w");
  EXPECT_TRUE(absl::IsDataLoss(w.status()));
  EXPECT_NE(w.status().message().find("init rule of w"), std::string::npos) << w.status();
  auto v = rules->Tensor("v");
  EXPECT_TRUE(absl::IsDataLoss(v.status()));
  EXPECT_NE(v.status().message().find("shape of v"), std::string::npos) << v.status();
}

}  // namespace
}  // namespace monologue
