// Architecture of the Mimi codec. The released checkpoint's values are the defaults (moshi-reference.md
// §1.1); a `mimi_config_name` JSON file in the same structure as the reference's `_mimi_config` overrides
// them (tests use small Mimis this way).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
  bool true_skip = true;
  bool causal = true;
  std::string pad_mode = "constant";
};

struct MimiTransformerConfig {
  int64_t d_model = 512;
  int64_t num_heads = 8;
  int64_t num_layers = 8;
  int64_t dim_feedforward = 2048;
  int64_t context = 250;
  double max_period = 10000;
  double layer_scale = 0.01;
  bool causal = true;
};

struct MimiConfig {
  int64_t sample_rate = 24000;
  double frame_rate = 12.5;
  SeanetConfig seanet;
  MimiTransformerConfig transformer;
  int64_t quantizer_dimension = 256;
  int64_t quantizer_n_q = 32;   // total codebooks (1 semantic + n_q-1 acoustic)
  int64_t quantizer_bins = 2048;
  // Derived.
  int64_t frame_size() const { return static_cast<int64_t>(sample_rate / frame_rate); }  // 1920
  int64_t encoder_hop() const;  // product of ratios, 960
};

}  // namespace monologue
