#include "core/lm/lm_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "core/kernels/few_row_linear.h"

namespace monologue::lm {
namespace {
// Above this many input rows the int8 kernel (which converts each weight once per 4 rows) loses to
// dequantising once and running the float GEMM.
constexpr int64_t kMaxKernelRows = 32;
// Output rows per parallel task: enough to amortise the task, small enough to balance 2..16 threads.
constexpr int64_t kRowGrain = 64;
}  // namespace

int64_t LinearWeight::nbytes() const {
  if (quantized()) return qweight.numel() * 1 + scale.numel() * 4 + row_sum.numel() * 4;
  return weight.defined() ? weight.numel() * static_cast<int64_t>(weight.element_size()) : 0;
}

LinearWeight LinearWeight::Rows(int64_t start, int64_t n) const {
  LinearWeight out;
  if (weight.defined()) out.weight = weight.narrow(0, start, n);
  if (qweight.defined()) {
    out.qweight = qweight.narrow(0, start, n);
    out.scale = scale.narrow(0, start, n);
    out.row_sum = row_sum.narrow(0, start, n);
  }
  return out;
}

at::Tensor LinearWeight::Forward(const at::Tensor& x, const at::Tensor& bias) const {
  if (!quantized()) return kernels::Linear(x, weight, bias);
  return Int8Linear(x, qweight, scale, row_sum, bias);
}

LinearWeight QuantizeInt8(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "QuantizeInt8: weight must be 2-D");
  // One pass per row for the scale and one to round, rows split among the threads (ATen's elementwise
  // version made ~6 full passes and temporaries: seconds at stt-1b size).
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  const int64_t n = w.size(0), k = w.size(1);
  LinearWeight out;
  out.qweight = at::empty({n, k}, w.options().dtype(at::kChar));
  out.scale = at::empty({n}, w.options());
  out.row_sum = at::empty({n}, w.options().dtype(at::kInt));
  const float* wp = w.data_ptr<float>();
  int8_t* qp = out.qweight.data_ptr<int8_t>();
  float* sp = out.scale.data_ptr<float>();
  int32_t* rp = out.row_sum.data_ptr<int32_t>();
  at::parallel_for(0, n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* row = wp + r * k;
      float m = 0;
      for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(row[i]));
      const float s = m > 0 ? m / 127.f : 1.f;
      int8_t* q = qp + r * k;
      int32_t sum = 0;
      for (int64_t i = 0; i < k; ++i) {
        q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(row[i] / s), -127.f, 127.f));
        sum += q[i];
      }
      sp[r] = s;
      rp[r] = sum;
    }
  });
  return out;
}

at::Tensor Int8Linear(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scale,
                      const at::Tensor& row_sum, const at::Tensor& bias, int8::KernelPath path) {
  TORCH_CHECK(qweight.scalar_type() == at::kChar && qweight.dim() == 2 && qweight.is_contiguous(),
              "Int8Linear: weight must be contiguous int8 [N, K]");
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.device().is_cpu(),
              "Int8Linear: input must be f32 on the CPU (int8 weights run on CPU only)");
  const int64_t n = qweight.size(0), k = qweight.size(1);
  TORCH_CHECK(x.size(-1) == k, "Int8Linear: input has ", x.size(-1), " features, the weight ", k);
  auto out_sizes = x.sizes().vec();
  out_sizes.back() = n;
  at::Tensor x2 = x.reshape({-1, k}).contiguous();
  const int64_t rows = x2.size(0);
  at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  if (rows > kMaxKernelRows) {
    at::Tensor w = qweight.to(at::kFloat) * scale.unsqueeze(1);
    return at::linear(x2, w, b).view(out_sizes);
  }
  at::Tensor y = at::empty({rows, n}, x2.options());
  const float* xp = x2.data_ptr<float>();
  const int8_t* wp = qweight.data_ptr<int8_t>();
  const float* sp = scale.data_ptr<float>();
  const int32_t* rp = row_sum.defined() ? row_sum.data_ptr<int32_t>() : nullptr;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, n, kRowGrain, [&](int64_t begin, int64_t end) {
    int8::GemmRows(path, xp, k, rows, k, wp, sp, rp, bp, yp, n, begin, end);
  });
  return y.view(out_sizes);
}

}  // namespace monologue::lm
