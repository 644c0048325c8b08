// kernels::Elu against the exact ELU (double-precision expm1): within 2 ulp over the whole negative range,
// exact for positive inputs, the edges (0, -0, the -17.5 clamp, -inf, +inf, NaN), every tail length, any
// shape and strides; at::elu itself is 1 ulp.
#include "core/kernels/elu.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace monologue {
namespace {

// Distance in units in the last place of the f32 nearest to `want`.
double UlpDistance(float got, double want) {
  const float w = static_cast<float>(want);
  const double ulp = std::nextafter(std::fabs(w), std::numeric_limits<float>::infinity()) - std::fabs(w);
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

TEST(EluTest, WithinTwoUlpOfTheExactValue) {
  if (!kernels::ServesElu(at::zeros({1}))) GTEST_SKIP() << "no AVX2 on this CPU";
  // Every 2^-12 from -20 to 4, then random values at all scales.
  at::Tensor x = at::cat({at::arange(-20 * 4096, 4 * 4096, at::kFloat) / 4096.f,
                          at::randn({100000}) * at::pow(10, at::rand({100000}) * 8 - 6)});
  const at::Tensor y = kernels::Elu(x);
  const float* xp = x.data_ptr<float>();
  const float* yp = y.data_ptr<float>();
  double worst = 0, aten_worst = 0;
  const at::Tensor ref = at::elu(x);
  const float* rp = ref.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double want = xp[i] > 0 ? static_cast<double>(xp[i]) : std::expm1(static_cast<double>(xp[i]));
    worst = std::max(worst, UlpDistance(yp[i], want));
    aten_worst = std::max(aten_worst, UlpDistance(rp[i], want));
    if (xp[i] > 0) {
      ASSERT_EQ(yp[i], xp[i]) << "x = " << xp[i];
    }
  }
  std::printf("kernels::Elu worst %.2f ulp, at::elu %.2f ulp over %lld values\n", worst, aten_worst,
              static_cast<long long>(x.numel()));
  EXPECT_LE(worst, 2.0);
}

TEST(EluTest, EdgesTailsAndStrides) {
  if (!kernels::ServesElu(at::zeros({1}))) GTEST_SKIP() << "no AVX2 on this CPU";
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor edges = at::tensor({0.f, -0.f, -17.5f, -17.4f, -100.f, -inf, inf, 1e-30f, -1e-30f});
  const at::Tensor y = kernels::Elu(edges);
  EXPECT_EQ(y[0].item<float>(), 0.f);
  EXPECT_EQ(y[2].item<float>(), -1.f);
  EXPECT_EQ(y[4].item<float>(), -1.f);
  EXPECT_EQ(y[5].item<float>(), -1.f);
  EXPECT_EQ(y[6].item<float>(), inf);
  EXPECT_EQ(y[7].item<float>(), 1e-30f);
  EXPECT_EQ(y[8].item<float>(), -1e-30f);
  EXPECT_TRUE(std::isnan(kernels::Elu(at::tensor({std::nanf("")}))[0].item<float>()));
  // Every tail length, and a strided view: the same values as the contiguous whole.
  const at::Tensor x = at::randn({3, 37, 50}) * 3;
  const at::Tensor whole = kernels::Elu(x);
  for (int64_t n = 1; n <= 33; ++n) {
    EXPECT_TRUE(kernels::Elu(x.flatten().narrow(0, 0, n)).equal(whole.flatten().narrow(0, 0, n))) << n;
  }
  const at::Tensor t = x.transpose(1, 2);
  const at::Tensor yt = kernels::Elu(t);
  EXPECT_EQ(yt.sizes(), t.sizes());
  EXPECT_TRUE(yt.equal(whole.transpose(1, 2)));
  EXPECT_EQ(yt.strides(), t.strides());        // a permuted dense input keeps its layout, as with at::elu
  const at::Tensor gaps = x.narrow(2, 5, 30);  // not dense: computed from a contiguous copy
  EXPECT_TRUE(kernels::Elu(gaps).equal(whole.narrow(2, 5, 30)));
  EXPECT_TRUE(at::allclose(whole, at::elu(x), 1e-6, 1e-7));
  EXPECT_TRUE(kernels::EluOrAten(x.to(at::kDouble)).equal(at::elu(x.to(at::kDouble))));
}

}  // namespace
}  // namespace monologue
