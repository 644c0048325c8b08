#include "core/model/checkpoint_schema.h"

#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/checkpoint_view.h"
#include "core/io/safetensors.h"

namespace monologue {
namespace {

// Uniform[-s, s) has std s / sqrt(3): s = sqrt(3 / fan_in) gives unit-variance-preserving projections.
float FanInScale(int64_t fan_in) { return static_cast<float>(std::sqrt(3.0 / static_cast<double>(fan_in))); }

class SpecList {
 public:
  void Weight(std::string name, std::vector<int64_t> shape, int64_t fan_in) {
    Add(std::move(name), std::move(shape), TensorClass::kWeight, FanInScale(fan_in), 0.0f);
  }
  // The weight [out, in] of an nn.Linear or a fused attention projection: in the model dtype, or with
  // int8_linears (config `quantize: true`) the bitsandbytes pair `<name>` int8 and `<name>_scb` f32 [out].
  void LinearWeight(std::string name, std::vector<int64_t> shape, int64_t fan_in) {
    if (!int8_linears) {
      Weight(std::move(name), std::move(shape), fan_in);
      return;
    }
    // Random weights: values uniform in (-127, 127), scales fixed at the float init's bound, so that
    // values * scale / 127 spans the float init's range.
    const int64_t rows = shape[0];
    Add(name + "_scb", {rows}, TensorClass::kInt8Scale, 0.0f, FanInScale(fan_in));
    Add(std::move(name), std::move(shape), TensorClass::kInt8Weight, 127.0f, 0.0f);
  }
  // nn.Linear(in, out): weight [out, in].
  void Linear(const std::string& name, int64_t in, int64_t out, bool bias = false) {
    LinearWeight(name + ".weight", {out, in}, in);
    if (bias) Add(name + ".bias", {out}, TensorClass::kWeight, 0.0f, 0.0f);
  }
  void Embedding(const std::string& name, int64_t rows, int64_t dim) {
    Add(name + ".weight", {rows, dim}, TensorClass::kWeight, 1.0f, 0.0f);
  }
  void Const(std::string name, std::vector<int64_t> shape, float value,
             TensorClass c = TensorClass::kWeight) {
    Add(std::move(name), std::move(shape), c, 0.0f, value);
  }
  // create_norm_fn(norm, dim).
  void Norm(const std::string& name, const std::string& norm, int64_t dim) {
    if (norm == "rms_norm" || norm == "rms_norm_f32") {
      Const(name + ".alpha", {1, 1, dim}, 1.0f);
    } else {
      Const(name + ".weight", {dim}, 1.0f);
      Const(name + ".bias", {dim}, 0.0f);
    }
  }
  void Add(std::string name, std::vector<int64_t> shape, TensorClass c, float scale, float offset) {
    specs_.push_back(TensorSpec{std::move(name), std::move(shape), c, scale, offset});
  }
  std::vector<TensorSpec> Take() { return std::move(specs_); }

  bool int8_linears = false;

 private:
  std::vector<TensorSpec> specs_;
};

// ScaledEmbedding(num, dim, norm=, low_rank=, demux_second_stream=).
void ScaledEmbedding(SpecList& s, const std::string& name, int64_t num, int64_t dim, bool norm,
                     const std::optional<int64_t>& low_rank, bool demux) {
  const int64_t table_dim = low_rank.value_or(dim);
  s.Embedding(name, num, table_dim);
  if (norm) s.Norm(name + ".norm", "layer_norm", table_dim);
  if (low_rank.has_value()) s.Linear(name + ".low_rank", *low_rank, dim);
  if (demux) {
    s.Linear(name + ".out1", table_dim, dim);
    s.Linear(name + ".out2", table_dim, dim);
  }
}

struct LayerShape {
  int64_t d_model = 0;
  int64_t attn_in_rows = 0;  // per weight set
  int64_t weight_sets = 1;   // attention mult
  bool per_step_gating = false;
  int64_t gating_sets = 1;
  std::string gating;
  std::string norm;
  int64_t dim_feedforward = 0;  // gating "none": MLP size
  int64_t gated_hidden = 0;     // gated: H
  std::optional<double> layer_scale;
  bool cross_attention = false;
  int64_t cross_in_rows = 0;
};

void TransformerLayer(SpecList& s, const std::string& p, const LayerShape& l) {
  const int64_t d = l.d_model;
  s.LinearWeight(p + "self_attn.in_proj_weight", {l.weight_sets * l.attn_in_rows, d}, d);
  s.LinearWeight(p + "self_attn.out_proj.weight", {l.weight_sets * d, d}, d);
  s.Norm(p + "norm1", l.norm, d);
  s.Norm(p + "norm2", l.norm, d);
  if (l.gating == "none") {
    s.Linear(p + "linear1", d, l.dim_feedforward);
    s.Linear(p + "linear2", l.dim_feedforward, d);
  } else if (l.per_step_gating) {
    for (int64_t w = 0; w < l.gating_sets; ++w) {
      const std::string g = absl::StrCat(p, "gating.", w);
      s.Linear(g + ".linear_in", d, 2 * l.gated_hidden);
      s.Linear(g + ".linear_out", l.gated_hidden, d);
    }
  } else {
    s.Linear(p + "gating.linear_in", d, 2 * l.gated_hidden);
    s.Linear(p + "gating.linear_out", l.gated_hidden, d);
  }
  if (l.cross_attention) {
    s.LinearWeight(p + "cross_attention.in_proj_weight", {l.cross_in_rows, d}, d);
    s.LinearWeight(p + "cross_attention.out_proj.weight", {d, d}, d);
    s.Norm(p + "norm_cross", "layer_norm", d);
  }
  if (l.layer_scale.has_value()) {
    const float v = static_cast<float>(*l.layer_scale);
    s.Const(p + "layer_scale_1.scale", {d}, v);
    s.Const(p + "layer_scale_2.scale", {d}, v);
    if (l.cross_attention) s.Const(p + "layer_scale_cross.scale", {d}, v);
  }
}

// StreamingConv1d(in, out, k) -> `<name>.conv.conv.{weight,bias}`.
void Conv(SpecList& s, const std::string& name, int64_t in, int64_t out, int64_t k, bool bias = true) {
  s.Weight(name + ".conv.conv.weight", {out, in, k}, in * k);
  if (bias) s.Const(name + ".conv.conv.bias", {out}, 0.0f);
}
// StreamingConvTranspose1d(in, out, k, stride) -> `<name>.convtr.convtr.{weight,bias}`, weight [in, out, k].
void ConvTr(SpecList& s, const std::string& name, int64_t in, int64_t out, int64_t k, int64_t stride) {
  s.Weight(name + ".convtr.convtr.weight", {in, out, k}, std::max<int64_t>(1, in * k / stride));
  s.Const(name + ".convtr.convtr.bias", {out}, 0.0f);
}

void ResBlock(SpecList& s, const std::string& name, const SeanetConfig& c, int64_t dim) {
  const int64_t hidden = dim / c.compress;
  Conv(s, name + ".block.1", dim, hidden, c.residual_kernel_size);
  Conv(s, name + ".block.3", hidden, dim, 1);
  if (!c.true_skip) Conv(s, name + ".shortcut", dim, dim, 1);
}

void Seanet(SpecList& s, const SeanetConfig& c, bool encoder) {
  const std::string p = encoder ? "encoder.model." : "decoder.model.";
  int64_t idx = 0;
  const int64_t nf = c.n_filters;
  if (encoder) {
    int64_t mult = 1;
    Conv(s, p + std::to_string(idx++), c.channels, nf, c.kernel_size);
    for (auto it = c.ratios.rbegin(); it != c.ratios.rend(); ++it) {
      for (int64_t j = 0; j < c.n_residual_layers; ++j) ResBlock(s, p + std::to_string(idx++), c, mult * nf);
      ++idx;  // ELU
      Conv(s, p + std::to_string(idx++), mult * nf, mult * nf * 2, *it * 2);
      mult *= 2;
    }
    ++idx;  // ELU
    Conv(s, p + std::to_string(idx++), mult * nf, c.dimension, c.last_kernel_size);
  } else {
    int64_t mult = int64_t{1} << c.ratios.size();
    Conv(s, p + std::to_string(idx++), c.dimension, mult * nf, c.kernel_size);
    for (int64_t ratio : c.ratios) {
      ++idx;  // ELU
      ConvTr(s, p + std::to_string(idx++), mult * nf, mult * nf / 2, ratio * 2, ratio);
      for (int64_t j = 0; j < c.n_residual_layers; ++j)
        ResBlock(s, p + std::to_string(idx++), c, mult * nf / 2);
      mult /= 2;
    }
    ++idx;  // ELU
    Conv(s, p + std::to_string(idx++), nf, c.channels, c.last_kernel_size);
  }
}

void ProjectedTransformer(SpecList& s, const std::string& p, const MimiTransformerConfig& t) {
  LayerShape l;
  l.d_model = t.d_model;
  l.attn_in_rows = 3 * t.d_model;
  l.gating = t.gating;
  l.norm = t.norm;
  l.dim_feedforward = t.dim_feedforward;
  l.gated_hidden = t.dim_feedforward == 4 * t.d_model ? (21 * t.d_model) / 8 : (2 * t.dim_feedforward) / 3;
  l.layer_scale = t.layer_scale;
  for (int64_t i = 0; i < t.num_layers; ++i)
    TransformerLayer(s, absl::StrCat(p, "transformer.layers.", i, "."), l);
  if (t.input_dimension != t.d_model) s.Linear(p + "input_proj", t.input_dimension, t.d_model);
  for (size_t i = 0; i < t.output_dimensions.size(); ++i) {
    if (t.output_dimensions[i] != t.d_model) {
      s.Linear(absl::StrCat(p, "output_projs.", i), t.d_model, t.output_dimensions[i]);
    }
  }
}

void Rvq(SpecList& s, const std::string& p, const MimiQuantizerConfig& q, int64_t layers) {
  for (int64_t i = 0; i < layers; ++i) {
    const std::string c = absl::StrCat(p, "vq.layers.", i, "._codebook.");
    s.Const(c + "_initialized", {1}, 1.0f, TensorClass::kBuffer);
    s.Add(c + "cluster_usage", {q.bins}, TensorClass::kBuffer, 0.5f, 1.0f);
    s.Add(c + "embedding_sum", {q.bins, q.dimension}, TensorClass::kBuffer, 1.0f, 0.0f);
  }
  s.Weight(p + "input_proj.weight", {q.dimension, q.input_dimension, 1}, q.input_dimension);
  s.Weight(p + "output_proj.weight", {q.output_dimension, q.dimension, 1}, q.dimension);
}

bool IsFloatDtype(const std::string& dtype) {
  return dtype == "F16" || dtype == "BF16" || dtype == "F32" || dtype == "F64";
}

}  // namespace

const char* TensorClassName(TensorClass c) {
  switch (c) {
    case TensorClass::kWeight:
      return "weight";
    case TensorClass::kConditioner:
      return "conditioner (f32)";
    case TensorClass::kBuffer:
      return "buffer (f32)";
    case TensorClass::kInt8Weight:
      return "int8 weight";
    case TensorClass::kInt8Scale:
      return "int8 row scale (f32)";
  }
  return "weight";
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::vector<TensorSpec> ExpectedLmTensors(const LmConfig& c) {
  SpecList s;
  s.int8_linears = c.int8_checkpoint;
  const int64_t d = c.dim;
  for (int64_t k = 0; k < c.n_q; ++k) {
    ScaledEmbedding(s, absl::StrCat("emb.", k), c.card + 1, d, c.norm_emb, std::nullopt, false);
  }
  ScaledEmbedding(s, "text_emb", c.text_card + 1, d, c.norm_emb, std::nullopt, c.demux_second_stream);
  s.Linear("text_linear", d, c.text_card_output(), c.bias_proj);

  LayerShape main;
  main.d_model = d;
  main.attn_in_rows = c.attn_in_rows();
  main.gating = c.gating;
  main.norm = c.norm;
  main.dim_feedforward = c.dim_feedforward();
  main.gated_hidden = c.ffn_hidden();
  main.layer_scale = c.layer_scale;
  main.cross_attention = c.cross_attention;
  main.cross_in_rows = c.attn_in_rows();
  for (int64_t l = 0; l < c.num_layers; ++l)
    TransformerLayer(s, absl::StrCat("transformer.layers.", l, "."), main);
  s.Norm("out_norm", c.norm, d);

  const int64_t dd = c.depformer_dim;
  for (int64_t i = 0; i < c.depformer_num_in(); ++i) s.Linear(absl::StrCat("depformer_in.", i), d, dd);
  if (c.dep_q > 0) {
    for (int64_t k = 0; k + 1 < c.dep_q; ++k) {
      ScaledEmbedding(s, absl::StrCat("depformer_emb.", k), c.card + 1, dd, c.norm_emb,
                      c.depformer_low_rank_embeddings, false);
    }
    ScaledEmbedding(s, "depformer_text_emb", c.text_card + 1, dd, c.norm_emb, c.depformer_low_rank_embeddings,
                    c.demux_second_stream);
    if (c.depformer_norm.has_value()) {
      for (int64_t k = 0; k < c.dep_q; ++k)
        s.Norm(absl::StrCat("depformer_norms.", k), *c.depformer_norm, dd);
    }
    LayerShape dep;
    dep.d_model = dd;
    dep.attn_in_rows = c.depformer_attn_in_rows();
    dep.weight_sets = c.depformer_weight_sets();
    dep.per_step_gating = c.depformer_weights_per_step;
    dep.gating_sets = c.depformer_weight_sets();
    dep.gating = c.depformer_gating;
    dep.norm = c.norm;
    dep.dim_feedforward = c.depformer_dim_feedforward_value();
    dep.gated_hidden = c.depformer_ffn_hidden();
    dep.layer_scale = c.depformer_layer_scale;
    for (int64_t l = 0; l < c.depformer_num_layers; ++l) {
      TransformerLayer(s, absl::StrCat("depformer.layers.", l, "."), dep);
    }
  }
  for (int64_t i = 0; i < c.extra_heads_num_heads; ++i)
    s.Linear(absl::StrCat("extra_heads.", i), d, c.extra_heads_dim);
  for (int64_t k = 0; k < c.dep_q; ++k) s.Linear(absl::StrCat("linears.", k), dd, c.card, c.bias_proj);

  for (const auto& [name, cond] : c.conditioners) {
    const std::string p = absl::StrCat("condition_provider.conditioners.", name, ".");
    if (cond.has_output_proj(d)) {
      s.Add(p + "output_proj.weight", {d, cond.dim}, TensorClass::kConditioner, FanInScale(cond.dim), 0.0f);
    }
    if (cond.learn_padding) s.Add(p + "learnt_padding", {1, 1, d}, TensorClass::kConditioner, 0.2f, 0.0f);
    if (cond.type == ConditionerConfig::Type::kLut) {
      s.Add(p + "embed.weight", {cond.n_bins + 1, cond.dim}, TensorClass::kConditioner, 1.0f, 0.0f);
    }
  }
  return s.Take();
}

std::vector<TensorSpec> ExpectedMimiTensors(const MimiConfig& c) {
  SpecList s;
  Seanet(s, c.seanet, /*encoder=*/true);
  Seanet(s, c.seanet, /*encoder=*/false);
  ProjectedTransformer(s, "encoder_transformer.", c.transformer);
  ProjectedTransformer(s, "decoder_transformer.", c.transformer);
  Rvq(s, "quantizer.rvq_first.", c.quantizer, 1);
  Rvq(s, "quantizer.rvq_rest.", c.quantizer, c.quantizer.n_q - 1);
  if (c.has_resample()) {
    const int64_t stride = c.resample_stride();
    const int64_t dim = c.seanet.dimension;
    s.Weight("downsample.conv.conv.conv.weight", {dim, dim, 2 * stride}, dim * 2 * stride);
    s.Weight("upsample.convtr.convtr.convtr.weight", {dim, 1, 2 * stride}, 2);
  }
  return s.Take();
}

int64_t CountParameters(const std::vector<TensorSpec>& specs) {
  int64_t n = 0;
  for (const TensorSpec& spec : specs) n += spec.numel();
  return n;
}

int64_t CountParameters(const std::vector<TensorSpec>& specs, TensorClass only) {
  int64_t n = 0;
  for (const TensorSpec& spec : specs) {
    if (spec.tensor_class == only) n += spec.numel();
  }
  return n;
}

namespace {

// The file's own names behind a released name, for messages ("" when the same).
std::string Origin(const SafeTensorsFile&, const std::string&) { return ""; }
std::string Origin(const CheckpointView& view, const std::string& name) {
  std::vector<std::string> src = view.SourceNames(name);
  if (src.empty() || (src.size() == 1 && src[0] == name)) return "";
  return absl::StrCat(" (from ", src.size() == 1 ? src[0] : absl::StrCat(src.front(), " .. ", src.back()), ")");
}

template <typename File>
absl::Status ValidateImpl(const File& file, const std::vector<TensorSpec>& specs) {
  std::vector<std::string> problems;
  int64_t missing = 0, unexpected = 0, misshaped = 0, bad_dtype = 0;
  std::set<std::string> expected_names;
  for (const TensorSpec& spec : specs) {
    expected_names.insert(spec.name);
    const SafeTensorInfo* info = file.Find(spec.name);
    if (info == nullptr) {
      ++missing;
      problems.push_back(absl::StrCat("missing tensor ", spec.name, " ", ShapeString(spec.shape)));
      continue;
    }
    if (info->shape != spec.shape) {
      ++misshaped;
      problems.push_back(absl::StrCat("tensor ", spec.name, Origin(file, spec.name), " has shape ",
                                      ShapeString(info->shape), ", expected ", ShapeString(spec.shape)));
    }
    if (spec.tensor_class == TensorClass::kInt8Weight ? info->dtype != "I8" : !IsFloatDtype(info->dtype)) {
      ++bad_dtype;
      problems.push_back(absl::StrCat(
          "tensor ", spec.name, " has dtype ", info->dtype,
          spec.tensor_class == TensorClass::kInt8Weight ? ", expected I8 (the config says quantize: true)"
          : info->dtype == "I8" ? ", expected a float type (F32/BF16/F16); an int8 checkpoint's "
                                  "config.json must say \"quantize\": true"
                                : ", expected a float type (F32/BF16/F16)"));
    }
  }
  for (const SafeTensorInfo& info : file.tensors()) {
    if (!expected_names.count(info.name)) {
      ++unexpected;
      problems.push_back(
          absl::StrCat("unexpected tensor ", info.name, Origin(file, info.name), " ", ShapeString(info.shape)));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  constexpr size_t kMaxLines = 50;
  std::string message =
      absl::StrCat(file.path(), ": checkpoint does not match the model config (", missing, " missing, ",
                   unexpected, " unexpected, ", misshaped, " wrong shape, ", bad_dtype, " wrong dtype; ",
                   specs.size(), " tensors expected, ", file.tensors().size(), " in the file):");
  for (size_t i = 0; i < problems.size() && i < kMaxLines; ++i)
    absl::StrAppend(&message, "\n  ", problems[i]);
  if (problems.size() > kMaxLines)
    absl::StrAppend(&message, "\n  ... and ", problems.size() - kMaxLines, " more");
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::Status ValidateCheckpoint(const SafeTensorsFile& file, const std::vector<TensorSpec>& specs) {
  return ValidateImpl(file, specs);
}

absl::Status ValidateCheckpoint(const CheckpointView& file, const std::vector<TensorSpec>& specs) {
  return ValidateImpl(file, specs);
}

}  // namespace monologue
