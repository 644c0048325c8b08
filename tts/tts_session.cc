// The session side of tts_engine.h: TtsSession's methods (text in, events out, reset, hold) and the lifecycle
// of a slot's stream that they and the engine's Step share (start, words, end).
#include <string_view>
#include <utility>

#include "core/util/status_macros.h"
#include "tts/tts_engine.h"
#include "tts/tts_engine_state.h"

namespace monologue {

// ---- A slot's stream ---------------------------------------------------------------------------------------

void TtsSession::EngineState::StartStream(Slot& slot) {
  tts::ScriptOptions script_options;
  script_options.multi_speaker = info.multi_speaker;
  script_options.padding_between = slot.options.padding_between;
  script_options.frame_rate = info.frame_rate;
  script_options.ids = ids;
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
  std::shared_ptr<const TextTokenizer> tok = tokenizer;
  slot.script = std::make_unique<tts::ScriptBuilder>(
      [tok](std::string_view word) { return tok->Encode(word); }, script_options);
#else
  // Without sentencepiece no TTS engine has a tokenizer (TtsEngine::Load fails): nothing to encode.
  slot.script = std::make_unique<tts::ScriptBuilder>([](std::string_view) { return std::vector<int>{}; },
                                                     script_options);
#endif
  slot.machine = std::make_unique<tts::StateMachine>(machine_options);
  slot.words_pushed = 0;
  slot.held = false;
  slot.step = 0;
  slot.open_word.reset();
  slot.words_done = 0;
  slot.fed.clear();
  slot.codes.clear();
}

void TtsSession::EngineState::AddEntries(Slot& slot, std::vector<tts::Entry> entries) {
  for (const tts::Entry& e : entries) slot.words_pushed += e.tokens.empty() ? 0 : 1;
  slot.machine->Append(std::move(entries));
  slots->NotifyWorkLocked();
}

void TtsSession::EngineState::OnWord(Slot& slot, const tts::TimedWord& word) {
  const double t = static_cast<double>(word.step) / info.frame_rate;
  if (slot.open_word.has_value()) {
    slot.open_word->end_s = t;
    EmitWord(slot);
  }
  TtsWord w;
  w.text = word.text;
  w.step = word.step;
  w.start_s = t;
  slot.open_word = w;
  slot.words_done++;
}

void TtsSession::EngineState::EmitWord(Slot& slot) {
  TtsEvent e;
  e.kind = TtsEvent::Kind::kWord;
  e.step = slot.open_word->step;
  e.word = std::move(*slot.open_word);
  slot.open_word.reset();
  slot.events.push_back(std::move(e));
}

void TtsSession::EngineState::Finish(Slot& slot) {
  if (slot.open_word.has_value()) {
    const int64_t end = slot.machine->end_step().value_or(slot.step);
    slot.open_word->end_s = static_cast<double>(end) / info.frame_rate;
    EmitWord(slot);
  }
  TtsEvent e;
  e.kind = TtsEvent::Kind::kEnd;
  e.step = slot.step;
  // Stopped by the step limit before the text's end plus the audio delay and padding: audio is missing (a
  // text whose end was seen but whose audio, delay_steps later, lies past the limit is truncated too).
  const std::optional<int64_t> end = slot.machine != nullptr ? slot.machine->end_step() : std::nullopt;
  e.truncated = slot.step >= options.max_steps &&
                !(end.has_value() && slot.step >= *end + info.delay_steps + options.final_padding);
  slot.events.push_back(std::move(e));
  slot.ended = true;
}

bool TtsSession::EngineState::Done(const Slot& slot) const {
  if (slot.step >= options.max_steps) return true;
  auto end = slot.machine->end_step();
  return end.has_value() && slot.step >= *end + info.delay_steps + options.final_padding;
}

// ---- TtsSession -------------------------------------------------------------------------------------------

TtsSession::TtsSession(std::shared_ptr<EngineState> shared, int slot, uint64_t generation)
    : shared_(std::move(shared)), slot_(slot), generation_(generation) {}

TtsSession::~TtsSession() {
  shared_->slots->Release({slot_, generation_}, [](EngineState::Slot& s) {
    s.script.reset();
    s.machine.reset();
    s.fed = {};
    s.codes = {};
  });
}

absl::Status TtsSession::PushText(std::string_view text) {
  return shared_->slots->With(slot_, [&](EngineState::Slot& s) -> absl::Status {
    if (s.closed) return absl::FailedPreconditionError("tts session: PushText after Close");
    ASSIGN_OR_RETURN(std::vector<tts::Entry> entries, s.script->Push(text));
    shared_->AddEntries(s, std::move(entries));
    return absl::OkStatus();
  });
}

absl::Status TtsSession::EndTurn() {
  return shared_->slots->With(slot_, [&](EngineState::Slot& s) -> absl::Status {
    if (s.closed) return absl::FailedPreconditionError("tts session: EndTurn after Close");
    ASSIGN_OR_RETURN(std::vector<tts::Entry> entries, s.script->EndTurn());
    shared_->AddEntries(s, std::move(entries));
    return absl::OkStatus();
  });
}

absl::Status TtsSession::Close() {
  return shared_->slots->With(slot_, [&](EngineState::Slot& s) -> absl::Status {
    if (s.closed) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::vector<tts::Entry> entries, s.script->Finish());
    shared_->AddEntries(s, std::move(entries));
    if (s.words_pushed == 0) {
      return absl::InvalidArgumentError(
          "tts session: no text to speak (empty, or nothing the tokenizer can represent)");
    }
    s.closed = true;
    s.machine->Close();
    shared_->slots->NotifyWorkLocked();
    return absl::OkStatus();
  });
}

absl::Status TtsSession::Reset() {
  generation_ =
      shared_->slots->Restart({slot_, generation_}, [&](EngineState::Slot& s) { shared_->StartStream(s); })
          .generation;
  return absl::OkStatus();
}

void TtsSession::Hold(bool hold) {
  shared_->slots->With(slot_, [&](EngineState::Slot& s) {
    if (s.generation != generation_ || s.held == hold) return;
    s.held = hold;
    shared_->slots->NotifyWorkLocked();
  });
}

std::vector<TtsEvent> TtsSession::PollEvents() { return shared_->slots->TakeEvents(slot_); }

std::vector<TtsEvent> TtsSession::WaitEvents(std::chrono::milliseconds timeout) {
  return shared_->slots->WaitEvents(slot_, timeout);
}

bool TtsSession::finished() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.ended; });
}

std::vector<int64_t> TtsSession::text_tokens() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.fed; });
}

std::vector<int64_t> TtsSession::codes() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.codes; });
}

int64_t TtsSession::steps_done() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.step; });
}

int64_t TtsSession::words_done() const {
  return shared_->slots->With(slot_, [](const EngineState::Slot& s) { return s.words_done; });
}

}  // namespace monologue
