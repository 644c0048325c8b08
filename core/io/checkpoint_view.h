// A checkpoint's tensors under the released (PyTorch) names, whatever attention key layout the file uses.
// The reference loader accepts, for every StreamingMultiheadAttention (LM, depformer with per-step weights,
// Mimi's transformers), its state-dict hook's layouts (moshi/modules/transformer.py):
//
//   released   `self_attn.in_proj_weight` [W*R, D]   and `self_attn.out_proj.weight` [W*D, D]
//   linear     `self_attn.in_proj.weight`  [W*R, D]  (same tensor, nn.Linear naming)
//   per-step   `self_attn.in_projs.{i}.weight` [R, D] and `self_attn.out_projs.{i}.weight` [D, D], i < W
//              (what the current reference's model.state_dict() saves)
//
// and the LoRA variants (`in_proj.lora_A.weight`, `in_projs.{i}.lora_A.weight`, ... and `lora_B`), plus a
// LoRA-wrapped Linear's `frozen_W.weight` for its base weight. This view presents every such tensor under
// the released name: per-step parts are concatenated along dim 0 (the reference splits the fused tensor
// with view(W, -1, ...), so concatenation is its exact inverse), renamed ones are passed through. Parts
// that do not form a complete set 0..W-1 with one dtype and one shape stay under their own names, so
// validation lists them (and the released name as missing).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace monologue {

class CheckpointView {
 public:
  explicit CheckpointView(std::shared_ptr<const SafeTensorsFile> file);
  static absl::StatusOr<std::shared_ptr<const CheckpointView>> Open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const SafeTensorsFile& file() const { return *file_; }
  // Tensors under their released names, sorted by name (offsets are meaningless for merged ones).
  const std::vector<SafeTensorInfo>& tensors() const { return tensors_; }
  const SafeTensorInfo* Find(std::string_view name) const;
  // The tensor (a zero-copy view when not merged; a new contiguous tensor for per-step parts).
  absl::StatusOr<at::Tensor> Load(std::string_view name) const;
  // The file's own names behind `name` (itself when not renamed; empty when absent).
  std::vector<std::string> SourceNames(std::string_view name) const;

  // The attention key layouts found, e.g. {"per-step (in_projs.{i}.weight, out_projs.{i}.weight)"}; one
  // entry per layout, "released (in_proj_weight, out_proj.weight)" for the released naming; empty when the
  // file has no attention weights.
  const std::vector<std::string>& attention_layouts() const { return layouts_; }
  // One line: the layouts joined, or "none (no attention weights)".
  std::string LayoutSummary() const;

 private:
  std::shared_ptr<const SafeTensorsFile> file_;
  std::vector<SafeTensorInfo> tensors_;
  std::map<std::string, std::vector<std::string>, std::less<>> sources_;  // released name -> file names
  std::vector<std::string> layouts_;
};

}  // namespace monologue
