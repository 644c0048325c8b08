#include "core/mimi/split_rvq.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kernels/few_row_linear.h"
#include "core/util/huge_pages.h"
#include "core/util/status_macros.h"

namespace monologue::mimi {
namespace {
std::atomic<bool> prepass_enabled{true};
// Beyond this many candidates for one row the full sweep is cheaper than re-checking them one by one.
constexpr int64_t kMaxPrepassCandidates = 64;

// g in the pre-pass bound: 1.01 K 2^-24 bounds the relative f32 rounding of a K-term dot product in any
// summation order (with margin), times 1.01 more for |bf16(e)| <= |e| (1 + 2^-8).
double PrepassRoundingFactor(int64_t k) { return 1.01 * 1.01 * static_cast<double>(k) * 0x1p-24; }

std::vector<int64_t>& PrepassScratch() {
  thread_local std::vector<int64_t> candidates;
  return candidates;
}
}  // namespace

absl::StatusOr<SplitRvq> SplitRvq::Load(const WeightReader& w, const MimiQuantizerConfig& c,
                                        const std::string& prefix) {
  if (c.n_q < 2) {
    return absl::InvalidArgumentError(absl::StrCat(w.source(), ": quantizer.n_q must be at least 2"));
  }
  SplitRvq q;
  q.bins_ = c.bins;
  const int64_t d = c.dimension;
  ASSIGN_OR_RETURN(q.first_in_, w.Get(prefix + "rvq_first.input_proj.weight", {d, c.input_dimension, 1}));
  ASSIGN_OR_RETURN(q.first_out_, w.Get(prefix + "rvq_first.output_proj.weight", {c.output_dimension, d, 1}));
  ASSIGN_OR_RETURN(q.rest_in_, w.Get(prefix + "rvq_rest.input_proj.weight", {d, c.input_dimension, 1}));
  ASSIGN_OR_RETURN(q.rest_out_, w.Get(prefix + "rvq_rest.output_proj.weight", {c.output_dimension, d, 1}));
  for (int64_t level = 0; level < c.n_q; ++level) {
    const std::string p = level == 0 ? absl::StrCat(prefix, "rvq_first.vq.layers.0._codebook.")
                                     : absl::StrCat(prefix, "rvq_rest.vq.layers.", level - 1, "._codebook.");
    ASSIGN_OR_RETURN(at::Tensor usage, w.Get(p + "cluster_usage", {c.bins}));
    ASSIGN_OR_RETURN(at::Tensor sum, w.Get(p + "embedding_sum", {c.bins, d}));
    at::Tensor e = sum / usage.clamp_min(1e-5).unsqueeze(1);
    // torch.cdist's GEMM operand for the codebook side: (E | 1 | ||E||^2).
    at::Tensor e3 = e.unsqueeze(0);
    at::Tensor norm = e3.pow(2).sum(-1, true);
    q.codebooks_aug_.push_back(PlaceOnHugePages(at::cat({e3, at::ones_like(norm), norm}, -1)));
    q.codebooks_.push_back(PlaceOnHugePages(e));
  }
  q.BuildPrepass();
  return q;
}

void SplitRvq::SetPrepassEnabled(bool enabled) { prepass_enabled = enabled; }

void SplitRvq::BuildPrepass() {
  for (const at::Tensor& aug : codebooks_aug_) {
    if (!aug.device().is_cpu() || aug.scalar_type() != at::kFloat || !at::isfinite(aug).all().item<bool>()) {
      prepass_aug_.clear();
      prepass_bounds_.clear();
      return;
    }
    const at::Tensor full = aug.select(0, 0).contiguous();  // [bins, D + 2]
    const at::Tensor rounded = full.to(at::kBFloat16).contiguous();
    const at::Tensor diff = full.to(at::kDouble) - rounded.to(at::kDouble);
    const int64_t d = full.size(1) - 2;
    const at::Tensor centroid_error = diff.narrow(1, 0, d).pow(2).sum(1).sqrt();
    const at::Tensor norm_error = diff.select(1, d + 1).abs();
    const at::Tensor length = full.narrow(1, 0, d).to(at::kDouble).pow(2).sum(1).sqrt();
    const at::Tensor norm = full.select(1, d + 1).to(at::kDouble);
    // B_c = ||x|| P_c + Q_c + 2 g ||x||^2 (NearestFromPrepass), P and Q rounded up so that they stay bounds
    // in f32.
    const double g = PrepassRoundingFactor(full.size(1));
    const at::Tensor p = 2 * centroid_error + 4 * g * length;
    const at::Tensor q = norm_error + 2 * g * norm.abs();
    prepass_bounds_.push_back((at::stack({p, q}, 1) * (1 + 1e-6) + 1e-30).to(at::kFloat).contiguous());
    prepass_aug_.push_back(PlaceOnHugePages(rounded));
  }
}

bool SplitRvq::NearestFromPrepass(const float* x_aug, int64_t m, int64_t level, float* approx,
                                  int64_t* best) const {
  // With E' = bf16(E), the pre-pass value of centroid c differs from the f32 product F_c that the full sweep
  // would compute by at most
  //   B_c = 2 ||x|| ||E_c - E'_c|| + |n_c - n'_c| + 2 g (2 ||x|| ||E_c|| + ||x||^2 + |n_c|)
  //       = ||x|| P_c + Q_c + 2 g ||x||^2   (P_c, Q_c precomputed by BuildPrepass),
  // the first two from the rounding of the codebook (x_aug = (-2x | ||x||^2 | 1)), the last from f32 rounding
  // in either product (g: PrepassRoundingFactor). ||x|| is taken from the row's f32 ||x||^2 with a 1e-4
  // margin for that sum's own rounding (at most ~K 2^-24 relative). F_min is at most U = min_c (approx_c +
  // B_c), so a centroid whose approx_c - B_c exceeds U (widened by 2^-20 so that sqrt's rounding cannot tie
  // it; 0 when U <= 0, where the clamp makes every F <= 0 equal) cannot be the first smallest sqrt(max(F,
  // 0)); the others' F are computed by the full sweep's own kernel and compared as it does.
  const int64_t k = codebooks_aug_[level].size(2), d = k - 2;
  const float* full = codebooks_aug_[level].data_ptr<float>();
  const float* pq = prepass_bounds_[level].data_ptr<float>();
  kernels::FewRowLinearBf16(x_aug, m, k, reinterpret_cast<const uint16_t*>(prepass_aug_[level].data_ptr()),
                            bins_, approx);
  const double g = PrepassRoundingFactor(k);
  std::vector<int64_t>& candidates = PrepassScratch();
  for (int64_t i = 0; i < m; ++i) {
    const double norm = x_aug[i * k + d];
    if (!std::isfinite(norm)) return false;
    // The bound's parts in f32, with a margin for the float arithmetic of the bound itself.
    const float length = static_cast<float>(std::sqrt(norm) * (1 + 1e-4));
    const float common = static_cast<float>(2 * g * norm * (1 + 1e-6) + 1e-30);
    const float* ai = approx + i * bins_;
    float upper = std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < bins_; ++c) {
      upper = std::min(upper, ai[c] + (length * pq[2 * c] + pq[2 * c + 1] + common) * 1.0001f);
    }
    if (!std::isfinite(upper)) return false;
    const float threshold = std::max(upper + std::fabs(upper) * 0x1p-20f, 0.f);
    candidates.clear();
    for (int64_t c = 0; c < bins_; ++c) {
      if (ai[c] - (length * pq[2 * c] + pq[2 * c + 1] + common) * 1.0001f <= threshold) {
        candidates.push_back(c);
        if (static_cast<int64_t>(candidates.size()) > kMaxPrepassCandidates) return false;
      }
    }
    // The full sweep's choice among the candidates (ascending): first index of the smallest sqrt(max(F, 0)).
    int64_t chosen = -1;
    float chosen_v = 0;
    for (int64_t c : candidates) {
      float f = 0;
      kernels::FewRowLinearF32(x_aug + i * k, 1, k, full + c * k, 1, &f);
      const float v = std::sqrt(std::max(f, 0.f));
      if (std::isnan(v)) return false;
      if (chosen < 0 || v < chosen_v) {
        chosen = c;
        chosen_v = v;
      }
    }
    if (chosen < 0) return false;
    best[i] = chosen;
  }
  return true;
}

at::Tensor SplitRvq::Nearest(const at::Tensor& flat, int64_t level) const {
  // ||x||^2 + ||e||^2 - 2 x.e through one augmented batched GEMM, clamped at 0, square root, first argmin.
  const at::Tensor x1 = flat.unsqueeze(0);
  at::Tensor norm = x1.pow(2).sum(-1, true);
  const at::Tensor x1_aug = at::cat({x1.mul(-2), norm, at::ones_like(norm)}, -1);
  // A streaming frame has 1-2 rows: the codebooks (2 MB a level, 67 MB for 32) are read at memory speed by
  // one sweep, ~1.4x faster than MKL's bmm at 1 row (the distances then differ from the reference's by
  // float rounding, no longer bit for bit).
  at::Tensor dist = kernels::ServesFewRows(x1_aug, x1_aug.size(1))
                        ? kernels::FewRowLinear(x1_aug, codebooks_aug_[level].select(0, 0), {})
                        : x1_aug.matmul(codebooks_aug_[level].mT());
  dist.clamp_min_(0).sqrt_();
  return dist.select(0, 0).argmin(-1);
}

std::vector<at::Tensor> SplitRvq::EncodeLevelsFewRows(const at::Tensor& z, int64_t first,
                                                      int64_t count) const {
  const int64_t b = z.size(0), t = z.size(2), d = z.size(1), m = b * t, k = d + 2;
  at::Tensor residual = z.permute({0, 2, 1}).contiguous();  // [B, T, D]: row b * T + t
  std::vector<float> x_aug(static_cast<size_t>(m * k));
  std::vector<float> dist(static_cast<size_t>(m * bins_));
  float* r = residual.data_ptr<float>();
  std::vector<at::Tensor> out;
  for (int64_t level = first; level < first + count; ++level) {
    // (-2x | ||x||^2 | 1) against the codebook's (E | 1 | ||E||^2): the squared distances, as Nearest.
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = r + i * d;
      float* ai = x_aug.data() + i * k;
      float norm = 0;
      for (int64_t j = 0; j < d; ++j) {
        norm += xi[j] * xi[j];
        ai[j] = -2 * xi[j];
      }
      ai[d] = norm;
      ai[d + 1] = 1;
    }
    at::Tensor idx = at::empty({b, t}, z.options().dtype(at::kLong));
    int64_t* ip = idx.data_ptr<int64_t>();
    const bool from_prepass =
        prepass_enabled && has_prepass() && NearestFromPrepass(x_aug.data(), m, level, dist.data(), ip);
    if (!from_prepass) {
      kernels::FewRowLinearF32(x_aug.data(), m, k, codebooks_aug_[level].data_ptr<float>(), bins_,
                               dist.data());
      for (int64_t i = 0; i < m; ++i) {
        // First index of the smallest sqrt(max(d, 0)) (a NaN counts as smallest, as at::argmin has it).
        const float* di = dist.data() + i * bins_;
        int64_t best = 0;
        float best_v = std::sqrt(std::max(di[0], 0.f));
        for (int64_t c = 1; c < bins_ && !std::isnan(best_v); ++c) {
          const float v = std::sqrt(std::max(di[c], 0.f));
          if (v < best_v || std::isnan(v)) {
            best = c;
            best_v = v;
          }
        }
        ip[i] = best;
      }
    }
    const float* e = codebooks_[level].data_ptr<float>();
    for (int64_t i = 0; i < m; ++i) {
      const int64_t best = ip[i];
      float* xi = r + i * d;
      const float* eb = e + best * d;
      for (int64_t j = 0; j < d; ++j) xi[j] -= eb[j];
    }
    out.push_back(std::move(idx));
  }
  return out;
}

std::vector<at::Tensor> SplitRvq::EncodeLevels(const at::Tensor& z, int64_t first, int64_t count) const {
  const int64_t b = z.size(0), t = z.size(2);
  if (z.device().is_cpu() && z.scalar_type() == at::kFloat && kernels::ServesFewRows(z, b * t) &&
      codebooks_aug_[first].scalar_type() == at::kFloat) {
    return EncodeLevelsFewRows(z, first, count);
  }
  std::vector<at::Tensor> out;
  at::Tensor residual = z;
  for (int64_t level = first; level < first + count; ++level) {
    const at::Tensor btd = residual.permute({0, 2, 1});
    const at::Tensor flat = btd.reshape({-1, btd.size(-1)});
    at::Tensor idx = Nearest(flat, level).view({b, t});
    const at::Tensor quantized = at::embedding(codebooks_[level], idx).permute({0, 2, 1});
    residual = residual - quantized;
    out.push_back(std::move(idx));
  }
  return out;
}

at::Tensor SplitRvq::Encode(const at::Tensor& x, int64_t n) const {
  const int64_t b = x.size(0), t = x.size(2);
  if (t == 0) return at::empty({b, n, 0}, x.options().dtype(at::kLong));
  const at::Tensor first = at::stack(EncodeLevels(at::conv1d(x, first_in_), 0, 1)).transpose(0, 1);
  if (n == 1) return first.contiguous();
  const at::Tensor rest = at::stack(EncodeLevels(at::conv1d(x, rest_in_), 1, n - 1)).transpose(0, 1);
  return at::cat({first, rest}, 1);
}

at::Tensor SplitRvq::DecodeFewRows(const at::Tensor& codes) const {
  // codes [B, K, T] -> rows [B * T]: the first level's centroid and the sum of the others' (added in level
  // order, as Decode's ATen adds round them), then both 1x1 output projections as few-row products.
  const int64_t b = codes.size(0), k = codes.size(1), t = codes.size(2);
  const int64_t d = codebooks_[0].size(1);
  const at::Tensor idx = codes.to(at::kLong).contiguous();
  const int64_t* ip = idx.data_ptr<int64_t>();
  at::Tensor first = at::empty({b, t, d}, codebooks_[0].options());
  at::Tensor rest = at::empty({b, t, d}, codebooks_[0].options());
  float* fp = first.data_ptr<float>();
  float* rp = rest.data_ptr<float>();
  for (int64_t bi = 0; bi < b; ++bi) {
    for (int64_t ti = 0; ti < t; ++ti) {
      const int64_t row = bi * t + ti;
      auto centroid = [&](int64_t level) {
        return codebooks_[level].data_ptr<float>() + ip[(bi * k + level) * t + ti] * d;
      };
      std::copy_n(centroid(0), d, fp + row * d);
      if (k > 1) {
        float* sum = rp + row * d;
        std::copy_n(centroid(1), d, sum);
        for (int64_t level = 2; level < k; ++level) {
          const float* e = centroid(level);
          for (int64_t j = 0; j < d; ++j) sum[j] = sum[j] + e[j];
        }
      }
    }
  }
  at::Tensor out = kernels::FewRowLinear(first, first_out_.select(2, 0), {});
  if (k > 1) out += kernels::FewRowLinear(rest, rest_out_.select(2, 0), {});
  return out.permute({0, 2, 1});  // [B, output_dimension, T]
}

at::Tensor SplitRvq::Decode(const at::Tensor& codes) const {
  const int64_t k = codes.size(1);
  if (codes.device().is_cpu() && codebooks_[0].scalar_type() == at::kFloat &&
      first_out_.scalar_type() == at::kFloat &&
      kernels::ServesFewRows(codebooks_[0], codes.size(0) * codes.size(2))) {
    return DecodeFewRows(codes);
  }
  const at::Tensor per_level = codes.transpose(0, 1);
  at::Tensor first = at::embedding(codebooks_[0], per_level[0]).permute({0, 2, 1});
  at::Tensor out = at::conv1d(first, first_out_);
  if (k > 1) {
    at::Tensor sum = at::embedding(codebooks_[1], per_level[1]).permute({0, 2, 1});
    for (int64_t level = 2; level < k; ++level) {
      sum = sum + at::embedding(codebooks_[level], per_level[level]).permute({0, 2, 1});
    }
    out += at::conv1d(sum, rest_out_);
  }
  return out;
}

}  // namespace monologue::mimi
