#include "core/lm/lm_tensor_reader.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/kernels/few_row_linear.h"
#include "core/util/finite_check.h"
#include "core/util/huge_pages.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace monologue::lm {

namespace {

std::string ShapeStr(at::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

constexpr float kInverse127 = 7.874015718698502e-3f;  // bitsandbytes' 1 / 127

}  // namespace

LmTensorReader::LmTensorReader(const std::vector<std::shared_ptr<const SafeTensorsFile>>& files,
                               const LmLoadOptions& options, std::map<std::string, at::Tensor>* memory)
    : options_(options), memory_(memory) {
  // int8 / int4: the quantised Linears come from f32 weights, and everything else stays f32.
  quant_bits_ = options_.dtype == at::kChar ? 8 : options_.dtype == c10::ScalarType::Int4 ? 4 : 0;
  if (quant_bits_ != 0) options_.dtype = at::kFloat;
  // Every attention key layout the reference loader maps is read under the released names.
  for (const auto& f : files) files_.push_back(std::make_shared<const CheckpointView>(f));
}

absl::Status LmTensorReader::Prepare(bool int8_checkpoint) {
  int8_checkpoint_ = int8_checkpoint;
  if (options_.lora_path.empty()) return absl::OkStatus();
  if (int8_checkpoint_) {
    return absl::InvalidArgumentError(absl::StrCat("LM load: LoRA file ", options_.lora_path,
                                                   " cannot be fused into a quantize: true checkpoint "
                                                   "(int8 weights; the reference refuses it too): use "
                                                   "the model's float checkpoint"));
  }
  ASSIGN_OR_RETURN(lora_, CheckpointView::Open(options_.lora_path));
  return absl::OkStatus();
}

std::string LmTensorReader::FileNames() const {
  std::vector<std::string> names;
  if (memory_ != nullptr) names.push_back("(in-memory tensors)");
  for (const auto& f : files_) names.push_back(f->path());
  return absl::StrJoin(names, ", ");
}

bool LmTensorReader::KeepsBf16(const at::Tensor& t) const {
  return t.scalar_type() == at::kBFloat16 && options_.dtype == at::kFloat && options_.device.is_cpu() &&
         kernels::HasFewRowKernel();
}

at::Tensor LmTensorReader::ToModel(const at::Tensor& t, bool fp32, bool keep_bf16) const {
  at::Tensor out = t;
  if (at::isFloatingType(out.scalar_type()) && !(keep_bf16 && KeepsBf16(out))) {
    out = out.to(fp32 ? at::kFloat : options_.dtype);
  }
  return out.to(options_.device);
}

absl::StatusOr<at::Tensor> LmTensorReader::Get(const std::string& name, std::vector<int64_t> shape, bool fp32,
                                               bool keep_bf16) {
  if (memory_ != nullptr) {
    auto it = memory_->find(name);
    if (it != memory_->end()) {
      if (!it->second.defined()) {
        return absl::InternalError(
            absl::StrCat("in-memory tensor '", name, "' read again after the loader let go of it"));
      }
      if (it->second.sizes().vec() != shape) {
        return absl::InvalidArgumentError(absl::StrCat("in-memory tensor '", name, "' has shape ",
                                                       ShapeStr(it->second.sizes()), ", the config implies ",
                                                       ShapeStr(shape)));
      }
      used_.insert(name);
      return GuardTorch(absl::StrCat("converting tensor '", name, "'"),
                        [&] { return ToModel(it->second, fp32, keep_bf16); });
    }
  }
  for (const auto& file : files_) {
    const SafeTensorInfo* info = file->Find(name);
    if (info == nullptr) continue;
    if (info->shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor '", name, "' has shape ",
                                                     ShapeStr(info->shape), ", the config implies ",
                                                     ShapeStr(shape)));
    }
    ASSIGN_OR_RETURN(at::Tensor t, file->Load(name));
    used_.insert(name);
    if (!AllFinite(t)) {
      return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor '", name,
                                                     "' holds NaN or infinite values (a corrupt or badly "
                                                     "converted checkpoint; the model cannot run)"));
    }
    return GuardTorch(absl::StrCat("loading tensor '", name, "' from ", file->path()),
                      [&] { return ToModel(t, fp32, keep_bf16); });
  }
  return absl::NotFoundError(absl::StrCat(FileNames(), ": missing tensor '", name, "' (shape ",
                                          ShapeStr(shape), ") required by the config"));
}

absl::StatusOr<at::Tensor> LmTensorReader::GetLinear(const std::string& key, const std::string& module,
                                                     std::vector<int64_t> shape, int64_t mult,
                                                     bool keep_bf16) {
  if (int8_checkpoint_) {
    ASSIGN_OR_RETURN(Int8Stored q, GetInt8(key, shape));
    return GuardTorch(absl::StrCat("dequantising '", key, "'"), [&] {
      // bitsandbytes' int8_vectorwise_dequant, in f32: values * absmax * (1 / 127).
      return q.values.to(at::kFloat).mul(q.absmax.unsqueeze(1)).mul(kInverse127).to(options_.dtype);
    });
  }
  ASSIGN_OR_RETURN(at::Tensor w, Get(key, shape, /*fp32=*/false, keep_bf16));
  if (!at::isFloatingType(w.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat(FileNames(), ": Linear weight '", key, "' is ", c10::toString(w.scalar_type()),
                     (w.scalar_type() == at::kChar
                          ? " (a quantised checkpoint: its config.json must say \"quantize\": true)"
                          : ""),
                     ", expected a float type"));
  }
  if (lora_ == nullptr) return w;
  const std::string a_name = module + ".lora_A.weight", b_name = module + ".lora_B.weight";
  const SafeTensorInfo* a_info = lora_->Find(a_name);
  const SafeTensorInfo* b_info = lora_->Find(b_name);
  if (a_info == nullptr && b_info == nullptr) return w;
  if (a_info == nullptr || b_info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(lora_->path(), ": has only one of '", a_name, "' and '", b_name, "'"));
  }
  ASSIGN_OR_RETURN(at::Tensor a, lora_->Load(a_name));
  ASSIGN_OR_RETURN(at::Tensor b, lora_->Load(b_name));
  lora_used_.insert(a_name);
  lora_used_.insert(b_name);
  for (const auto& [tensor, tensor_name] : {std::pair{&a, &a_name}, std::pair{&b, &b_name}}) {
    if (!AllFinite(*tensor)) {
      return absl::InvalidArgumentError(
          absl::StrCat(lora_->path(), ": LoRA tensor '", *tensor_name, "' holds NaN or infinite values"));
    }
  }
  const int64_t rows = shape[0] / mult, cols = shape[1];
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != cols || b.size(0) != shape[0] || a.size(0) % mult != 0 ||
      b.size(1) * mult != a.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(lora_->path(), ": LoRA tensors '", a_name, "' ", ShapeStr(a.sizes()), " and '", b_name,
                     "' ", ShapeStr(b.sizes()), " do not fit weight '", key, "' ", ShapeStr(shape)));
  }
  return GuardTorch(absl::StrCat("fusing LoRA into '", key, "'"), [&]() -> at::Tensor {
    const int64_t rank = a.size(0) / mult;
    at::Tensor a_d = a.to(options_.dtype).to(options_.device).view({mult, rank, cols});
    at::Tensor b_d = b.to(options_.dtype).to(options_.device).view({mult, rows, rank});
    at::Tensor w3 = w.to(options_.dtype).view({mult, rows, cols});
    std::vector<at::Tensor> merged;
    for (int64_t i = 0; i < mult; ++i) {
      merged.push_back(w3[i] + options_.lora_scaling * at::mm(b_d[i], a_d[i]));
    }
    return at::cat(merged, 0);
  });
}

absl::StatusOr<LmTensorReader::Int8Stored> LmTensorReader::GetInt8(const std::string& key,
                                                                   const std::vector<int64_t>& shape) {
  Int8Stored q;
  ASSIGN_OR_RETURN(q.values, Get(key, shape));
  if (q.values.scalar_type() != at::kChar) {
    return absl::InvalidArgumentError(
        absl::StrCat(FileNames(), ": Linear weight '", key, "' is ", c10::toString(q.values.scalar_type()),
                     "; config.json says \"quantize\": true, so every Linear weight must be int8 (with '",
                     key, "_scb' holding its rows' scales)"));
  }
  ASSIGN_OR_RETURN(q.absmax, Get(key + "_scb", {shape[0]}, /*fp32=*/true));
  if (!at::isFloatingType(q.absmax.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(FileNames(), ": int8 row scales '", key, "_scb' are ",
                                                   c10::toString(q.absmax.scalar_type()),
                                                   ", expected float32"));
  }
  return q;
}

absl::StatusOr<LinearWeight> LmTensorReader::GetLinearWeight(const std::string& key,
                                                             const std::string& module,
                                                             std::vector<int64_t> shape, int64_t mult) {
  // From a `quantize: true` checkpoint, int8 takes the stored values; everything else starts from floats.
  const bool stored_int8 = int8_checkpoint_ && quant_bits_ == 8;
  at::Tensor w;
  LinearWeight out;
  if (!stored_int8) {
    ASSIGN_OR_RETURN(w, GetLinear(key, module, shape, mult, /*keep_bf16=*/true));
    if (int8_checkpoint_) ReleaseInMemory(key + "_scb");
  }
  if (quant_bits_ == 0) {
    // Copied out of the checkpoint's mapping (4 KB file pages) onto 2 MB pages: a CPU step streams it.
    ASSIGN_OR_RETURN(out.weight, GuardTorch(absl::StrCat("placing '", key, "' in memory"),
                                            [&] { return PlaceOnHugePages(w); }));
    if (w.scalar_type() == at::kBFloat16 && options_.dtype == at::kFloat) {
      stats_.bf16_linears += 1;
      stats_.bf16_bytes += w.numel() * 2;
    }
    ReleaseInMemory(key);
    return out;
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t parameters = 0;
  if (stored_int8) {
    ASSIGN_OR_RETURN(Int8Stored q, GetInt8(key, shape));
    ASSIGN_OR_RETURN(out, GuardTorch(absl::StrCat("packing int8 weight '", key, "'"), [&] {
                       return Int8WeightFromValues(q.values, q.absmax.to(at::kFloat).mul(kInverse127));
                     }));
    parameters = q.values.numel();
    stats_.stored_int8 = true;
    ReleaseInMemory(key + "_scb");
  } else {
    ASSIGN_OR_RETURN(out, GuardTorch(absl::StrCat("quantising '", key, "' to int", quant_bits_),
                                     [&] { return quant_bits_ == 4 ? QuantizeInt4(w) : QuantizeInt8(w); }));
    parameters = w.numel();
  }
  stats_.bits = quant_bits_;
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats_.linears += 1;
  stats_.parameters += parameters;
  stats_.float_bytes += parameters * 4;
  stats_.quantized_bytes += out.nbytes();
  if (options_.dequantize_after_quantizing) {
    ASSIGN_OR_RETURN(at::Tensor deq,
                     GuardTorch(absl::StrCat("dequantising '", key, "'"), [&] { return out.Dequantized(); }));
    out = LinearWeight();
    out.weight = deq;
  }
  ReleaseInMemory(key);
  return out;
}

void LmTensorReader::ReleaseInMemory(const std::string& key) {
  if (memory_ == nullptr) return;
  auto it = memory_->find(key);
  if (it != memory_->end()) it->second = at::Tensor();
}

absl::Status LmTensorReader::CheckAllUsed() const {
  std::vector<std::string> unused;
  if (memory_ != nullptr) {
    for (const auto& [name, tensor] : *memory_) {
      if (!used_.count(name)) unused.push_back(absl::StrCat("'", name, "'"));
    }
  }
  for (const auto& file : files_) {
    for (const auto& info : file->tensors()) {
      if (!used_.count(info.name)) unused.push_back(absl::StrCat("'", info.name, "'"));
    }
  }
  if (!unused.empty()) {
    const size_t shown = std::min<size_t>(unused.size(), 20);
    return absl::InvalidArgumentError(absl::StrCat(
        FileNames(), ": ", unused.size(), " tensor(s) not used by the config (config mismatch?): ",
        absl::StrJoin(unused.begin(), unused.begin() + shown, ", "), unused.size() > shown ? ", ..." : ""));
  }
  if (lora_ != nullptr) {
    std::vector<std::string> lora_unused;
    for (const auto& info : lora_->tensors()) {
      if (!lora_used_.count(info.name)) lora_unused.push_back(info.name);
    }
    if (!lora_unused.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          lora_->path(), ": LoRA tensors with no matching weight: ", absl::StrJoin(lora_unused, ", ")));
    }
  }
  return absl::OkStatus();
}

}  // namespace monologue::lm
