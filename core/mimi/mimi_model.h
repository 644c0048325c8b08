// The Mimi codec (moshi-reference.md §1): 24 kHz mono audio <-> 12.5 Hz codes, batch-first, offline and
// streaming, on CPU or CUDA (float32).
//
//   ASSIGN_OR_RETURN(auto file, SafeTensorsFile::Open(path));
//   ASSIGN_OR_RETURN(MimiModel mimi, MimiModel::Load(*file, MimiConfig{}, at::kCPU));
//   mimi.SetNumCodebooks(8);
//   MimiStreamState state = mimi.NewState(/*batch=*/2);
//   at::Tensor codes = mimi.EncodeStep(state, frames);   // [2, 1, 1920] -> [2, 8, 1]
//   at::Tensor pcm = mimi.DecodeStep(state, codes);      // [2, 8, 1] -> [2, 1, 1920]
//
// Thread safety: a loaded model is immutable except for SetNumCodebooks; states are per caller.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/config/mimi_config.h"
#include "core/io/safetensors.h"
#include "core/mimi/mimi_state.h"
#include "core/mimi/mimi_transformer.h"
#include "core/mimi/seanet.h"
#include "core/mimi/split_rvq.h"
#include "core/mimi/streaming_conv.h"
#include "core/mimi/streaming_conv_transpose.h"
#include "core/mimi/weights.h"
#include "core/util/step_rows.h"

namespace monologue {

using mimi::MimiStreamState;

class MimiModel {
 public:
  // Builds the model from a checkpoint with the released tensor names (moshi-reference.md §1.11). Every
  // tensor is checked for presence and shape; errors name the file and tensor. Weights go to `device` as
  // float32. On CUDA, every encode/decode call runs its matmuls and convolutions without TF32 (the
  // reference's numerics), inside a StrictFp32Scope: the process-wide settings are left as they were.
  static absl::StatusOr<MimiModel> Load(const SafeTensorsFile& file, const MimiConfig& config,
                                        c10::Device device = c10::Device(c10::kCPU));
  // The same from any name -> CPU tensor lookup; `source` names the weights in errors.
  static absl::StatusOr<MimiModel> Load(mimi::TensorLookup lookup, const std::string& source,
                                        const MimiConfig& config,
                                        c10::Device device = c10::Device(c10::kCPU));

  const MimiConfig& config() const { return config_; }
  c10::Device device() const { return device_; }
  int64_t sample_rate() const { return config_.sample_rate; }
  double frame_rate() const { return config_.frame_rate; }
  int64_t frame_size() const { return config_.frame_size(); }  // samples per code frame (1920)
  int64_t cardinality() const { return rvq_.bins(); }          // codes are in [0, cardinality)
  int64_t total_codebooks() const { return rvq_.total_codebooks(); }
  int64_t num_codebooks() const { return num_codebooks_; }
  // Codebooks produced by Encode/EncodeStep: 1 <= n <= total_codebooks() (default: all).
  absl::Status SetNumCodebooks(int64_t n);

  // Offline encode: pcm [B, 1, L] (float, any device; zero-padded on the right to a multiple of
  // frame_size()) -> int64 codes [B, num_codebooks(), ceil(L / frame_size())] on device().
  absl::StatusOr<at::Tensor> Encode(const at::Tensor& pcm) const;
  // Offline decode: codes [B, K, T] (integer, 1 <= K <= total_codebooks(), values < cardinality())
  // -> pcm [B, 1, T * frame_size()].
  absl::StatusOr<at::Tensor> Decode(const at::Tensor& codes) const;

  // A fresh streaming state for `batch` slots on device().
  MimiStreamState NewState(int64_t batch) const;
  // Resets the slots where `slot_mask` ([B] bool, any device) is true to a fresh stream (encoder and
  // decoder). An undefined mask resets every slot.
  absl::Status Reset(MimiStreamState& state, const at::Tensor& slot_mask = {}) const;
  // One frame per slot: pcm [B, 1, frame_size()] -> codes [B, num_codebooks(), 1]. `exec_mask` ([B] bool,
  // optional): slots where it is false keep their state and get unspecified codes.
  absl::StatusOr<at::Tensor> EncodeStep(MimiStreamState& state, const at::Tensor& pcm,
                                        const at::Tensor& exec_mask = {}) const;
  // codes [B, K, 1] -> pcm [B, 1, frame_size()], same exec-mask rule.
  absl::StatusOr<at::Tensor> DecodeStep(MimiStreamState& state, const at::Tensor& codes,
                                        const at::Tensor& exec_mask = {}) const;

  // One frame of the listed slots only (distinct, ascending), at the cost of StepBucket(n, B) rows
  // instead of B (core/util/step_rows.h); the other slots' state is untouched. pcm [n, 1, frame_size()]
  // holds the slots' audio in that order -> codes [n, num_codebooks(), 1].
  absl::StatusOr<at::Tensor> EncodeStepSlots(MimiStreamState& state, std::span<const int64_t> slots,
                                             const at::Tensor& pcm) const;
  // codes [n, K, 1] of the listed slots -> pcm [n, 1, frame_size()].
  absl::StatusOr<at::Tensor> DecodeStepSlots(MimiStreamState& state, std::span<const int64_t> slots,
                                             const at::Tensor& codes) const;

  // Unchecked variants for hot loops that validated their inputs once (same contracts, no Status, no
  // shape checks; libtorch exceptions propagate).
  at::Tensor EncodeStepUnchecked(MimiStreamState& state, const at::Tensor& pcm,
                                 const at::Tensor& exec_mask) const;
  at::Tensor DecodeStepUnchecked(MimiStreamState& state, const at::Tensor& codes,
                                 const at::Tensor& exec_mask) const;
  at::Tensor EncodeStepRowsUnchecked(MimiStreamState& state, const StepRows& rows, const at::Tensor& pcm) const;
  at::Tensor DecodeStepRowsUnchecked(MimiStreamState& state, const StepRows& rows,
                                     const at::Tensor& codes) const;

  // Encoder latent before quantization ([B, 512, frames]), offline (for tests and tools).
  absl::StatusOr<at::Tensor> EncodeToLatent(const at::Tensor& pcm) const;

 private:
  MimiModel() = default;
  absl::Status CheckCodes(const at::Tensor& codes, const char* what) const;
  at::Tensor PrepareMask(const at::Tensor& mask, int64_t batch) const;

  MimiConfig config_;
  c10::Device device_ = c10::Device(c10::kCPU);
  int64_t num_codebooks_ = 0;
  mimi::SeanetEncoder encoder_;
  mimi::SeanetDecoder decoder_;
  mimi::MimiTransformer encoder_transformer_, decoder_transformer_;
  bool resample_ = false;
  mimi::StreamingConv1d downsample_;
  mimi::StreamingConvTranspose1d upsample_;
  mimi::SplitRvq rvq_;
};

}  // namespace monologue
