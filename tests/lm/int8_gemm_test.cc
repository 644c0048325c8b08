// The int8-weight kernels (core/lm/int8_gemm.h, lm_linear.h) against a double-precision reference of the
// same product: every path (scalar, AVX2, AVX-512, AVX-512 VNNI), odd shapes that leave vector tails and
// row-block tails, batch 1..13 (every grouping of batch rows), bias, row sub-ranges, batch invariance; then
// the tensor-level Int8Linear (threads, many rows) and the quantisation itself.
#include "core/lm/int8_gemm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/kernels/cpu_isa.h"
#include "core/kernels/few_row_linear.h"
#include "core/lm/int4_gemm.h"
#include "core/lm/lm_linear.h"

namespace monologue::lm {
namespace {

struct Case {
  int64_t n, k, batch;
};

// y[b, n] in double, and the bound sum_k |x w| * scale that f32 accumulation error is relative to.
void Reference(const std::vector<float>& x, const std::vector<int8_t>& w, const std::vector<float>& scale,
               const std::vector<float>& bias, const Case& c, std::vector<double>& y, std::vector<double>& mag) {
  y.assign(c.batch * c.n, 0);
  mag.assign(c.batch * c.n, 0);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t n = 0; n < c.n; ++n) {
      double acc = 0, m = 0;
      for (int64_t i = 0; i < c.k; ++i) {
        acc += static_cast<double>(x[b * c.k + i]) * w[n * c.k + i];
        m += std::fabs(static_cast<double>(x[b * c.k + i]) * w[n * c.k + i]);
      }
      y[b * c.n + n] = acc * scale[n] + bias[n];
      mag[b * c.n + n] = m * scale[n] + std::fabs(bias[n]);
    }
  }
}

std::vector<int8_t> Packed(const std::vector<int8_t>& w, int64_t n, int64_t k) {
  std::vector<int8_t> out(static_cast<size_t>(int8::PackedBytes(n, k)));
  int8::PackRows(w.data(), n, k, out.data());
  return out;
}

// Runs one path on rows [n_begin, n_end) and checks those rows (and that the others were left alone).
void CheckPath(int8::KernelPath path, const Case& c, int64_t n_begin, int64_t n_end, bool with_bias,
               std::mt19937& rng) {
  std::uniform_int_distribution<int> wdist(-127, 127);
  std::normal_distribution<float> xdist(0, 1);
  std::uniform_real_distribution<float> sdist(0.001f, 0.05f);
  std::vector<int8_t> w(c.n * c.k);
  std::vector<float> x(c.batch * c.k), scale(c.n), bias(c.n, 0.f);
  for (auto& v : w) v = static_cast<int8_t>(wdist(rng));
  for (auto& v : x) v = xdist(rng);
  for (auto& v : scale) v = sdist(rng);
  if (with_bias) {
    for (auto& v : bias) v = xdist(rng);
  }
  std::vector<double> want, mag;
  Reference(x, w, scale, bias, c, want, mag);
  std::vector<int32_t> row_sums(c.n, 0);
  std::vector<double> abs_w(c.n, 0);  // sum_k |w[n, k]| * scale[n]
  for (int64_t n = 0; n < c.n; ++n) {
    for (int64_t i = 0; i < c.k; ++i) {
      row_sums[n] += w[n * c.k + i];
      abs_w[n] += std::abs(w[n * c.k + i]) * static_cast<double>(scale[n]);
    }
  }
  std::vector<double> max_x(c.batch, 0);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t i = 0; i < c.k; ++i) max_x[b] = std::max(max_x[b], std::fabs(static_cast<double>(x[b * c.k + i])));
  }
  const float sentinel = -12345.f;
  std::vector<float> y(c.batch * c.n, sentinel);
  const std::vector<int8_t> packed = Packed(w, c.n, c.k);
  int8::GemmRows(path, x.data(), c.k, c.batch, c.k, packed.data(), scale.data(), row_sums.data(),
                 with_bias ? bias.data() : nullptr, y.data(), c.n, n_begin, n_end);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t n = 0; n < c.n; ++n) {
      const float got = y[b * c.n + n];
      if (n < n_begin || n >= n_end) {
        ASSERT_EQ(got, sentinel) << "row " << n << " outside the range was written";
        continue;
      }
      // f32 accumulation (kAvx512): error well within K ulps of the magnitude sum; the fixed-point paths
      // round each input to 1/32767 of its row's largest value (half a step at most per element).
      const double tol = 1e-6 * static_cast<double>(c.k) * mag[b * c.n + n] + 1e-6 +
                         abs_w[n] * max_x[b] / 32767.0 * 0.51;
      ASSERT_NEAR(got, want[b * c.n + n], tol)
          << int8::PathName(path) << " n=" << c.n << " k=" << c.k << " batch=" << c.batch << " b=" << b
          << " row=" << n;
    }
  }
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> out;
    for (int64_t batch = 1; batch <= 13; ++batch) {
      // k: below one vector, one vector plus a tail, several vectors exactly; n: below and above the 4- and
      // 8-row blocks.
      for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {9, 17}, {13, 64}, {21, 131}, {8, 48}})
        out.push_back({n, k, batch});
    }
    out.push_back({37, 1000, 3});
    return out;
  }();
  return cases;
}

TEST(Int8Gemm, ScalarPathMatchesReference) {
  std::mt19937 rng(1);
  for (const Case& c : Cases()) {
    CheckPath(int8::KernelPath::kScalar, c, 0, c.n, /*with_bias=*/c.batch % 2 == 0, rng);
  }
}

// The vector paths this CPU has (the others are skipped).
std::vector<int8::KernelPath> VectorPaths() {
  std::vector<int8::KernelPath> out;
  const int8::KernelPath best = int8::BestPath();
  if (best != int8::KernelPath::kScalar) out.push_back(int8::KernelPath::kAvx2);  // every vector CPU has AVX2
  if (best == int8::KernelPath::kAvx512 || best == int8::KernelPath::kVnni)
    out.push_back(int8::KernelPath::kAvx512);
  if (best == int8::KernelPath::kVnni) out.push_back(int8::KernelPath::kVnni);
  return out;
}

TEST(Int8Gemm, VectorPathsMatchReference) {
  if (VectorPaths().empty()) GTEST_SKIP() << "this CPU has neither AVX2 + FMA nor AVX-512";
  std::mt19937 rng(2);
  for (int8::KernelPath path : VectorPaths()) {
    for (const Case& c : Cases()) CheckPath(path, c, 0, c.n, /*with_bias=*/c.batch % 2 == 1, rng);
  }
}

// The packed layout: groups of 8 rows, 64 columns of each row per 64-byte chunk, rows in turn within a chunk;
// padding rows and columns are zero; unpacking restores the weight.
TEST(Int8Gemm, PackedLayoutInterleavesRowGroupsByCacheLine) {
  const int64_t n = 11, k = 130, kp = 192;
  ASSERT_EQ(int8::PaddedK(k), kp);
  ASSERT_EQ(int8::PackedBytes(n, k), 16 * kp);
  std::vector<int8_t> w(n * k);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; ++i) w[r * k + i] = static_cast<int8_t>((r * 7 + i) % 251 - 125);
  }
  const std::vector<int8_t> packed = Packed(w, n, k);
  // Row 9, column 70: group 1 (byte 8 * 192), chunk 1 (+512), row 1 of the group (+64), offset 6.
  EXPECT_EQ(int8::PackedOffset(9, 70, kp), 8 * 192 + 512 + 64 + 6);
  int64_t nonzero_padding = 0;
  for (int64_t r = 0; r < 16; ++r) {
    for (int64_t i = 0; i < kp; ++i) {
      const int8_t v = packed[static_cast<size_t>(int8::PackedOffset(r, i, kp))];
      if (r < n && i < k) {
        ASSERT_EQ(v, w[r * k + i]) << r << ", " << i;
      } else if (v != 0) {
        ++nonzero_padding;
      }
    }
  }
  EXPECT_EQ(nonzero_padding, 0);
  std::vector<int8_t> back(n * k, 0);
  int8::UnpackRows(packed.data(), n, k, back.data());
  EXPECT_EQ(back, w);
}

TEST(Int8Gemm, RowSubRangesTouchOnlyTheirRows) {
  std::mt19937 rng(3);
  std::vector<int8::KernelPath> paths = VectorPaths();
  paths.push_back(int8::KernelPath::kScalar);
  for (int8::KernelPath path : paths) {
    CheckPath(path, {23, 35, 5}, 3, 20, true, rng);
    CheckPath(path, {23, 35, 1}, 22, 23, false, rng);
    CheckPath(path, {23, 35, 8}, 0, 9, true, rng);
  }
}

// The fixed-point paths' result is defined exactly: each input row rounded to 16-bit fixed point (q = round(x
// / s), s = max |x| / 32767 in f32, ties to even), the integer sum of q * w, then (sum * s) * scale in
// double, rounded to f32, plus the bias. Checked bit for bit on every such path this CPU runs (scalar, AVX2,
// AVX-512 VNNI: so the same bits on every CPU), so a lane of one row's sum landing in another's, a lost chunk
// or an overflowing 32-bit sum fails even where it would hide inside CheckPath's tolerance.
std::vector<int8::KernelPath> FixedPointPaths() {
  std::vector<int8::KernelPath> out = {int8::KernelPath::kScalar};
  if (kernels::CpuHasAvx2()) out.push_back(int8::KernelPath::kAvx2);
  if (int8::BestPath() == int8::KernelPath::kVnni) out.push_back(int8::KernelPath::kVnni);
  return out;
}

struct ExactCase {
  int64_t n, k, batch;
  bool extreme;  // every weight -128 or 127 and every input at the row's maximum: the largest sums there are
};

void CheckExact(int8::KernelPath path, const ExactCase& c, std::mt19937& rng) {
  std::uniform_int_distribution<int> wdist(-127, 127), coin(0, 1);
  std::normal_distribution<float> xdist(0, 1);
  std::uniform_real_distribution<float> sdist(0.001f, 0.05f);
  const int64_t n = c.n, k = c.k, batch = c.batch;
  std::vector<int8_t> w(n * k);
  std::vector<float> x(batch * k), scale(n), bias(n);
  for (auto& v : w) v = static_cast<int8_t>(c.extreme ? (coin(rng) ? 127 : -128) : wdist(rng));
  for (auto& v : x) v = c.extreme ? (coin(rng) ? 3.5f : -3.5f) : xdist(rng);
  if (c.extreme) {
    // Row 0 of input row 0: all weights 127, all inputs +max: one sign throughout, each lane's sum at its
    // bound.
    std::fill(w.begin(), w.begin() + k, int8_t{127});
    std::fill(x.begin(), x.begin() + k, 3.5f);
    // Row 1: all -128 against the same inputs: the most negative sums.
    if (n > 1) std::fill(w.begin() + k, w.begin() + 2 * k, int8_t{-128});
  }
  for (auto& v : scale) v = sdist(rng);
  for (auto& v : bias) v = xdist(rng);
  std::vector<int32_t> row_sums(n, 0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; ++i) row_sums[r] += w[r * k + i];
  }
  std::vector<float> y(batch * n);
  const std::vector<int8_t> packed = Packed(w, n, k);
  int8::GemmRows(path, x.data(), k, batch, k, packed.data(), scale.data(), row_sums.data(), bias.data(),
                 y.data(), n, 0, n);
  for (int64_t b = 0; b < batch; ++b) {
    float m = 0;
    for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(x[b * k + i]));
    const float step = m / 32767.f;
    for (int64_t r = 0; r < n; ++r) {
      int64_t sum = 0;
      for (int64_t i = 0; i < k; ++i) {
        const float q = std::clamp(std::nearbyint(x[b * k + i] / step), -32767.f, 32767.f);
        sum += static_cast<int64_t>(q) * w[r * k + i];
      }
      const float want = static_cast<float>(static_cast<double>(sum) * static_cast<double>(step) *
                                            static_cast<double>(scale[r])) +
                         bias[r];
      ASSERT_EQ(y[b * n + r], want) << int8::PathName(path) << " n=" << n << " k=" << k << " b=" << b
                                    << " row=" << r << (c.extreme ? " (extreme values)" : "");
    }
  }
}

TEST(Int8Gemm, FixedPointPathsAreExact) {
  std::mt19937 rng(5);
  // n: a row group, a group and a tail, many groups; k: one chunk, tails, the depformer's width, the widest
  // products (tts-1.6b's 5632, Moshi 7B's 11264) across the 4096-input widening of the vector sums; the
  // extreme cases sit at the 32-bit lanes' bound (4096 inputs) and past it.
  const std::vector<ExactCase> cases = {{8, 64, 1, false},    {13, 100, 2, false}, {40, 1024, 1, false},
                                        {23, 2049, 3, false}, {9, 5632, 2, false}, {8, 11264, 1, false},
                                        {8, 4096, 1, true},   {16, 8192, 2, true}, {3, 4160, 1, true}};
  for (int8::KernelPath path : FixedPointPaths()) {
    for (const ExactCase& c : cases) CheckExact(path, c, rng);
  }
}

// The path limit (MONOLOGUE_INT8_KERNEL in the CLI): BestPath() never returns more than the limit, the names
// round-trip, and lifting the limit restores the CPU's best.
TEST(Int8Gemm, PathLimitCapsBestPath) {
  const int8::KernelPath best = int8::BestPath();
  for (int8::KernelPath limit : {int8::KernelPath::kScalar, int8::KernelPath::kAvx2,
                                 int8::KernelPath::kAvx512, int8::KernelPath::kVnni}) {
    int8::KernelPath parsed;
    ASSERT_TRUE(int8::ParsePathName(int8::PathName(limit), &parsed)) << int8::PathName(limit);
    EXPECT_EQ(parsed, limit);
    int8::SetPathLimit(limit);
    EXPECT_LE(static_cast<int>(int8::BestPath()), static_cast<int>(limit)) << int8::PathName(limit);
    EXPECT_LE(static_cast<int>(int8::BestPath()), static_cast<int>(best));
  }
  int8::SetPathLimit(int8::KernelPath::kAvx2);
  if (best != int8::KernelPath::kScalar) {
    EXPECT_EQ(int8::BestPath(), int8::KernelPath::kAvx2);
  }
  int8::SetPathLimit(int8::KernelPath::kVnni);
  EXPECT_EQ(int8::BestPath(), best);
  int8::KernelPath unused;
  EXPECT_FALSE(int8::ParsePathName("avx512vnni", &unused));
  EXPECT_FALSE(int8::ParsePathName("", &unused));
}

// The process-wide instruction-set cap (MONOLOGUE_CPU_ISA in the CLI) caps the int8 and int4 kernels too.
TEST(Int8Gemm, CpuIsaLimitCapsBestPath) {
  const int8::KernelPath best = int8::BestPath();
  const int4::KernelPath best4 = int4::BestPath();
  kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx2);
  EXPECT_LE(static_cast<int>(int8::BestPath()), static_cast<int>(int8::KernelPath::kAvx2));
  if (kernels::DetectedCpuIsa() >= kernels::CpuIsa::kAvx2) {
    EXPECT_EQ(int8::BestPath(), int8::KernelPath::kAvx2);
  }
  EXPECT_NE(int4::BestPath(), int4::KernelPath::kVnni);
  kernels::SetCpuIsaLimit(kernels::CpuIsa::kScalar);
  EXPECT_EQ(int8::BestPath(), int8::KernelPath::kScalar);
  EXPECT_EQ(int4::BestPath(), int4::KernelPath::kScalar);
  kernels::SetCpuIsaLimit(kernels::CpuIsa::kAvx512);
  EXPECT_EQ(int8::BestPath(), best);
  EXPECT_EQ(int4::BestPath(), best4);
}

TEST(Int8Gemm, OutputOfARowDoesNotDependOnTheBatch) {
  std::mt19937 rng(4);
  const int64_t n = 29, k = 83, batch = 13;
  std::vector<int8_t> w(n * k);
  std::vector<float> x(batch * k), scale(n, 0.01f);
  std::uniform_int_distribution<int> wdist(-127, 127);
  std::normal_distribution<float> xdist(0, 1);
  for (auto& v : w) v = static_cast<int8_t>(wdist(rng));
  for (auto& v : x) v = xdist(rng);
  std::vector<int32_t> row_sums(n, 0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; ++i) row_sums[r] += w[r * k + i];
  }
  std::vector<int8::KernelPath> paths = VectorPaths();
  paths.push_back(int8::KernelPath::kScalar);
  const std::vector<int8_t> packed = Packed(w, n, k);
  for (int8::KernelPath path : paths) {
    std::vector<float> all(batch * n);
    int8::GemmRows(path, x.data(), k, batch, k, packed.data(), scale.data(), row_sums.data(), nullptr,
                   all.data(), n, 0, n);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<float> one(n);
      int8::GemmRows(path, x.data() + b * k, k, 1, k, packed.data(), scale.data(), row_sums.data(), nullptr,
                     one.data(), n, 0, n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(one[i], all[b * n + i]) << int8::PathName(path) << " b=" << b;
    }
  }
}

TEST(Int8Gemm, QuantizeInt8RoundsPerRow) {
  at::manual_seed(0);
  at::Tensor w = at::randn({19, 45});
  w[4].zero_();
  w[7].mul_(100);
  LinearWeight q = QuantizeInt8(w);
  ASSERT_EQ(q.qweight.scalar_type(), at::kChar);
  ASSERT_EQ(q.scale.sizes(), at::IntArrayRef({19}));
  EXPECT_EQ(q.out_features(), 19);
  EXPECT_EQ(q.in_features(), 45);
  EXPECT_FALSE(q.weight.defined());
  const at::Tensor values = q.Int8Values();
  ASSERT_EQ(values.sizes(), at::IntArrayRef({19, 45}));
  // Each row's largest magnitude maps to +-127; every value is within half a step of the float weight.
  at::Tensor deq = q.Dequantized();
  EXPECT_TRUE(at::equal(deq, values.to(at::kFloat) * q.scale.unsqueeze(1)));
  EXPECT_TRUE((deq - w).abs().le(q.scale.unsqueeze(1) * 0.5 + 1e-7).all().item<bool>());
  EXPECT_EQ(values.abs().amax({1}).index({at::arange(19).ne(4)}).min().item<int64_t>(), 127);
  EXPECT_TRUE(values[4].eq(0).all().item<bool>());
  EXPECT_EQ(q.scale[4].item<float>(), 1.f);
  EXPECT_TRUE(at::equal(q.row_sum, values.to(at::kInt).sum({1}).to(at::kInt)));
  // Packed: 19 rows padded to 24 (3 groups of 8), 45 columns to 64, the padding zero.
  EXPECT_EQ(q.nbytes(), 24 * 64 + 19 * 4 + 19 * 4);
  EXPECT_EQ(q.qweight.abs().sum().item<int64_t>(), values.abs().sum().item<int64_t>());
  // At widths that need no padding: one byte per weight plus a scale and a row sum per row.
  EXPECT_EQ(QuantizeInt8(at::randn({16, 128})).nbytes(), 16 * 128 + 16 * 8);
  // Exactly round(w / scale) (IEEE division, nearest even) on every row, whatever path quantised it, and the
  // same from bf16 and f16 weights as from their f32 values (they are read row by row, never widened whole).
  const at::Tensor scale = q.scale.unsqueeze(1);
  EXPECT_TRUE(at::equal(values, (w / scale).round().clamp(-127, 127).to(at::kChar)));
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    const at::Tensor narrow = w.to(dtype);
    const LinearWeight a = QuantizeInt8(narrow), b = QuantizeInt8(narrow.to(at::kFloat));
    EXPECT_TRUE(at::equal(a.qweight, b.qweight)) << dtype;
    EXPECT_TRUE(at::equal(a.scale, b.scale)) << dtype;
  }
}

// Int8Linear on tensors: any leading shape, bias, threads, the many-rows (dequantised) branch, Rows()
// views of a fused projection; against at::linear on the dequantised weight.
TEST(Int8Gemm, Int8LinearMatchesDequantisedLinear) {
  at::manual_seed(1);
  at::Tensor w = at::randn({300, 77});
  at::Tensor bias = at::randn({300});
  LinearWeight q = QuantizeInt8(w);
  at::Tensor deq = q.Dequantized();
  const int threads = at::get_num_threads();
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    for (int64_t rows : {1, 5, 8, 40}) {
      at::Tensor x = at::randn({rows, 1, 77});
      std::vector<int8::KernelPath> paths = VectorPaths();
      paths.push_back(int8::KernelPath::kScalar);
      for (int8::KernelPath path : paths) {
        at::Tensor got = Int8Linear(x, q, bias, path);
        at::Tensor want = at::linear(x, deq, bias);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT((got - want).abs().max().item<double>(), 1e-3 * want.abs().max().item<double>())
            << rows << " rows, " << t << " threads, " << int8::PathName(path);
      }
    }
  }
  at::set_num_threads(threads);
  // Weight sets of a fused projection: from a row-group boundary (a view whose last group runs into the next
  // set's rows) and from inside a group (a repacked copy).
  at::Tensor x = at::randn({2, 1, 77});
  for (auto [start, n] : std::vector<std::pair<int64_t, int64_t>>{{96, 50}, {100, 50}, {0, 300}, {296, 4}}) {
    LinearWeight part = q.Rows(start, n);
    EXPECT_EQ(part.out_features(), n);
    EXPECT_TRUE(at::equal(part.Int8Values(), q.Int8Values().narrow(0, start, n))) << start;
    at::Tensor want = at::linear(x, deq.narrow(0, start, n));
    EXPECT_LT((part.Forward(x) - want).abs().max().item<double>(), 1e-4 * want.abs().max().item<double>())
        << start;
  }
  EXPECT_EQ(q.Rows(96, 50).qweight.data_ptr(), static_cast<int8_t*>(q.qweight.data_ptr()) + 12 * 8 * 128);
  // Float weights: a step's few rows go through the few-row kernel (f32 rounding away from ATen's GEMM),
  // many rows through ATen's GEMM itself.
  LinearWeight f;
  f.weight = w;
  EXPECT_TRUE(at::equal(f.Forward(x, bias), kernels::Linear(x, w, bias)));
  EXPECT_TRUE(at::allclose(f.Forward(x, bias), at::linear(x, w, bias), 1e-5, 1e-5));
  const at::Tensor many = at::randn({40, 77});
  EXPECT_TRUE(at::equal(f.Forward(many, bias), at::linear(many, w, bias)));
}

}  // namespace
}  // namespace monologue::lm
