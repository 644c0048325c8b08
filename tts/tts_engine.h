// Streaming speech synthesis with the DSM TTS models (kyutai/tts-1.6b-en_fr and the same family): one engine
// owns Mimi + the LM + the tokenizer and B batch slots, one Step per 80 ms frame; sessions join, leave and
// reset at any frame. Torch-free header (the libtorch implementation is behind a pimpl), so the CLI, the
// service and tests use this one API.
//
//   ASSIGN_OR_RETURN(auto engine, TtsEngine::Load("/models/tts-1.6b-en_fr", {.batch_size = 8}));
//   ASSIGN_OR_RETURN(auto session, engine->OpenSession({.voices = {voice_path}}));
//   session->PushText("Hello ");            // any chunking, as the text arrives (an LLM's tokens)
//   session->PushText("world.");
//   session->Close();                       // no more text
//   engine->RunUntilIdle();                 // or Step() once per frame from a model thread
//   for (const TtsEvent& e : session->PollEvents()) ...   // audio frames, words, end
//
// Behaviour (the reference's TTSModel.generate + the DSM script's decoding, per slot):
//   - text -> word entries by the reference's script_to_entries (tts/tts_script.h), one turn per EndTurn();
//   - the state machine (tts/tts_state_machine.h) decides the text stream; a slot that waits for text (too few
//     words for the lookahead, and not closed) does not step, so streamed text gives the same output as the
//     whole text at once;
//   - audio codebook q is forced to "zero" while step < delays[q] + delay_steps (delay_steps =
//     int(tts_config.audio_delay * 12.5)); the depformer is skipped while every stepping slot is still inside
//     the delay window (its output is forced anyway);
//   - output frames from step delay_steps + max_delay on are Mimi-decoded in streaming order (1920 samples,
//     clipped to [-1, 1]): the DSM script's `frames[delay_steps:]`;
//   - a word consumed at step s starts at s / 12.5 seconds of output audio, and ends where the next word starts
//     (or at the end of speech, end_step / 12.5);
//   - the slot ends after end_step + delay_steps + final_padding steps (end_step: the step at which the state
//     machine ran out of words).
//
// Threading: every method is thread-safe; sessions push/poll from their own threads while one thread calls
// Step(). A session keeps the engine's model alive.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tts/tts_voices.h"

namespace monologue {

struct TtsEngineOptions {
  int batch_size = 1;
  std::string device = "cpu";
  std::string dtype;  // "" (f32 on CPU, bf16 on CUDA), "f32", "bf16", "f16", "int8", "int4" (CPU)
  int threads = 0;    // > 0: libtorch CPU threads (process-wide)
  // A LoRA adapter file (`--lora`) fused into the LM at load with the config's lora_scaling, in place of
  // the one config.json names (lora_name), as the reference's lora_weights argument.
  std::string lora_path;
  // Sampling (shared by the batch): the reference TTSModel's defaults.
  double temp = 0.6;  // text and audio; 0 = greedy
  int top_k = 250;    // audio (LMGen default)
  int top_k_text = 25;
  // Sampling seed of sessions that set none. With independent_slots every session draws from its own
  // generator seeded like torch.manual_seed(seed) (nullopt: torch's default seed, what an unseeded reference
  // process uses), so a session's audio is the reference's batch-1 run whatever else the batch holds.
  std::optional<uint64_t> seed;
  bool independent_slots = true;  // false: one generator for the batch, as the reference's batched generate()
  // Audio codebooks generated and decoded (0: all of the model's). Fewer is faster and coarser.
  int n_q = 0;
  // Classifier-free guidance for models that are not CFG-distilled (no `cfg` conditioner): != 1 doubles the
  // batch (conditional + null rows, no text in the null rows). Distilled models take the coefficient as a
  // per-session condition value instead (TtsSessionOptions::cfg_coef).
  double cfg_coef = 2.0;
  // State machine and stopping (TTSModel.from_checkpoint_info / TTSModel defaults).
  int initial_padding = 2;
  int max_padding = 8;
  int final_padding = 4;
  int max_steps = 30000;  // a slot ends after this many steps even if text remains (the reference's limit)
  bool skip_depformer_in_delay = true;
  // With independent_slots, each step computes only the slots that advance, gathered into the smallest
  // power-of-two bucket that holds them (core/util/step_rows.h); idle slots cost nothing. false (or one
  // batch generator, whose draws depend on every row of the batch): every slot under the exec mask.
  bool compact_steps = true;
};

struct TtsSessionOptions {
  // Voice files (`*.safetensors` holding `speaker_wavs` [1, dim, T]); the first speaks turns 0, 2, ...,
  // the second turns 1, 3, ... (up to the model's max speakers). Required by multi-speaker models.
  std::vector<std::string> voices;
  // CFG-distilled models: the `cfg` condition value (one of the model's values, e.g. 2.0); nullopt = the
  // engine's cfg_coef. Ignored by models without the `cfg` conditioner.
  std::optional<double> cfg_coef;
  std::optional<uint64_t> seed;  // overrides TtsEngineOptions::seed (independent_slots only)
  std::optional<double> temp;    // overrides TtsEngineOptions::temp for this session (independent_slots only)
  int padding_between = 1;   // forced padding between words (the DSM scripts use 1)
  double padding_bonus = 0;  // added to the PAD logit: positive = slower speech
};

struct TtsWord {
  std::string text;
  int64_t step = 0;    // generation step at which it was consumed
  double start_s = 0;  // output-audio seconds
  double end_s = 0;
};

struct TtsEvent {
  enum class Kind { kAudio, kWord, kEnd };
  Kind kind = Kind::kEnd;
  int64_t step = 0;           // generation step that produced it
  std::vector<float> audio;   // kAudio: one frame (frame_size samples, 24 kHz)
  TtsWord word;               // kWord
  // kEnd: the stream stopped at TtsEngineOptions::max_steps with text still unspoken (what was spoken
  // stands).
  bool truncated = false;
};

struct TtsModelInfo {
  std::string model_dir;
  int sample_rate = 24000;
  int frame_size = 1920;
  double frame_rate = 12.5;
  int delay_steps = 0;       // audio delay in frames
  int max_delay = 0;         // the LM's largest stream delay
  int second_stream_ahead = 0;
  int num_codebooks = 0;     // generated and decoded
  int text_card = 0;
  bool multi_speaker = false;
  int max_speakers = 0;
  int speaker_dim = 0;       // speaker_wavs channels
  bool cfg_distilled = false;
  std::vector<double> cfg_values;  // distilled models' valid coefficients
  std::string voice_suffix;  // ".<sig>@<epoch>.safetensors" (empty for single-speaker models)
  std::string device;
  std::string dtype;
  std::string lm_weights;  // int8: what quantisation at load did (DescribeQuantization); empty for float
};

class TtsEngine;

class TtsSession {
 public:
  ~TtsSession();  // leaves the engine (its slot is freed for the next session)
  TtsSession(const TtsSession&) = delete;
  TtsSession& operator=(const TtsSession&) = delete;

  // Appends text to the current turn (any chunking, UTF-8). FAILED_PRECONDITION after Close().
  absl::Status PushText(std::string_view text);
  // Ends the current turn: the next text is the other speaker's.
  absl::Status EndTurn();
  // No more text. INVALID_ARGUMENT when the session received no word at all (nothing to say).
  absl::Status Close();
  // Drops everything and restarts on the same slot with the same options.
  absl::Status Reset();
  // Flow control for a consumer that reads slower than the engine produces: a held session does not step
  // (its output does not change, it only comes later).
  void Hold(bool hold);
  std::vector<TtsEvent> PollEvents();
  std::vector<TtsEvent> WaitEvents(std::chrono::milliseconds timeout);

  bool finished() const;
  int slot() const { return slot_; }
  // The text-stream value fed at every step (after the state machine; muxed with the lookahead stream).
  std::vector<int64_t> text_tokens() const;
  // Codes of every decoded frame, frame-major ([frames][num_codebooks]).
  std::vector<int64_t> codes() const;
  int64_t steps_done() const;
  // Words the state machine has consumed so far.
  int64_t words_done() const;

 private:
  friend class TtsEngine;
  friend struct TtsEngineBuilder;
  struct EngineState;
  TtsSession(std::shared_ptr<EngineState> shared, int slot, uint64_t generation);
  std::shared_ptr<EngineState> shared_;
  int slot_;
  uint64_t generation_;
};

class TtsEngine {
 public:
  // Loads a TTS model directory (config.json with model_type "tts" and tts_config, the LM, Mimi and
  // tokenizer files it names). NOT_FOUND for missing files (all listed); INVALID_ARGUMENT for a model that
  // is not a TTS model, an unsupported layout or bad options.
  static absl::StatusOr<std::unique_ptr<TtsEngine>> Load(const std::string& model_dir,
                                                         const TtsEngineOptions& options = {});
  // config.json's synthesis settings (tts_config, conditioners) checked as Load checks them, without reading
  // any weights (`monologue info`); the same errors.
  static absl::Status CheckConfig(const std::string& model_dir);
  ~TtsEngine();
  TtsEngine(const TtsEngine&) = delete;
  TtsEngine& operator=(const TtsEngine&) = delete;

  // A new session in the first free slot. RESOURCE_EXHAUSTED when all slots are taken; INVALID_ARGUMENT for
  // a voice file of the wrong shape, too many voices, a missing voice for a multi-speaker model or a cfg
  // value the model does not have; NOT_FOUND for a missing voice file.
  absl::StatusOr<std::unique_ptr<TtsSession>> OpenSession(const TtsSessionOptions& options = {});

  // One step of the whole batch (every slot that can advance). Returns how many slots advanced.
  absl::StatusOr<int> Step();
  absl::Status RunUntilIdle();
  // Waits up to `timeout` for new work (text pushed, closed, reset, opened); see AsrEngine::WaitForWork.
  bool WaitForWork(std::chrono::milliseconds timeout);
  // Makes WaitForWork return as new work would; see AsrEngine::Wake.
  void Wake();

  const TtsModelInfo& info() const;
  int batch_size() const;
  int free_slots() const;
  int64_t steps_run() const;
  double step_seconds() const;

 private:
  friend struct TtsEngineBuilder;  // tts/tts_engine_builder.h (in-memory models for benchmarks)
  explicit TtsEngine(std::shared_ptr<TtsSession::EngineState> shared);
  std::shared_ptr<TtsSession::EngineState> shared_;
};

}  // namespace monologue
