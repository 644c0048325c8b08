// The instruction-set cap (core/kernels/cpu_isa.h) and the AVX2 code it selects: on a CPU with AVX-512 every
// kernel gives bitwise the same outputs capped at AVX2 as uncapped (the AVX2 code repeats the AVX-512 code's
// lanes and trees), so a laptop without AVX-512 computes what the parity fixtures were checked on here.
// Capped at scalar, no kernel claims the operands and callers keep ATen.
#include "core/kernels/cpu_isa.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "core/kernels/elu.h"
#include "core/kernels/few_row_linear.h"
#include "core/kernels/small_attention.h"

namespace monologue::kernels {
namespace {

// Sets the cap for one scope.
class CappedAt {
 public:
  explicit CappedAt(CpuIsa isa) : saved_(CpuIsaLimit()) { SetCpuIsaLimit(isa); }
  ~CappedAt() { SetCpuIsaLimit(saved_); }

 private:
  CpuIsa saved_;
};

// Runs f() uncapped and capped at AVX2; both results, to compare bit for bit.
template <typename F>
std::pair<at::Tensor, at::Tensor> Avx512AndAvx2(F&& f) {
  at::Tensor wide = f();
  CappedAt capped(CpuIsa::kAvx2);
  EXPECT_FALSE(CpuHasAvx512());
  return {wide, f()};
}

// Bitwise equality, NaNs included (at::equal calls NaN unequal to itself).
bool SameBits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
}

class Avx2PathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DetectedCpuIsa() < CpuIsa::kAvx512)
      GTEST_SKIP() << "no AVX-512 on this CPU to compare the AVX2 code with";
  }
};

TEST(CpuIsaTest, TheLimitCapsWhatTheKernelsUse) {
  EXPECT_EQ(ActiveCpuIsa(), DetectedCpuIsa());
  {
    CappedAt capped(CpuIsa::kScalar);
    EXPECT_EQ(ActiveCpuIsa(), CpuIsa::kScalar);
    EXPECT_FALSE(CpuHasAvx2());
    EXPECT_FALSE(HasFewRowKernel());
    const at::Tensor x = at::randn({2, 32});
    EXPECT_FALSE(ServesFewRows(x, 2));
    EXPECT_FALSE(ServesElu(x));
    EXPECT_FALSE(ServesSmallAttention(at::zeros({1, 1, 1, 16}), at::zeros({1, 1, 4, 16}),
                                      at::zeros({1, 1, 4, 16}), std::nullopt));
    EXPECT_FALSE(ServesSmallAttentionRows(4, 16));
    // Callers then keep ATen, with its results.
    const at::Tensor w = at::randn({5, 32});
    EXPECT_TRUE(at::allclose(Linear(x, w), at::linear(x, w), 1e-5, 1e-6));
    EXPECT_TRUE(at::equal(EluOrAten(x), at::elu(x)));
    EXPECT_THROW(FewRowLinear(x, w, {}), c10::Error);
  }
  EXPECT_EQ(ActiveCpuIsa(), DetectedCpuIsa());
  {
    CappedAt capped(CpuIsa::kAvx2);
    EXPECT_LE(ActiveCpuIsa(), CpuIsa::kAvx2);
    EXPECT_FALSE(CpuHasAvx512());
    EXPECT_EQ(HasFewRowKernel(), DetectedCpuIsa() >= CpuIsa::kAvx2);
  }
}

TEST(CpuIsaTest, NamesRoundTrip) {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    CpuIsa parsed = CpuIsa::kScalar;
    ASSERT_TRUE(ParseCpuIsa(CpuIsaName(isa), &parsed)) << CpuIsaName(isa);
    EXPECT_EQ(parsed, isa);
  }
  CpuIsa untouched = CpuIsa::kAvx2;
  EXPECT_FALSE(ParseCpuIsa("avx512-vnni", &untouched));
  EXPECT_FALSE(ParseCpuIsa("AVX2", &untouched));
  EXPECT_FALSE(ParseCpuIsa("", &untouched));
  EXPECT_EQ(untouched, CpuIsa::kAvx2);
}

// Row counts 1-16 (f32 weights) and up to 64 (bf16), K with every kind of tail, both of the kernel's inner
// loops (x rows in L1 or not: m * K * 4 bytes over 16 KB), bias or none.
TEST_F(Avx2PathTest, FewRowLinearGivesTheSameBits) {
  at::manual_seed(5);
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 13, 16}) {
    for (int64_t k : {1, 7, 15, 16, 17, 100, 258, 1030, 4100}) {
      for (int64_t n : {1, 3, 5, 33}) {
        const at::Tensor x = at::randn({m, k}), w = at::randn({n, k}), b = at::randn({n});
        for (const at::Tensor& bias : {at::Tensor(), b}) {
          const auto [wide, narrow] = Avx512AndAvx2([&] { return FewRowLinear(x, w, bias); });
          ASSERT_TRUE(SameBits(wide, narrow)) << "f32 m=" << m << " k=" << k << " n=" << n;
          const at::Tensor wb = w.to(at::kBFloat16);
          const auto [wide16, narrow16] = Avx512AndAvx2([&] { return FewRowLinear(x, wb, bias); });
          ASSERT_TRUE(SameBits(wide16, narrow16)) << "bf16 m=" << m << " k=" << k << " n=" << n;
        }
      }
    }
  }
  for (int64_t m : {17, 40, 64}) {
    const at::Tensor x = at::randn({m, 300}), w = at::randn({37, 300}).to(at::kBFloat16);
    const auto [wide, narrow] = Avx512AndAvx2([&] { return FewRowLinear(x, w, {}); });
    ASSERT_TRUE(SameBits(wide, narrow)) << "bf16 m=" << m;
  }
  // The raw entry points.
  const at::Tensor x = at::randn({3, 129}), w = at::randn({11, 129});
  const auto [wide, narrow] = Avx512AndAvx2([&] {
    at::Tensor y = at::empty({3, 11});
    FewRowLinearF32(x.data_ptr<float>(), 3, 129, w.data_ptr<float>(), 11, y.data_ptr<float>());
    return y;
  });
  EXPECT_TRUE(SameBits(wide, narrow));
}

// Every 2^-12 from -20 to 4, random values at all scales, the edges, every tail length.
TEST_F(Avx2PathTest, EluGivesTheSameBits) {
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor x = at::cat({at::arange(-20 * 4096, 4 * 4096, at::kFloat) / 4096.f,
                                at::randn({100000}) * at::pow(10, at::rand({100000}) * 8 - 6),
                                at::tensor({0.f, -0.f, -17.5f, -17.4f, -100.f, -inf, inf, 1e-30f, -1e-30f,
                                            1e-40f, -1e-40f, std::nanf(""), -std::nanf("")})});
  const auto [wide, narrow] = Avx512AndAvx2([&] { return Elu(x); });
  EXPECT_TRUE(SameBits(wide, narrow));
  for (int64_t len = 1; len <= 40; ++len) {
    const at::Tensor part = x.narrow(0, 81910, len);
    const auto [w, n] = Avx512AndAvx2([&] { return Elu(part); });
    EXPECT_TRUE(SameBits(w, n)) << "length " << len;
  }
}

// Query counts, key counts and head widths of every kind (tails of 16 and 8 lanes), masks, bf16 keys and
// values, and the raw rows form.
TEST_F(Avx2PathTest, SmallAttentionGivesTheSameBits) {
  at::manual_seed(9);
  for (int64_t lq : {1, 2, 4}) {
    for (int64_t l : {1, 5, 33, 250}) {
      for (int64_t d : {3, 8, 16, 24, 64, 80}) {
        const at::Tensor q = at::randn({2, 3, lq, d}), k = at::randn({2, 3, l, d}),
                         v = at::randn({2, 3, l, d});
        at::Tensor mask = at::rand({2, 1, lq, l}) > 0.3;
        mask.select(3, 0).fill_(true);
        for (const std::optional<at::Tensor>& m :
             {std::optional<at::Tensor>(), std::optional<at::Tensor>(mask)}) {
          const auto [wide, narrow] = Avx512AndAvx2([&] { return SmallAttention(q, k, v, m); });
          ASSERT_TRUE(SameBits(wide, narrow)) << "f32 lq=" << lq << " l=" << l << " d=" << d;
          const at::Tensor kb = k.to(at::kBFloat16), vb = v.to(at::kBFloat16);
          const auto [wide16, narrow16] = Avx512AndAvx2([&] { return SmallAttention(q, kb, vb, m); });
          ASSERT_TRUE(SameBits(wide16, narrow16)) << "bf16 lq=" << lq << " l=" << l << " d=" << d;
        }
      }
    }
  }
  // The depformer's raw form: [B, H, D] queries against keys in a [B, L, H, D] cache.
  const int64_t b = 2, h = 4, d = 24, keys = 9;
  const at::Tensor q = at::randn({b, h, d}), k = at::randn({b, keys, h, d}), v = at::randn({b, keys, h, d});
  const auto [wide, narrow] = Avx512AndAvx2([&] {
    at::Tensor out = at::empty({b, h, d});
    SmallAttentionRows(q.data_ptr<float>(), b, h, d, k.data_ptr<float>(), v.data_ptr<float>(), keys * h * d,
                       d, h * d, keys, out.data_ptr<float>());
    return out;
  });
  EXPECT_TRUE(SameBits(wide, narrow));
}

}  // namespace
}  // namespace monologue::kernels
