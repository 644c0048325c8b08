#include "core/model/deterministic_weights.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace monologue
