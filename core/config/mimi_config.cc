#include "core/config/mimi_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/config/json_fields.h"
#include "core/util/status_macros.h"

namespace monologue {
namespace {

using internal::JsonFields;

// Reference class defaults for keys absent from a sub-dict (SEANetEncoder/Decoder, ResidualVectorQuantizer,
// ProjectedTransformer/StreamingTransformer): a mimi_config_name JSON replaces `_mimi_config` as a whole
// in the reference, it is not merged with it.
SeanetConfig SeanetClassDefaults() {
  SeanetConfig s;
  s.channels = 1;
  s.dimension = 128;
  s.n_filters = 32;
  s.n_residual_layers = 3;
  s.ratios = {8, 5, 4, 2};
  s.activation = "ELU";
  s.norm = "none";
  s.kernel_size = 7;
  s.last_kernel_size = 7;
  s.residual_kernel_size = 3;
  s.dilation_base = 2;
  s.causal = false;
  s.pad_mode = "reflect";
  s.true_skip = true;
  s.compress = 2;
  s.disable_norm_outer_blocks = 0;
  return s;
}

absl::Status ParseSeanet(const nlohmann::json& json, const std::string& source, SeanetConfig* out) {
  JsonFields f(json, source, "seanet.");
  RETURN_IF_ERROR(f.status());
  SeanetConfig s = SeanetClassDefaults();
  f.Int("channels", &s.channels);
  f.Int("dimension", &s.dimension);
  f.Int("n_filters", &s.n_filters);
  f.Int("n_residual_layers", &s.n_residual_layers);
  f.IntList("ratios", &s.ratios);
  f.String("activation", &s.activation);
  f.String("norm", &s.norm);
  f.Int("kernel_size", &s.kernel_size);
  f.Int("last_kernel_size", &s.last_kernel_size);
  f.Int("residual_kernel_size", &s.residual_kernel_size);
  f.Int("dilation_base", &s.dilation_base);
  f.Bool("causal", &s.causal);
  f.String("pad_mode", &s.pad_mode);
  f.Bool("true_skip", &s.true_skip);
  f.Int("compress", &s.compress);
  f.Int("disable_norm_outer_blocks", &s.disable_norm_outer_blocks);
  RETURN_IF_ERROR(f.Finish());
  *out = std::move(s);
  return absl::OkStatus();
}

absl::Status ParseQuantizer(const nlohmann::json& json, const std::string& source, MimiQuantizerConfig* out) {
  JsonFields f(json, source, "quantizer.");
  RETURN_IF_ERROR(f.status());
  MimiQuantizerConfig q;
  q.dimension = 128;
  q.n_q = 8;
  q.bins = 1024;
  f.Int("dimension", &q.dimension);
  f.Int("n_q", &q.n_q);
  f.Int("bins", &q.bins);
  std::optional<int64_t> input_dimension, output_dimension;
  f.OptionalInt("input_dimension", &input_dimension);
  f.OptionalInt("output_dimension", &output_dimension);
  q.input_dimension = input_dimension.value_or(q.dimension);
  q.output_dimension = output_dimension.value_or(q.dimension);
  // Training-only knobs, accepted and ignored.
  double ignored_double = 0;
  bool ignored_bool = false;
  f.Bool("q_dropout", &ignored_bool);
  f.Double("no_quantization_rate", &ignored_double);
  f.Double("decay", &ignored_double);
  f.Double("threshold_usage_ratio", &ignored_double);
  f.Double("replaced_usage_ratio", &ignored_double);
  int64_t n_q_semantic = 1;
  f.Int("n_q_semantic", &n_q_semantic);
  if (n_q_semantic != 1) f.Fail("n_q_semantic", "must be 1 (the only split monologue supports)");
  RETURN_IF_ERROR(f.Finish());
  *out = q;
  return absl::OkStatus();
}

absl::Status ParseTransformer(const nlohmann::json& json, const std::string& source,
                              MimiTransformerConfig* out) {
  JsonFields f(json, source, "transformer.");
  RETURN_IF_ERROR(f.status());
  MimiTransformerConfig t;
  // StreamingTransformer / ProjectedTransformer defaults.
  t.dim_feedforward = 2048;
  t.causal = false;
  t.context = 0;
  t.positional_embedding = "sin";
  t.max_period = 10000;
  t.layer_scale.reset();
  t.gating = "none";
  t.norm = "layer_norm";
  t.conv_layout = false;
  for (const char* key : {"d_model", "num_heads", "num_layers", "input_dimension", "output_dimensions"}) {
    f.Require(key);
  }
  f.Int("d_model", &t.d_model);
  f.Int("num_heads", &t.num_heads);
  f.Int("num_layers", &t.num_layers);
  f.Int("dim_feedforward", &t.dim_feedforward);
  f.Bool("causal", &t.causal);
  std::optional<int64_t> context;
  f.OptionalInt("context", &context);
  t.context = context.value_or(0);
  f.String("positional_embedding", &t.positional_embedding);
  f.Double("max_period", &t.max_period);
  f.OptionalDouble("layer_scale", &t.layer_scale);
  f.String("gating", &t.gating);
  f.String("norm", &t.norm);
  f.Bool("conv_layout", &t.conv_layout);
  f.Int("input_dimension", &t.input_dimension);
  f.IntList("output_dimensions", &t.output_dimensions);
  int64_t kv_repeat = 1;
  f.Int("kv_repeat", &kv_repeat);
  if (kv_repeat != 1) f.Fail("kv_repeat", "must be 1 for Mimi");
  RETURN_IF_ERROR(f.Finish());
  *out = std::move(t);
  return absl::OkStatus();
}

}  // namespace

int64_t MimiConfig::encoder_hop() const {
  int64_t hop = 1;
  for (int64_t r : seanet.ratios) hop *= r;
  return hop;
}

double MimiConfig::encoder_frame_rate() const {
  return static_cast<double>(sample_rate) / static_cast<double>(encoder_hop());
}

bool MimiConfig::has_resample() const { return encoder_frame_rate() != frame_rate; }

int64_t MimiConfig::resample_stride() const {
  if (!has_resample()) return 1;
  return static_cast<int64_t>(encoder_frame_rate() / frame_rate);
}

absl::Status MimiConfig::Validate(const std::string& source) const {
  const std::string where = source.empty() ? std::string("Mimi config") : source;
  auto bad = [&](const std::string& field, const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": key '", field, "' ", message));
  };
  auto pos = [&](const std::string& field, int64_t v) -> absl::Status {
    if (v <= 0) return bad(field, absl::StrCat("must be positive, got ", v));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(pos("sample_rate", sample_rate));
  if (channels != 1) return bad("channels", absl::StrCat("must be 1 (mono), got ", channels));
  if (!(frame_rate > 0)) return bad("frame_rate", "must be positive");
  if (!(transformer.max_period > 1) || !std::isfinite(transformer.max_period)) {
    return bad(
        "transformer.max_period",
        absl::StrCat("must be a finite number above 1 (10000 in the release), got ", transformer.max_period));
  }
  RETURN_IF_ERROR(pos("seanet.dimension", seanet.dimension));
  if (seanet.channels != channels) return bad("seanet.channels", "must equal channels");
  RETURN_IF_ERROR(pos("seanet.n_filters", seanet.n_filters));
  if (seanet.n_residual_layers < 0) return bad("seanet.n_residual_layers", "must be >= 0");
  if (seanet.ratios.empty()) return bad("seanet.ratios", "must not be empty");
  for (int64_t r : seanet.ratios) {
    if (r <= 0) return bad("seanet.ratios", "entries must be positive");
  }
  RETURN_IF_ERROR(pos("seanet.kernel_size", seanet.kernel_size));
  RETURN_IF_ERROR(pos("seanet.last_kernel_size", seanet.last_kernel_size));
  RETURN_IF_ERROR(pos("seanet.residual_kernel_size", seanet.residual_kernel_size));
  RETURN_IF_ERROR(pos("seanet.dilation_base", seanet.dilation_base));
  RETURN_IF_ERROR(pos("seanet.compress", seanet.compress));
  if (seanet.n_filters / seanet.compress <= 0)
    return bad("seanet.compress", "leaves residual blocks with 0 channels");
  if (seanet.activation != "ELU") return bad("seanet.activation", "must be 'ELU' (the only one supported)");
  if (seanet.norm != "none") {
    return bad("seanet.norm", absl::StrCat("'", seanet.norm,
                                           "' is not supported (released weights are pre-folded: 'none')"));
  }
  if (!seanet.causal) return bad("seanet.causal", "must be true (streaming Mimi is causal)");
  if (seanet.pad_mode != "constant") {
    return bad("seanet.pad_mode", absl::StrCat("'", seanet.pad_mode, "' is not supported (only 'constant')"));
  }
  if (seanet.disable_norm_outer_blocks < 0 ||
      seanet.disable_norm_outer_blocks > static_cast<int64_t>(seanet.ratios.size()) + 2) {
    return bad("seanet.disable_norm_outer_blocks", "is out of range");
  }
  // Frame rates: the encoder hop must give an integer multiple of the frame rate.
  const double ratio = encoder_frame_rate() / frame_rate;
  if (ratio < 1 || ratio != std::floor(ratio)) {
    return bad("frame_rate",
               absl::StrCat("(", frame_rate, ") must divide the encoder frame rate sample_rate / ",
                            "prod(ratios) = ", encoder_frame_rate(), " an integer number of times"));
  }
  const double frame = static_cast<double>(sample_rate) / frame_rate;
  if (frame != std::floor(frame)) return bad("frame_rate", "must give an integer frame size");

  const MimiTransformerConfig& t = transformer;
  RETURN_IF_ERROR(pos("transformer.d_model", t.d_model));
  RETURN_IF_ERROR(pos("transformer.num_heads", t.num_heads));
  if (t.num_layers < 0) return bad("transformer.num_layers", "must be >= 0");
  RETURN_IF_ERROR(pos("transformer.dim_feedforward", t.dim_feedforward));
  if (t.d_model % t.num_heads != 0) {
    return bad("transformer.d_model",
               absl::StrCat("(", t.d_model, ") must be divisible by num_heads (", t.num_heads, ")"));
  }
  if (t.context <= 0) return bad("transformer.context", "must be a positive number of steps");
  if (!t.causal) return bad("transformer.causal", "must be true");
  if (!t.conv_layout) return bad("transformer.conv_layout", "must be true");
  if (t.gating != "none") return bad("transformer.gating", "must be 'none' (GELU MLP) for Mimi");
  if (t.norm != "layer_norm") return bad("transformer.norm", "must be 'layer_norm' for Mimi");
  if (t.positional_embedding != "rope")
    return bad("transformer.positional_embedding", "must be 'rope' for Mimi");
  if (t.input_dimension != seanet.dimension) {
    return bad(
        "transformer.input_dimension",
        absl::StrCat("(", t.input_dimension, ") must equal seanet.dimension (", seanet.dimension, ")"));
  }
  if (t.output_dimensions.size() != 1 || t.output_dimensions[0] != seanet.dimension) {
    return bad("transformer.output_dimensions",
               absl::StrCat("must be [seanet.dimension] = [", seanet.dimension, "]"));
  }
  const MimiQuantizerConfig& q = quantizer;
  RETURN_IF_ERROR(pos("quantizer.dimension", q.dimension));
  RETURN_IF_ERROR(pos("quantizer.bins", q.bins));
  if (q.n_q < 2)
    return bad("quantizer.n_q", absl::StrCat("must be >= 2 (1 semantic + acoustic), got ", q.n_q));
  if (q.input_dimension != seanet.dimension) {
    return bad(
        "quantizer.input_dimension",
        absl::StrCat("(", q.input_dimension, ") must equal seanet.dimension (", seanet.dimension, ")"));
  }
  if (q.output_dimension != seanet.dimension) {
    return bad(
        "quantizer.output_dimension",
        absl::StrCat("(", q.output_dimension, ") must equal seanet.dimension (", seanet.dimension, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MimiConfig> ParseMimiConfigJson(const nlohmann::json& json, const std::string& source) {
  JsonFields f(json, source);
  RETURN_IF_ERROR(f.status());
  MimiConfig c;
  for (const char* key : {"sample_rate", "channels", "frame_rate", "seanet", "quantizer", "transformer"}) {
    f.Require(key);
  }
  f.Int("sample_rate", &c.sample_rate);
  f.Int("channels", &c.channels);
  f.Double("frame_rate", &c.frame_rate);
  f.Skip("seanet");
  f.Skip("quantizer");
  f.Skip("transformer");
  RETURN_IF_ERROR(f.Finish());
  RETURN_IF_ERROR(ParseSeanet(json["seanet"], source, &c.seanet));
  RETURN_IF_ERROR(ParseQuantizer(json["quantizer"], source, &c.quantizer));
  RETURN_IF_ERROR(ParseTransformer(json["transformer"], source, &c.transformer));
  RETURN_IF_ERROR(c.Validate(source));
  return c;
}

nlohmann::json MimiConfigToJson(const MimiConfig& c) {
  nlohmann::json seanet = {
      {"channels", c.seanet.channels},
      {"dimension", c.seanet.dimension},
      {"causal", c.seanet.causal},
      {"n_filters", c.seanet.n_filters},
      {"n_residual_layers", c.seanet.n_residual_layers},
      {"activation", c.seanet.activation},
      {"compress", c.seanet.compress},
      {"dilation_base", c.seanet.dilation_base},
      {"disable_norm_outer_blocks", c.seanet.disable_norm_outer_blocks},
      {"kernel_size", c.seanet.kernel_size},
      {"residual_kernel_size", c.seanet.residual_kernel_size},
      {"last_kernel_size", c.seanet.last_kernel_size},
      {"norm", c.seanet.norm},
      {"pad_mode", c.seanet.pad_mode},
      {"ratios", c.seanet.ratios},
      {"true_skip", c.seanet.true_skip},
  };
  nlohmann::json quantizer = {
      {"dimension", c.quantizer.dimension},
      {"n_q", c.quantizer.n_q},
      {"bins", c.quantizer.bins},
      {"input_dimension", c.quantizer.input_dimension},
      {"output_dimension", c.quantizer.output_dimension},
  };
  nlohmann::json transformer = {
      {"d_model", c.transformer.d_model},
      {"num_heads", c.transformer.num_heads},
      {"num_layers", c.transformer.num_layers},
      {"causal", c.transformer.causal},
      {"layer_scale", c.transformer.layer_scale.has_value() ? nlohmann::json(*c.transformer.layer_scale)
                                                            : nlohmann::json(nullptr)},
      {"context", c.transformer.context},
      {"conv_layout", c.transformer.conv_layout},
      {"max_period", c.transformer.max_period},
      {"gating", c.transformer.gating},
      {"norm", c.transformer.norm},
      {"positional_embedding", c.transformer.positional_embedding},
      {"dim_feedforward", c.transformer.dim_feedforward},
      {"input_dimension", c.transformer.input_dimension},
      {"output_dimensions", c.transformer.output_dimensions},
  };
  return nlohmann::json{{"sample_rate", c.sample_rate}, {"channels", c.channels},
                        {"frame_rate", c.frame_rate},   {"seanet", seanet},
                        {"quantizer", quantizer},       {"transformer", transformer}};
}

}  // namespace monologue
