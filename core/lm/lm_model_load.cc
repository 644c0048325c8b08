// LmModel's loading half: LmModelBuilder (which tensor is what: embeddings, norms, transformer layers,
// depformer, conditioners) and LmModel::Load / FromTensors / LoadFile, DescribeQuantization. The tensors come
// from lm::LmTensorReader (lm_tensor_reader.cc: lookup, dtype rules, LoRA, quantisation, strict key check);
// the runtime is in lm_model.cc, the conditioners and fuser in lm_conditioning.cc.
#include <ATen/ATen.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernels/small_attention.h"
#include "core/lm/lm_model.h"
#include "core/lm/lm_tensor_reader.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace monologue {

using lm::Embedding;
using lm::FeedForward;
using lm::Norm;
using lm::NormType;

namespace {

absl::StatusOr<lm::PositionalEmbedding> ParsePositional(const std::string& name, const std::string& field) {
  if (name == "rope") return lm::PositionalEmbedding::kRope;
  if (name == "rope_concat") return lm::PositionalEmbedding::kRopeConcat;
  if (name == "sin") return lm::PositionalEmbedding::kSin;
  if (name == "sin_rope") return lm::PositionalEmbedding::kSinRope;
  if (name == "none") return lm::PositionalEmbedding::kNone;
  return absl::InvalidArgumentError(absl::StrCat("LM config: unknown ", field, " \"", name, "\""));
}

}  // namespace

// Builds an LmModel from the tensors a reader gives, as the config describes it.
class LmModelBuilder {
 public:
  explicit LmModelBuilder(lm::LmTensorReader& reader) : reader_(reader) {}

  // Builds the whole model.
  absl::StatusOr<std::shared_ptr<const LmModel>> Build(const LmConfig& c) {
    const LmLoadOptions& options = reader_.options();  // int8/int4: dtype f32, reader_.quant_bits() set
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
    if (options.dtype != at::kFloat && options.dtype != at::kBFloat16 && options.dtype != at::kHalf) {
      return absl::InvalidArgumentError("LM load: dtype must be float32, bfloat16, float16, int8 or int4");
    }
    if (reader_.quant_bits() != 0 && !options.device.is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("LM load: int", reader_.quant_bits(),
                                                     " weights run on the CPU only (device ",
                                                     options.device.str(), "); use bf16 or f16 on CUDA"));
    }
    RETURN_IF_ERROR(reader_.Prepare(c.int8_checkpoint));
    auto model = std::shared_ptr<LmModel>(new LmModel());
    LmModel& m = *model;
    m.config_ = c;
    m.dtype_ = options.dtype;
    m.device_ = options.device;
    const int64_t d = c.dim;
    const auto long_opts = at::TensorOptions().dtype(at::kLong).device(options.device);
    RETURN_IF_ERROR(GuardTorch("LM load", [&] {
      std::vector<int64_t> initial(c.num_streams(), c.card);
      initial[0] = c.text_card;
      m.initial_ = at::tensor(initial, at::kLong).to(options.device);
    }));

    // Embeddings and the temporal transformer.
    ASSIGN_OR_RETURN(m.text_emb_,
                     GetEmbedding("text_emb", c.text_card + 1, d, std::nullopt, c.demux_second_stream));
    if (options.hibiki_text_emb_patch) {
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
    if (options.attention_memory_dtype.has_value()) {
      m.transformer_.spec.cross_memory_dtype = options.attention_memory_dtype;
      m.transformer_.spec.kv_memory_dtype = options.attention_memory_dtype;
    } else if (reader_.quant_bits() != 0 && options.device.is_cpu() &&
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
                     reader_.GetLinearWeight("text_linear.weight", "text_linear", {c.text_card_output(), d}));
    if (c.bias_proj) {
      ASSIGN_OR_RETURN(m.text_linear_bias_, reader_.Get("text_linear.bias", {c.text_card_output()}));
    }
    for (int64_t i = 0; i < c.extra_heads_num_heads; ++i) {
      ASSIGN_OR_RETURN(at::Tensor w,
                       reader_.GetLinear(absl::StrCat("extra_heads.", i, ".weight"),
                                         absl::StrCat("extra_heads.", i), {c.extra_heads_dim, d}));
      m.extra_heads_.push_back(w);
    }

    // Depformer.
    const int64_t dd = c.depformer_dim;
    for (int64_t i = 0; i < c.depformer_num_in(); ++i) {
      ASSIGN_OR_RETURN(lm::LinearWeight w,
                       reader_.GetLinearWeight(absl::StrCat("depformer_in.", i, ".weight"),
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
        ASSIGN_OR_RETURN(lm::LinearWeight w,
                         reader_.GetLinearWeight(absl::StrCat("linears.", k, ".weight"),
                                                 absl::StrCat("linears.", k), {c.card, dd}));
        m.linears_.push_back(w);
        at::Tensor b;
        if (c.bias_proj) {
          ASSIGN_OR_RETURN(b, reader_.Get(absl::StrCat("linears.", k, ".bias"), {c.card}));
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
        ASSIGN_OR_RETURN(cond.embed, reader_.Get(p + ".embed.weight", {cc.n_bins + 1, cc.dim}, true));
      }
      if (cc.has_output_proj(d)) {
        ASSIGN_OR_RETURN(cond.output_proj, reader_.Get(p + ".output_proj.weight", {d, cc.dim}, true));
      }
      if (cc.learn_padding) {
        ASSIGN_OR_RETURN(cond.learnt_padding, reader_.Get(p + ".learnt_padding", {1, 1, d}, true));
      }
      m.conditioners_[name] = std::move(cond);
    }
    RETURN_IF_ERROR(reader_.CheckAllUsed());
    m.quantization_ = reader_.stats();
    if (options.dequantize_after_quantizing) {  // the weights are float again
      m.quantization_.linears = 0;
      m.quantization_.bits = 0;
    }

    RETURN_IF_ERROR(GuardTorch("LM load", [&] {
      auto freqs = [&](const lm::Transformer& t) {
        const int64_t dh = t.spec.head_dim();
        at::Tensor ds = at::arange(dh / 2, at::TensorOptions().dtype(at::kFloat).device(options.device));
        return at::exp(ds * (-std::log(t.spec.max_period) * 2 / static_cast<double>(dh)));
      };
      m.transformer_.rope_freqs = freqs(m.transformer_);
      m.transformer_.ring_slots = at::arange(m.transformer_.spec.capacity, long_opts).view({1, -1});
      if (c.dep_q > 0) m.depformer_.rope_freqs = freqs(m.depformer_);
    }));
    return std::shared_ptr<const LmModel>(model);
  }

 private:
  absl::StatusOr<Norm> GetNorm(const std::string& prefix, const std::string& type_name, int64_t dim) {
    Norm norm;
    ASSIGN_OR_RETURN(norm.type, lm::ParseNormType(type_name));
    if (norm.type == NormType::kRmsNorm || norm.type == NormType::kRmsNormF32) {
      ASSIGN_OR_RETURN(norm.weight, reader_.Get(prefix + ".alpha", {1, 1, dim}));
    } else {
      ASSIGN_OR_RETURN(norm.weight, reader_.Get(prefix + ".weight", {dim}));
      ASSIGN_OR_RETURN(norm.bias, reader_.Get(prefix + ".bias", {dim}));
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
    ASSIGN_OR_RETURN(norm.weight, reader_.Get(prefix + ".weight", {dim}));
    ASSIGN_OR_RETURN(norm.bias, reader_.Get(prefix + ".bias", {dim}));
    return norm;
  }

  // `ScaledEmbedding(rows, dim, low_rank=r, demux_second_stream=demux)`.
  absl::StatusOr<Embedding> GetEmbedding(const std::string& prefix, int64_t rows, int64_t dim,
                                         std::optional<int64_t> low_rank, bool demux) {
    Embedding e;
    const int64_t r = low_rank.value_or(dim);
    ASSIGN_OR_RETURN(e.table, reader_.Get(prefix + ".weight", {rows, r}));
    if (low_rank.has_value()) {
      ASSIGN_OR_RETURN(e.low_rank,
                       reader_.GetLinear(prefix + ".low_rank.weight", prefix + ".low_rank", {dim, r}));
    }
    e.demux = demux;
    if (demux) {
      ASSIGN_OR_RETURN(e.out1, reader_.GetLinear(prefix + ".out1.weight", prefix + ".out1", {dim, r}));
      ASSIGN_OR_RETURN(e.out2, reader_.GetLinear(prefix + ".out2.weight", prefix + ".out2", {dim, r}));
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
                       reader_.GetLinearWeight(p + ".self_attn.in_proj_weight", p + ".self_attn.in_proj",
                                               {weight_sets * 3 * dim, dim}, weight_sets));
      ASSIGN_OR_RETURN(lm::LinearWeight out_proj,
                       reader_.GetLinearWeight(p + ".self_attn.out_proj.weight", p + ".self_attn.out_proj",
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
          ASSIGN_OR_RETURN(ffn.w_in, reader_.GetLinearWeight(g + ".linear_in.weight", g + ".linear_in",
                                                             {2 * hidden, dim}));
          ASSIGN_OR_RETURN(
              ffn.w_out, reader_.GetLinearWeight(g + ".linear_out.weight", g + ".linear_out", {dim, hidden}));
        } else {
          ASSIGN_OR_RETURN(ffn.w_in,
                           reader_.GetLinearWeight(p + ".linear1.weight", p + ".linear1", {hidden, dim}));
          ASSIGN_OR_RETURN(ffn.w_out,
                           reader_.GetLinearWeight(p + ".linear2.weight", p + ".linear2", {dim, hidden}));
        }
        layer.ffn.push_back(std::move(ffn));
      }
      if (has_layer_scale) {
        ASSIGN_OR_RETURN(layer.layer_scale_1, reader_.Get(p + ".layer_scale_1.scale", {dim}));
        ASSIGN_OR_RETURN(layer.layer_scale_2, reader_.Get(p + ".layer_scale_2.scale", {dim}));
      }
      if (cross) {
        layer.cross = true;
        ASSIGN_OR_RETURN(layer.norm_cross, GetLayerNorm(p + ".norm_cross", dim));
        ASSIGN_OR_RETURN(lm::LinearWeight cin,
                         reader_.GetLinearWeight(p + ".cross_attention.in_proj_weight",
                                                 p + ".cross_attention.in_proj", {3 * dim, dim}));
        layer.cross_q = cin.Rows(0, dim);
        layer.cross_kv = cin.Rows(dim, 2 * dim);
        ASSIGN_OR_RETURN(layer.cross_out,
                         reader_.GetLinearWeight(p + ".cross_attention.out_proj.weight",
                                                 p + ".cross_attention.out_proj", {dim, dim}));
        if (has_layer_scale) {
          ASSIGN_OR_RETURN(layer.layer_scale_cross, reader_.Get(p + ".layer_scale_cross.scale", {dim}));
        }
      }
      layers.push_back(std::move(layer));
    }
    return absl::OkStatus();
  }

  lm::LmTensorReader& reader_;
};

absl::StatusOr<std::shared_ptr<const LmModel>> LmModel::Load(
    const LmConfig& config, const std::vector<std::shared_ptr<const SafeTensorsFile>>& files,
    const LmLoadOptions& options) {
  if (files.empty()) return absl::InvalidArgumentError("LM load: no model file given");
  lm::LmTensorReader reader(files, options);
  return LmModelBuilder(reader).Build(config);
}

absl::StatusOr<std::shared_ptr<const LmModel>> LmModel::FromTensors(const LmConfig& config,
                                                                    std::map<std::string, at::Tensor> tensors,
                                                                    const LmLoadOptions& options) {
  lm::LmTensorReader reader({}, options, &tensors);
  return LmModelBuilder(reader).Build(config);
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
