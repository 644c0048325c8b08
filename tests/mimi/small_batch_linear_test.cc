// SmallBatchLinear (core/mimi/small_batch_linear.h) against a float64 product: every row count it serves,
// K and N that are not multiples of its vector and block widths, bias or none, and a row's result the same
// bits whatever the other rows.
#include "core/mimi/small_batch_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace monologue {
namespace {

TEST(SmallBatchLinearTest, MatchesFloat64ForEveryServedShape) {
  if (!mimi::UseSmallBatchLinear(at::zeros({1, 1}), 1)) GTEST_SKIP() << "no AVX-512 on this CPU";
  at::manual_seed(0);
  const int64_t ks[] = {1, 15, 16, 17, 258, 512, 1030};
  const int64_t ns[] = {1, 3, 4, 5, 33};
  for (int64_t m = 1; m <= 16; m += 3) {
    for (int64_t k : ks) {
      for (int64_t n : ns) {
        for (bool with_bias : {false, true}) {
          const at::Tensor x = at::randn({m, k}), w = at::randn({n, k});
          const at::Tensor b = with_bias ? at::randn({n}) : at::Tensor();
          ASSERT_TRUE(mimi::UseSmallBatchLinear(x, m));
          const at::Tensor got = mimi::SmallBatchLinear(x, w, b);
          const at::Tensor want = at::linear(x.to(at::kDouble), w.to(at::kDouble),
                                             with_bias ? b.to(at::kDouble) : at::Tensor());
          ASSERT_EQ(got.sizes(), want.sizes());
          // Float rounding of a K-term dot product: well under 1e-5 of the terms' magnitude.
          const double scale = (x.abs().to(at::kDouble).matmul(w.abs().to(at::kDouble).t())).max().item<double>();
          EXPECT_LT((got.to(at::kDouble) - want).abs().max().item<double>(), 1e-5 * (scale + 1))
              << "m=" << m << " k=" << k << " n=" << n << " bias=" << with_bias;
        }
      }
    }
  }
}

TEST(SmallBatchLinearTest, EachRowIsIndependentOfTheOthers) {
  if (!mimi::UseSmallBatchLinear(at::zeros({1, 1}), 1)) GTEST_SKIP() << "no AVX-512 on this CPU";
  at::manual_seed(1);
  const at::Tensor x = at::randn({13, 700}), w = at::randn({37, 700}), b = at::randn({37});
  const at::Tensor all = mimi::SmallBatchLinear(x, w, b);
  for (int64_t r = 0; r < 13; ++r) {
    EXPECT_TRUE(mimi::SmallBatchLinear(x.narrow(0, r, 1), w, b).equal(all.narrow(0, r, 1))) << "row " << r;
  }
}

TEST(SmallBatchLinearTest, KeepsLeadingDimensionsAndTakesStridedInput) {
  if (!mimi::UseSmallBatchLinear(at::zeros({1, 1}), 1)) GTEST_SKIP() << "no AVX-512 on this CPU";
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 40, 3}).transpose(1, 2);  // [2, 3, 40], not contiguous
  const at::Tensor w = at::randn({9, 40});
  const at::Tensor got = mimi::Linear(x, w);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 3, 9}));
  EXPECT_TRUE(at::allclose(got, at::linear(x, w), 1e-5, 1e-5));
}

TEST(SmallBatchLinearTest, ManyRowsGoToATen) {
  EXPECT_FALSE(mimi::UseSmallBatchLinear(at::zeros({64, 8}), 64));
  EXPECT_FALSE(mimi::UseSmallBatchLinear(at::zeros({2, 8}, at::kDouble), 2));
}

}  // namespace
}  // namespace monologue
