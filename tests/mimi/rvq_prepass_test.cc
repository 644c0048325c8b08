// The RVQ's bf16 pre-pass (SplitRvq::NearestFromPrepass) picks exactly the centroids of the full f32 sweep:
// codes are compared with the pre-pass on and off at the released quantizer's size over inputs of several
// scales, and on a small codebook built to stress it (duplicate centroids, centroids one ulp apart, inputs
// exactly on a centroid so that distances clamp at 0, non-finite inputs that must fall back).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/kernels/few_row_linear.h"
#include "core/mimi/split_rvq.h"

namespace monologue {
namespace {

using mimi::SplitRvq;

// A quantizer from the given codebooks ([n_q, bins, d], usage 1) and input/output projections.
SplitRvq Make(const at::Tensor& codebooks, const at::Tensor& input_proj, const at::Tensor& output_proj) {
  const int64_t n_q = codebooks.size(0), bins = codebooks.size(1), d = codebooks.size(2);
  std::map<std::string, at::Tensor> t;
  for (const char* part : {"rvq_first", "rvq_rest"}) {
    t[absl::StrCat("quantizer.", part, ".input_proj.weight")] = input_proj.unsqueeze(2);
    t[absl::StrCat("quantizer.", part, ".output_proj.weight")] = output_proj.unsqueeze(2);
  }
  for (int64_t l = 0; l < n_q; ++l) {
    const std::string p = l == 0 ? "quantizer.rvq_first.vq.layers.0._codebook."
                                 : absl::StrCat("quantizer.rvq_rest.vq.layers.", l - 1, "._codebook.");
    t[p + "cluster_usage"] = at::ones({bins});
    t[p + "embedding_sum"] = codebooks[l];
  }
  MimiQuantizerConfig c;
  c.dimension = d;
  c.n_q = n_q;
  c.bins = bins;
  c.input_dimension = input_proj.size(1);
  c.output_dimension = output_proj.size(0);
  mimi::WeightReader reader(
      [t](const std::string& name) -> absl::StatusOr<at::Tensor> {
        auto it = t.find(name);
        if (it == t.end()) return absl::NotFoundError(name);
        return it->second;
      },
      "test", c10::Device(c10::kCPU));
  auto q = SplitRvq::Load(reader, c, "quantizer.");
  EXPECT_TRUE(q.ok()) << q.status();
  return *std::move(q);
}

at::Tensor Codes(const SplitRvq& q, const at::Tensor& x, bool prepass) {
  SplitRvq::SetPrepassEnabled(prepass);
  at::Tensor codes = q.Encode(x, q.total_codebooks());
  SplitRvq::SetPrepassEnabled(true);
  return codes;
}

TEST(RvqPrepassTest, ReleasedSizeCodesAreTheFullSweeps) {
  if (!kernels::HasFewRowKernel()) GTEST_SKIP() << "no AVX2: the few-row path and its pre-pass are off";
  at::manual_seed(11);
  const SplitRvq q =
      Make(at::randn({32, 2048, 256}), at::randn({256, 512}) / 22.6, at::randn({512, 256}) / 16);
  ASSERT_TRUE(q.has_prepass());
  int64_t compared = 0;
  for (double scale : {0.01, 0.3, 1.0, 3.0, 30.0}) {
    for (auto [b, t] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 2}, {2, 2}, {8, 2}}) {
      const at::Tensor x = at::randn({b, 512, t}) * scale;
      const at::Tensor with = Codes(q, x, true), without = Codes(q, x, false);
      ASSERT_EQ(with.sizes(), without.sizes());
      EXPECT_TRUE(at::equal(with, without)) << "scale " << scale << ", " << b << " x " << t << ": "
                                            << with.ne(without).sum().item<int64_t>() << " codes differ";
      compared += with.numel();
    }
  }
  EXPECT_EQ(compared, 32 * (1 + 2 + 4 + 16) * 5);
}

TEST(RvqPrepassTest, TiesZeroDistancesAndNonFiniteInputsGiveTheFullSweepsCodes) {
  if (!kernels::HasFewRowKernel()) GTEST_SKIP() << "no AVX2: the few-row path and its pre-pass are off";
  at::manual_seed(12);
  const int64_t d = 16, bins = 64;
  at::Tensor books = at::randn({2, bins, d});
  books[0][7].copy_(books[0][3]);  // duplicates: the full sweep takes the first
  books[0][11].copy_(books[0][10]);
  books[0][11][5] = std::nextafter(books[0][10][5].item<float>(), 1e9f);  // one ulp apart
  books[0][20].copy_(books[0][21] * (1 + 1e-7));
  const SplitRvq q = Make(books, at::eye(d), at::eye(d));  // identity projections: the latent is the input
  ASSERT_TRUE(q.has_prepass());
  std::vector<at::Tensor> inputs;
  for (int64_t c : {3, 7, 10, 11, 20, 21, 0, 63}) inputs.push_back(books[0][c].clone());  // on a centroid
  inputs.push_back((books[0][10] + books[0][11]) / 2);                                    // between two
  inputs.push_back((books[0][3] + books[0][12]) / 2);
  inputs.push_back(at::zeros({d}));
  inputs.push_back(books[0][5] * 1e-20);
  at::Tensor nan = books[0][4].clone();
  nan[2] = std::numeric_limits<float>::quiet_NaN();
  inputs.push_back(nan);
  inputs.push_back(books[0][4] * 1e30);  // ||x||^2 overflows
  at::Tensor inf = books[0][4].clone();
  inf[0] = std::numeric_limits<float>::infinity();
  inputs.push_back(inf);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor x = inputs[i].view({1, d, 1});
    const at::Tensor with = Codes(q, x, true), without = Codes(q, x, false);
    EXPECT_TRUE(at::equal(with, without)) << "input " << i << ": " << with << " vs " << without;
  }
  // A centroid and its duplicate: the first index, whichever is given.
  EXPECT_EQ(Codes(q, inputs[1].view({1, d, 1}), true)[0][0][0].item<int64_t>(), 3);
  // Both rows of one frame at once (rows are checked one by one after a shared pre-pass).
  const at::Tensor pair = at::stack({inputs[2], inputs[5]}, 1).unsqueeze(0);  // [1, d, 2]
  EXPECT_TRUE(at::equal(Codes(q, pair, true), Codes(q, pair, false)));
}

TEST(RvqPrepassTest, NonFiniteCodebookHasNoPrepass) {
  at::Tensor books = at::randn({2, 8, 4});
  // Finite weights (the loader refuses others) whose squared norm overflows f32.
  books[1][2][1] = 3e38f;
  EXPECT_FALSE(Make(books, at::eye(4), at::eye(4)).has_prepass());
  EXPECT_TRUE(Make(at::randn({2, 8, 4}), at::eye(4), at::eye(4)).has_prepass());
}

}  // namespace
}  // namespace monologue
