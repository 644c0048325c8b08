// The 4-bit weight kernels (core/lm/int4_gemm.h, lm_linear.h): the quantisation rule per group of 32 (the
// extreme value maps to -8, every value within one step, the f16 scale as stored), the packed layout's round
// trip, every kernel path against a double-precision product of the dequantised weights over odd shapes
// (vector, group, chunk and row-block tails), batch 1..13, bias, row sub-ranges and batch invariance; then
// Int4Linear on tensors (threads, many rows, Rows()).
#include "core/lm/int4_gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/kernels/cpu_isa.h"
#include "core/lm/lm_linear.h"

namespace monologue::lm {
namespace {

struct Case {
  int64_t n, k, batch;
};

int64_t Groups(int64_t k) { return (k + int4::kGroup - 1) / int4::kGroup; }

std::vector<float> RandomWeights(int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> dist(0, 0.02f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (auto& v : w) v = dist(rng);
  return w;
}

TEST(Int4Gemm, QuantisationRuleAndRoundTrip) {
  std::mt19937 rng(3);
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{1, 32}, {8, 128}, {13, 200}, {17, 31}, {3, 1000}}) {
    std::vector<float> w = RandomWeights(n, k, rng);
    w[0] = 0.5f;  // an outlier: its group's scale follows it
    std::vector<uint8_t> packed(static_cast<size_t>(int4::PackedBytes(n, k)));
    std::vector<int8_t> values(static_cast<size_t>(n * k));
    std::vector<float> scales(static_cast<size_t>(n * Groups(k)));
    int4::Quantize(w.data(), n, k, packed.data(), values.data(), scales.data());
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t g = 0; g < Groups(k); ++g) {
        const int64_t start = g * int4::kGroup, len = std::min(int4::kGroup, k - start);
        const float* wg = w.data() + r * k + start;
        const int64_t arg =
            std::max_element(wg, wg + len, [](float a, float b) { return std::fabs(a) < std::fabs(b); }) - wg;
        const float s = scales[r * Groups(k) + g];
        // The stored scale is the f16 rounding of extreme / -8.
        EXPECT_EQ(s, static_cast<float>(c10::Half(wg[arg] / -8.f))) << r << "," << g;
        EXPECT_EQ(values[r * k + start + arg], -8) << "the extreme value maps to -8";
        for (int64_t i = 0; i < len; ++i) {
          const int8_t q = values[r * k + start + i];
          ASSERT_GE(q, -8);
          ASSERT_LE(q, 7);
          // Exactly round(w / scale) (IEEE division, nearest even), clamped; within half a step, or one step
          // where +8 clamps to 7.
          EXPECT_EQ(q, static_cast<int8_t>(std::clamp(std::nearbyint(wg[i] / s), -8.f, 7.f)))
              << r << "," << start + i;
          const float err = std::fabs(wg[i] - s * q);
          EXPECT_LE(err, (q == 7 ? 1.0f : 0.5f) * std::fabs(s) * 1.0001f) << r << "," << start + i;
        }
      }
    }
    // Unpack gives back what Quantize reported; Pack of that gives back the same bytes.
    std::vector<int8_t> v2(values.size());
    std::vector<float> s2(scales.size());
    int4::Unpack(packed.data(), n, k, v2.data(), s2.data());
    EXPECT_EQ(v2, values);
    EXPECT_EQ(s2, scales);
    std::vector<uint8_t> repacked(packed.size());
    int4::Pack(values.data(), scales.data(), n, k, repacked.data());
    EXPECT_EQ(repacked, packed);
  }
}

// y[b, n] in double from the dequantised weights, and sum_k |x w| (what f32 rounding is relative to).
void Reference(const std::vector<float>& x, const std::vector<int8_t>& q, const std::vector<float>& s,
               const std::vector<float>& bias, const Case& c, std::vector<double>& y,
               std::vector<double>& mag) {
  y.assign(c.batch * c.n, 0);
  mag.assign(c.batch * c.n, 0);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t n = 0; n < c.n; ++n) {
      double acc = 0, m = 0;
      for (int64_t i = 0; i < c.k; ++i) {
        const double w = static_cast<double>(s[n * Groups(c.k) + i / int4::kGroup]) * q[n * c.k + i];
        acc += x[b * c.k + i] * w;
        m += std::fabs(x[b * c.k + i] * w);
      }
      y[b * c.n + n] = acc + bias[n];
      mag[b * c.n + n] = m + std::fabs(bias[n]);
    }
  }
}

void CheckPath(int4::KernelPath path, const Case& c, int64_t n_begin, int64_t n_end, bool with_bias,
               std::mt19937& rng) {
  std::normal_distribution<float> xdist(0, 1);
  const std::vector<float> w = RandomWeights(c.n, c.k, rng);
  std::vector<uint8_t> packed(static_cast<size_t>(int4::PackedBytes(c.n, c.k)));
  std::vector<int8_t> q(static_cast<size_t>(c.n * c.k));
  std::vector<float> s(static_cast<size_t>(c.n * Groups(c.k)));
  int4::Quantize(w.data(), c.n, c.k, packed.data(), q.data(), s.data());
  std::vector<float> x(c.batch * c.k), bias(c.n, 0.f);
  for (auto& v : x) v = xdist(rng);
  if (with_bias) {
    for (auto& v : bias) v = xdist(rng);
  }
  std::vector<double> want, mag;
  Reference(x, q, s, bias, c, want, mag);
  const float sentinel = 12345.f;
  std::vector<float> y(c.batch * c.n, sentinel);
  int4::GemmRows(path, x.data(), c.k, c.batch, c.k, packed.data(), with_bias ? bias.data() : nullptr,
                 y.data(), c.n, n_begin, n_end);
  for (int64_t b = 0; b < c.batch; ++b) {
    float xmax = 0;
    for (int64_t i = 0; i < c.k; ++i) xmax = std::max(xmax, std::fabs(x[b * c.k + i]));
    for (int64_t n = 0; n < c.n; ++n) {
      const float got = y[b * c.n + n];
      if (n < n_begin || n >= n_end) {
        ASSERT_EQ(got, sentinel) << "row " << n << " outside [" << n_begin << ", " << n_end
                                 << ") was written";
        continue;
      }
      // f32 accumulation, plus for the VNNI path the 16-bit rounding of x (half a step of max|x| / 32639 per
      // input, times sum |w|).
      double wsum = 0;
      for (int64_t i = 0; i < c.k; ++i)
        wsum += std::fabs(s[n * Groups(c.k) + i / int4::kGroup] * q[n * c.k + i]);
      const double tol = 1e-5 * mag[b * c.n + n] + wsum * xmax / 32639.0 * 0.5 + 1e-6;
      ASSERT_NEAR(got, want[b * c.n + n], tol) << int4::PathName(path) << " n=" << c.n << " k=" << c.k
                                               << " batch=" << c.batch << " row " << n << " input row " << b;
    }
  }
}

// The paths this CPU runs: BestPath() uncapped and capped at AVX2 (kernels::SetCpuIsaLimit), and kScalar.
std::vector<int4::KernelPath> PathsHere() {
  std::vector<int4::KernelPath> paths = {int4::KernelPath::kScalar};
  kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx2);
  if (int4::BestPath() == int4::KernelPath::kAvx2) paths.push_back(int4::KernelPath::kAvx2);
  kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx512);
  if (int4::BestPath() == int4::KernelPath::kVnni) paths.push_back(int4::KernelPath::kVnni);
  return paths;
}

TEST(Int4Gemm, EveryPathMatchesTheDequantisedProduct) {
  std::mt19937 rng(11);
  const std::vector<int4::KernelPath> paths = PathsHere();
  if (paths.size() < 3)
    std::printf("this CPU runs %zu of the 3 paths: only those are checked\n", paths.size());
  for (const int4::KernelPath path : paths) {
    for (const Case& c :
         {Case{8, 128, 1}, Case{37, 200, 1}, Case{16, 31, 2}, Case{13, 1000, 3}, Case{64, 256, 4},
          Case{24, 96, 5}, Case{9, 160, 8}, Case{40, 129, 9}, Case{8, 64, 13}}) {
      CheckPath(path, c, 0, c.n, true, rng);
      CheckPath(path, c, 0, c.n, false, rng);
      if (c.n > 5) CheckPath(path, c, 3, c.n - 2, true, rng);  // blocks that start and end mid-group
    }
  }
}

// A row's result is the same bits whatever else is in the batch (and on either side of a block split).
TEST(Int4Gemm, RowResultsDoNotDependOnTheBatch) {
  std::mt19937 rng(5);
  const int64_t n = 48, k = 320, batch = 13;
  const std::vector<float> w = RandomWeights(n, k, rng);
  std::vector<uint8_t> packed(static_cast<size_t>(int4::PackedBytes(n, k)));
  int4::Quantize(w.data(), n, k, packed.data());
  std::normal_distribution<float> xdist(0, 1);
  std::vector<float> x(batch * k);
  for (auto& v : x) v = xdist(rng);
  for (const int4::KernelPath path : PathsHere()) {
    std::vector<float> all(batch * n), one(n);
    int4::GemmRows(path, x.data(), k, batch, k, packed.data(), nullptr, all.data(), n, 0, n);
    for (int64_t b = 0; b < batch; ++b) {
      int4::GemmRows(path, x.data() + b * k, k, 1, k, packed.data(), nullptr, one.data(), n, 0, n);
      for (int64_t r = 0; r < n; ++r)
        ASSERT_EQ(one[r], all[b * n + r]) << int4::PathName(path) << " " << b << "," << r;
    }
  }
}

// The AVX2 path repeats the VNNI path's integer sums, lanes and tree: the same bits (so a laptop's int4
// model computes what this machine's does). Shapes with partial chunks, row ranges that start and end inside
// a row group, batches of several rows, bias or none.
TEST(Int4Gemm, Avx2PathIsBitwiseTheVnniPath) {
  const std::vector<int4::KernelPath> paths = PathsHere();
  if (paths.size() < 3) GTEST_SKIP() << "this CPU lacks the VNNI or the AVX2 path";
  std::mt19937 rng(17);
  std::normal_distribution<float> xdist(0, 1);
  for (const auto& [n, k, batch] : std::vector<std::array<int64_t, 3>>{
           {8, 128, 1}, {37, 200, 1}, {16, 31, 2}, {13, 1000, 3}, {64, 2048, 1}, {24, 96, 5}, {40, 129, 9}}) {
    const std::vector<float> w = RandomWeights(n, k, rng);
    std::vector<uint8_t> packed(static_cast<size_t>(int4::PackedBytes(n, k)));
    int4::Quantize(w.data(), n, k, packed.data());
    std::vector<float> x(batch * k), bias(n);
    for (auto& v : x) v = xdist(rng) * 3.f;
    for (auto& v : bias) v = xdist(rng);
    for (const bool with_bias : {false, true}) {
      const int64_t lo = n > 5 ? 3 : 0, hi = n > 5 ? n - 2 : n;
      std::vector<float> vnni(batch * n, -1.f), avx2(batch * n, -1.f);
      int4::GemmRows(int4::KernelPath::kVnni, x.data(), k, batch, k, packed.data(),
                     with_bias ? bias.data() : nullptr, vnni.data(), n, lo, hi);
      int4::GemmRows(int4::KernelPath::kAvx2, x.data(), k, batch, k, packed.data(),
                     with_bias ? bias.data() : nullptr, avx2.data(), n, lo, hi);
      ASSERT_EQ(0, std::memcmp(vnni.data(), avx2.data(), vnni.size() * sizeof(float)))
          << "n=" << n << " k=" << k << " batch=" << batch << " bias=" << with_bias;
    }
  }
}

// bf16 and f16 weights (the checkpoints' dtypes) quantise to the same bytes as their f32 values.
TEST(Int4Gemm, NarrowFloatWeightsQuantiseAsTheirF32Values) {
  at::manual_seed(4);
  const at::Tensor w = at::randn({21, 300}) * 0.02;
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    const at::Tensor narrow = w.to(dtype);
    EXPECT_TRUE(at::equal(QuantizeInt4(narrow).qweight, QuantizeInt4(narrow.to(at::kFloat)).qweight))
        << dtype;
  }
}

TEST(Int4Gemm, Int4LinearMatchesDequantisedLinear) {
  at::manual_seed(0);
  const at::Tensor w = at::randn({100, 160}) * 0.05;
  LinearWeight q = QuantizeInt4(w);
  ASSERT_TRUE(q.quantized());
  ASSERT_TRUE(q.int4);
  EXPECT_EQ(q.nbytes(), int4::PackedBytes(100, 160));
  EXPECT_EQ(q.out_features(), 100);
  EXPECT_EQ(q.in_features(), 160);
  const at::Tensor deq = q.Dequantized();
  ASSERT_EQ(deq.sizes(), w.sizes());
  // The dequantised weight is within one step of the float one (half a step but where +8 clamps to 7).
  const at::Tensor steps = q.Int4Scales().abs().repeat_interleave(int4::kGroup, 1).narrow(1, 0, 160);
  EXPECT_TRUE((deq - w).abs().le(steps * 1.0001).all().item<bool>());
  EXPECT_LT(((deq - w).norm() / w.norm()).item<double>(), 0.15);
  const at::Tensor bias = at::randn({100});
  const int saved = at::get_num_threads();
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t rows : {1, 3, 8, 33, 70}) {  // 33 and 70: beyond the kernel's rows, the dequantised GEMM
      const at::Tensor x = at::randn({rows, 160});
      const at::Tensor want = at::linear(x, deq, bias);
      const at::Tensor got = Int4Linear(x, q, bias);
      EXPECT_TRUE(at::allclose(got, want, 1e-3, 1e-3))
          << rows << " rows, " << threads << " threads: max diff " << (got - want).abs().max().item<float>();
      EXPECT_TRUE(at::equal(q.Forward(x, bias), got));
    }
  }
  at::set_num_threads(saved);
  // Rows() of a fused projection: a whole-group start is a view of the packed bytes, any other a repack; both
  // hold the same values and scales as the parent's rows.
  for (const auto& [start, n] : {std::pair<int64_t, int64_t>{16, 40}, {13, 50}, {96, 4}}) {
    const LinearWeight part = q.Rows(start, n);
    EXPECT_TRUE(part.int4);
    EXPECT_TRUE(at::equal(part.Int8Values(), q.Int8Values().narrow(0, start, n))) << start;
    EXPECT_TRUE(at::equal(part.Int4Scales(), q.Int4Scales().narrow(0, start, n))) << start;
    const at::Tensor x = at::randn({2, 160});
    EXPECT_TRUE(at::allclose(part.Forward(x), q.Forward(x).narrow(1, start, n), 1e-6, 1e-6)) << start;
  }
  EXPECT_EQ(q.Rows(16, 40).qweight.data_ptr(),
            static_cast<uint8_t*>(q.qweight.data_ptr()) + 2 * int4::PackedBytes(8, 160));
  // Wrong inputs are refused with the operation's name.
  EXPECT_THROW(Int4Linear(at::randn({2, 159}), q, at::Tensor()), c10::Error);
  EXPECT_THROW(Int4Linear(at::randn({2, 160}).to(at::kDouble), q, at::Tensor()), c10::Error);
  EXPECT_THROW(Int8Linear(at::randn({2, 160}), q, at::Tensor()), c10::Error);
}

}  // namespace
}  // namespace monologue::lm
