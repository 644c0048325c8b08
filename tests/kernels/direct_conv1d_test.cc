// kernels::DirectConv1d: exactly the documented rounding (a plain loop of std::fma in the same order gives
// the same bits), close to at::conv1d, the same bits from the AVX2 code as from the AVX-512 code, on 1 thread
// as on 2, for a row alone as in a batch; the phase split turns strided convolutions into stride-1 ones; bad
// shapes are errors.
#include "core/kernels/direct_conv1d.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/kernels/cpu_isa.h"

namespace monologue {
namespace {

struct Shape {
  int64_t batch, cin, cout, k, dilation, tin;
};

// Channel counts with and without a multiple of 8 outputs, the SEANet layers' kernels and dilations, step
// counts on and off the tile widths (16, 24, 48) and the 192-step chunks.
const std::vector<Shape>& Shapes() {
  static const std::vector<Shape> shapes = {
      {1, 64, 32, 3, 1, 1922}, {2, 32, 64, 1, 1, 240}, {1, 1, 64, 7, 1, 1926},
      {3, 20, 13, 3, 2, 45},   {1, 64, 1, 7, 1, 70},   {2, 512, 16, 2, 1, 41},
      {1, 7, 9, 5, 3, 17},     {1, 16, 8, 1, 1, 1},    {1, 70, 24, 3, 1, 60}};
  return shapes;
}

std::string Describe(const Shape& s) {
  return "B" + std::to_string(s.batch) + " C_in " + std::to_string(s.cin) + " C_out " +
         std::to_string(s.cout) + " k " + std::to_string(s.k) + " dilation " + std::to_string(s.dilation) +
         " T_in " + std::to_string(s.tin);
}

// The documented rounding: per block of max(1, 96 / k) input channels a chain of fused multiply-adds from
// zero over (c, j) in that order; the blocks' chains added in order; then + bias. x: [B, C_in * phases,
// T_in].
at::Tensor ChainOfFmas(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t phases,
                       int64_t dilation) {
  const at::Tensor xc = x.contiguous(), wc = w.contiguous();
  const int64_t b = x.size(0), rows = x.size(1), tin = x.size(2), cout = w.size(0), cin = w.size(1),
                k = w.size(2);
  const int64_t taps = k / phases, tout = tin - (taps - 1) * dilation;
  const int64_t block = std::max<int64_t>(1, 96 / k);
  at::Tensor y = at::empty({b, cout, tout});
  const float* xp = xc.data_ptr<float>();
  const float* wp = wc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const at::Tensor bc = bias.defined() ? bias.contiguous() : at::Tensor();
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t o = 0; o < cout; ++o) {
      for (int64_t t = 0; t < tout; ++t) {
        float total = 0.f;
        for (int64_t c0 = 0; c0 < cin; c0 += block) {
          float acc = 0.f;
          for (int64_t c = c0; c < std::min(cin, c0 + block); ++c) {
            for (int64_t j = 0; j < k; ++j) {  // tap j = q * phases + p: phase p, q steps on
              acc = std::fma(wp[(o * cin + c) * k + j],
                             xp[(r * rows + c * phases + j % phases) * tin + t + j / phases * dilation], acc);
            }
          }
          total = c0 == 0 ? acc : total + acc;
        }
        if (bp != nullptr) total += bp[o];
        yp[(r * cout + o) * tout + t] = total;
      }
    }
  }
  return y;
}

class DirectConv1dTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kernels::HasDirectConvKernel()) GTEST_SKIP() << "no AVX2 on this CPU";
  }
};

TEST_F(DirectConv1dTest, GivesTheDocumentedChainBitForBitAndMatchesConv1d) {
  at::manual_seed(11);
  for (const Shape& s : Shapes()) {
    const at::Tensor x = at::randn({s.batch, s.cin, s.tin});
    const at::Tensor w = at::randn({s.cout, s.cin, s.k}) / std::sqrt(static_cast<double>(s.cin * s.k));
    const at::Tensor bias = at::randn({s.cout});
    const at::Tensor y = kernels::DirectConv1d(x, w, 1, s.dilation, bias);
    EXPECT_TRUE(at::equal(y, ChainOfFmas(x, w, bias, 1, s.dilation))) << Describe(s);
    const int64_t stride[1] = {1}, padding[1] = {0}, dilation[1] = {s.dilation};
    const at::Tensor ref = at::conv1d(x, w, bias, stride, padding, dilation, 1);
    ASSERT_EQ(y.sizes(), ref.sizes()) << Describe(s);
    EXPECT_LT((y - ref).abs().max().item<float>(), 1e-4) << Describe(s);
    // Without a bias: the chain alone.
    const at::Tensor unbiased = kernels::DirectConv1d(x, w, 1, s.dilation, {});
    EXPECT_TRUE(at::equal(unbiased, ChainOfFmas(x, w, {}, 1, s.dilation))) << Describe(s);
  }
}

TEST_F(DirectConv1dTest, SameBitsOnAvx2OnOneThreadAndForEachRowAlone) {
  at::manual_seed(12);
  const int threads = at::get_num_threads();
  for (const Shape& s : Shapes()) {
    const at::Tensor x = at::randn({s.batch, s.cin, s.tin});
    const at::Tensor w = at::randn({s.cout, s.cin, s.k});
    const at::Tensor bias = at::randn({s.cout});
    const at::Tensor y = kernels::DirectConv1d(x, w, 1, s.dilation, bias);
    if (kernels::DetectedCpuIsa() >= kernels::CpuIsa::kAvx512) {
      const kernels::CpuIsa before = kernels::CpuIsaLimit();
      kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx2);
      const at::Tensor narrow = kernels::DirectConv1d(x, w, 1, s.dilation, bias);
      kernels::SetCpuIsaLimit(before);
      EXPECT_TRUE(at::equal(y, narrow)) << Describe(s);
    }
    at::set_num_threads(1);
    const at::Tensor one = kernels::DirectConv1d(x, w, 1, s.dilation, bias);
    at::set_num_threads(threads);
    EXPECT_TRUE(at::equal(y, one)) << Describe(s);
    for (int64_t r = 0; r < s.batch; ++r) {
      EXPECT_TRUE(
          at::equal(y.narrow(0, r, 1), kernels::DirectConv1d(x.narrow(0, r, 1), w, 1, s.dilation, bias)))
          << Describe(s) << " row " << r;
    }
  }
}

TEST_F(DirectConv1dTest, ReadsStridedInputsAndWeightRowsOfALargerMatrix) {
  at::manual_seed(13);
  // Time steps 2 apart, and channels taken from a wider tensor: the values of the dense copy.
  const at::Tensor wide = at::randn({2, 24, 200});
  const at::Tensor x = wide.narrow(1, 4, 16).slice(2, 0, c10::nullopt, 2);
  const at::Tensor w = at::randn({24, 16, 3});
  EXPECT_TRUE(
      at::equal(kernels::DirectConv1d(x, w, 1, 1, {}), kernels::DirectConv1d(x.contiguous(), w, 1, 1, {})));
  const at::Tensor channels =
      wide.narrow(1, 4, 16);  // time contiguous, rows 200 apart within a batch row of 24
  EXPECT_TRUE(at::equal(kernels::DirectConv1d(channels, w, 1, 2, {}),
                        kernels::DirectConv1d(channels.contiguous(), w, 1, 2, {})));
  // Output channels 8-31 of a [40, 16, 3] weight: the rows of that view, 48 values apart.
  const at::Tensor big = at::randn({40, 16, 3});
  const at::Tensor rows = big.narrow(0, 8, 24);
  EXPECT_TRUE(
      at::equal(kernels::DirectConv1d(x, rows, 1, 1, {}), kernels::DirectConv1d(x, rows.clone(), 1, 1, {})));
}

TEST_F(DirectConv1dTest, PhasesGiveTheStridedConvolution) {
  at::manual_seed(14);
  // SEANet's downsampling convolutions: kernel 2 x stride; and 3 x stride.
  for (const int64_t stride : {2, 4, 5, 6, 8}) {
    for (const int64_t multiple : {2, 3}) {
      const int64_t cin = 40, cout = 12, k = multiple * stride, tout = 37;
      const at::Tensor x = at::randn({2, cin, (tout - 1) * stride + k});
      const at::Tensor w = at::randn({cout, cin, k}) / std::sqrt(static_cast<double>(cin * k));
      const at::Tensor bias = at::randn({cout});
      const at::Tensor phases = kernels::SplitPhases(x, stride);
      const at::Tensor y = kernels::DirectConv1d(phases, w, stride, 1, bias);
      EXPECT_TRUE(at::equal(y, ChainOfFmas(phases, w, bias, stride, 1))) << "stride " << stride;
      const int64_t s[1] = {stride}, padding[1] = {0}, dilation[1] = {1};
      const at::Tensor ref = at::conv1d(x, w, bias, s, padding, dilation, 1);
      ASSERT_EQ(y.sizes(), ref.sizes()) << "stride " << stride;
      EXPECT_LT((y - ref).abs().max().item<float>(), 1e-4) << "stride " << stride;
    }
  }
}

TEST_F(DirectConv1dTest, BadShapesAreErrors) {
  const at::Tensor w = at::randn({16, 8, 3});
  // Channels that do not match, too few steps for the kernel, a kernel that is not a whole number of phases,
  // phases with a dilation, a bias for other outputs, a weight whose rows are not dense, an f64 input.
  EXPECT_THROW(kernels::DirectConv1d(at::randn({1, 9, 20}), w, 1, 1, {}), c10::Error);
  EXPECT_THROW(kernels::DirectConv1d(at::randn({1, 8, 4}), w, 1, 2, {}), c10::Error);
  EXPECT_THROW(kernels::DirectConv1d(at::randn({1, 16, 20}), w, 2, 1, {}), c10::Error);
  EXPECT_THROW(kernels::DirectConv1d(at::randn({1, 24, 20}), w, 3, 2, {}), c10::Error);
  EXPECT_THROW(kernels::DirectConv1d(at::randn({1, 8, 20}), w, 1, 1, at::randn({15})), c10::Error);
  EXPECT_THROW(kernels::DirectConv1d(at::randn({1, 8, 20}), at::randn({16, 3, 8}).transpose(1, 2), 1, 1, {}),
               c10::Error);
  EXPECT_FALSE(kernels::ServesDirectConv(at::randn({1, 8, 20}, at::kDouble)));
  EXPECT_THROW(kernels::SplitPhases(at::randn({1, 8, 21}), 4), c10::Error);
}

}  // namespace
}  // namespace monologue
