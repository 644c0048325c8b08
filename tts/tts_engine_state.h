// (internal) The state a TtsEngine and its sessions share: the models, what Load decided, the batch slots and
// the per-step context the LmGen hooks read. Used by tts_engine.cc (OpenSession, Step), tts_session.cc (the
// session API and the slot's lifecycle) and tts_engine_load.cc (Load, TtsEngineBuilder). Uses libtorch.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/config/model_config.h"
#include "core/lm/lm_gen.h"
#include "core/lm/lm_model.h"
#include "core/mimi/mimi_model.h"
#include "core/session/slot_table.h"
#include "core/text/text_tokenizer.h"
#include "tts/tts_conditions.h"
#include "tts/tts_engine.h"
#include "tts/tts_script.h"
#include "tts/tts_state_machine.h"

namespace monologue {

struct TtsSession::EngineState {
  // Immutable after Load.
  TtsModelInfo info;
  TtsEngineOptions options;
  ModelConfig config;
  std::shared_ptr<const TextTokenizer> tokenizer;
  std::unique_ptr<MimiModel> mimi;
  std::shared_ptr<const LmModel> lm;
  c10::Device device = c10::Device(c10::kCPU);
  int batch = 0;
  bool real_cfg = false;         // doubled batch (model without the cfg conditioner, cfg_coef != 1)
  int voice_frames = 125;        // speaker_wavs length every voice must have (fixed cross-attention size)
  std::vector<int64_t> audio_delays;  // delay of each generated audio stream (streams 1..n_q)
  tts::TokenIds ids;
  tts::StateMachineOptions machine_options;

  // Model state: only Step() touches it (under step_mu).
  std::mutex step_mu;
  std::unique_ptr<LmGen> gen;
  MimiStreamState mimi_state;

  struct Slot : SlotBase<TtsEvent> {
    TtsSessionOptions options;
    LmFusedConditions conditions;  // 1 row (2 with real CFG: conditional, null)
    std::unique_ptr<tts::ScriptBuilder> script;
    std::unique_ptr<tts::StateMachine> machine;
    int64_t words_pushed = 0;  // entries with tokens
    bool held = false;
    int64_t step = 0;  // steps executed
    std::optional<TtsWord> open_word;  // consumed, waiting for its end time
    int64_t words_done = 0;
    std::vector<int64_t> fed;
    std::vector<int64_t> codes;
  };
  std::unique_ptr<SlotTable<Slot>> slots;  // sized in Finish

  // Per-step context read by the LmGen hooks (set by Step under step_mu).
  std::vector<uint8_t> step_exec;
  std::vector<uint64_t> step_generation;
  std::vector<int64_t> step_index;
  at::Tensor step_bonus;  // f32 [B] or undefined

  // A new stream on `slot` (open or reset): a fresh script and state machine, nothing stepped.
  void StartStream(Slot& slot);
  // Under mu: word entries from the script join the slot's state machine (and wake the stepper).
  void AddEntries(Slot& slot, std::vector<tts::Entry> entries);
  // Under mu: a word was consumed at `word.step`; the previous one ends there.
  void OnWord(Slot& slot, const tts::TimedWord& word);
  // Under mu: the open word is complete; it becomes an event.
  void EmitWord(Slot& slot);
  // Under mu: the slot's last step is done (or it failed): the open word ends, then the end event.
  void Finish(Slot& slot);
  // Whether the slot has run its last step (end of speech + delay + final padding, or max_steps).
  bool Done(const Slot& slot) const;

  // What a slot's LM conditions are built from.
  tts::ConditionContext condition_context() const {
    return {lm.get(), info.max_speakers, voice_frames, real_cfg, options.cfg_coef, device};
  }
};

}  // namespace monologue
