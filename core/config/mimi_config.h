// Architecture of the Mimi codec. The released checkpoint's values are the defaults (moshi-reference.md
// §1.1); a `mimi_config_name` JSON file in the same structure as the reference's `loaders._mimi_config`
// ({"sample_rate", "channels", "frame_rate", "seanet": {...}, "quantizer": {...}, "transformer": {...}})
// overrides them (tests use small Mimis this way). Field names are the JSON keys.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace monologue {

struct SeanetConfig {
  int64_t dimension = 512;
  int64_t channels = 1;
  int64_t n_filters = 64;
  int64_t n_residual_layers = 1;
  std::vector<int64_t> ratios = {8, 6, 5, 4};  // decoder order; the encoder uses them reversed
  int64_t kernel_size = 7;
  int64_t last_kernel_size = 3;
  int64_t residual_kernel_size = 3;
  int64_t dilation_base = 2;
  int64_t compress = 2;
  bool true_skip = true;  // false: a 1x1 `shortcut` conv per residual block
  bool causal = true;
  std::string pad_mode = "constant";
  std::string activation = "ELU";  // only ELU (alpha 1) is supported
  std::string norm = "none";       // only "none" (weights pre-folded) is supported
  int64_t disable_norm_outer_blocks = 0;
};

struct MimiTransformerConfig {
  int64_t d_model = 512;
  int64_t num_heads = 8;
  int64_t num_layers = 8;
  int64_t dim_feedforward = 2048;
  int64_t context = 250;
  double max_period = 10000;
  std::optional<double> layer_scale = 0.01;
  bool causal = true;
  bool conv_layout = true;
  std::string gating = "none";  // "none" = GELU MLP (linear1/linear2)
  std::string norm = "layer_norm";
  std::string positional_embedding = "rope";
  int64_t input_dimension = 512;                   // != d_model adds input_proj
  std::vector<int64_t> output_dimensions = {512};  // each != d_model adds output_projs.{i}
};

struct MimiQuantizerConfig {
  int64_t dimension = 256;
  int64_t n_q = 32;  // total codebooks (1 semantic + n_q-1 acoustic)
  int64_t bins = 2048;
  int64_t input_dimension = 512;
  int64_t output_dimension = 512;
};

struct MimiConfig {
  int64_t sample_rate = 24000;
  int64_t channels = 1;
  double frame_rate = 12.5;
  SeanetConfig seanet;
  MimiTransformerConfig transformer;
  MimiQuantizerConfig quantizer;

  // Derived.
  int64_t frame_size() const { return static_cast<int64_t>(sample_rate / frame_rate); }  // 1920
  int64_t encoder_hop() const;        // product of ratios, 960
  double encoder_frame_rate() const;  // sample_rate / hop, 25
  // Whether downsample/upsample exist (encoder_frame_rate != frame_rate), and their stride (2).
  bool has_resample() const;
  int64_t resample_stride() const;

  // Consistency checks (positive sizes, d_model % num_heads, integer resample stride, dimensions that
  // line up between SEANet, transformer and quantizer, supported activation/norm/gating).
  absl::Status Validate(const std::string& source = "") const;
};

// Parses a `mimi_config_name` JSON (structure of `loaders._mimi_config`, every key required there is
// required here; unknown keys are rejected). `source` names the file in errors.
absl::StatusOr<MimiConfig> ParseMimiConfigJson(const nlohmann::json& json, const std::string& source);
// The inverse, in the same structure (used by the generator to write tiny Mimi configs).
nlohmann::json MimiConfigToJson(const MimiConfig& config);

}  // namespace monologue
