#include "core/kernels/small_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <optional>

namespace monologue::kernels {
namespace {

double RelativeL2(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

struct Shape {
  int64_t b, h, lq, l, d;
};

class SmallAttentionTest : public ::testing::TestWithParam<Shape> {
 protected:
  void SetUp() override {
    if (!ServesSmallAttention(at::zeros({1, 1, 1, 16}), at::zeros({1, 1, 4, 16}), at::zeros({1, 1, 4, 16}),
                              std::nullopt)) {
      GTEST_SKIP() << "no AVX2 on this CPU: the kernel is not used";
    }
  }
};

// Against ATen's attention: no mask, a per-row mask, a mask shared by the batch, keys and values read through
// a ring's narrowed view, and one row's keys expanded over the batch (streams sharing a voice).
TEST_P(SmallAttentionTest, EqualsAtenUpToRounding) {
  const Shape s = GetParam();
  at::manual_seed(11);
  const at::Tensor q = at::randn({s.b, s.h, s.lq, s.d});
  const at::Tensor ring_k = at::randn({s.b, s.h, s.l + 5, s.d}), ring_v = at::randn({s.b, s.h, s.l + 5, s.d});
  const at::Tensor k = ring_k.narrow(2, 0, s.l), v = ring_v.narrow(2, 0, s.l);
  at::Tensor mask = at::rand({s.b, 1, s.lq, s.l}) > 0.3;
  mask.select(3, 0).fill_(true);  // every query sees at least one key
  const at::Tensor shared_mask = mask.narrow(0, 0, 1);
  for (const std::optional<at::Tensor>& m : {std::optional<at::Tensor>(), std::optional<at::Tensor>(mask),
                                             std::optional<at::Tensor>(shared_mask)}) {
    ASSERT_TRUE(ServesSmallAttention(q, k, v, m));
    const at::Tensor want = at::scaled_dot_product_attention(q, k, v, m);
    const at::Tensor got = SmallAttention(q, k, v, m);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT(RelativeL2(got, want), 1e-5) << "mask " << (m.has_value() ? m->sizes() : at::IntArrayRef{});
    EXPECT_TRUE(at::equal(Attention(q, k, v, m), got));
  }
  const at::Tensor ke = k.narrow(0, 0, 1).expand({s.b, -1, -1, -1}),
                   ve = v.narrow(0, 0, 1).expand({s.b, -1, -1, -1});
  EXPECT_LT(RelativeL2(SmallAttention(q, ke, ve, std::nullopt),
                       at::scaled_dot_product_attention(q, ke.contiguous(), ve.contiguous())),
            1e-5);
}

INSTANTIATE_TEST_SUITE_P(Shapes, SmallAttentionTest,
                         ::testing::Values(Shape{1, 16, 1, 32, 64},   // depformer step
                                           Shape{1, 8, 2, 250, 64},   // Mimi ring, two tokens
                                           Shape{3, 4, 1, 500, 128},  // temporal window
                                           Shape{2, 4, 2, 7, 8},      // tiny heads (masked lanes)
                                           Shape{5, 2, 4, 1024,
                                                 24}),  // the largest served, D not a multiple of 16
                         [](const auto& info) { return "case" + std::to_string(info.index); });

// A row's result does not depend on the other rows (batch slots are independent streams).
TEST_F(SmallAttentionTest, ARowDoesNotDependOnTheBatch) {
  at::manual_seed(5);
  const at::Tensor q = at::randn({4, 8, 1, 64}), k = at::randn({4, 8, 40, 64}), v = at::randn({4, 8, 40, 64});
  const at::Tensor all = SmallAttention(q, k, v, std::nullopt);
  const at::Tensor one =
      SmallAttention(q.narrow(0, 2, 1), k.narrow(0, 2, 1), v.narrow(0, 2, 1), std::nullopt);
  EXPECT_TRUE(at::equal(all.narrow(0, 2, 1), one));
}

// bf16 keys and values (a quantised model's cross-attention memory) are widened exactly as they are read:
// the result is bitwise the f32 kernel's on the widened operands, through masks, ring views and expanded
// rows; mixed or other dtypes are not served, and what is not served (too many keys) goes to ATen widened.
TEST_P(SmallAttentionTest, Bf16KeysAndValuesAreTheF32ResultOfTheirWidenedValues) {
  const Shape s = GetParam();
  at::manual_seed(12);
  const at::Tensor q = at::randn({s.b, s.h, s.lq, s.d});
  const at::Tensor ring_k = at::randn({s.b, s.h, s.l + 3, s.d}).to(at::kBFloat16);
  const at::Tensor ring_v = at::randn({s.b, s.h, s.l + 3, s.d}).to(at::kBFloat16);
  const at::Tensor k = ring_k.narrow(2, 0, s.l), v = ring_v.narrow(2, 0, s.l);
  at::Tensor mask = at::rand({s.b, 1, s.lq, s.l}) > 0.3;
  mask.select(3, 0).fill_(true);
  for (const std::optional<at::Tensor>& m : {std::optional<at::Tensor>(), std::optional<at::Tensor>(mask)}) {
    ASSERT_TRUE(ServesSmallAttention(q, k, v, m));
    const at::Tensor got = Attention(q, k, v, m);
    EXPECT_EQ(got.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(got, SmallAttention(q, k.to(at::kFloat), v.to(at::kFloat), m)));
  }
  const at::Tensor ke = k.narrow(0, 0, 1).expand({s.b, -1, -1, -1}),
                   ve = v.narrow(0, 0, 1).expand({s.b, -1, -1, -1});
  EXPECT_TRUE(at::equal(SmallAttention(q, ke, ve, std::nullopt),
                        SmallAttention(q, ke.to(at::kFloat), ve.to(at::kFloat), std::nullopt)));
  EXPECT_FALSE(ServesSmallAttention(q, k, v.to(at::kFloat), std::nullopt)) << "keys and values differ";
  EXPECT_FALSE(ServesSmallAttention(q, k.to(at::kHalf), v.to(at::kHalf), std::nullopt));
}

// bf16 keys and values are served at any context a model has (a quantised Moshi 7B's KV cache holds 3000
// steps): ATen would first widen them whole. f32 ones stay with ATen beyond 1024 keys.
TEST(SmallAttentionServesTest, NarrowKeysAreServedAtLongContexts) {
  EXPECT_EQ(SmallAttentionMaxKeys(at::kFloat), 1024);
  EXPECT_GE(SmallAttentionMaxKeys(at::kBFloat16), 3000);
  if (!ServesSmallAttentionRows(1, 16)) GTEST_SKIP() << "no AVX2 on this CPU: the kernel is not used";
  at::manual_seed(13);
  const at::Tensor q = at::randn({2, 2, 1, 16});
  const at::Tensor k = at::randn({2, 2, 3000, 16}).to(at::kBFloat16),
                   v = at::randn({2, 2, 3000, 16}).to(at::kBFloat16);
  at::Tensor mask = at::rand({2, 1, 1, 3000}) > 0.5;
  mask.select(3, 0).fill_(true);
  ASSERT_TRUE(ServesSmallAttention(q, k, v, mask));
  EXPECT_FALSE(ServesSmallAttention(q, k.to(at::kFloat), v.to(at::kFloat), mask));
  const at::Tensor got = Attention(q, k, v, mask);
  EXPECT_LT(RelativeL2(got, at::scaled_dot_product_attention(q, k.to(at::kFloat), v.to(at::kFloat), mask)),
            1e-5);
  EXPECT_TRUE(at::equal(got, SmallAttention(q, k, v, mask)));
}

TEST(SmallAttentionServesTest, NarrowKeysBeyondTheKernelGoToAtenWidened) {
  at::manual_seed(13);
  const int64_t keys = SmallAttentionMaxKeys(at::kBFloat16) + 1;
  const at::Tensor q = at::randn({1, 2, 1, 16});
  const at::Tensor k = at::randn({1, 2, keys, 16}).to(at::kBFloat16),
                   v = at::randn({1, 2, keys, 16}).to(at::kBFloat16);
  ASSERT_FALSE(ServesSmallAttention(q, k, v, std::nullopt));
  EXPECT_TRUE(at::equal(Attention(q, k, v, std::nullopt),
                        at::scaled_dot_product_attention(q, k.to(at::kFloat), v.to(at::kFloat))));
}

TEST(SmallAttentionServesTest, LeavesOtherShapesToAten) {
  const at::Tensor q = at::zeros({1, 2, 1, 16}), k = at::zeros({1, 2, 8, 16});
  EXPECT_FALSE(ServesSmallAttention(at::zeros({1, 2, 5, 16}), k, k, std::nullopt));  // 5 queries
  EXPECT_FALSE(
      ServesSmallAttention(q, at::zeros({1, 2, 1025, 16}), at::zeros({1, 2, 1025, 16}), std::nullopt));
  EXPECT_FALSE(
      ServesSmallAttention(q.to(at::kBFloat16), k.to(at::kBFloat16), k.to(at::kBFloat16), std::nullopt));
  EXPECT_FALSE(ServesSmallAttention(q, k, k, at::zeros({1, 1, 1, 8})));            // a float (additive) mask
  EXPECT_FALSE(ServesSmallAttention(q, k, k, at::ones({1, 2, 1, 8}, at::kBool)));  // a per-head mask
  // Whatever is not served still computes, through ATen.
  const at::Tensor q5 = at::randn({1, 2, 5, 16}), k5 = at::randn({1, 2, 8, 16});
  EXPECT_TRUE(at::equal(Attention(q5, k5, k5, std::nullopt), at::scaled_dot_product_attention(q5, k5, k5)));
}

}  // namespace
}  // namespace monologue::kernels
