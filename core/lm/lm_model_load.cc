// LmModel's loading half: LmModelLoader (tensor lookup with shape checks, the reference's dtype rules, LoRA
// fusion, strict key check) and LmModel::Load / FromTensors / LoadFile, DescribeQuantization. The runtime is
// in lm_model.cc, the conditioners and fuser in lm_conditioning.cc.
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/io/checkpoint_view.h"
#include "core/kernels/few_row_linear.h"
#include "core/kernels/small_attention.h"
#include "core/lm/lm_model.h"
#include "core/util/finite_check.h"
#include "core/util/huge_pages.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace monologue {

using lm::Embedding;
using lm::FeedForward;
using lm::Norm;
using lm::NormType;

namespace {

std::string ShapeStr(at::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

absl::StatusOr<lm::PositionalEmbedding> ParsePositional(const std::string& name, const std::string& field) {
  if (name == "rope") return lm::PositionalEmbedding::kRope;
  if (name == "rope_concat") return lm::PositionalEmbedding::kRopeConcat;
  if (name == "sin") return lm::PositionalEmbedding::kSin;
  if (name == "sin_rope") return lm::PositionalEmbedding::kSinRope;
  if (name == "none") return lm::PositionalEmbedding::kNone;
  return absl::InvalidArgumentError(absl::StrCat("LM config: unknown ", field, " \"", name, "\""));
}

}  // namespace

// Fetches tensors by name from the model files with shape checks and the reference loader's dtype rules,
// keeps track of which were used, and fuses LoRA weights.
class LmModelLoader {
 public:
  LmModelLoader(const std::vector<std::shared_ptr<const SafeTensorsFile>>& files,
                const LmLoadOptions& options, std::map<std::string, at::Tensor>* memory = nullptr)
      : options_(options), memory_(memory) {
    // int8 / int4: the quantised Linears come from f32 weights, and everything else stays f32.
    quant_bits_ = options_.dtype == at::kChar ? 8 : options_.dtype == c10::ScalarType::Int4 ? 4 : 0;
    if (quant_bits_ != 0) options_.dtype = at::kFloat;
    // Every attention key layout the reference loader maps is read under the released names.
    for (const auto& f : files) files_.push_back(std::make_shared<const CheckpointView>(f));
  }

  absl::Status OpenLora() {
    if (options_.lora_path.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(lora_, CheckpointView::Open(options_.lora_path));
    return absl::OkStatus();
  }

  std::string FileNames() const {
    std::vector<std::string> names;
    if (memory_ != nullptr) names.push_back("(in-memory tensors)");
    for (const auto& f : files_) names.push_back(f->path());
    return absl::StrJoin(names, ", ");
  }

  // f32 on a CPU with the few-row kernel: a bf16 Linear weight (every released LM checkpoint stores them so)
  // stays in bf16. The kernel widens it in registers, which is exact, so the model computes the same f32
  // values as with a widened copy while a step reads half the bytes and the model holds half the memory.
  bool KeepsBf16(const at::Tensor& t) const {
    return t.scalar_type() == at::kBFloat16 && options_.dtype == at::kFloat && options_.device.is_cpu() &&
           kernels::HasFewRowKernel();
  }

  // `fp32`: condition_provider tensors, kept in float32. `keep_bf16`: a Linear weight the few-row kernel
  // reads (KeepsBf16).
  absl::StatusOr<at::Tensor> Get(const std::string& name, std::vector<int64_t> shape, bool fp32 = false,
                                 bool keep_bf16 = false) {
    if (memory_ != nullptr) {
      auto it = memory_->find(name);
      if (it != memory_->end()) {
        if (!it->second.defined()) {
          return absl::InternalError(
              absl::StrCat("in-memory tensor '", name, "' read again after the loader let go of it"));
        }
        if (it->second.sizes().vec() != shape) {
          return absl::InvalidArgumentError(absl::StrCat("in-memory tensor '", name, "' has shape ",
                                                         ShapeStr(it->second.sizes()),
                                                         ", the config implies ", ShapeStr(shape)));
        }
        used_.insert(name);
        return GuardTorch(absl::StrCat("converting tensor '", name, "'"), [&]() -> at::Tensor {
          at::Tensor out = it->second;
          if (at::isFloatingType(out.scalar_type()) && !(keep_bf16 && KeepsBf16(out))) {
            out = out.to(fp32 ? at::kFloat : options_.dtype);
          }
          return out.to(options_.device);
        });
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
      return GuardTorch(absl::StrCat("loading tensor '", name, "' from ", file->path()), [&]() -> at::Tensor {
        at::Tensor out = t;
        if (at::isFloatingType(out.scalar_type()) && !(keep_bf16 && KeepsBf16(out))) {
          out = out.to(fp32 ? at::kFloat : options_.dtype);
        }
        return out.to(options_.device);
      });
    }
    return absl::NotFoundError(absl::StrCat(FileNames(), ": missing tensor '", name, "' (shape ",
                                            ShapeStr(shape), ") required by the config"));
  }

  // A Linear weight, LoRA-fused when the LoRA file has `<module>.lora_A.weight`. `module` is the module
  // path (e.g. "text_linear" or "transformer.layers.0.self_attn.in_proj"), `mult` the number of fused
  // weight sets. `keep_bf16`: a weight read through lm::LinearWeight (KeepsBf16; LoRA-fused ones are
  // widened).
  absl::StatusOr<at::Tensor> GetLinear(const std::string& key, const std::string& module,
                                       std::vector<int64_t> shape, int64_t mult = 1, bool keep_bf16 = false) {
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

  // A `quantize: true` checkpoint's Linear weight as stored: int8 values [out, in] and each row's absolute
  // maximum (`<key>_scb`, f32 [out]).
  struct Int8Stored {
    at::Tensor values;
    at::Tensor absmax;
  };
  static constexpr float kInverse127 = 7.874015718698502e-3f;  // bitsandbytes' 1 / 127

  absl::StatusOr<Int8Stored> GetInt8(const std::string& key, const std::vector<int64_t>& shape) {
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

  // A Linear weight of the transformers or the output heads: LoRA-fused like GetLinear, then quantised to
  // int8 or int4 when the model is loaded so. From a `quantize: true` checkpoint an int8 model takes the
  // stored values and scales as they are (no second rounding).
  absl::StatusOr<lm::LinearWeight> GetLinearWeight(const std::string& key, const std::string& module,
                                                   std::vector<int64_t> shape, int64_t mult = 1) {
    // From a `quantize: true` checkpoint, int8 takes the stored values; everything else starts from floats.
    const bool stored_int8 = int8_checkpoint_ && quant_bits_ == 8;
    at::Tensor w;
    lm::LinearWeight out;
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
                         return lm::Int8WeightFromValues(q.values, q.absmax.to(at::kFloat).mul(kInverse127));
                       }));
      parameters = q.values.numel();
      stats_.stored_int8 = true;
      ReleaseInMemory(key + "_scb");
    } else {
      ASSIGN_OR_RETURN(out, GuardTorch(absl::StrCat("quantising '", key, "' to int", quant_bits_), [&] {
                         return quant_bits_ == 4 ? lm::QuantizeInt4(w) : lm::QuantizeInt8(w);
                       }));
      parameters = w.numel();
    }
    stats_.bits = quant_bits_;
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    stats_.linears += 1;
    stats_.parameters += parameters;
    stats_.float_bytes += parameters * 4;
    stats_.quantized_bytes += out.nbytes();
    if (options_.dequantize_after_quantizing) {
      ASSIGN_OR_RETURN(at::Tensor deq, GuardTorch(absl::StrCat("dequantising '", key, "'"),
                                                  [&] { return out.Dequantized(); }));
      out = lm::LinearWeight();
      out.weight = deq;
    }
    ReleaseInMemory(key);
    return out;
  }

  // Lets go of an in-memory Linear weight once its placed or quantised form exists (FromTensors): with the
  // map moved in, its storage is freed now instead of at the end of the load. The name stays, as used.
  void ReleaseInMemory(const std::string& key) {
    if (memory_ == nullptr) return;
    auto it = memory_->find(key);
    if (it != memory_->end()) it->second = at::Tensor();
  }

  absl::Status CheckAllUsed() const {
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

  absl::StatusOr<Norm> GetNorm(const std::string& prefix, const std::string& type_name, int64_t dim) {
    Norm norm;
    ASSIGN_OR_RETURN(norm.type, lm::ParseNormType(type_name));
    if (norm.type == NormType::kRmsNorm || norm.type == NormType::kRmsNormF32) {
      ASSIGN_OR_RETURN(norm.weight, Get(prefix + ".alpha", {1, 1, dim}));
    } else {
      ASSIGN_OR_RETURN(norm.weight, Get(prefix + ".weight", {dim}));
      ASSIGN_OR_RETURN(norm.bias, Get(prefix + ".bias", {dim}));
      if (norm.type == NormType::kLayerNormF32) {
        norm.weight = norm.weight.to(at::kFloat);
        norm.bias = norm.bias.to(at::kFloat);
      }
    }
    return norm;
  }

  absl::StatusOr<Norm> GetLayerNorm(const std::string& prefix, int64_t dim) {
    Norm norm;
    norm.type = NormType::kLayerNorm;
    ASSIGN_OR_RETURN(norm.weight, Get(prefix + ".weight", {dim}));
    ASSIGN_OR_RETURN(norm.bias, Get(prefix + ".bias", {dim}));
    return norm;
  }

  // `ScaledEmbedding(rows, dim, low_rank=r, demux_second_stream=demux)`.
  absl::StatusOr<Embedding> GetEmbedding(const std::string& prefix, int64_t rows, int64_t dim,
                                         std::optional<int64_t> low_rank, bool demux) {
    Embedding e;
    const int64_t r = low_rank.value_or(dim);
    ASSIGN_OR_RETURN(e.table, Get(prefix + ".weight", {rows, r}));
    if (low_rank.has_value()) {
      ASSIGN_OR_RETURN(e.low_rank, GetLinear(prefix + ".low_rank.weight", prefix + ".low_rank", {dim, r}));
    }
    e.demux = demux;
    if (demux) {
      ASSIGN_OR_RETURN(e.out1, GetLinear(prefix + ".out1.weight", prefix + ".out1", {dim, r}));
      ASSIGN_OR_RETURN(e.out2, GetLinear(prefix + ".out2.weight", prefix + ".out2", {dim, r}));
    }
    return e;
  }

  // Layers of a StreamingTransformer at `prefix`.
  absl::Status GetLayers(const std::string& prefix, int64_t num_layers, int64_t dim, int64_t weight_sets,
                         const std::string& norm, const std::string& gating, int64_t hidden,
                         bool has_layer_scale, bool cross, std::vector<lm::TransformerLayer>& layers) {
    lm::Activation activation = lm::Activation::kSilu;
    const bool gated = gating != "none";
    if (gated) {
      ASSIGN_OR_RETURN(activation, lm::ParseActivation(gating));
    }
    for (int64_t l = 0; l < num_layers; ++l) {
      const std::string p = absl::StrCat(prefix, ".layers.", l);
      lm::TransformerLayer layer;
      ASSIGN_OR_RETURN(layer.norm1, GetNorm(p + ".norm1", norm, dim));
      ASSIGN_OR_RETURN(layer.norm2, GetNorm(p + ".norm2", norm, dim));
      ASSIGN_OR_RETURN(lm::LinearWeight in_proj,
                       GetLinearWeight(p + ".self_attn.in_proj_weight", p + ".self_attn.in_proj",
                                 {weight_sets * 3 * dim, dim}, weight_sets));
      ASSIGN_OR_RETURN(lm::LinearWeight out_proj,
                       GetLinearWeight(p + ".self_attn.out_proj.weight", p + ".self_attn.out_proj",
                                 {weight_sets * dim, dim}, weight_sets));
      for (int64_t w = 0; w < weight_sets; ++w) {
        layer.in_proj.push_back(in_proj.Rows(w * 3 * dim, 3 * dim));
        layer.out_proj.push_back(out_proj.Rows(w * dim, dim));
      }
      for (int64_t w = 0; w < weight_sets; ++w) {
        FeedForward ffn;
        ffn.gated = gated;
        ffn.activation = activation;
        if (gated) {
          const std::string g = weight_sets > 1 ? absl::StrCat(p, ".gating.", w) : p + ".gating";
          ASSIGN_OR_RETURN(ffn.w_in, GetLinearWeight(g + ".linear_in.weight", g + ".linear_in", {2 * hidden, dim}));
          ASSIGN_OR_RETURN(ffn.w_out, GetLinearWeight(g + ".linear_out.weight", g + ".linear_out", {dim, hidden}));
        } else {
          ASSIGN_OR_RETURN(ffn.w_in, GetLinearWeight(p + ".linear1.weight", p + ".linear1", {hidden, dim}));
          ASSIGN_OR_RETURN(ffn.w_out, GetLinearWeight(p + ".linear2.weight", p + ".linear2", {dim, hidden}));
        }
        layer.ffn.push_back(std::move(ffn));
      }
      if (has_layer_scale) {
        ASSIGN_OR_RETURN(layer.layer_scale_1, Get(p + ".layer_scale_1.scale", {dim}));
        ASSIGN_OR_RETURN(layer.layer_scale_2, Get(p + ".layer_scale_2.scale", {dim}));
      }
      if (cross) {
        layer.cross = true;
        ASSIGN_OR_RETURN(layer.norm_cross, GetLayerNorm(p + ".norm_cross", dim));
        ASSIGN_OR_RETURN(lm::LinearWeight cin, GetLinearWeight(p + ".cross_attention.in_proj_weight",
                                                               p + ".cross_attention.in_proj", {3 * dim, dim}));
        layer.cross_q = cin.Rows(0, dim);
        layer.cross_kv = cin.Rows(dim, 2 * dim);
        ASSIGN_OR_RETURN(layer.cross_out, GetLinearWeight(p + ".cross_attention.out_proj.weight",
                                                    p + ".cross_attention.out_proj", {dim, dim}));
        if (has_layer_scale) {
          ASSIGN_OR_RETURN(layer.layer_scale_cross, Get(p + ".layer_scale_cross.scale", {dim}));
        }
      }
      layers.push_back(std::move(layer));
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::shared_ptr<const CheckpointView>> files_;
  LmLoadOptions options_;
  std::map<std::string, at::Tensor>* memory_ = nullptr;  // entries let go of once loaded (ReleaseInMemory)
  std::shared_ptr<const CheckpointView> lora_;
  std::set<std::string> used_;
  std::set<std::string> lora_used_;
  int quant_bits_ = 0;  // 8 or 4: Linear weights quantised at load
  bool int8_checkpoint_ = false;  // config `quantize: true`: Linear weights stored as bitsandbytes int8
  LmQuantizationStats stats_;

  friend class LmModel;

 public:
  // Builds the whole model.
  absl::StatusOr<std::shared_ptr<const LmModel>> Build(const LmConfig& c) {
    RETURN_IF_ERROR(c.Validate());
    if (c.kv_repeat != 1 || (c.dep_q > 0 && c.depformer_kv_repeat != 1)) {
      return absl::InvalidArgumentError("LM config: kv_repeat != 1 is not supported");
    }
    if (c.norm_emb) return absl::InvalidArgumentError("LM config: norm_emb = true is not supported");
    if (!c.causal) return absl::InvalidArgumentError("LM config: causal = false is not supported");
    if (c.dep_q > 0 && !c.depformer_weights_per_step) {
      return absl::InvalidArgumentError(
          "LM config: a depformer without depformer_weights_per_step cannot stream (the reference has no "
          "KV cache capacity for it)");
    }
    if (options_.dtype != at::kFloat && options_.dtype != at::kBFloat16 && options_.dtype != at::kHalf) {
      return absl::InvalidArgumentError("LM load: dtype must be float32, bfloat16, float16, int8 or int4");
    }
    if (quant_bits_ != 0 && !options_.device.is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("LM load: int", quant_bits_,
                                                     " weights run on the CPU only (device ",
                                                     options_.device.str(), "); use bf16 or f16 on CUDA"));
    }
    int8_checkpoint_ = c.int8_checkpoint;
    if (int8_checkpoint_ && !options_.lora_path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("LM load: LoRA file ", options_.lora_path,
                                                     " cannot be fused into a quantize: true checkpoint "
                                                     "(int8 weights; the reference refuses it too): use "
                                                     "the model's float checkpoint"));
    }
    RETURN_IF_ERROR(OpenLora());
    auto model = std::shared_ptr<LmModel>(new LmModel());
    LmModel& m = *model;
    m.config_ = c;
    m.dtype_ = options_.dtype;
    m.device_ = options_.device;
    const int64_t d = c.dim;
    const auto long_opts = at::TensorOptions().dtype(at::kLong).device(options_.device);
    RETURN_IF_ERROR(GuardTorch("LM load", [&] {
      std::vector<int64_t> initial(c.num_streams(), c.card);
      initial[0] = c.text_card;
      m.initial_ = at::tensor(initial, at::kLong).to(options_.device);
    }));

    // Embeddings and the temporal transformer.
    ASSIGN_OR_RETURN(m.text_emb_,
                     GetEmbedding("text_emb", c.text_card + 1, d, std::nullopt, c.demux_second_stream));
    if (options_.hibiki_text_emb_patch) {
      if (c.text_card < 4)
        return absl::InvalidArgumentError("LM load: the Hibiki patch needs text_card >= 4");
      RETURN_IF_ERROR(GuardTorch("LM load (Hibiki text embedding patch)", [&] {
        m.text_emb_.table = m.text_emb_.table.clone();  // never write through a file mapping
        m.text_emb_.table[2].copy_(m.text_emb_.table[3]);
      }));
    }
    for (int64_t i = 0; i < c.n_q; ++i) {
      ASSIGN_OR_RETURN(Embedding e,
                       GetEmbedding(absl::StrCat("emb.", i), c.card + 1, d, std::nullopt, false));
      m.emb_.push_back(std::move(e));
    }
    RETURN_IF_ERROR(GuardTorch("LM load", [&] {
      std::vector<at::Tensor> tables;
      for (const auto& e : m.emb_) tables.push_back(e.table);
      m.audio_table_ = at::cat(tables, 0).contiguous();
      m.emb_.clear();  // only the stacked table is used
      m.audio_row_base_ = (at::arange(c.n_q, long_opts) * (c.card + 1)).view({1, c.n_q});
    }));

    m.transformer_.spec.dim = d;
    m.transformer_.spec.num_heads = c.num_heads;
    m.transformer_.spec.context = c.context;
    m.transformer_.spec.capacity = c.context;
    ASSIGN_OR_RETURN(m.transformer_.spec.positional,
                     ParsePositional(c.positional_embedding, "positional_embedding"));
    m.transformer_.spec.max_period = c.max_period;
    if (options_.attention_memory_dtype.has_value()) {
      m.transformer_.spec.cross_memory_dtype = options_.attention_memory_dtype;
      m.transformer_.spec.kv_memory_dtype = options_.attention_memory_dtype;
    } else if (quant_bits_ != 0 && options_.device.is_cpu() &&
               kernels::ServesSmallAttentionRows(1, d / c.num_heads)) {
      // Only where the attention kernel reads bf16 (AVX2 or AVX-512), and the whole context: ATen would widen
      // all of it at every step.
      m.transformer_.spec.cross_memory_dtype = at::kBFloat16;
      if (c.context <= kernels::SmallAttentionMaxKeys(at::kBFloat16))
        m.transformer_.spec.kv_memory_dtype = at::kBFloat16;
    }
    m.transformer_.spec.positional_scale = c.positional_scale;
    RETURN_IF_ERROR(GetLayers("transformer", c.num_layers, d, 1, c.norm, c.gating,
                              c.gating == "none" ? c.dim_feedforward() : c.ffn_hidden(),
                              c.layer_scale.has_value(), c.cross_attention, m.transformer_.layers));
    ASSIGN_OR_RETURN(m.out_norm_, GetNorm("out_norm", c.norm, d));
    ASSIGN_OR_RETURN(m.text_linear_,
                     GetLinearWeight("text_linear.weight", "text_linear", {c.text_card_output(), d}));
    if (c.bias_proj) {
      ASSIGN_OR_RETURN(m.text_linear_bias_, Get("text_linear.bias", {c.text_card_output()}));
    }
    for (int64_t i = 0; i < c.extra_heads_num_heads; ++i) {
      ASSIGN_OR_RETURN(at::Tensor w, GetLinear(absl::StrCat("extra_heads.", i, ".weight"),
                                               absl::StrCat("extra_heads.", i), {c.extra_heads_dim, d}));
      m.extra_heads_.push_back(w);
    }

    // Depformer.
    const int64_t dd = c.depformer_dim;
    for (int64_t i = 0; i < c.depformer_num_in(); ++i) {
      ASSIGN_OR_RETURN(lm::LinearWeight w, GetLinearWeight(absl::StrCat("depformer_in.", i, ".weight"),
                                               absl::StrCat("depformer_in.", i), {dd, d}));
      m.depformer_in_.push_back(w);
    }
    if (c.dep_q > 0) {
      for (int64_t i = 0; i + 1 < c.dep_q; ++i) {
        ASSIGN_OR_RETURN(Embedding e, GetEmbedding(absl::StrCat("depformer_emb.", i), c.card + 1, dd,
                                                   c.depformer_low_rank_embeddings, false));
        m.depformer_emb_.push_back(std::move(e));
      }
      ASSIGN_OR_RETURN(m.depformer_text_emb_,
                       GetEmbedding("depformer_text_emb", c.text_card + 1, dd,
                                    c.depformer_low_rank_embeddings, c.demux_second_stream));
      if (c.demux_second_stream && c.depformer_low_rank_embeddings.has_value()) {
        // The reference builds the low-rank projection but the demux branch never uses it.
        m.depformer_text_emb_.low_rank = at::Tensor();
      }
      if (c.depformer_norm.has_value()) {
        for (int64_t k = 0; k < c.dep_q; ++k) {
          ASSIGN_OR_RETURN(Norm n, GetNorm(absl::StrCat("depformer_norms.", k), *c.depformer_norm, dd));
          m.depformer_norms_.push_back(std::move(n));
        }
      }
      const int64_t sets = c.depformer_weight_sets();
      m.depformer_.spec.dim = dd;
      m.depformer_.spec.num_heads = c.depformer_num_heads;
      m.depformer_.spec.context = -1;
      m.depformer_.spec.capacity = c.dep_q;
      ASSIGN_OR_RETURN(m.depformer_.spec.positional,
                       ParsePositional(c.depformer_pos_emb, "depformer_pos_emb"));
      m.depformer_.spec.max_period = c.depformer_max_period;
      m.depformer_.spec.positional_scale = c.positional_scale;
      RETURN_IF_ERROR(GetLayers(
          "depformer", c.depformer_num_layers, dd, sets, c.norm, c.depformer_gating,
          c.depformer_gating == "none" ? c.depformer_dim_feedforward_value() : c.depformer_ffn_hidden(),
          c.depformer_layer_scale.has_value(), false, m.depformer_.layers));
      for (int64_t k = 0; k < c.dep_q; ++k) {
        ASSIGN_OR_RETURN(lm::LinearWeight w, GetLinearWeight(absl::StrCat("linears.", k, ".weight"),
                                                 absl::StrCat("linears.", k), {c.card, dd}));
        m.linears_.push_back(w);
        at::Tensor b;
        if (c.bias_proj) {
          ASSIGN_OR_RETURN(b, Get(absl::StrCat("linears.", k, ".bias"), {c.card}));
        }
        m.linears_bias_.push_back(b);
      }
    }

    // Conditioners (fp32).
    for (const auto& [name, cc] : c.conditioners) {
      const std::string p = "condition_provider.conditioners." + name;
      LmModel::Conditioner cond;
      cond.config = cc;
      if (cc.type == ConditionerConfig::Type::kLut) {
        ASSIGN_OR_RETURN(cond.embed, Get(p + ".embed.weight", {cc.n_bins + 1, cc.dim}, true));
      }
      if (cc.has_output_proj(d)) {
        ASSIGN_OR_RETURN(cond.output_proj, Get(p + ".output_proj.weight", {d, cc.dim}, true));
      }
      if (cc.learn_padding) {
        ASSIGN_OR_RETURN(cond.learnt_padding, Get(p + ".learnt_padding", {1, 1, d}, true));
      }
      m.conditioners_[name] = std::move(cond);
    }
    RETURN_IF_ERROR(CheckAllUsed());
    m.quantization_ = stats_;
    if (options_.dequantize_after_quantizing) {  // the weights are float again
      m.quantization_.linears = 0;
      m.quantization_.bits = 0;
    }

    RETURN_IF_ERROR(GuardTorch("LM load", [&] {
      auto freqs = [&](const lm::Transformer& t) {
        const int64_t dh = t.spec.head_dim();
        at::Tensor ds = at::arange(dh / 2, at::TensorOptions().dtype(at::kFloat).device(options_.device));
        return at::exp(ds * (-std::log(t.spec.max_period) * 2 / static_cast<double>(dh)));
      };
      m.transformer_.rope_freqs = freqs(m.transformer_);
      m.transformer_.ring_slots = at::arange(m.transformer_.spec.capacity, long_opts).view({1, -1});
      if (c.dep_q > 0) m.depformer_.rope_freqs = freqs(m.depformer_);
    }));
    return std::shared_ptr<const LmModel>(model);
  }
};

absl::StatusOr<std::shared_ptr<const LmModel>> LmModel::Load(
    const LmConfig& config, const std::vector<std::shared_ptr<const SafeTensorsFile>>& files,
    const LmLoadOptions& options) {
  if (files.empty()) return absl::InvalidArgumentError("LM load: no model file given");
  LmModelLoader loader(files, options);
  return loader.Build(config);
}

absl::StatusOr<std::shared_ptr<const LmModel>> LmModel::FromTensors(const LmConfig& config,
                                                                    std::map<std::string, at::Tensor> tensors,
                                                                    const LmLoadOptions& options) {
  LmModelLoader loader({}, options, &tensors);
  return loader.Build(config);
}

absl::StatusOr<std::shared_ptr<const LmModel>> LmModel::LoadFile(const LmConfig& config,
                                                                 const std::string& path,
                                                                 const LmLoadOptions& options) {
  ASSIGN_OR_RETURN(auto file, SafeTensorsFile::Open(path));
  return Load(config, {file}, options);
}

std::string DescribeQuantization(const LmQuantizationStats& q) {
  if (q.linears == 0) {
    if (q.bf16_linears == 0) return "";
    return absl::StrFormat(
        "bf16 weights, f32 arithmetic: %d linear weights kept in the checkpoint's bf16 (%.1f MB, half their "
        "f32 "
        "size; widened exactly in the few-row kernel)",
        q.bf16_linears, q.bf16_bytes / 1e6);
  }
  if (q.stored_int8) {
    return absl::StrFormat(
        "int8 weights: %d linear weights (%.1fM parameters) taken from the checkpoint's int8 values and row "
        "scales (quantize: true; nothing re-rounded), packed in %.3f s, %.1f MB (%s kernel)",
        q.linears, q.parameters / 1e6, q.seconds, q.quantized_bytes / 1e6,
        lm::int8::PathName(lm::int8::BestPath()));
  }
  return absl::StrFormat(
      "int%d weights: %d linear weights (%.1fM parameters) quantised at load in %.3f s, %.1f MB in f32 -> "
      "%.1f MB (%s kernel)",
      q.bits, q.linears, q.parameters / 1e6, q.seconds, q.float_bytes / 1e6, q.quantized_bytes / 1e6,
      q.bits == 4 ? lm::int4::PathName(lm::int4::BestPath()) : lm::int8::PathName(lm::int8::BestPath()));
}


}  // namespace monologue
