// The DSM TTS state machine (the reference's `StateMachine.process`): per step it turns the model's sampled
// text token into the token fed back, popping the next word when the model asks for one (or when it may no
// longer pad), feeding the word's ids over the following steps, and multiplexing the lookahead stream.
// Entries may be appended while it runs (streaming text); the engine only steps a machine whose decisions
// cannot depend on words that have not arrived yet (see CanStep).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "tts/tts_script.h"

namespace monologue::tts {

struct StateMachineOptions {
  TokenIds ids;
  int second_stream_ahead = 0;  // tts_config.second_stream_ahead
  int max_padding = 8;          // TTSModel.from_checkpoint_info's default
  int initial_padding = 2;
};

struct TimedWord {
  std::string text;
  int64_t step = 0;  // the step at which the word was consumed
};

class StateMachine {
 public:
  explicit StateMachine(StateMachineOptions options);

  void Append(std::vector<Entry> entries);
  // No more entries will come.
  void Close() { closed_ = true; }
  bool closed() const { return closed_; }

  // True when the next Process cannot depend on entries still to come: the text is closed, or enough
  // entries with tokens are queued for a word and its lookahead.
  bool CanStep() const;

  struct Output {
    int64_t fed = 0;        // the text-stream value fed at the next step (muxed with the lookahead)
    bool consumed = false;  // an entry was popped
    std::optional<TimedWord> word;  // the word popped, when it had tokens
  };
  // `step` is the generation step, `sampled` the model's text token.
  Output Process(int64_t step, int64_t sampled);

  std::optional<int64_t> end_step() const { return end_step_; }
  const std::vector<TimedWord>& transcript() const { return transcript_; }
  size_t pending_entries() const { return entries_.size(); }

 private:
  std::vector<int> TokensAhead(int lookahead) const;

  StateMachineOptions options_;
  std::deque<Entry> entries_;
  std::deque<int> queued_;
  std::deque<int> lookahead_queued_;
  int remaining_padding_;
  int forced_padding_;
  std::optional<int64_t> end_step_;
  std::vector<TimedWord> transcript_;
  bool closed_ = false;
};

}  // namespace monologue::tts
