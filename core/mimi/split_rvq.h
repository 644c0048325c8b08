// Split residual vector quantizer (moshi-reference.md §1.7): a semantic RVQ with one level and an acoustic
// RVQ with n_q - 1 levels, both quantizing the same latent through their own 1x1 input projections.
// Centroids are embedding_sum / max(cluster_usage, 1e-5); nearest centroids use the same squared-distance
// GEMM formula as torch.cdist's matrix-multiply path (bit for bit through ATen's GEMM; a streaming frame's few
// rows go through kernels::FewRowLinear, equal up to float rounding).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/mimi_config.h"
#include "core/mimi/weights.h"

namespace monologue::mimi {

class SplitRvq {
 public:
  // Weights under `prefix` ("quantizer.").
  static absl::StatusOr<SplitRvq> Load(const WeightReader& weights, const MimiQuantizerConfig& config,
                                       const std::string& prefix);

  int64_t total_codebooks() const { return static_cast<int64_t>(codebooks_.size()); }
  int64_t bins() const { return bins_; }

  // x [B, input_dimension, T] -> int64 codes [B, n, T], 1 <= n <= total_codebooks().
  at::Tensor Encode(const at::Tensor& x, int64_t n) const;
  // codes [B, K, T] (int64, 1 <= K <= total, values in [0, bins)) -> [B, output_dimension, T].
  at::Tensor Decode(const at::Tensor& codes) const;

  // The centroids of level `level` ([bins, dimension]).
  const at::Tensor& codebook(int64_t level) const { return codebooks_[level]; }

  // Whether a streaming frame's nearest centroids start from the bf16 pre-pass (on by default; the codes are
  // the same either way, which tests check by turning it off).
  static void SetPrepassEnabled(bool enabled);
  bool has_prepass() const { return !prepass_aug_.empty(); }

 private:
  // Nearest-centroid indices of `flat` [N, D] in level `level`, as torch.cdist(...).argmin(-1).
  at::Tensor Nearest(const at::Tensor& flat, int64_t level) const;
  // Residual quantization of z [B, D, T] over levels [first, first + count).
  std::vector<at::Tensor> EncodeLevels(const at::Tensor& z, int64_t first, int64_t count) const;
  // The same for a streaming frame's few rows (f32 on an AVX-512 CPU): the levels run in one loop over raw
  // rows instead of ~15 ATen calls each (32 levels: ~1.5 ms of a 16 ms batch-1 encode frame).
  std::vector<at::Tensor> EncodeLevelsFewRows(const at::Tensor& z, int64_t first, int64_t count) const;

  // Decode for a streaming frame's few rows (f32 on an AVX-512 CPU): centroids gathered and summed in plain
  // loops, the output projections through the few-row kernel, instead of ~3 ATen calls a level.
  at::Tensor DecodeFewRows(const at::Tensor& codes) const;

  // EncodeLevelsFewRows' nearest centroids of m rows in `level` (indices into `best`), from the bf16 pre-pass
  // and an f32 re-check of the centroids it cannot rule out; false when a row needs the full f32 sweep
  // (non-finite input, or too many candidates).
  bool NearestFromPrepass(const float* x_aug, int64_t m, int64_t level, float* approx, int64_t* best) const;
  // Fills prepass_aug_ and prepass_bounds_ (left empty for a CUDA model or a non-finite codebook).
  void BuildPrepass();

  int64_t bins_ = 0;
  at::Tensor first_in_, first_out_, rest_in_, rest_out_;  // 1x1 conv weights
  std::vector<at::Tensor> codebooks_;                     // [bins, D] per level, level 0 semantic
  std::vector<at::Tensor> codebooks_aug_;                 // [1, bins, D + 2]: (E | 1 | ||E||^2)
  // The pre-pass (CPU f32 models with finite codebooks): per level codebooks_aug_ rounded to bf16 [bins, D +
  // 2] and per centroid f32 [bins, 2]: (P_c, Q_c) of its error bound ||x|| P_c + Q_c + 2 g ||x||^2, rounded
  // up.
  std::vector<at::Tensor> prepass_aug_;
  std::vector<at::Tensor> prepass_bounds_;
};

}  // namespace monologue::mimi
