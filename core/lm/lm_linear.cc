#include "core/lm/lm_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/kernels/few_row_linear.h"
#include "core/util/huge_pages.h"

namespace monologue::lm {
namespace {
// Above this many input rows the int8 kernel (which converts each weight once per 4 rows) loses to
// dequantising once and running the float GEMM.
constexpr int64_t kMaxKernelRows = 32;
// Row groups (of int8::kRowGroup rows) per parallel task: enough to amortise the task, small enough to
// balance 2..16 threads.
constexpr int64_t kGroupGrain = 8;

// y [rows, N] = x [rows, K] W^T scale (+ bias): the kernel over the packed weight, whose row groups the
// intra-op threads share (each reads its own contiguous part of the packed weights).
void Int8Rows(const float* x, int64_t rows, const LinearWeight& w, const float* bias, float* y,
              int8::KernelPath path) {
  const int64_t n = w.q_rows, k = w.q_cols;
  const int8_t* wp = w.qweight.data_ptr<int8_t>();
  const float* sp = w.scale.data_ptr<float>();
  const int32_t* rp = w.row_sum.defined() ? w.row_sum.data_ptr<int32_t>() : nullptr;
  const int64_t groups = (n + int8::kRowGroup - 1) / int8::kRowGroup;
  at::parallel_for(0, groups, kGroupGrain, [&](int64_t begin, int64_t end) {
    int8::GemmRows(path, x, k, rows, k, wp, sp, rp, bias, y, n, begin * int8::kRowGroup,
                   std::min(n, end * int8::kRowGroup));
  });
}

// The same for an int4 weight.
void Int4Rows(const float* x, int64_t rows, const LinearWeight& w, const float* bias, float* y,
              int4::KernelPath path) {
  const int64_t n = w.q_rows, k = w.q_cols;
  const uint8_t* wp = w.qweight.data_ptr<uint8_t>();
  const int64_t groups = (n + int4::kRowGroup - 1) / int4::kRowGroup;
  at::parallel_for(0, groups, kGroupGrain, [&](int64_t begin, int64_t end) {
    int4::GemmRows(path, x, k, rows, k, wp, bias, y, n, begin * int4::kRowGroup,
                   std::min(n, end * int4::kRowGroup));
  });
}

// x [rows, K] contiguous f32 -> [rows, N], checked like Int8Linear; many rows go through the dequantised
// weight.
template <typename RowsFn>
at::Tensor QuantisedLinear(const char* what, const at::Tensor& x, const LinearWeight& w,
                           const at::Tensor& bias, RowsFn rows_fn) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.device().is_cpu(), what,
              ": input must be f32 on the CPU (quantised weights run on CPU only)");
  const int64_t n = w.q_rows, k = w.q_cols;
  TORCH_CHECK(x.size(-1) == k, what, ": input has ", x.size(-1), " features, the weight ", k);
  auto out_sizes = x.sizes().vec();
  out_sizes.back() = n;
  at::Tensor x2 = x.reshape({-1, k}).contiguous();
  const int64_t rows = x2.size(0);
  at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  if (rows > kMaxKernelRows) return at::linear(x2, w.Dequantized(), b).view(out_sizes);
  at::Tensor y = at::empty({rows, n}, x2.options());
  rows_fn(x2.data_ptr<float>(), rows, b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>());
  return y.view(out_sizes);
}
}  // namespace

int64_t LinearWeight::nbytes() const {
  if (quantized() && int4) return qweight.numel();
  if (quantized()) return qweight.numel() * 1 + scale.numel() * 4 + row_sum.numel() * 4;
  return weight.defined() ? weight.numel() * static_cast<int64_t>(weight.element_size()) : 0;
}

LinearWeight LinearWeight::Rows(int64_t start, int64_t n) const {
  LinearWeight out;
  if (weight.defined()) out.weight = weight.narrow(0, start, n);
  if (qweight.defined()) {
    TORCH_CHECK(start >= 0 && n >= 0 && start + n <= q_rows, "LinearWeight::Rows: rows [", start, ", ",
                start + n, ") of ", q_rows);
    out.q_rows = n;
    out.q_cols = q_cols;
    out.int4 = int4;
    if (int4) {
      if (start % int4::kRowGroup == 0) {
        const int64_t group_bytes = int4::PackedBytes(int4::kRowGroup, q_cols);
        const int64_t first = start / int4::kRowGroup;
        const int64_t groups = (n + int4::kRowGroup - 1) / int4::kRowGroup;
        out.qweight = qweight.narrow(0, first * group_bytes, groups * group_bytes);
      } else {
        const at::Tensor values = Int8Values().narrow(0, start, n).contiguous();
        const at::Tensor scales = Int4Scales().narrow(0, start, n).contiguous();
        out.qweight = EmptyOnHugePages({int4::PackedBytes(n, q_cols)}, qweight.options());
        int4::Pack(values.data_ptr<int8_t>(), scales.data_ptr<float>(), n, q_cols,
                   out.qweight.data_ptr<uint8_t>());
      }
      return out;
    }
    out.scale = scale.narrow(0, start, n);
    out.row_sum = row_sum.narrow(0, start, n);
    if (start % int8::kRowGroup == 0) {
      // Whole groups from `start`: the last one may hold rows past n (the next weight set's), which the
      // kernel reads but never stores.
      const int64_t group_bytes = int8::kRowGroup * int8::PaddedK(q_cols);
      const int64_t first = start / int8::kRowGroup;
      const int64_t groups = (n + int8::kRowGroup - 1) / int8::kRowGroup;
      out.qweight = qweight.narrow(0, first * group_bytes, groups * group_bytes);
    } else {
      const at::Tensor values = Int8Values().narrow(0, start, n).contiguous();
      out.qweight = EmptyOnHugePages({int8::PackedBytes(n, q_cols)}, qweight.options());
      int8::PackRows(values.data_ptr<int8_t>(), n, q_cols, out.qweight.data_ptr<int8_t>());
    }
  }
  return out;
}

at::Tensor LinearWeight::Int8Values() const {
  TORCH_CHECK(quantized(), "LinearWeight::Int8Values: the weight is not quantised");
  if (int4) {
    at::Tensor out = at::empty({q_rows, q_cols}, qweight.options().dtype(at::kChar));
    int4::Unpack(qweight.data_ptr<uint8_t>(), q_rows, q_cols, out.data_ptr<int8_t>(), nullptr);
    return out;
  }
  at::Tensor out = at::empty({q_rows, q_cols}, qweight.options());
  int8::UnpackRows(qweight.data_ptr<int8_t>(), q_rows, q_cols, out.data_ptr<int8_t>());
  return out;
}

at::Tensor LinearWeight::Int4Scales() const {
  TORCH_CHECK(quantized() && int4, "LinearWeight::Int4Scales: the weight is not int4");
  at::Tensor out =
      at::empty({q_rows, (q_cols + int4::kGroup - 1) / int4::kGroup}, qweight.options().dtype(at::kFloat));
  int4::Unpack(qweight.data_ptr<uint8_t>(), q_rows, q_cols, nullptr, out.data_ptr<float>());
  return out;
}

at::Tensor LinearWeight::Dequantized() const {
  if (int4) {
    const int64_t groups = (q_cols + int4::kGroup - 1) / int4::kGroup;
    const at::Tensor values =
        at::constant_pad_nd(Int8Values().to(at::kFloat), {0, groups * int4::kGroup - q_cols});
    return (values.view({q_rows, groups, int4::kGroup}) * Int4Scales().unsqueeze(2))
        .view({q_rows, groups * int4::kGroup})
        .narrow(1, 0, q_cols)
        .contiguous();
  }
  return Int8Values().to(at::kFloat) * scale.unsqueeze(1);
}

at::Tensor LinearWeight::Forward(const at::Tensor& x, const at::Tensor& bias) const {
  if (!quantized()) return kernels::Linear(x, weight, bias);
  if (int4) return Int4Linear(x, *this, bias);
  return Int8Linear(x, *this, bias);
}

bool LinearWeight::ServesRows(int64_t rows) const {
  if (rows < 1) return false;
  if (quantized()) return rows <= kMaxKernelRows;
  if (!weight.defined() || weight.dim() != 2 || !weight.device().is_cpu() || !weight.is_contiguous())
    return false;
  const auto dtype = weight.scalar_type();
  if (dtype != at::kFloat && dtype != at::kBFloat16) return false;
  return kernels::HasFewRowKernel() && rows <= kernels::MaxFewRows(dtype);
}

void LinearWeight::ForwardRows(const float* x, int64_t rows, float* y) const {
  if (quantized() && int4) {
    Int4Rows(x, rows, *this, nullptr, y, int4::BestPath());
  } else if (quantized()) {
    Int8Rows(x, rows, *this, nullptr, y, int8::BestPath());
  } else if (weight.scalar_type() == at::kBFloat16) {
    kernels::FewRowLinearBf16(x, rows, weight.size(1), reinterpret_cast<const uint16_t*>(weight.data_ptr()),
                              weight.size(0), y);
  } else {
    kernels::FewRowLinearF32(x, rows, weight.size(1), weight.data_ptr<float>(), weight.size(0), y);
  }
}

void LinearWeight::ForwardRowsPart(const float* x, int64_t rows, float* y, int64_t n_begin,
                                   int64_t n_end) const {
  if (n_begin >= n_end) return;
  if (quantized() && int4) {
    int4::GemmRows(int4::BestPath(), x, q_cols, rows, q_cols, qweight.data_ptr<uint8_t>(), nullptr, y, q_rows,
                   n_begin, n_end);
  } else if (quantized()) {
    int8::GemmRows(int8::BestPath(), x, q_cols, rows, q_cols, qweight.data_ptr<int8_t>(),
                   scale.data_ptr<float>(), row_sum.defined() ? row_sum.data_ptr<int32_t>() : nullptr,
                   nullptr, y, q_rows, n_begin, n_end);
  } else if (weight.scalar_type() == at::kBFloat16) {
    kernels::FewRowLinearColumnsBf16(x, rows, weight.size(1),
                                     reinterpret_cast<const uint16_t*>(weight.data_ptr()), weight.size(0), y,
                                     n_begin, n_end);
  } else {
    kernels::FewRowLinearColumnsF32(x, rows, weight.size(1), weight.data_ptr<float>(), weight.size(0), y,
                                    n_begin, n_end);
  }
}

int64_t LinearWeight::RowsAlign() const {
  if (quantized()) return int4 ? int4::kRowGroup : int8::kRowGroup;
  return 4;  // the few-row kernel's column block
}

namespace {
// Rows [r0, r0 + rows) of a 2-D float weight as contiguous f32: a pointer into the weight when it is f32
// already, else converted (exactly, for bf16 and f16) into `buf`. Quantising from the checkpoint's bf16 this
// way never builds the whole f32 weight (at tts-1.6b size 6.6 GB of fresh pages, most of the load's time).
const float* RowsAsF32(const at::Tensor& w, int64_t r0, int64_t rows, std::vector<float>& buf) {
  const int64_t k = w.size(1);
  if (w.scalar_type() == at::kFloat) return w.data_ptr<float>() + r0 * k;
  buf.resize(static_cast<size_t>(rows * k));
  if (w.scalar_type() == at::kBFloat16) {
    const c10::BFloat16* src = w.data_ptr<c10::BFloat16>() + r0 * k;
    for (int64_t i = 0; i < rows * k; ++i) buf[i] = static_cast<float>(src[i]);
  } else {
    const c10::Half* src = w.data_ptr<c10::Half>() + r0 * k;
    for (int64_t i = 0; i < rows * k; ++i) buf[i] = static_cast<float>(src[i]);
  }
  return buf.data();
}

// The weight in a form RowsAsF32 reads: contiguous f32, bf16 or f16.
at::Tensor QuantisationSource(const at::Tensor& weight) {
  const auto t = weight.scalar_type();
  if (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf) return weight.contiguous();
  return weight.to(at::kFloat).contiguous();
}
}  // namespace

LinearWeight QuantizeInt8(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "QuantizeInt8: weight must be 2-D");
  // One pass per row for the scale and one to round, row groups split among the threads, each row's values
  // written straight into the packed layout (ATen's elementwise version made ~6 full passes and temporaries:
  // seconds at stt-1b size).
  const at::Tensor w = QuantisationSource(weight);
  const int64_t n = w.size(0), k = w.size(1), kp = int8::PaddedK(k);
  LinearWeight out;
  out.scale = at::empty({n}, w.options().dtype(at::kFloat));
  out.row_sum = at::empty({n}, w.options().dtype(at::kInt));
  out.q_rows = n;
  out.q_cols = k;
  // Zeroed: the padding rows and columns must add nothing.
  out.qweight = EmptyOnHugePages({int8::PackedBytes(n, k)}, w.options().dtype(at::kChar)).zero_();
  int8_t* packed = out.qweight.data_ptr<int8_t>();
  float* sp = out.scale.data_ptr<float>();
  int32_t* rp = out.row_sum.data_ptr<int32_t>();
  const int64_t groups = (n + int8::kRowGroup - 1) / int8::kRowGroup;
  at::parallel_for(0, groups, 2, [&](int64_t begin, int64_t end) {
    std::vector<float> buf;
    std::vector<int8_t> q(static_cast<size_t>(k));
    for (int64_t r = begin * int8::kRowGroup; r < std::min(n, end * int8::kRowGroup); ++r) {
      int32_t sum = 0;
      const float s = int8::QuantizeRow(RowsAsF32(w, r, 1, buf), k, q.data(), &sum);
      for (int64_t i = 0; i < k; i += int8::kChunk) {
        std::memcpy(packed + int8::PackedOffset(r, i, kp), q.data() + i,
                    static_cast<size_t>(std::min(int8::kChunk, k - i)));
      }
      sp[r] = s;
      rp[r] = sum;
    }
  });
  return out;
}

LinearWeight Int8WeightFromValues(const at::Tensor& values, const at::Tensor& scale) {
  TORCH_CHECK(values.dim() == 2 && values.scalar_type() == at::kChar,
              "Int8WeightFromValues: values must be a 2-D int8 tensor");
  const int64_t n = values.size(0), k = values.size(1), kp = int8::PaddedK(k);
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == n,
              "Int8WeightFromValues: scale must have one entry per row");
  const at::Tensor v = values.cpu().contiguous();
  LinearWeight out;
  out.scale = scale.to(at::kFloat).cpu().contiguous().clone();
  out.row_sum = at::empty({n}, out.scale.options().dtype(at::kInt));
  out.q_rows = n;
  out.q_cols = k;
  out.qweight = EmptyOnHugePages({int8::PackedBytes(n, k)}, v.options()).zero_();
  const int8_t* src = v.data_ptr<int8_t>();
  int8_t* packed = out.qweight.data_ptr<int8_t>();
  int32_t* rp = out.row_sum.data_ptr<int32_t>();
  std::atomic<int64_t> bad_row{-1};
  const int64_t groups = (n + int8::kRowGroup - 1) / int8::kRowGroup;
  at::parallel_for(0, groups, 2, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin * int8::kRowGroup; r < std::min(n, end * int8::kRowGroup); ++r) {
      const int8_t* row = src + r * k;
      int32_t sum = 0;
      for (int64_t i = 0; i < k; ++i) {
        if (row[i] == -128) bad_row.store(r);
        sum += row[i];
      }
      for (int64_t i = 0; i < k; i += int8::kChunk) {
        std::memcpy(packed + int8::PackedOffset(r, i, kp), row + i,
                    static_cast<size_t>(std::min(int8::kChunk, k - i)));
      }
      rp[r] = sum;
    }
  });
  TORCH_CHECK(bad_row.load() < 0, "int8 weight row ", bad_row.load(),
              " holds -128 (int8 weights in [-127, 127] expected, as bitsandbytes writes them)");
  return out;
}

LinearWeight QuantizeInt4(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "QuantizeInt4: weight must be 2-D");
  const at::Tensor w = QuantisationSource(weight);
  const int64_t n = w.size(0), k = w.size(1);
  LinearWeight out;
  out.q_rows = n;
  out.q_cols = k;
  out.int4 = true;
  out.qweight = EmptyOnHugePages({int4::PackedBytes(n, k)}, w.options().dtype(at::kByte));
  uint8_t* qp = out.qweight.data_ptr<uint8_t>();
  // Row groups are contiguous in the packed form, so each task quantises its own groups in place.
  const int64_t group_bytes = int4::PackedBytes(int4::kRowGroup, k);
  const int64_t groups = (n + int4::kRowGroup - 1) / int4::kRowGroup;
  at::parallel_for(0, groups, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> buf;
    for (int64_t g = begin; g < end; ++g) {
      const int64_t r0 = g * int4::kRowGroup, rows = std::min(int4::kRowGroup, n - r0);
      int4::Quantize(RowsAsF32(w, r0, rows, buf), rows, k, qp + g * group_bytes);
    }
  });
  return out;
}

at::Tensor Int4Linear(const at::Tensor& x, const LinearWeight& w, const at::Tensor& bias,
                      int4::KernelPath path) {
  TORCH_CHECK(w.quantized() && w.int4 && w.qweight.scalar_type() == at::kByte && w.qweight.dim() == 1 &&
                  w.qweight.is_contiguous() && w.qweight.numel() >= int4::PackedBytes(w.q_rows, w.q_cols),
              "Int4Linear: weight must be a packed int4 weight (QuantizeInt4)");
  return QuantisedLinear("Int4Linear", x, w, bias,
                         [&](const float* xp, int64_t rows, const float* bp, float* yp) {
                           Int4Rows(xp, rows, w, bp, yp, path);
                         });
}

at::Tensor Int8Linear(const at::Tensor& x, const LinearWeight& w, const at::Tensor& bias,
                      int8::KernelPath path) {
  TORCH_CHECK(w.quantized() && !w.int4 && w.qweight.scalar_type() == at::kChar && w.qweight.dim() == 1 &&
                  w.qweight.is_contiguous() && w.qweight.numel() >= int8::PackedBytes(w.q_rows, w.q_cols),
              "Int8Linear: weight must be a packed int8 weight (QuantizeInt8)");
  return QuantisedLinear("Int8Linear", x, w, bias,
                         [&](const float* xp, int64_t rows, const float* bp, float* yp) {
                           Int8Rows(xp, rows, w, bp, yp, path);
                         });
}

}  // namespace monologue::lm
