// The Moshi multistream language model (the reference `LMModel`, moshi-reference.md §2.2-§3.6): loading
// from the released safetensors files, the temporal transformer step with its text head, the depformer
// step, the extra heads, and the TTS conditioners / fuser. Streaming generation (delays, sampling, CFG,
// hooks, slots) is LmGen (lm_gen.h).
//
// Loading follows the reference loader: every floating tensor is cast to the model dtype except
// `condition_provider.*` and `fuser.*` (kept fp32); RMSNorm math is fp32 whatever the dtype; the fused
// attention projections (`in_proj_weight`, `out_proj.weight`) are split into their weight sets; with a
// LoRA file, every Linear that has `<module>.lora_A.weight` / `.lora_B.weight` there gets
// W += scaling * (B @ A) in the model dtype. Unknown or missing tensors and wrong shapes are errors that
// name the file and the tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/lm_config.h"
#include "core/io/safetensors.h"
#include "core/lm/lm_ops.h"
#include "core/lm/lm_transformer.h"

namespace monologue {

struct LmLoadOptions {
  // Model dtype: kFloat, kBFloat16 or kHalf; or kChar (`--dtype int8`, CPU only): the Linear layers of
  // the temporal transformer, the depformer and the output heads quantised to int8 at load time (weight-only,
  // per output row), everything else (embeddings, norms, activations) in f32; or c10::ScalarType::Int4
  // (`--dtype int4`, CPU only): the same Linears in 4 bits with a scale per 32 inputs (int4_gemm.h).
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  // With an int8 / int4 dtype: keep each quantised Linear as its dequantised f32 values instead (the float
  // model of exactly the weights the kernels use), so that a test or a study can tell the kernels' arithmetic
  // apart from the weights' rounding.
  bool dequantize_after_quantizing = false;
  // How the attention memory is stored: the temporal transformer's KV cache and its cross-attention keys and
  // values. Unset: bf16 for an int8 / int4 model on a CPU whose attention kernel reads bf16 (half the bytes a
  // step reads from them; TransformerSpec::kv_memory_dtype and cross_memory_dtype), the model's dtype
  // otherwise. Tests set kFloat to hold the quantised kernels to the float model of their weights without
  // that rounding.
  std::optional<at::ScalarType> attention_memory_dtype;
  // Optional LoRA weights fused at load time (reference get_lora_moshi + replace_lora_with_linear).
  std::string lora_path;
  double lora_scaling = 2.0;
  // model_type "hibiki": text embedding row 2 (EOS) is overwritten with row 3 (PAD), like the reference's
  // CheckpointInfo.get_moshi, so an early EOS reads as padding.
  bool hibiki_text_emb_patch = false;
};

// One conditioner's output: values [B, T, D] (fp32, D = the LM dim) and mask [B, T] (bool).
struct LmCondition {
  at::Tensor values;
  at::Tensor mask;
};

// What the fuser makes of the conditions: `sum` [B, 1, D] added to every step's input, `cross` [B, S, D]
// the cross-attention source (positional embedding included). fp32; undefined when the model has none.
struct LmFusedConditions {
  at::Tensor sum;
  at::Tensor cross;
};

// Temporal streaming state for B rows (slots; 2B rows with CFG).
struct LmTemporalState {
  int64_t batch = 0;
  at::Tensor positions;  // int64 [B]: steps each row has executed since its last reset
  at::Tensor exec_mask;  // bool [B]: rows that advance on the next step
  lm::KvState kv;
};

// Depformer scratch state for B rows: KV buffers reused by every frame, and the per-codebook contexts.
struct LmDepformerState {
  int64_t batch = 0;
  lm::KvState kv;
  std::vector<lm::StepContext> contexts;  // per codebook k
};

// What int8 or int4 quantisation at load time did (all zero for a float model).
struct LmQuantizationStats {
  int bits = 0;                 // 8 or 4 (0: none)
  int64_t linears = 0;          // weight tensors quantised
  int64_t parameters = 0;       // their elements
  int64_t float_bytes = 0;      // what they take in f32
  int64_t quantized_bytes = 0;  // what they take quantised (with the scales)
  double seconds = 0;       // time spent quantising
  // The int8 values came from a `quantize: true` checkpoint as stored (only packed; nothing rounded).
  bool stored_int8 = false;
  // f32 on the CPU from a bf16 checkpoint: Linear weights kept in bf16 (exact; see
  // lm::LmTensorReader::KeepsBf16).
  int64_t bf16_linears = 0;
  int64_t bf16_bytes = 0;
};

// One line for logs: "int8 weights: 65 linear weights (838.9M parameters) quantised at load in 1.900 s,
// 3355.4 MB in f32 -> 839.1 MB (avx512 kernel)" (int4 alike); for f32 from a bf16 checkpoint on the CPU, the
// Linear weights kept in bf16; empty otherwise.
std::string DescribeQuantization(const LmQuantizationStats& stats);

class LmModel {
 public:
  // `files`: the model file first (tensors are looked up in order). Config errors are INVALID_ARGUMENT.
  static absl::StatusOr<std::shared_ptr<const LmModel>> Load(
      const LmConfig& config, const std::vector<std::shared_ptr<const SafeTensorsFile>>& files,
      const LmLoadOptions& options = {});
  static absl::StatusOr<std::shared_ptr<const LmModel>> LoadFile(const LmConfig& config,
                                                                 const std::string& path,
                                                                 const LmLoadOptions& options = {});
  // From tensors already in memory (released names and shapes; e.g. random weights for benchmarks). Each
  // Linear weight is let go of as soon as its copy on 2 MB pages (or its quantised form) is made, so a map
  // moved in (a temporary) is never held twice over: a 7B model's 15 GB of bf16 would not fit twice in 24 GB.
  static absl::StatusOr<std::shared_ptr<const LmModel>> FromTensors(const LmConfig& config,
                                                                    std::map<std::string, at::Tensor> tensors,
                                                                    const LmLoadOptions& options = {});

  const LmConfig& config() const { return config_; }
  // The activation / float weight dtype (f32 for an int8 model).
  at::ScalarType dtype() const { return dtype_; }
  bool int8_weights() const { return quantization_.linears > 0 && quantization_.bits == 8; }
  bool int4_weights() const { return quantization_.linears > 0 && quantization_.bits == 4; }
  // What the model was loaded as: kChar for int8 weights, c10::ScalarType::Int4 for int4, else dtype().
  at::ScalarType weights_dtype() const {
    return int8_weights() ? at::kChar : int4_weights() ? c10::ScalarType::Int4 : dtype_;
  }
  const LmQuantizationStats& quantization() const { return quantization_; }
  at::Device device() const { return device_; }
  int64_t num_streams() const { return config_.num_streams(); }
  int64_t dep_q() const { return config_.dep_q; }
  int64_t card() const { return config_.card; }
  int64_t text_card() const { return config_.text_card; }
  // Initial tokens: text_card for text, card for audio (int64 [K] on the model device).
  const at::Tensor& initial_tokens() const { return initial_; }
  int64_t num_extra_heads() const { return static_cast<int64_t>(extra_heads_.size()); }
  bool has_depformer() const { return config_.dep_q > 0; }

  // ---- Temporal transformer --------------------------------------------------------------------------
  LmTemporalState NewTemporalState(int64_t batch) const;
  // Resets the rows where `mask` (bool [B]) is true: position 0, executing.
  void ResetTemporal(LmTemporalState& state, const at::Tensor& mask) const;
  // Cross-attention source (fused `cross` conditions [B, S, D], any float dtype) for all rows or for the
  // given rows (int64 indices).
  void SetCrossSource(LmTemporalState& state, const at::Tensor& cross,
                      const at::Tensor& rows = at::Tensor()) const;

  struct TextStep {
    at::Tensor transformer_out;  // [B, 1, D] model dtype (after out_norm)
    at::Tensor text_logits;      // [B, 1, 1, text_card_out] model dtype
  };
  // One temporal step: tokens int64 [B, K] (K = 1 + n_q; -1 = no input), `sum` [B, 1, D] or undefined.
  // Rows in `state.exec_mask` advance their position.
  TextStep ForwardText(LmTemporalState& state, const at::Tensor& tokens,
                       const at::Tensor& sum = at::Tensor()) const;
  // The same for the step's rows only (core/util/step_rows.h): tokens [R, K] and `sum` [R, 1, D] hold the
  // rows of `rows` (R = rows.rows); the active rows advance their position, `state.exec_mask` is not used,
  // padding rows leave the state as it was. Outputs are [R, ...].
  TextStep ForwardTextRows(LmTemporalState& state, const StepRows& rows, const at::Tensor& tokens,
                           const at::Tensor& sum = at::Tensor()) const;

  // ---- Depformer --------------------------------------------------------------------------------------
  LmDepformerState NewDepformerState(int64_t batch) const;
  // depformer_in projections of the temporal output for codebook k ([B, 1, D_dep]).
  at::Tensor DepformerInput(const at::Tensor& transformer_out, int64_t k) const;
  // All projections at once: element k is DepformerInput(transformer_out, k) (shared weight sets computed
  // once).
  std::vector<at::Tensor> DepformerInputs(const at::Tensor& transformer_out) const;
  // Depformer step k: `prev` int64 [B] (the text token for k = 0, else audio codebook k-1), `input` from
  // DepformerInput. Returns the logits [B, card] (model dtype). Steps must run k = 0, 1, ... per frame.
  at::Tensor DepformerStep(LmDepformerState& state, int64_t k, const at::Tensor& prev,
                           const at::Tensor& input) const;
  // Teacher-forced depformer for one frame: text [B], audio [B, dep_q] (codebook k-1 feeds step k);
  // returns logits [B, dep_q, card].
  at::Tensor DepformerTeacherForced(LmDepformerState& state, const at::Tensor& transformer_out,
                                    const at::Tensor& text, const at::Tensor& audio) const;

  // ---- Extra heads --------------------------------------------------------------------------------------
  // softmax(extra_heads[i](transformer_out)) for each head: [B, 1, extra_heads_dim], model dtype.
  std::vector<at::Tensor> ExtraHeads(const at::Tensor& transformer_out) const;

  // ---- Conditioning (TTS) -------------------------------------------------------------------------------
  bool has_conditioners() const { return !conditioners_.empty(); }
  bool has_fuser() const { return config_.fuser.has_value(); }
  // A LUT conditioner's output for one value per row (nullopt = absent: learnt padding).
  absl::StatusOr<LmCondition> ConditionFromText(const std::string& name,
                                                const std::vector<std::optional<std::string>>& values) const;
  // A tensor conditioner's output: x [B, T, dim], mask [B, T] (bool; false = padding).
  absl::StatusOr<LmCondition> ConditionFromTensor(const std::string& name, const at::Tensor& x,
                                                  const at::Tensor& mask) const;
  // The fuser: sums the `sum` conditions, concatenates the `cross` ones (plus positional embedding).
  absl::StatusOr<LmFusedConditions> Fuse(const std::map<std::string, LmCondition>& conditions) const;

  // Bytes of Linear weights one step reads, whatever the batch: every temporal weight and the text head
  // once, each depformer input projection once, and a depformer weight set once for every codebook that
  // uses it (tts-1.6b: 3 of its 11 sets serve 8 codebooks each). A CPU step at small batch streams these
  // from memory, so this over the memory's read speed is about the step's floor (`monologue bench`; re-reads
  // can come partly from cache). Embedding rows, norms, KV caches and cross-attention memory are not
  // counted.
  int64_t LinearBytesPerStep() const;

  // Internals, exposed for tests and benchmarks.
  const lm::Transformer& transformer() const { return transformer_; }
  const lm::Transformer& depformer() const { return depformer_; }
  int64_t depformer_weight_set(int64_t k) const;

 private:
  friend class LmModelBuilder;
  LmModel() = default;
  // The temporal transformer's input for tokens [R, K] (embeddings summed, plus `sum`): [R, 1, D].
  at::Tensor EmbedStep(const at::Tensor& tokens, const at::Tensor& sum) const;
  // out_norm and the text head on the transformer output.
  TextStep TextHead(at::Tensor z) const;

  struct Conditioner {
    ConditionerConfig config;
    at::Tensor embed;           // LUT [n_bins + 1, dim]
    at::Tensor output_proj;     // [D, dim] or undefined
    at::Tensor learnt_padding;  // [1, 1, D] or undefined
    at::Tensor Finish(at::Tensor cond, const at::Tensor& mask) const;
  };

  LmConfig config_;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  at::Tensor initial_;
  lm::Embedding text_emb_;
  std::vector<lm::Embedding> emb_;  // emptied once stacked into audio_table_
  at::Tensor audio_table_;          // all `emb.*` tables stacked [n_q * (card + 1), D]
  at::Tensor audio_row_base_;       // int64 [1, n_q]: first row of each codebook in audio_table_
  lm::Transformer transformer_;
  lm::Norm out_norm_;
  lm::LinearWeight text_linear_;
  at::Tensor text_linear_bias_;
  std::vector<at::Tensor> extra_heads_;
  // Depformer.
  std::vector<lm::LinearWeight> depformer_in_;
  lm::Embedding depformer_text_emb_;
  std::vector<lm::Embedding> depformer_emb_;
  std::vector<lm::Norm> depformer_norms_;  // empty: identity
  lm::Transformer depformer_;
  std::vector<lm::LinearWeight> linears_;
  std::vector<at::Tensor> linears_bias_;
  LmQuantizationStats quantization_;
  std::map<std::string, Conditioner> conditioners_;
};

}  // namespace monologue
