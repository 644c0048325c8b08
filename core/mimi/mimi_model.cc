#include "core/mimi/mimi_model.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"
#include "core/util/strict_fp32_scope.h"
#include "core/util/torch_status.h"

namespace monologue {

absl::StatusOr<MimiModel> MimiModel::Load(const SafeTensorsFile& file, const MimiConfig& config,
                                          c10::Device device) {
  mimi::TensorLookup lookup = [&file](const std::string& name) { return file.Load(name); };
  return Load(std::move(lookup), file.path(), config, device);
}

absl::StatusOr<MimiModel> MimiModel::Load(mimi::TensorLookup lookup, const std::string& source,
                                          const MimiConfig& config, c10::Device device) {
  RETURN_IF_ERROR(config.Validate(source));
  return GuardTorch(absl::StrCat("loading Mimi from ", source), [&]() -> absl::StatusOr<MimiModel> {
    mimi::WeightReader w(std::move(lookup), source, device);
    MimiModel m;
    m.config_ = config;
    m.device_ = device;
    ASSIGN_OR_RETURN(m.encoder_, mimi::SeanetEncoder::Load(w, config.seanet, "encoder.model."));
    ASSIGN_OR_RETURN(m.decoder_, mimi::SeanetDecoder::Load(w, config.seanet, "decoder.model."));
    ASSIGN_OR_RETURN(m.encoder_transformer_,
                     mimi::MimiTransformer::Load(w, config.transformer, "encoder_transformer."));
    ASSIGN_OR_RETURN(m.decoder_transformer_,
                     mimi::MimiTransformer::Load(w, config.transformer, "decoder_transformer."));
    m.resample_ = config.has_resample();
    if (m.resample_) {
      const int64_t dim = config.seanet.dimension, stride = config.resample_stride();
      ASSIGN_OR_RETURN(at::Tensor down, w.Get("downsample.conv.conv.conv.weight", {dim, dim, 2 * stride}));
      m.downsample_ = mimi::StreamingConv1d(std::move(down), at::Tensor(), stride, 1, 1, /*replicate=*/true,
                                            /*gemm=*/true);
      ASSIGN_OR_RETURN(at::Tensor up, w.Get("upsample.convtr.convtr.convtr.weight", {dim, 1, 2 * stride}));
      m.upsample_ = mimi::StreamingConvTranspose1d(std::move(up), at::Tensor(), stride, /*groups=*/dim);
    }
    ASSIGN_OR_RETURN(m.rvq_, mimi::SplitRvq::Load(w, config.quantizer, "quantizer."));
    m.num_codebooks_ = m.rvq_.total_codebooks();
    return m;
  });
}

absl::Status MimiModel::SetNumCodebooks(int64_t n) {
  if (n < 1 || n > total_codebooks()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Mimi codebooks must be in [1, ", total_codebooks(), "], got ", n));
  }
  num_codebooks_ = n;
  return absl::OkStatus();
}

namespace {

absl::Status CheckPcm(const at::Tensor& pcm, const char* what) {
  if (!pcm.defined() || pcm.dim() != 3 || pcm.size(1) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": audio must be shaped [B, 1, samples], got ",
                     pcm.defined() ? absl::StrCat("[", absl::StrJoin(pcm.sizes().vec(), ", "), "]")
                                   : std::string("an undefined tensor")));
  }
  if (!at::isFloatingType(pcm.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": audio must be floating point, got ", c10::toString(pcm.scalar_type())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MimiModel::CheckCodes(const at::Tensor& codes, const char* what) const {
  if (!codes.defined() || codes.dim() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": codes must be shaped [B, codebooks, frames], got ",
                     codes.defined() ? absl::StrCat("[", absl::StrJoin(codes.sizes().vec(), ", "), "]")
                                     : std::string("an undefined tensor")));
  }
  if (!at::isIntegralType(codes.scalar_type(), /*includeBool=*/false)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": codes must be integers, got ", c10::toString(codes.scalar_type())));
  }
  if (codes.size(1) < 1 || codes.size(1) > total_codebooks()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": codes have ", codes.size(1),
                                                   " codebooks, this Mimi has 1 to ", total_codebooks()));
  }
  // A value check needs the values on the host; codes already on an accelerator are trusted (no sync).
  if (codes.numel() > 0 && codes.device().is_cpu()) {
    const int64_t lo = codes.min().item<int64_t>(), hi = codes.max().item<int64_t>();
    if (lo < 0 || hi >= cardinality()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": codes must be in [0, ", cardinality(),
                                                     "), found values in [", lo, ", ", hi, "]"));
    }
  }
  return absl::OkStatus();
}

at::Tensor MimiModel::PrepareMask(const at::Tensor& mask, int64_t batch) const {
  if (!mask.defined()) return mask;
  return mask.to(device_, at::kBool).reshape({batch});
}

absl::StatusOr<at::Tensor> MimiModel::EncodeToLatent(const at::Tensor& pcm) const {
  RETURN_IF_ERROR(CheckPcm(pcm, "mimi encode"));
  if (pcm.size(2) == 0) return absl::InvalidArgumentError("mimi encode: empty audio");
  return GuardTorch("mimi encode", [&]() {
    c10::InferenceMode guard;
    StrictFp32Scope fp32(device_.is_cuda());  // the reference's numerics: no TF32
    at::Tensor x = pcm.to(device_, at::kFloat);
    const int64_t frame = frame_size();
    const int64_t padded = (x.size(2) + frame - 1) / frame * frame;
    if (padded != x.size(2)) x = at::constant_pad_nd(x, {0, padded - x.size(2)}, 0.0);
    at::Tensor emb = encoder_.Forward(x);
    emb = encoder_transformer_.Forward(emb);
    if (resample_) emb = downsample_.Forward(emb);
    return emb;
  });
}

absl::StatusOr<at::Tensor> MimiModel::Encode(const at::Tensor& pcm) const {
  ASSIGN_OR_RETURN(at::Tensor emb, EncodeToLatent(pcm));
  return GuardTorch("mimi encode", [&]() {
    c10::InferenceMode guard;
    StrictFp32Scope fp32(device_.is_cuda());  // the reference's numerics: no TF32
    return rvq_.Encode(emb, num_codebooks_);
  });
}

absl::StatusOr<at::Tensor> MimiModel::Decode(const at::Tensor& codes) const {
  RETURN_IF_ERROR(CheckCodes(codes, "mimi decode"));
  if (codes.size(2) == 0) return at::zeros({codes.size(0), 1, 0}, at::TensorOptions(device_));
  return GuardTorch("mimi decode", [&]() {
    c10::InferenceMode guard;
    StrictFp32Scope fp32(device_.is_cuda());  // the reference's numerics: no TF32
    at::Tensor emb = rvq_.Decode(codes.to(device_, at::kLong));
    if (resample_) emb = upsample_.Forward(emb);
    emb = decoder_transformer_.Forward(emb);
    return decoder_.Forward(emb);
  });
}

MimiStreamState MimiModel::NewState(int64_t batch) const {
  c10::InferenceMode guard;
  MimiStreamState s;
  s.batch = batch;
  s.encoder.seanet = encoder_.InitState(batch);
  s.encoder.transformer = encoder_transformer_.InitState(batch);
  s.decoder.transformer = decoder_transformer_.InitState(batch);
  s.decoder.seanet = decoder_.InitState(batch);
  if (resample_) {
    s.encoder.downsample = downsample_.InitState(batch);
    s.decoder.upsample = upsample_.InitState(batch);
  }
  return s;
}

absl::Status MimiModel::Reset(MimiStreamState& state, const at::Tensor& slot_mask) const {
  if (slot_mask.defined() && slot_mask.numel() != state.batch) {
    return absl::InvalidArgumentError(absl::StrCat("mimi reset: mask has ", slot_mask.numel(),
                                                   " entries for a state of ", state.batch, " slots"));
  }
  return GuardTorch("mimi reset", [&]() {
    c10::InferenceMode guard;
    const at::Tensor mask = slot_mask.defined()
                                ? PrepareMask(slot_mask, state.batch)
                                : at::ones({state.batch}, at::TensorOptions(device_).dtype(at::kBool));
    encoder_.Reset(state.encoder.seanet, mask);
    encoder_transformer_.Reset(state.encoder.transformer, mask);
    decoder_transformer_.Reset(state.decoder.transformer, mask);
    decoder_.Reset(state.decoder.seanet, mask);
    if (resample_) {
      downsample_.Reset(state.encoder.downsample, mask);
      upsample_.Reset(state.decoder.upsample, mask);
    }
  });
}

at::Tensor MimiModel::EncodeStepUnchecked(MimiStreamState& state, const at::Tensor& pcm,
                                          const at::Tensor& exec_mask) const {
  c10::InferenceMode inference;
  StrictFp32Scope fp32(device_.is_cuda());  // the reference's numerics: no TF32
  const at::Tensor mask = PrepareMask(exec_mask, state.batch);
  // Scopes name the stages in `monologue bench codec --profile` (free when no profiler runs).
  at::Tensor emb;
  {
    RECORD_USER_SCOPE("mimi.encode.seanet");
    emb = encoder_.Step(state.encoder.seanet, pcm.to(device_, at::kFloat), mask);
  }
  {
    RECORD_USER_SCOPE("mimi.encode.transformer");
    emb = encoder_transformer_.Step(state.encoder.transformer, emb, mask);
  }
  if (resample_) {
    RECORD_USER_SCOPE("mimi.encode.downsample");
    emb = downsample_.Step(state.encoder.downsample, emb, mask);
  }
  RECORD_USER_SCOPE("mimi.encode.rvq");
  return rvq_.Encode(emb, num_codebooks_);
}

at::Tensor MimiModel::DecodeStepUnchecked(MimiStreamState& state, const at::Tensor& codes,
                                          const at::Tensor& exec_mask) const {
  c10::InferenceMode inference;
  StrictFp32Scope fp32(device_.is_cuda());  // the reference's numerics: no TF32
  const at::Tensor mask = PrepareMask(exec_mask, state.batch);
  at::Tensor emb;
  {
    RECORD_USER_SCOPE("mimi.decode.rvq");
    emb = rvq_.Decode(codes.to(device_, at::kLong));
  }
  if (resample_) {
    RECORD_USER_SCOPE("mimi.decode.upsample");
    emb = upsample_.Step(state.decoder.upsample, emb, mask);
  }
  {
    RECORD_USER_SCOPE("mimi.decode.transformer");
    emb = decoder_transformer_.Step(state.decoder.transformer, emb, mask);
  }
  RECORD_USER_SCOPE("mimi.decode.seanet");
  return decoder_.Step(state.decoder.seanet, emb, mask);
}

namespace {

// The streaming state of a step's rows: conv tails gathered (small), rings and offsets left in `full` (the
// transformers read them through the rows).
mimi::ConvState GatherConv(const mimi::ConvState& s, const StepRows& rows) {
  return {rows.Gather(s.previous), rows.Gather(s.first)};
}
void ScatterConv(mimi::ConvState& full, const mimi::ConvState& local, const StepRows& rows) {
  rows.ScatterActive(full.previous, local.previous);
  rows.ScatterActive(full.first, local.first);
}
mimi::ConvTrState GatherConvTr(const mimi::ConvTrState& s, const StepRows& rows) {
  return {rows.Gather(s.partial)};
}
void ScatterConvTr(mimi::ConvTrState& full, const mimi::ConvTrState& local, const StepRows& rows) {
  rows.ScatterActive(full.partial, local.partial);
}
mimi::SeanetState GatherSeanet(const mimi::SeanetState& s, const StepRows& rows) {
  mimi::SeanetState out;
  for (const auto& c : s.convs) out.convs.push_back(GatherConv(c, rows));
  for (const auto& c : s.convtrs) out.convtrs.push_back(GatherConvTr(c, rows));
  return out;
}
void ScatterSeanet(mimi::SeanetState& full, const mimi::SeanetState& local, const StepRows& rows) {
  for (size_t i = 0; i < full.convs.size(); ++i) ScatterConv(full.convs[i], local.convs[i], rows);
  for (size_t i = 0; i < full.convtrs.size(); ++i) ScatterConvTr(full.convtrs[i], local.convtrs[i], rows);
}

}  // namespace

at::Tensor MimiModel::EncodeStepRowsUnchecked(MimiStreamState& state, const StepRows& rows,
                                              const at::Tensor& pcm) const {
  c10::InferenceMode inference;
  StrictFp32Scope fp32(device_.is_cuda());  // the reference's numerics: no TF32
  at::Tensor emb;
  {
    RECORD_USER_SCOPE("mimi.encode.seanet");
    mimi::SeanetState seanet = GatherSeanet(state.encoder.seanet, rows);
    emb = encoder_.Step(seanet, rows.Expand(pcm.to(device_, at::kFloat)));
    ScatterSeanet(state.encoder.seanet, seanet, rows);
  }
  {
    RECORD_USER_SCOPE("mimi.encode.transformer");
    emb = encoder_transformer_.StepRows(state.encoder.transformer, emb, rows);
  }
  if (resample_) {
    RECORD_USER_SCOPE("mimi.encode.downsample");
    mimi::ConvState down = GatherConv(state.encoder.downsample, rows);
    emb = downsample_.Step(down, emb);
    ScatterConv(state.encoder.downsample, down, rows);
  }
  RECORD_USER_SCOPE("mimi.encode.rvq");
  return rows.SelectActive(rvq_.Encode(emb, num_codebooks_));
}

at::Tensor MimiModel::DecodeStepRowsUnchecked(MimiStreamState& state, const StepRows& rows,
                                              const at::Tensor& codes) const {
  c10::InferenceMode inference;
  StrictFp32Scope fp32(device_.is_cuda());  // the reference's numerics: no TF32
  at::Tensor emb;
  {
    RECORD_USER_SCOPE("mimi.decode.rvq");
    emb = rvq_.Decode(rows.Expand(codes.to(device_, at::kLong)));
  }
  if (resample_) {
    RECORD_USER_SCOPE("mimi.decode.upsample");
    mimi::ConvTrState up = GatherConvTr(state.decoder.upsample, rows);
    emb = upsample_.Step(up, emb);
    ScatterConvTr(state.decoder.upsample, up, rows);
  }
  {
    RECORD_USER_SCOPE("mimi.decode.transformer");
    emb = decoder_transformer_.StepRows(state.decoder.transformer, emb, rows);
  }
  RECORD_USER_SCOPE("mimi.decode.seanet");
  mimi::SeanetState seanet = GatherSeanet(state.decoder.seanet, rows);
  at::Tensor pcm = decoder_.Step(seanet, emb);
  ScatterSeanet(state.decoder.seanet, seanet, rows);
  return rows.SelectActive(pcm);
}

absl::StatusOr<at::Tensor> MimiModel::EncodeStepSlots(MimiStreamState& state, std::span<const int64_t> slots,
                                                      const at::Tensor& pcm) const {
  RETURN_IF_ERROR(CheckPcm(pcm, "mimi encode step"));
  const int64_t n = static_cast<int64_t>(slots.size());
  if (pcm.size(0) != n || pcm.size(2) != frame_size()) {
    return absl::InvalidArgumentError(absl::StrCat("mimi encode step: expected audio [", n, ", 1, ",
                                                   frame_size(), "] for ", n, " slots, got [",
                                                   absl::StrJoin(pcm.sizes().vec(), ", "), "]"));
  }
  ASSIGN_OR_RETURN(StepRows rows, MakeStepRows(slots, state.batch, device_));
  return GuardTorch("mimi encode step", [&]() { return EncodeStepRowsUnchecked(state, rows, pcm); });
}

absl::StatusOr<at::Tensor> MimiModel::DecodeStepSlots(MimiStreamState& state, std::span<const int64_t> slots,
                                                      const at::Tensor& codes) const {
  RETURN_IF_ERROR(CheckCodes(codes, "mimi decode step"));
  const int64_t n = static_cast<int64_t>(slots.size());
  if (codes.size(0) != n || codes.size(2) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("mimi decode step: expected codes [", n, ", K, 1] for ", n,
                                                   " slots, got [", absl::StrJoin(codes.sizes().vec(), ", "),
                                                   "]"));
  }
  ASSIGN_OR_RETURN(StepRows rows, MakeStepRows(slots, state.batch, device_));
  return GuardTorch("mimi decode step", [&]() { return DecodeStepRowsUnchecked(state, rows, codes); });
}

absl::StatusOr<at::Tensor> MimiModel::EncodeStep(MimiStreamState& state, const at::Tensor& pcm,
                                                 const at::Tensor& exec_mask) const {
  RETURN_IF_ERROR(CheckPcm(pcm, "mimi encode step"));
  if (pcm.size(0) != state.batch || pcm.size(2) != frame_size()) {
    return absl::InvalidArgumentError(absl::StrCat("mimi encode step: expected audio [", state.batch, ", 1, ",
                                                   frame_size(), "], got [",
                                                   absl::StrJoin(pcm.sizes().vec(), ", "), "]"));
  }
  if (exec_mask.defined() && exec_mask.numel() != state.batch) {
    return absl::InvalidArgumentError("mimi encode step: exec mask size differs from the batch");
  }
  return GuardTorch("mimi encode step", [&]() { return EncodeStepUnchecked(state, pcm, exec_mask); });
}

absl::StatusOr<at::Tensor> MimiModel::DecodeStep(MimiStreamState& state, const at::Tensor& codes,
                                                 const at::Tensor& exec_mask) const {
  RETURN_IF_ERROR(CheckCodes(codes, "mimi decode step"));
  if (codes.size(0) != state.batch || codes.size(2) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("mimi decode step: expected codes [", state.batch,
                                                   ", K, 1], got [", absl::StrJoin(codes.sizes().vec(), ", "),
                                                   "]"));
  }
  if (exec_mask.defined() && exec_mask.numel() != state.batch) {
    return absl::InvalidArgumentError("mimi decode step: exec mask size differs from the batch");
  }
  return GuardTorch("mimi decode step", [&]() { return DecodeStepUnchecked(state, codes, exec_mask); });
}

}  // namespace monologue
