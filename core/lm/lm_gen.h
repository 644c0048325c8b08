// Streaming generation with the Moshi LM: the reference `LMGen` (moshi-reference.md §3.7-§3.9) for B
// slots at once.
//
// Per step, for every slot: the caller's input streams are written `delay` steps ahead into a per-slot
// token cache; the model reads the current column (initial tokens while a stream's delay has not
// elapsed); the temporal transformer and text head run; the text token is sampled (greedy at temperature
// 0; temperature + top-k with the exponential race otherwise; CFG when cfg_coef != 1); the depformer
// samples the generated audio streams; and the output frame is reassembled from the cache with the
// delays undone.
//
// Slots are independent. Each slot has its own step counter (its position in the KV cache and RoPE) and
// its own cache columns, so `SetExecMask` pauses slots (they read initial tokens, and their state,
// positions and caches stay as they were) and `Reset` restarts slots from step 0 while the others go
// on. Mapping onto the reference's per-item semantics: the reference also keeps a GLOBAL host counter
// (`offset_cpu`) that returns None for the first max_delay steps after construction and after ANY reset
// (for all items), unless `support_out_of_sync`. Here Step always returns a frame (the
// support_out_of_sync behaviour): a slot's row is all -2 (ungenerated) while that slot has run
// <= max_delay steps since its reset, or when it did not execute this step. When every slot starts
// together, those are exactly the steps where the reference returns None.
//
// The step has fixed shapes and no host synchronisation (the hooks run on the host but receive device
// tensors), so it can be captured in a CUDA graph.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/lm/lm_model.h"
#include "core/lm/lm_sampling.h"
#include "core/util/step_rows.h"
#include "nlohmann/json_fwd.hpp"

namespace monologue {

struct LmGenOptions {
  lm::SamplingParams text{true, 0.7, 25};    // reference defaults: temp_text 0.7, top_k_text 25
  lm::SamplingParams audio{true, 0.8, 250};  // temp 0.8, top_k 250
  double cfg_coef = 1.0;                     // != 1: the batch is doubled (conditional, then null rows)
  bool cfg_is_no_text = false;               // CFG null rows get no text input; text logits unguided
  std::vector<int64_t> cfg_is_masked_until;  // per slot (empty: unused)
  std::optional<uint64_t> seed;              // sampling generator seed (nullopt: the global generator)
  // One generator per slot (seeded with `seed`, then SetSlotSeed): each executing slot samples its own rows
  // with its own generator, so its draws equal a batch-1 run seeded the same, whatever the other slots do;
  // paused slots draw nothing. Needs a host copy of the exec mask (SetExecMask synchronises) and samples row
  // by row, so it costs more kernel launches on CUDA. Off: one generator for the batch (the reference).
  bool per_slot_generators = false;
  // Generate only the first N audio streams (N <= the model's dep_q); the others become caller inputs like
  // the user streams (the reference TTS sets `lm.dep_q = n_q` for n_q < 32 and feeds those streams -1).
  std::optional<int64_t> dep_q;
  bool keep_audio_logits = false;    // fill LmStepResult::audio_logits
  bool compute_extra_heads = false;  // fill LmStepResult::extra_heads

  // Hooks (reference on_text_logits_hook / on_text_hook / on_audio_hook): may modify the tensor in place
  // or replace it. text logits [B, 1, 1, V] (after CFG), text tokens int64 [B], audio tokens [B, dep_q].
  std::function<void(at::Tensor&)> on_text_logits;
  std::function<void(at::Tensor&)> on_text;
  std::function<void(at::Tensor&)> on_audio;
};

// The `lm_gen_config` object of a config.json (keys use_sampling, temp, temp_text, top_k, top_k_text,
// cfg_coef, cfg_is_no_text, check, support_out_of_sync) applied over `base`. Unknown keys are errors.
absl::StatusOr<LmGenOptions> LmGenOptionsFromJson(const nlohmann::json& json, LmGenOptions base = {});
// The same over the defaults, its errors prefixed with `source` (the config.json they come from).
absl::StatusOr<LmGenOptions> LmGenOptionsFromConfig(const nlohmann::json& json, const std::string& source);

struct LmStepResult {
  at::Tensor tokens;           // int64 [B, 1 + dep_q]: the undelayed output frame (-2: not ready / paused)
  at::Tensor text_token;       // int64 [B]: text token of this step (after hooks)
  at::Tensor audio_tokens;     // int64 [B, dep_q] of this step (after hooks); undefined when dep_q == 0
  at::Tensor text_logits;      // [B, 1, 1, V] after CFG (as the logits hook saw it)
  at::Tensor audio_logits;     // f32 [B, dep_q, card] after CFG (keep_audio_logits)
  at::Tensor transformer_out;  // [B (2B with CFG), 1, D]
  std::vector<at::Tensor> extra_heads;  // compute_extra_heads: softmax per head [B (2B), 1, dim]
};

class LmGen {
 public:
  // `conditions`: the fused conditions (fp32 or model dtype; [B or 2B, ...] rows) when the model has a
  // fuser; they stay fixed until SetConditions.
  static absl::StatusOr<std::unique_ptr<LmGen>> Create(std::shared_ptr<const LmModel> model, int64_t batch,
                                                       LmGenOptions options = {},
                                                       const LmFusedConditions& conditions = {});

  // One step. `input_tokens` int64 [B, Ki] or [B, Ki, 1] with Ki >= n_q - dep_q (extra streams ignored;
  // -1 = no input). `depformer_replace` ([B, dep_q] or [B, dep_q, 1]) replaces the depformer's tokens.
  absl::StatusOr<LmStepResult> Step(const at::Tensor& input_tokens, const at::Tensor& depformer_replace = {});

  // One step of the listed slots only (distinct, ascending; the others keep their state untouched), at the
  // cost of StepBucket(n, B) rows instead of B (core/util/step_rows.h): `input_tokens` [n, Ki] (or
  // [n, Ki, 1]) and `depformer_replace` hold the slots' rows in that order; every tensor of the result has n
  // rows in that order (transformer_out 2n with CFG: conditional rows, then null rows). The exec mask is
  // neither used nor changed. Per-slot generators draw exactly what Step draws for the same executing
  // slots; a single batch generator draws for the bucket's rows. Hooks see the bucket's rows
  // (step_slots() maps them to slots).
  absl::StatusOr<LmStepResult> StepSlots(std::span<const int64_t> slots, const at::Tensor& input_tokens,
                                         const at::Tensor& depformer_replace = {});
  // During a hook: the slot of each row the hooks see (-1 for a row that does not execute).
  const std::vector<int64_t>& step_slots() const { return row_slots_; }

  // bool [B]: slots that execute from the next step on (others are frozen).
  absl::Status SetExecMask(const at::Tensor& mask);
  // bool [B]: slots restarted from step 0 (and set executing). Undefined: all slots.
  absl::Status Reset(const at::Tensor& mask = {});
  // per_slot_generators: re-seeds one slot's generator (like torch.manual_seed(seed) for a batch-1 run).
  absl::Status SetSlotSeed(int64_t slot, uint64_t seed);
  // per_slot_generators: slots (1 = skip) whose depformer tokens the caller replaces anyway (the TTS audio
  // delay): their generators draw nothing for audio, as in a batch-1 run that skips the depformer there.
  // Stays in force until changed; empty = none.
  absl::Status SetAudioDrawSkip(std::vector<uint8_t> skip);
  // per_slot_generators: one slot's own text / audio sampling settings (nullopt: the options' ones), e.g. a
  // server session that asked for another temperature.
  absl::Status SetSlotSampling(int64_t slot, std::optional<lm::SamplingParams> text,
                               std::optional<lm::SamplingParams> audio);
  // Replaces the conditions of the given rows (int64 indices into the B (2B with CFG) rows; undefined:
  // all rows).
  absl::Status SetConditions(const LmFusedConditions& conditions, const at::Tensor& rows = {});

  int64_t batch() const { return batch_; }
  // Audio streams generated per step (LmGenOptions::dep_q or the model's), and caller input streams needed.
  int64_t dep_q() const { return dep_q_; }
  int64_t num_input_streams() const { return model_->num_streams() - 1 - dep_q_; }
  const LmModel& model() const { return *model_; }
  const LmGenOptions& options() const { return options_; }
  LmGenOptions& mutable_options() { return options_; }
  // int64 [B]: steps each slot has executed since its reset (the reference's `offsets`): a view of the
  // temporal state's positions, the one count of them (see StepPositions).
  at::Tensor positions() const;
  const at::Tensor& exec_mask() const { return exec_; }

 private:
  LmGen() = default;
  // The per-slot state of the rows one step computes: the full state itself (Step) or the gathered rows of
  // a bucket (StepSlots).
  struct StepState {
    int64_t b = 0;                         // rows
    at::Tensor cache, exec;                // [b, K, T], bool [b]
    at::Tensor masked_until, cond_sum;     // [b] / [b or 2b, 1, D] or undefined
    const StepRows* rows = nullptr;        // StepSlots: the rows (temporal_ then holds them doubled with CFG)
    const StepRows* temporal_rows = nullptr;
    LmDepformerState* depformer = nullptr;
  };
  // int64 [b]: the step's rows' positions as the temporal state holds them (the conditional rows with CFG:
  // the null rows count the same): before ForwardText, the steps run since the reset; after it, one more for
  // the rows that executed. Padding rows of a bucket are slots that do not execute, so theirs stay.
  at::Tensor StepPositions(const StepState& st) const;
  // Validates the step's token tensors for `b` rows.
  absl::Status CheckStepInputs(int64_t b, const at::Tensor& input_tokens, const at::Tensor& depformer_replace,
                               const char* what) const;
  // Steps 1-8 of a step (see Step) on `st`; `input_tokens` [b, >= needed], `depformer_replace` [b, dep_q].
  LmStepResult StepCore(StepState& st, const at::Tensor& input_tokens, const at::Tensor& depformer_replace);
  at::Tensor RunDepformer(LmDepformerState& state, const at::Tensor& text, const at::Tensor& transformer_out,
                          at::Tensor* logits_out);
  bool cfg() const { return options_.cfg_coef != 1.0; }
  // Samples rows of `logits`; with per-slot generators row i draws from the generator of row_slots_[i]
  // (nothing when it is -1).
  at::Tensor Sample(const at::Tensor& logits, const lm::SamplingParams& params, bool audio);

  std::shared_ptr<const LmModel> model_;
  LmGenOptions options_;
  int64_t batch_ = 0;
  int64_t rows_ = 0;  // batch_, or 2 * batch_ with CFG
  int64_t cache_len_ = 0;
  int64_t dep_q_ = 0;
  int64_t max_delay_ = 0;
  at::Tensor cache_;         // int64 [B, K, max_delay + 2]
  at::Tensor exec_;          // bool [B]
  at::Tensor delays_;        // int64 [K]
  at::Tensor masked_until_;  // int64 [B] or undefined
  at::Tensor cond_sum_;      // [rows, 1, D] model dtype, or undefined
  c10::optional<at::Generator> generator_;
  std::vector<at::Generator> slot_generators_;  // per_slot_generators
  std::vector<uint8_t> exec_host_;              // per_slot_generators: host copy of exec_
  std::vector<uint8_t> audio_draw_skip_;        // per_slot_generators: rows whose audio draws are skipped
  std::vector<std::optional<lm::SamplingParams>> slot_text_params_, slot_audio_params_;  // per slot
  std::vector<int64_t> row_slots_;              // the slot of each row of the current step (-1: none)
  // Its positions are the slots' step counts (the reference's offsets) for the token cache as well: counted
  // once, advanced by the model's ForwardText / ForwardTextRows and reset by ResetTemporal.
  LmTemporalState temporal_;
  LmDepformerState depformer_;
  std::map<int64_t, LmDepformerState> bucket_depformers_;  // StepSlots: depformer scratch per bucket size
};

}  // namespace monologue
