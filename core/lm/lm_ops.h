// Building blocks of the Moshi LM (moshi-reference.md §3.1-§3.3): norms, activations, feed-forward
// blocks, embeddings with the zero / low-rank / demultiplexed variants, sinusoidal embeddings. Each
// computes exactly the operation sequence of the reference module, so fp32 results match bit for bit where
// the same ATen kernels run.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/lm/lm_linear.h"

namespace monologue::lm {

enum class NormType { kRmsNormF32, kRmsNorm, kLayerNorm, kLayerNormF32 };
absl::StatusOr<NormType> ParseNormType(std::string_view name);

// RMSNorm (alpha [1, 1, D]; eps 1e-8 and fp32 math for rms_norm_f32, eps 1e-5 in the input dtype for
// rms_norm) or LayerNorm (weight, bias [D]; eps 1e-5, or 1e-8 in fp32 for layer_norm_f32).
struct Norm {
  NormType type = NormType::kRmsNormF32;
  at::Tensor weight;
  at::Tensor bias;
  at::Tensor Forward(const at::Tensor& x) const;
  // The raw form for the depformer's step (lm_depth_step.cc): whether it serves rows of width d (the RMS
  // norms with an f32 CPU weight), and y = Forward(x) for `rows` contiguous f32 rows, the same bits.
  bool ServesRows(int64_t d) const;
  void ForwardRows(const float* x, int64_t rows, int64_t d, float* y) const;
};

// One-pass RMS norm of `rows` f32 rows of width d: y = x * (alpha * (1 / sqrt(mean(x^2) + eps))), the mean
// of squares summed in double. Norm::Forward's CPU path for up to 16 rows.
void RmsNormRowsF32(const float* x, int64_t rows, int64_t d, const float* alpha, double eps, float* y);

enum class Activation { kSilu, kGelu, kRelu, kSigmoid, kTanh, kLeakyRelu, kElu, kMish, kSoftsign, kIdentity };
absl::StatusOr<Activation> ParseActivation(std::string_view name);
at::Tensor Activate(Activation activation, const at::Tensor& x);

// One feed-forward weight set: gated (`gating.linear_in` [2H, D], `linear_out` [D, H]:
// out = W_out (act(u[:H]) * u[H:]), u = W_in x) or plain (`linear1`, `linear2`, GELU in between).
struct FeedForward {
  bool gated = true;
  Activation activation = Activation::kSilu;
  LinearWeight w_in;
  LinearWeight w_out;
  at::Tensor Forward(const at::Tensor& x) const;
  // The raw form: whether both weights serve `rows` raw rows (LinearWeight::ServesRows), and
  // y [rows, D] = Forward(x [rows, D]) with the same bits; `scratch` holds the hidden activations.
  bool ServesRows(int64_t rows) const;
  void ForwardRows(const float* x, int64_t rows, float* y, std::vector<float>& scratch) const;
  // Its middle step: h [rows, hidden] = the activation (gated or not) of w_in's output u [rows, w_in N].
  void ActivateRows(const float* u, int64_t rows, float* h) const;
};

// `ScaledEmbedding`: token -1 gives exactly 0; optional low-rank output projection; optional demultiplexed
// second stream (token = left + N * (right + 1), N = rows; right < 0 means "no second token").
struct Embedding {
  at::Tensor table;     // [N, R]
  at::Tensor low_rank;  // [D, R] or undefined
  at::Tensor out1;      // demux only: [D, R]
  at::Tensor out2;      // demux only: [D, R]
  bool demux = false;
  int64_t rows() const { return table.size(0); }
  // tokens: int64 [...]; returns [..., D] in the table dtype.
  at::Tensor Forward(const at::Tensor& tokens) const;
  // The raw form for the depformer's step: whether it serves `rows` rows (no demultiplexing, an f32 CPU
  // table, a low-rank projection the few-row kernel runs), and out[r] = input[r] + Forward(tokens[r]) for
  // rows of width D, the same bits. A token outside [-1, rows()) is an error, as in Forward.
  bool ServesRows(int64_t rows) const;
  void ForwardRowsAdd(const int64_t* tokens, int64_t rows, const float* input, float* out) const;
};

// `create_sin_embedding`: positions (int64, any shape [..., 1]) -> [..., dim] as [cos | sin], computed in
// `dtype`.
at::Tensor SinEmbedding(const at::Tensor& positions, int64_t dim, double max_period, at::ScalarType dtype);

// x W^T (+ b): a thin wrapper kept in one place so that every projection runs the same kernel as
// `nn.Linear`.
at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = at::Tensor());

}  // namespace monologue::lm
