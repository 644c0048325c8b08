// Streaming speech recognition with the DSM STT models (kyutai/stt-1b-en_fr, kyutai/stt-2.6b-en): one engine
// owns Mimi + the LM + the tokenizer and B batch slots; sessions join, leave and reset at any frame.
// Torch-free header (plain std types; the libtorch implementation is behind a pimpl), so the CLI, the gRPC
// service and tests all use this one API.
//
//   ASSIGN_OR_RETURN(auto engine, AsrEngine::Load("/models/stt-1b-en_fr", {.batch_size = 8}));
//   ASSIGN_OR_RETURN(auto session, engine->OpenSession());
//   session->PushAudio(samples);            // 24 kHz mono float, any length
//   engine->RunUntilIdle();                 // or Step() once per 80 ms from a model thread
//   for (const AsrEvent& e : session->PollEvents()) ...
//   session->Close();                       // end of input: the flush happens inside
//   engine->RunUntilIdle();                 // ... until PollEvents returns kEnd
//
// Framing (identical to the reference transcriber, moshi.run_inference for model_type "stt"): the stream
// starts with int(audio_silence_prefix_seconds * 24000) zeros; Close() appends
// int((audio_delay_seconds + 1) * 24000) zeros and drops the last incomplete frame; each slot's first LM step
// reads the initial tokens only (a warm-up step taken when the session opens, before its audio), so no frame
// of audio is lost and the greedy text tokens equal the reference's. One text token per 1920-sample frame.
//
// Events (PollEvents, in order of decision):
//   kText       a text piece as the model emits it (ids other than EPAD 0 / PAD 3): the reference printer's
//               output, for low-latency display; `text` is the piece with '▁' as ' ', `token` its id.
//   kWord       a word with start/end times (seconds of input audio) and its ids, decided when the next word
//               boundary arrives, or at the end (asr/word_aligner.h gives the reference's rules).
//   kVad        the extra heads' P(no voice activity) over 0.5 / 1 / 2 / 3 s (models with extra heads only,
//               e.g. stt-1b), for every step whose frame holds input audio; `time_s` = end of that frame.
//   kEndOfTurn  head 2 (2 s) above 0.5, once per pause: not again until a text piece was emitted (the DSM
//               script's rule); `time_s` as for kVad.
//   kEnd        the stream is finished (after Close, every word was returned). Last event of the session.
//
// Threading: every method is thread-safe. Sessions may push/poll from their own threads while one thread
// (or several, serialized) calls Step(); the model runs outside the session lock, so pushes never wait for a
// step. A session keeps the engine's model alive (it may outlive the AsrEngine object).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "asr/word_aligner.h"

namespace monologue {

struct AsrEngineOptions {
  int batch_size = 1;          // slots stepped together
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N"
  std::string dtype;  // LM dtype: "" (f32 on CPU, bf16 on CUDA), "f32", "bf16", "f16", "int8", "int4" (CPU)
  bool vad = true;             // run the extra heads when the model has them
  int threads = 0;             // > 0: libtorch CPU threads (process-wide, at::set_num_threads); 0: leave
  // A LoRA adapter file (`--lora`) fused into the LM at load with the config's lora_scaling, in place of
  // the one config.json names (lora_name), as the reference's lora_weights argument.
  std::string lora_path;
  // Each step computes only the slots that advance, gathered into the smallest power-of-two bucket that
  // holds them (core/util/step_rows.h): 3 active streams of 64 slots cost about 4 rows, not 64. false: every
  // step computes all batch_size slots under an exec mask (the previous behaviour; for comparisons).
  bool compact_steps = true;
};

struct AsrEvent {
  enum class Kind { kText, kWord, kVad, kEndOfTurn, kEnd };
  Kind kind = Kind::kEnd;
  int64_t step = 0;        // frame index of the step that decided it (left padding included)
  double time_s = 0;       // kVad / kEndOfTurn: end of that frame in input seconds
  std::string text;        // kText: the printable piece
  int token = -1;          // kText: its id
  AsrWord word;            // kWord
  std::vector<float> vad;  // kVad: P(no voice activity) per head
};

// What a loaded model is (for callers that frame or report).
struct AsrModelInfo {
  std::string model_dir;
  int sample_rate = 24000;
  int frame_size = 1920;
  double frame_rate = 12.5;
  double audio_delay_seconds = 0;
  double audio_silence_prefix_seconds = 0;
  int pad_left_samples = 0;   // int(prefix * 24000)
  int pad_right_samples = 0;  // int((delay + 1) * 24000)
  int num_vad_heads = 0;      // 0 when the model has no extra heads (or vad is off)
  int text_card = 0;
  int num_codebooks = 0;
  std::string device;
  std::string dtype;
  std::string lm_weights;  // int8: what quantisation at load did (DescribeQuantization); empty for float
};

class AsrEngine;

class AsrSession {
 public:
  ~AsrSession();  // leaves the engine (its slot is reset for the next session)
  AsrSession(const AsrSession&) = delete;
  AsrSession& operator=(const AsrSession&) = delete;

  // Appends 24 kHz mono samples (any length). FAILED_PRECONDITION after Close().
  absl::Status PushAudio(std::span<const float> samples);
  // End of input: the flush padding is appended; the last words and kEnd follow as the engine steps.
  absl::Status Close();
  // Drops pending audio and events and restarts the stream on the same slot (a new utterance).
  absl::Status Reset();
  // Events decided since the last call.
  std::vector<AsrEvent> PollEvents();
  // The same, but waits up to `timeout` for at least one event (for a per-session writer thread).
  std::vector<AsrEvent> WaitEvents(std::chrono::milliseconds timeout);

  // True once kEnd has been produced (it may still be waiting in PollEvents).
  bool finished() const;
  int slot() const { return slot_; }
  // Every text token of the stream so far (one per frame; left padding frames included).
  std::vector<int> text_tokens() const;
  // Input samples pushed (without padding) and frames stepped.
  int64_t samples_pushed() const;
  int64_t frames_done() const;

 private:
  friend class AsrEngine;
  friend struct AsrEngineBuilder;
  struct EngineState;
  AsrSession(std::shared_ptr<EngineState> shared, int slot, uint64_t generation);
  std::shared_ptr<EngineState> shared_;
  int slot_;
  uint64_t generation_;
};

class AsrEngine {
 public:
  // Loads a model directory in the Hugging Face snapshot layout (config.json naming the LM weights, the
  // Mimi weights and the tokenizer). Errors: NOT_FOUND for a missing directory or files (all of them
  // listed), INVALID_ARGUMENT for a model that is not an STT model (model_type must be "stt") or a
  // tokenizer that does not match text_card.
  static absl::StatusOr<std::unique_ptr<AsrEngine>> Load(const std::string& model_dir,
                                                         const AsrEngineOptions& options = {});
  // config.json's transcription settings (model_type, stt_config's delays) checked as Load checks them,
  // without reading any weights (`monologue info`); the same errors.
  static absl::Status CheckConfig(const std::string& model_dir);
  ~AsrEngine();
  AsrEngine(const AsrEngine&) = delete;
  AsrEngine& operator=(const AsrEngine&) = delete;

  // A new session in the first free slot; RESOURCE_EXHAUSTED when all batch_size slots are taken.
  absl::StatusOr<std::unique_ptr<AsrSession>> OpenSession();

  // One 80 ms step of the whole batch: every slot with a complete frame (or a pending warm-up) advances.
  // Returns how many slots advanced (0: nothing to do, nothing ran).
  absl::StatusOr<int> Step();
  // Steps until no slot can advance.
  absl::Status RunUntilIdle();
  // For a model thread: waits up to `timeout` until some session pushed audio, closed, reset or opened since
  // the last Step (returns true), so `while (run) { if (*Step() == 0) WaitForWork(10ms); }` neither spins nor
  // adds latency.
  bool WaitForWork(std::chrono::milliseconds timeout);
  // Makes WaitForWork return as new work would (from any thread): a scheduler's own reasons to run a step and
  // look at its streams again (a reader drained, a write finished, a stop).
  void Wake();

  const AsrModelInfo& info() const;
  int batch_size() const;
  int free_slots() const;
  // Total steps run and the time spent in them (for benchmarks and progress).
  int64_t steps_run() const;
  double step_seconds() const;

 private:
  friend struct AsrEngineBuilder;  // asr/asr_engine_builder.h (in-memory models for benchmarks)
  explicit AsrEngine(std::shared_ptr<AsrSession::EngineState> shared);
  std::shared_ptr<AsrSession::EngineState> shared_;
};

}  // namespace monologue
