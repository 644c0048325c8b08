#include "core/lm/lm_ops.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/kernels/few_row_linear.h"

namespace monologue::lm {

absl::StatusOr<NormType> ParseNormType(std::string_view name) {
  if (name == "rms_norm_f32") return NormType::kRmsNormF32;
  if (name == "rms_norm") return NormType::kRmsNorm;
  if (name == "layer_norm") return NormType::kLayerNorm;
  if (name == "layer_norm_f32") return NormType::kLayerNormF32;
  return absl::InvalidArgumentError(absl::StrCat("unknown norm type \"", std::string(name),
                                                 "\" (expected rms_norm_f32, rms_norm, layer_norm or "
                                                 "layer_norm_f32)"));
}

void RmsNormRowsF32(const float* x, int64_t rows, int64_t d, const float* alpha, double eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    // Four partial sums: one dependent chain of double adds would take ~4 cycles a value (87 µs for 32 rows
    // of 2048, more than the ATen ops it replaces).
    double part[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= d; i += 4) {
      for (int j = 0; j < 4; ++j) part[j] += static_cast<double>(xr[i + j]) * xr[i + j];
    }
    for (; i < d; ++i) part[0] += static_cast<double>(xr[i]) * xr[i];
    const double sum = (part[0] + part[1]) + (part[2] + part[3]);
    const float var = static_cast<float>(sum / static_cast<double>(d)) + static_cast<float>(eps);
    const float inv = 1.f / std::sqrt(var);
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * (alpha[i] * inv);
  }
}

namespace {
// Up to this many rows the ATen ops below (~8 calls of a few µs each) cost more than the norm itself: a
// tts-1.6b step runs 289 norms. Beyond, ATen's threaded ops win over this single-threaded pass (tts-1.6b
// batch 32 took 1373 ms a step with every norm fused up to 64 rows, against 1282 before).
constexpr int64_t kFusedRmsNormMaxRows = 16;

at::Tensor FusedRmsNorm(const at::Tensor& input, const at::Tensor& alpha, double eps) {
  const at::Tensor x = input.contiguous();
  const at::Tensor a = alpha.to(at::kFloat).contiguous();
  const int64_t d = x.size(-1), rows = x.numel() / std::max<int64_t>(d, 1);
  at::Tensor y = at::empty_like(x);
  RmsNormRowsF32(x.data_ptr<float>(), rows, d, a.data_ptr<float>(), eps, y.data_ptr<float>());
  return y;
}

at::Tensor RmsNorm(const at::Tensor& input, const at::Tensor& alpha, bool f32, double eps) {
  // Reference `_rms_norm`: upcast (rms_norm_f32), var = eps + mean(x^2), y = x * (alpha * rsqrt(var)).
  const int64_t d = input.size(-1);
  if (input.scalar_type() == at::kFloat && input.device().is_cpu() && alpha.device().is_cpu() &&
      alpha.numel() == d && input.numel() <= kFusedRmsNormMaxRows * d) {
    return FusedRmsNorm(input, alpha, eps);
  }
  const auto in_dtype = input.scalar_type();
  at::Tensor x = f32 ? input.to(at::kFloat) : input;
  at::Tensor var = at::add(at::mean(at::pow(x, 2), {2}, /*keepdim=*/true), eps);
  at::Tensor y = x * (alpha.to(var.scalar_type()) * at::rsqrt(var));
  return y.to(in_dtype);
}
}  // namespace

bool Norm::ServesRows(int64_t d) const {
  return (type == NormType::kRmsNormF32 || type == NormType::kRmsNorm) && weight.defined() &&
         weight.device().is_cpu() && weight.scalar_type() == at::kFloat && weight.is_contiguous() &&
         weight.numel() == d;
}

void Norm::ForwardRows(const float* x, int64_t rows, int64_t d, float* y) const {
  RmsNormRowsF32(x, rows, d, weight.data_ptr<float>(), type == NormType::kRmsNormF32 ? 1e-8 : 1e-5, y);
}

at::Tensor Norm::Forward(const at::Tensor& x) const {
  switch (type) {
    case NormType::kRmsNormF32:
      return RmsNorm(x, weight, /*f32=*/true, 1e-8);
    case NormType::kRmsNorm:
      return RmsNorm(x, weight, /*f32=*/false, 1e-5);
    case NormType::kLayerNorm:
      return at::layer_norm(x, {x.size(-1)}, weight, bias, 1e-5);
    case NormType::kLayerNormF32: {
      at::Tensor y = at::layer_norm(x.to(at::kFloat), {x.size(-1)}, weight, bias, 1e-8);
      return y.to(x.scalar_type());
    }
  }
  return x;
}

absl::StatusOr<Activation> ParseActivation(std::string_view name) {
  if (name == "silu") return Activation::kSilu;
  if (name == "gelu") return Activation::kGelu;
  if (name == "relu") return Activation::kRelu;
  if (name == "sigmoid") return Activation::kSigmoid;
  if (name == "tanh") return Activation::kTanh;
  if (name == "leaky_relu") return Activation::kLeakyRelu;
  if (name == "elu") return Activation::kElu;
  if (name == "mish") return Activation::kMish;
  if (name == "softsign") return Activation::kSoftsign;
  if (name == "identity") return Activation::kIdentity;
  return absl::InvalidArgumentError(absl::StrCat("unknown gating activation \"", std::string(name), "\""));
}

at::Tensor Activate(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::kSilu:
      return at::silu(x);
    case Activation::kGelu:
      return at::gelu(x);
    case Activation::kRelu:
      return at::relu(x);
    case Activation::kSigmoid:
      return at::sigmoid(x);
    case Activation::kTanh:
      return at::tanh(x);
    case Activation::kLeakyRelu:
      return at::leaky_relu(x);
    case Activation::kElu:
      return at::elu(x);
    case Activation::kMish:
      return at::mish(x);
    case Activation::kSoftsign:
      return x / (x.abs() + 1);
    case Activation::kIdentity:
      return x;
  }
  return x;
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::linear(x, weight, bias);
}

at::Tensor FeedForward::Forward(const at::Tensor& x) const {
  if (!gated) return w_out.Forward(at::gelu(w_in.Forward(x)));
  at::Tensor u = w_in.Forward(x);
  auto sizes = u.sizes().vec();
  const int64_t hidden = sizes.back() / 2;
  sizes.back() = 2;
  sizes.push_back(hidden);
  u = u.view(sizes);
  at::Tensor h = Activate(activation, u.select(-2, 0)) * u.select(-2, 1);
  return w_out.Forward(h);
}

bool FeedForward::ServesRows(int64_t rows) const {
  return w_in.ServesRows(rows) && w_out.ServesRows(rows) &&
         (!gated || w_in.out_features() == 2 * w_out.in_features()) &&
         (gated || w_in.out_features() == w_out.in_features());
}

void FeedForward::ForwardRows(const float* x, int64_t rows, float* y, std::vector<float>& scratch) const {
  const int64_t hidden = w_out.in_features();
  const int64_t u_cols = w_in.out_features();
  scratch.resize(static_cast<size_t>(rows * (u_cols + hidden)));
  float* u = scratch.data();
  float* h = u + rows * u_cols;
  w_in.ForwardRows(x, rows, u);
  ActivateRows(u, rows, h);
  w_out.ForwardRows(h, rows, y);
}

void FeedForward::ActivateRows(const float* u, int64_t rows, float* h) const {
  const int64_t hidden = w_out.in_features();
  const int64_t u_cols = w_in.out_features();
  float* in = const_cast<float*>(u);  // from_blob wants a mutable pointer; nothing writes through it
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (!gated) {
    // GELU over the contiguous [rows, hidden] product, as Forward's at::gelu.
    at::Tensor out = at::from_blob(h, {rows, hidden}, f32);
    at::gelu_out(out, at::from_blob(in, {rows, hidden}, f32));
    return;
  }
  // act(u[:, :H]) through ATen on the same strided view as Forward (so the same vectorised and scalar parts,
  // the same bits), then the exact product with u[:, H:].
  const at::Tensor first = at::from_blob(in, {rows, hidden}, {u_cols, 1}, f32);
  at::Tensor out = at::from_blob(h, {rows, hidden}, f32);
  if (activation == Activation::kSilu) {
    at::silu_out(out, first);
  } else {
    out.copy_(Activate(activation, first));
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* second = u + r * u_cols + hidden;
    float* hr = h + r * hidden;
    for (int64_t i = 0; i < hidden; ++i) hr[i] *= second[i];
  }
}

at::Tensor Embedding::Forward(const at::Tensor& tokens) const {
  at::Tensor is_zero = tokens.eq(-1).unsqueeze(-1);
  at::Tensor t = tokens.clamp_min(0);
  if (demux) {
    const int64_t n = rows();
    at::Tensor left = at::remainder(t, n);
    at::Tensor right = at::floor_divide(t, n) - 1;
    at::Tensor right_zero = right.lt(0).unsqueeze(-1);
    right = right.clamp_min(0);
    at::Tensor y = kernels::Linear(at::embedding(table, left), out1);
    at::Tensor y2 = kernels::Linear(at::embedding(table, right), out2);
    y = y + y2.masked_fill(right_zero, 0);
    return y.masked_fill(is_zero, 0);
  }
  at::Tensor y = at::embedding(table, t).masked_fill(is_zero, 0);
  if (low_rank.defined()) y = kernels::Linear(y, low_rank);
  return y;
}

bool Embedding::ServesRows(int64_t rows) const {
  if (demux || !table.defined() || table.dim() != 2 || !table.device().is_cpu() ||
      table.scalar_type() != at::kFloat || !table.is_contiguous() || rows < 1)
    return false;
  if (!low_rank.defined()) return true;
  const auto dtype = low_rank.scalar_type();
  return low_rank.dim() == 2 && low_rank.size(1) == table.size(1) && low_rank.device().is_cpu() &&
         low_rank.is_contiguous() && (dtype == at::kFloat || dtype == at::kBFloat16) &&
         kernels::HasFewRowKernel() && rows <= kernels::MaxFewRows(dtype);
}

void Embedding::ForwardRowsAdd(const int64_t* tokens, int64_t rows, const float* input, float* out) const {
  const int64_t n = table.size(0), r = table.size(1);
  const int64_t d = low_rank.defined() ? low_rank.size(0) : r;
  std::vector<float> y(static_cast<size_t>(rows * (low_rank.defined() ? r + d : r)));
  const float* tp = table.data_ptr<float>();
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t t = tokens[b];
    TORCH_CHECK(t >= -1 && t < n, "Embedding: token ", t, " outside [-1, ", n, ")");
    float* yr = y.data() + b * r;
    if (t < 0) {
      std::fill(yr, yr + r, 0.f);  // token -1: exactly 0 (masked_fill in Forward)
    } else {
      std::copy(tp + t * r, tp + (t + 1) * r, yr);
    }
  }
  const float* e = y.data();
  if (low_rank.defined()) {
    float* projected = y.data() + rows * r;
    if (low_rank.scalar_type() == at::kBFloat16) {
      kernels::FewRowLinearBf16(e, rows, r, reinterpret_cast<const uint16_t*>(low_rank.data_ptr()), d,
                                projected);
    } else {
      kernels::FewRowLinearF32(e, rows, r, low_rank.data_ptr<float>(), d, projected);
    }
    e = projected;
  }
  for (int64_t i = 0; i < rows * d; ++i) out[i] = input[i] + e[i];
}

at::Tensor SinEmbedding(const at::Tensor& positions, int64_t dim, double max_period, at::ScalarType dtype) {
  const int64_t half = dim / 2;
  at::Tensor pos = positions.to(dtype);
  at::Tensor adim = at::arange(half, pos.options()).view({1, 1, -1});
  at::Tensor period = at::full({}, max_period, pos.options());
  at::Tensor phase = pos / at::pow(period, adim / static_cast<double>(half - 1));
  return at::cat({at::cos(phase), at::sin(phase)}, -1);
}

}  // namespace monologue::lm
