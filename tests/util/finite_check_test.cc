// AllFinite reads the exponent bits of f32 / bf16 / f16 / f64 tensors in parallel chunks: a NaN or an
// infinity anywhere (first element, last, either side of a chunk boundary) is found; the largest finite
// values, subnormals and signed zeros are finite; other dtypes and layouts agree with at::isfinite.
#include "core/util/finite_check.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

namespace monologue {
namespace {

TEST(AllFiniteTest, FindsEveryNonFiniteValueWhereverItIs) {
  const int64_t n = 3 * (int64_t{1} << 20) + 5;  // several parallel chunks and a ragged end
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
    at::Tensor t = at::randn({n}, at::kDouble).to(dtype);
    ASSERT_TRUE(AllFinite(t)) << dtype;
    for (const int64_t at_index : {int64_t{0}, (int64_t{1} << 20) - 1, int64_t{1} << 20, n / 2, n - 1}) {
      for (const double bad :
           {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
            -std::numeric_limits<double>::infinity()}) {
        at::Tensor u = t.clone();
        u[at_index] = bad;
        EXPECT_FALSE(AllFinite(u)) << dtype << " " << bad << " at " << at_index;
        EXPECT_EQ(AllFinite(u), at::isfinite(u).all().item<bool>());
      }
    }
  }
}

TEST(AllFiniteTest, ExtremeFiniteValuesAndOtherTensorsAreFinite) {
  at::Tensor f = at::tensor({std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                             std::numeric_limits<float>::denorm_min(), -0.0f, 0.0f},
                            at::kFloat);
  EXPECT_TRUE(AllFinite(f));
  EXPECT_TRUE(AllFinite(f.to(at::kDouble)));
  // 65504 is f16's largest; 3.3895e38 rounds to bf16's largest finite value.
  EXPECT_TRUE(AllFinite(at::tensor({65504.0f, -65504.0f, 6e-8f}, at::kFloat).to(at::kHalf)));
  EXPECT_TRUE(AllFinite(at::tensor({3.38e38f, -3.38e38f, 1e-40f}, at::kFloat).to(at::kBFloat16)));
  EXPECT_TRUE(AllFinite(at::arange(10, at::kLong)));
  EXPECT_TRUE(AllFinite(at::empty({0}, at::kFloat)));
  // A transposed view is read in its own order.
  at::Tensor m = at::randn({64, 48});
  m[3][40] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(AllFinite(m.t()));
  EXPECT_TRUE(AllFinite(at::randn({64, 48}).t()));
}

}  // namespace
}  // namespace monologue
