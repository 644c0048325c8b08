// Where LmModel's loading takes its tensors from: the model files (or in-memory tensors), read by name with
// shape checks and the reference loader's dtype rules; Linear weights LoRA-fused, placed on 2 MB pages or
// quantised (int8/int4 at load, or a `quantize: true` checkpoint's stored int8); and the strict check that
// every tensor was used. What the tensors are for is lm_model_load.cc's business.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/checkpoint_view.h"
#include "core/lm/lm_linear.h"
#include "core/lm/lm_model.h"

namespace monologue::lm {

class LmTensorReader {
 public:
  // `memory`: in-memory tensors read before the files (FromTensors); entries are let go of once their
  // Linear weight is placed or quantised. int8/int4 in `options` read float weights as f32 and quantise the
  // transformers' Linears (options().dtype is then f32).
  LmTensorReader(const std::vector<std::shared_ptr<const SafeTensorsFile>>& files,
                 const LmLoadOptions& options, std::map<std::string, at::Tensor>* memory = nullptr);

  // Config `quantize: true`: Linear weights are stored as bitsandbytes int8 with `<key>_scb` row scales.
  // Refuses a LoRA file for such a checkpoint; opens the LoRA file otherwise (when one is given).
  absl::Status Prepare(bool int8_checkpoint);

  const LmLoadOptions& options() const { return options_; }
  int quant_bits() const { return quant_bits_; }  // 8 or 4: Linear weights quantised; 0: none
  const LmQuantizationStats& stats() const { return stats_; }

  // The tensor `name` of shape `shape`, converted to the model's dtype (floating tensors; `fp32`: to float32,
  // for the conditioners; `keep_bf16`: a Linear weight the few-row kernel reads stays in bf16, KeepsBf16)
  // and device.
  absl::StatusOr<at::Tensor> Get(const std::string& name, std::vector<int64_t> shape, bool fp32 = false,
                                 bool keep_bf16 = false);

  // A Linear weight, LoRA-fused when the LoRA file has `<module>.lora_A.weight`. `module` is the module
  // path (e.g. "text_linear" or "transformer.layers.0.self_attn.in_proj"), `mult` the number of fused
  // weight sets. `keep_bf16`: a weight read through lm::LinearWeight (KeepsBf16; LoRA-fused ones are
  // widened). From a `quantize: true` checkpoint: dequantised as bitsandbytes does.
  absl::StatusOr<at::Tensor> GetLinear(const std::string& key, const std::string& module,
                                       std::vector<int64_t> shape, int64_t mult = 1, bool keep_bf16 = false);

  // A Linear weight of the transformers or the output heads: LoRA-fused like GetLinear, then quantised to
  // int8 or int4 when the model is loaded so. From a `quantize: true` checkpoint an int8 model takes the
  // stored values and scales as they are (no second rounding).
  absl::StatusOr<LinearWeight> GetLinearWeight(const std::string& key, const std::string& module,
                                               std::vector<int64_t> shape, int64_t mult = 1);

  // Every tensor of the files (and of the LoRA file) was read: a config that does not describe the
  // checkpoint is named, not half-loaded.
  absl::Status CheckAllUsed() const;

 private:
  // A `quantize: true` checkpoint's Linear weight as stored: int8 values [out, in] and each row's absolute
  // maximum (`<key>_scb`, f32 [out]).
  struct Int8Stored {
    at::Tensor values;
    at::Tensor absmax;
  };

  std::string FileNames() const;
  // f32 on a CPU with the few-row kernel: a bf16 Linear weight (every released LM checkpoint stores them so)
  // stays in bf16. The kernel widens it in registers, which is exact, so the model computes the same f32
  // values as with a widened copy while a step reads half the bytes and the model holds half the memory.
  bool KeepsBf16(const at::Tensor& t) const;
  at::Tensor ToModel(const at::Tensor& t, bool fp32, bool keep_bf16) const;
  absl::StatusOr<Int8Stored> GetInt8(const std::string& key, const std::vector<int64_t>& shape);
  // Lets go of an in-memory Linear weight once its placed or quantised form exists (FromTensors): with the
  // map moved in, its storage is freed now instead of at the end of the load. The name stays, as used.
  void ReleaseInMemory(const std::string& key);

  std::vector<std::shared_ptr<const CheckpointView>> files_;
  LmLoadOptions options_;
  std::map<std::string, at::Tensor>* memory_ = nullptr;  // entries let go of once loaded (ReleaseInMemory)
  std::shared_ptr<const CheckpointView> lora_;
  std::set<std::string> used_;
  std::set<std::string> lora_used_;
  int quant_bits_ = 0;
  bool int8_checkpoint_ = false;
  LmQuantizationStats stats_;
};

}  // namespace monologue::lm
