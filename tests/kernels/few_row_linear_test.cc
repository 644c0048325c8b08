// FewRowLinear (core/kernels/few_row_linear.h) against a float64 product: every row count it serves,
// K and N that are not multiples of its vector and block widths, bias or none, a row's result the same
// bits whatever the other rows, and bf16 weights computed exactly as their f32 widening.
#include "core/kernels/few_row_linear.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace monologue {
namespace {

TEST(FewRowLinearTest, MatchesFloat64ForEveryServedShape) {
  if (!kernels::HasFewRowKernel()) GTEST_SKIP() << "no AVX2 on this CPU";
  at::manual_seed(0);
  const int64_t ks[] = {1, 15, 16, 17, 100, 127, 258, 512, 1030};
  const int64_t ns[] = {1, 3, 4, 5, 33};
  for (int64_t m = 1; m <= 16; m += 3) {
    for (int64_t k : ks) {
      for (int64_t n : ns) {
        for (bool with_bias : {false, true}) {
          const at::Tensor x = at::randn({m, k}), w = at::randn({n, k});
          const at::Tensor b = with_bias ? at::randn({n}) : at::Tensor();
          ASSERT_TRUE(kernels::ServesFewRows(x, m));
          const at::Tensor got = kernels::FewRowLinear(x, w, b);
          const at::Tensor want =
              at::linear(x.to(at::kDouble), w.to(at::kDouble), with_bias ? b.to(at::kDouble) : at::Tensor());
          ASSERT_EQ(got.sizes(), want.sizes());
          // Float rounding of a K-term dot product: well under 1e-5 of the terms' magnitude.
          const double scale =
              (x.abs().to(at::kDouble).matmul(w.abs().to(at::kDouble).t())).max().item<double>();
          EXPECT_LT((got.to(at::kDouble) - want).abs().max().item<double>(), 1e-5 * (scale + 1))
              << "m=" << m << " k=" << k << " n=" << n << " bias=" << with_bias;
        }
      }
    }
  }
}

TEST(FewRowLinearTest, EachRowIsIndependentOfTheOthers) {
  if (!kernels::HasFewRowKernel()) GTEST_SKIP() << "no AVX2 on this CPU";
  at::manual_seed(1);
  const at::Tensor x = at::randn({13, 700}), w = at::randn({37, 700}), b = at::randn({37});
  const at::Tensor all = kernels::FewRowLinear(x, w, b);
  for (int64_t r = 0; r < 13; ++r) {
    EXPECT_TRUE(kernels::FewRowLinear(x.narrow(0, r, 1), w, b).equal(all.narrow(0, r, 1))) << "row " << r;
  }
}

TEST(FewRowLinearTest, KeepsLeadingDimensionsAndTakesStridedInput) {
  if (!kernels::HasFewRowKernel()) GTEST_SKIP() << "no AVX2 on this CPU";
  at::manual_seed(2);
  const at::Tensor x = at::randn({2, 40, 3}).transpose(1, 2);  // [2, 3, 40], not contiguous
  const at::Tensor w = at::randn({9, 40});
  const at::Tensor got = kernels::Linear(x, w);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 3, 9}));
  EXPECT_TRUE(at::allclose(got, at::linear(x, w), 1e-5, 1e-5));
}

TEST(FewRowLinearTest, Bf16WeightsGiveTheProductOfTheirF32Widening) {
  if (!kernels::HasFewRowKernel()) GTEST_SKIP() << "no AVX2 on this CPU";
  at::manual_seed(3);
  for (int64_t k : {5, 16, 300, 1031}) {
    const at::Tensor w = at::randn({37, k}).to(at::kBFloat16), b = at::randn({37});
    const at::Tensor wide = w.to(at::kFloat);
    // The same bits as the f32 kernel on the widened weights (widening is exact, the order the same).
    const at::Tensor x = at::randn({3, k});
    EXPECT_TRUE(kernels::FewRowLinear(x, w, b).equal(kernels::FewRowLinear(x, wide, b))) << "k=" << k;
    // Up to 64 rows stay in the kernel, each row the same bits as alone.
    const at::Tensor x40 = at::randn({40, k});
    ASSERT_TRUE(kernels::ServesFewRows(x40, 40, at::kBFloat16));
    const at::Tensor y40 = kernels::Linear(x40, w, b);
    EXPECT_TRUE(y40.narrow(0, 17, 1).equal(kernels::FewRowLinear(x40.narrow(0, 17, 1), wide, b)))
        << "k=" << k;
    const at::Tensor want = at::linear(x40.to(at::kDouble), wide.to(at::kDouble), b.to(at::kDouble));
    const double scale =
        x40.abs().to(at::kDouble).matmul(wide.abs().to(at::kDouble).t()).max().item<double>();
    EXPECT_LT((y40.to(at::kDouble) - want).abs().max().item<double>(), 1e-5 * (scale + 1)) << "k=" << k;
    // More rows: ATen's GEMM on the widened weights.
    const at::Tensor many = at::randn({80, k});
    EXPECT_FALSE(kernels::ServesFewRows(many, 80, at::kBFloat16));
    EXPECT_TRUE(kernels::Linear(many, w, b).equal(at::linear(many, wide, b))) << "k=" << k;
  }
}

TEST(FewRowLinearTest, ManyRowsGoToATen) {
  EXPECT_FALSE(kernels::ServesFewRows(at::zeros({64, 8}), 64));
  EXPECT_FALSE(kernels::ServesFewRows(at::zeros({2, 8}, at::kDouble), 2));
}

}  // namespace
}  // namespace monologue
