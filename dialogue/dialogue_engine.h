// Full-duplex dialogue with the Moshi models (kyutai/moshiko-pytorch-bf16, kyutai/moshika-pytorch-bf16,
// kyutai/moshika-rl-seamless): one engine owns Mimi + the LM + the tokenizer and B batch slots; every slot is
// one conversation, the user's audio in and Moshi's audio and inner-monologue text out, time-aligned.
// Sessions join, leave and reset at any frame. Torch-free header (plain std types; the libtorch
// implementation is behind a pimpl), like asr/asr_engine.h.
//
//   ASSIGN_OR_RETURN(auto engine, DialogueEngine::Load("/models/moshika", {.batch_size = 8}));
//   ASSIGN_OR_RETURN(auto session, engine->OpenSession());
//   session->PushAudio(samples);            // the user: 24 kHz mono float, any length
//   engine->RunUntilIdle();                 // or Step() once per 80 ms from a model thread
//   for (const DialogueEvent& e : session->PollEvents()) ...   // Moshi's audio per frame, text pieces
//   session->Close();                       // end of input
//   engine->RunUntilIdle();                 // ... until PollEvents returns kEnd
//
// Framing (identical to the reference's offline tool moshi.run_inference for a Moshi model): the input is cut
// into complete 1920-sample (80 ms) frames; a trailing incomplete frame is never fed. Each slot's first LM
// step is the reference's duplicated first frame: it reads only the initial tokens (its input is written
// where no later step reads it) and its output is dropped, so here it is taken when the session opens,
// before any audio. After it, every input frame gives exactly one output frame: Mimi encodes the user's
// frame, the LM steps, and Mimi decodes Moshi's dep_q codebooks in streaming order. After Close(), one last
// kAudio event holds the zeros that pad Moshi's side to the input's length (the reference's output stops at
// the last complete frame; the Full-Duplex-Bench convention is same length), then kEnd.
//
// Sampling: the reference LMGen defaults (audio temp 0.8 / top-k 250, text temp 0.7 / top-k 25) overridden by
// the checkpoint's lm_gen_config, then by DialogueEngineOptions::sampling. A session with seed S draws
// exactly what the reference draws after torch.manual_seed(S) right before its first step (batch 1). By
// default every session has its own generator (independent_slots), so this holds in any batch, for late
// joiners and after Reset; greedy runs (temp 0) never depend on the batch.
//
// Threading: every method is thread-safe; the model runs outside the session lock. A session keeps the
// engine's model alive (it may outlive the DialogueEngine object).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace monologue {

// Overrides of the checkpoint's sampling settings (unset: lm_gen_config, else the LMGen defaults).
struct DialogueSampling {
  std::optional<double> temp;       // audio temperature (0: greedy)
  std::optional<double> temp_text;  // text temperature (0: greedy)
  std::optional<int> top_k;
  std::optional<int> top_k_text;
  std::optional<uint64_t> seed;  // generator seed, as torch.manual_seed(seed); unset: a fixed default
};

struct DialogueEngineOptions {
  int batch_size = 1;          // slots stepped together
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N"
  std::string dtype;  // LM dtype: "" (f32 on CPU, bf16 on CUDA), "f32", "bf16", "f16", "int8", "int4" (CPU)
  int threads = 0;             // > 0: libtorch CPU threads (process-wide, at::set_num_threads); 0: leave
  DialogueSampling sampling;
  // A LoRA adapter file (the reference's LoRA naming) fused into the LM at load, instead of the one config.json
  // names (lora_name); empty: config.json's, if any.
  std::string lora_path;
  // true: every session samples with its own generator, seeded by OpenSession's seed (default: the engine's
  // seed) at its start and at every Reset, so a session's output does not depend on the other slots and
  // equals its solo run. false: one generator for the whole batch, as the reference's batched run_inference
  // (fewer kernel launches on CUDA; sampled outputs then depend on the batch).
  bool independent_slots = true;
  // With independent_slots, each step computes only the slots that advance (Mimi encode, LM, Mimi decode),
  // gathered into the smallest power-of-two bucket that holds them (core/util/step_rows.h): idle slots cost
  // nothing. false (or one batch generator, whose draws depend on every row): every slot under the exec mask.
  bool compact_steps = true;
};

struct DialogueEvent {
  enum class Kind { kAudio, kText, kEnd };
  Kind kind = Kind::kEnd;
  int64_t frame = 0;         // index of the output frame (= input frame) that produced it
  double time_s = 0;         // start of that frame in input seconds (frame * 0.08)
  std::vector<float> audio;  // kAudio: Moshi's 1920 samples of this frame (the final padding: fewer zeros)
  std::vector<int> codes;    // kAudio (not the padding): Moshi's dep_q audio codes of this step
  int token = -1;    // kAudio: the frame's text token (the reference's output column 0); kText: its id
  std::string text;  // kText: the printable piece ('▁' as ' ')
};

struct DialogueModelInfo {
  std::string model_dir;
  int sample_rate = 24000;
  int frame_size = 1920;
  double frame_rate = 12.5;
  int dep_q = 0;          // Moshi's generated audio codebooks
  int num_codebooks = 0;  // Mimi codebooks encoded from the user's audio
  int text_card = 0;
  bool lora = false;  // a LoRA was fused at load
  // Effective sampling (after lm_gen_config and the overrides).
  double temp = 0, temp_text = 0;
  int top_k = 0, top_k_text = 0;
  uint64_t seed = 0;
  std::string device;
  std::string dtype;
  std::string lm_weights;  // int8: what quantisation at load did (DescribeQuantization); empty for float
};

class DialogueEngine;

class DialogueSession {
 public:
  ~DialogueSession();  // leaves the engine (its slot is reset for the next session)
  DialogueSession(const DialogueSession&) = delete;
  DialogueSession& operator=(const DialogueSession&) = delete;

  // Appends the user's 24 kHz mono samples (any length). FAILED_PRECONDITION after Close().
  absl::Status PushAudio(std::span<const float> samples);
  // End of input: the remaining complete frames are processed, then the padding kAudio and kEnd.
  absl::Status Close();
  // Drops pending audio and events and restarts the conversation on the same slot (fresh model state).
  absl::Status Reset();
  // Events produced since the last call, in order.
  std::vector<DialogueEvent> PollEvents();
  // The same, but waits up to `timeout` for at least one event.
  std::vector<DialogueEvent> WaitEvents(std::chrono::milliseconds timeout);

  // True once kEnd has been produced (it may still be waiting in PollEvents).
  bool finished() const;
  int slot() const { return slot_; }
  int64_t samples_pushed() const;
  int64_t frames_done() const;

 private:
  friend class DialogueEngine;
  friend struct DialogueEngineBuilder;
  struct EngineState;
  DialogueSession(std::shared_ptr<EngineState> shared, int slot, uint64_t generation);
  std::shared_ptr<EngineState> shared_;
  int slot_;
  uint64_t generation_;
};

class DialogueEngine {
 public:
  // Loads a Moshi model directory (config.json naming the LM weights, Mimi and the tokenizer, or the legacy
  // moshiko/moshika layout without config.json; a LoRA named by lora_name is fused). NOT_FOUND for a missing
  // directory or files (all listed); INVALID_ARGUMENT for a model that is not a full-duplex Moshi model (an
  // STT, TTS or Hibiki directory), a tokenizer that does not match, or bad sampling options.
  // config.json's dialogue settings (model type, lm_gen_config) checked as Load checks them, without reading
  // any weights (`monologue info`); the same errors.
  static absl::Status CheckConfig(const std::string& model_dir);
  static absl::StatusOr<std::unique_ptr<DialogueEngine>> Load(const std::string& model_dir,
                                                              const DialogueEngineOptions& options = {});
  ~DialogueEngine();
  DialogueEngine(const DialogueEngine&) = delete;
  DialogueEngine& operator=(const DialogueEngine&) = delete;

  // A new session in the first free slot; RESOURCE_EXHAUSTED when all slots are taken. `seed`: its sampling
  // seed (independent_slots; default: the engine's seed).
  absl::StatusOr<std::unique_ptr<DialogueSession>> OpenSession(std::optional<uint64_t> seed = std::nullopt);
  // The same with this session's own temperatures / top-k (unset fields: the engine's; the seed field of
  // `sampling` is not used). INVALID_ARGUMENT for out-of-range values or without independent_slots.
  absl::StatusOr<std::unique_ptr<DialogueSession>> OpenSession(std::optional<uint64_t> seed,
                                                              const DialogueSampling& sampling);

  // One 80 ms step of the whole batch: every slot with a complete frame (or its pending first step)
  // advances. Returns how many slots advanced (0: nothing ran).
  absl::StatusOr<int> Step();
  // Steps until no slot can advance.
  absl::Status RunUntilIdle();
  // Waits up to `timeout` until a session pushed, closed, reset or opened since the last Step.
  bool WaitForWork(std::chrono::milliseconds timeout);
  // Makes WaitForWork return as new work would; see AsrEngine::Wake.
  void Wake();

  const DialogueModelInfo& info() const;
  int batch_size() const;
  int free_slots() const;
  // Steps run and the time spent in them, in total and per part (Mimi encode, LM, Mimi decode).
  int64_t steps_run() const;
  double step_seconds() const;
  double encode_seconds() const;
  double lm_seconds() const;
  double decode_seconds() const;

 private:
  friend struct DialogueEngineBuilder;  // dialogue/dialogue_engine_builder.h (in-memory models)
  explicit DialogueEngine(std::shared_ptr<DialogueSession::EngineState> shared);
  std::shared_ptr<DialogueSession::EngineState> shared_;
};

}  // namespace monologue
