#include "core/mimi/seanet.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernels/elu.h"
#include "core/util/status_macros.h"

namespace monologue::mimi {
namespace {

absl::StatusOr<StreamingConv1d> LoadConv(const WeightReader& w, const std::string& name, int64_t cin,
                                         int64_t cout, int64_t kernel, int64_t stride, int64_t dilation,
                                         bool replicate, bool gemm) {
  ASSIGN_OR_RETURN(at::Tensor weight, w.Get(name + ".conv.conv.weight", {cout, cin, kernel}));
  ASSIGN_OR_RETURN(at::Tensor bias, w.Get(name + ".conv.conv.bias", {cout}));
  return StreamingConv1d(std::move(weight), std::move(bias), stride, dilation, 1, replicate, gemm);
}

absl::StatusOr<StreamingConvTranspose1d> LoadConvTr(const WeightReader& w, const std::string& name,
                                                    int64_t cin, int64_t cout, int64_t kernel,
                                                    int64_t stride) {
  ASSIGN_OR_RETURN(at::Tensor weight, w.Get(name + ".convtr.convtr.weight", {cin, cout, kernel}));
  ASSIGN_OR_RETURN(at::Tensor bias, w.Get(name + ".convtr.convtr.bias", {cout}));
  return StreamingConvTranspose1d(std::move(weight), std::move(bias), stride, 1);
}

absl::StatusOr<SeanetResBlock> LoadBlock(const WeightReader& w, const std::string& name, int64_t dim,
                                         const SeanetConfig& c, int64_t j, bool replicate, bool gemm) {
  int64_t dilation = 1;
  for (int64_t i = 0; i < j; ++i) dilation *= c.dilation_base;
  const int64_t hidden = dim / c.compress;
  SeanetResBlock b;
  ASSIGN_OR_RETURN(b.conv0, LoadConv(w, name + ".block.1", dim, hidden, c.residual_kernel_size, 1, dilation,
                                     replicate, gemm));
  ASSIGN_OR_RETURN(b.conv1, LoadConv(w, name + ".block.3", hidden, dim, 1, 1, 1, replicate, gemm));
  return b;
}

absl::Status CheckSupported(const SeanetConfig& c, const std::string& source) {
  if (!c.true_skip) {
    return absl::UnimplementedError(absl::StrCat(source, ": seanet.true_skip=false is not supported"));
  }
  if (!c.causal) {
    return absl::UnimplementedError(absl::StrCat(source, ": seanet.causal=false is not supported"));
  }
  if (c.pad_mode != "constant" && c.pad_mode != "replicate") {
    return absl::UnimplementedError(absl::StrCat(source, ": seanet.pad_mode '", c.pad_mode,
                                                 "' is not supported (constant or replicate)"));
  }
  return absl::OkStatus();
}

at::Tensor BlockStep(const SeanetResBlock& b, ConvState& s0, ConvState& s1, const at::Tensor& x,
                     const at::Tensor& mask) {
  at::Tensor h = b.conv0.Step(s0, kernels::EluOrAten(x), mask);
  h = b.conv1.Step(s1, kernels::EluOrAten(h), mask);
  return x + h;
}

}  // namespace

absl::StatusOr<SeanetEncoder> SeanetEncoder::Load(const WeightReader& w, const SeanetConfig& c,
                                                  const std::string& prefix) {
  RETURN_IF_ERROR(CheckSupported(c, w.source()));
  const bool rep = c.pad_mode == "replicate";
  SeanetEncoder e;
  int64_t idx = 0;
  int64_t mult = 1;
  ASSIGN_OR_RETURN(e.first_, LoadConv(w, absl::StrCat(prefix, idx++), c.channels, c.n_filters, c.kernel_size,
                                      1, 1, rep, true));
  std::vector<int64_t> ratios(c.ratios.rbegin(), c.ratios.rend());
  for (int64_t ratio : ratios) {
    std::vector<SeanetResBlock> stage;
    for (int64_t j = 0; j < c.n_residual_layers; ++j) {
      ASSIGN_OR_RETURN(SeanetResBlock b,
                       LoadBlock(w, absl::StrCat(prefix, idx++), mult * c.n_filters, c, j, rep, true));
      stage.push_back(std::move(b));
    }
    e.blocks_.push_back(std::move(stage));
    ++idx;  // ELU
    ASSIGN_OR_RETURN(StreamingConv1d down, LoadConv(w, absl::StrCat(prefix, idx++), mult * c.n_filters,
                                                    mult * c.n_filters * 2, ratio * 2, ratio, 1, rep, true));
    e.downs_.push_back(std::move(down));
    mult *= 2;
  }
  ++idx;  // ELU
  ASSIGN_OR_RETURN(e.last_, LoadConv(w, absl::StrCat(prefix, idx++), mult * c.n_filters, c.dimension,
                                     c.last_kernel_size, 1, 1, rep, true));
  return e;
}

SeanetState SeanetEncoder::InitState(int64_t batch) const {
  SeanetState s;
  s.convs.push_back(first_.InitState(batch));
  for (size_t i = 0; i < downs_.size(); ++i) {
    for (const SeanetResBlock& b : blocks_[i]) {
      s.convs.push_back(b.conv0.InitState(batch));
      s.convs.push_back(b.conv1.InitState(batch));
    }
    s.convs.push_back(downs_[i].InitState(batch));
  }
  s.convs.push_back(last_.InitState(batch));
  return s;
}

void SeanetEncoder::Reset(SeanetState& state, const at::Tensor& mask) const {
  // Every conv resets the same way; the first conv's object is as good as any for the arithmetic.
  for (ConvState& c : state.convs) first_.Reset(c, mask);
}

at::Tensor SeanetEncoder::Step(SeanetState& s, const at::Tensor& x, const at::Tensor& mask) const {
  size_t k = 0;
  at::Tensor y = first_.Step(s.convs[k++], x, mask);
  for (size_t i = 0; i < downs_.size(); ++i) {
    {
      RECORD_USER_SCOPE(absl::StrCat("mimi.seanet.enc.block", i));
      for (const SeanetResBlock& b : blocks_[i]) {
        y = BlockStep(b, s.convs[k], s.convs[k + 1], y, mask);
        k += 2;
      }
    }
    RECORD_USER_SCOPE(absl::StrCat("mimi.seanet.enc.down", i));
    y = downs_[i].Step(s.convs[k++], kernels::EluOrAten(y), mask);
  }
  RECORD_USER_SCOPE("mimi.seanet.enc.last");
  return last_.Step(s.convs[k++], kernels::EluOrAten(y), mask);
}

at::Tensor SeanetEncoder::Forward(const at::Tensor& x) const {
  SeanetState s = InitState(x.size(0));
  return Step(s, x);
}

absl::StatusOr<SeanetDecoder> SeanetDecoder::Load(const WeightReader& w, const SeanetConfig& c,
                                                  const std::string& prefix) {
  RETURN_IF_ERROR(CheckSupported(c, w.source()));
  const bool rep = c.pad_mode == "replicate";
  SeanetDecoder d;
  int64_t idx = 0;
  int64_t mult = int64_t{1} << c.ratios.size();
  ASSIGN_OR_RETURN(d.first_, LoadConv(w, absl::StrCat(prefix, idx++), c.dimension, mult * c.n_filters,
                                      c.kernel_size, 1, 1, rep, true));
  for (int64_t ratio : c.ratios) {
    ++idx;  // ELU
    ASSIGN_OR_RETURN(StreamingConvTranspose1d up,
                     LoadConvTr(w, absl::StrCat(prefix, idx++), mult * c.n_filters, mult * c.n_filters / 2,
                                ratio * 2, ratio));
    d.ups_.push_back(std::move(up));
    std::vector<SeanetResBlock> stage;
    for (int64_t j = 0; j < c.n_residual_layers; ++j) {
      ASSIGN_OR_RETURN(SeanetResBlock b,
                       LoadBlock(w, absl::StrCat(prefix, idx++), mult * c.n_filters / 2, c, j, rep, true));
      stage.push_back(std::move(b));
    }
    d.blocks_.push_back(std::move(stage));
    mult /= 2;
  }
  ++idx;  // ELU
  ASSIGN_OR_RETURN(d.last_, LoadConv(w, absl::StrCat(prefix, idx++), c.n_filters, c.channels,
                                     c.last_kernel_size, 1, 1, rep, true));
  return d;
}

SeanetState SeanetDecoder::InitState(int64_t batch) const {
  SeanetState s;
  s.convs.push_back(first_.InitState(batch));
  for (size_t i = 0; i < ups_.size(); ++i) {
    s.convtrs.push_back(ups_[i].InitState(batch));
    for (const SeanetResBlock& b : blocks_[i]) {
      s.convs.push_back(b.conv0.InitState(batch));
      s.convs.push_back(b.conv1.InitState(batch));
    }
  }
  s.convs.push_back(last_.InitState(batch));
  return s;
}

void SeanetDecoder::Reset(SeanetState& state, const at::Tensor& mask) const {
  for (ConvState& c : state.convs) first_.Reset(c, mask);
  for (size_t i = 0; i < ups_.size(); ++i) ups_[i].Reset(state.convtrs[i], mask);
}

at::Tensor SeanetDecoder::Step(SeanetState& s, const at::Tensor& x, const at::Tensor& mask) const {
  size_t k = 0;
  at::Tensor y;
  {
    RECORD_USER_SCOPE("mimi.seanet.dec.first");
    y = first_.Step(s.convs[k++], x, mask);
  }
  for (size_t i = 0; i < ups_.size(); ++i) {
    {
      RECORD_USER_SCOPE(absl::StrCat("mimi.seanet.dec.up", i));
      y = ups_[i].Step(s.convtrs[i], kernels::EluOrAten(y), mask);
    }
    RECORD_USER_SCOPE(absl::StrCat("mimi.seanet.dec.block", i));
    for (const SeanetResBlock& b : blocks_[i]) {
      y = BlockStep(b, s.convs[k], s.convs[k + 1], y, mask);
      k += 2;
    }
  }
  RECORD_USER_SCOPE("mimi.seanet.dec.last");
  return last_.Step(s.convs[k++], kernels::EluOrAten(y), mask);
}

at::Tensor SeanetDecoder::Forward(const at::Tensor& x) const {
  // Offline: convolutions from fresh states, transposed convolutions right-trimmed.
  SeanetState s = InitState(x.size(0));
  size_t k = 0;
  at::Tensor y = first_.Step(s.convs[k++], x);
  for (size_t i = 0; i < ups_.size(); ++i) {
    y = ups_[i].Forward(kernels::EluOrAten(y));
    for (const SeanetResBlock& b : blocks_[i]) {
      y = BlockStep(b, s.convs[k], s.convs[k + 1], y, {});
      k += 2;
    }
  }
  return last_.Step(s.convs[k++], kernels::EluOrAten(y));
}

}  // namespace monologue::mimi
