// Text to word entries for the DSM TTS models: the reference's `script_to_entries` (moshi.models.tts), made
// incremental so text can arrive a few characters at a time and still give exactly the entries the whole
// text would give.
//
// Per turn (a turn is one speaker's text; turns alternate between the main and the other speaker):
//   - normalisation: U+2019 -> "'", ':' -> ' ', '(' and ')' dropped;
//   - the text is split on whitespace (Python's Unicode whitespace) and on `<break time="Xs"/>` tags;
//   - each word becomes an entry with its tokenizer ids; the first word of a turn gets the speaker token
//     (1 main, 2 other) in front when the model is multi-speaker and the speaker changed;
//   - padding_between > 0 gives each word a forced padding of padding_between + len(tokens) - 1;
//   - a break becomes an entry without tokens and with padding round(X * frame_rate) (half to even).
// Torch-free: the tokenizer is a function, so the rules are testable on their own.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace monologue::tts {

// Special ids of the text stream (the reference's TokenIds; `card` = text_card + 1 is the multiplexing base).
struct TokenIds {
  int64_t card = 0;
  int64_t new_word = 0;
  int64_t pad = 3;
  int64_t main = 1;
  int64_t other = 2;
  int64_t zero = -1;         // embeds to exactly 0
  int64_t ungenerated = -2;  // not generated yet
};

// One word to speak (or, without tokens, a pause of `padding` steps).
struct Entry {
  std::vector<int> tokens;
  std::string text;
  int padding = 0;
};

struct ScriptOptions {
  bool multi_speaker = true;  // the model has a speaker_wavs conditioner
  int padding_between = 1;    // the DSM scripts' value; 0 disables the forced padding
  double frame_rate = 12.5;
  TokenIds ids;
};

using EncodeFn = std::function<std::vector<int>(std::string_view)>;

// Incremental script_to_entries. Push text as it arrives; complete words come out as soon as what follows
// them is known (a separator, or a complete break tag). EndTurn and Finish flush the rest of the turn.
class ScriptBuilder {
 public:
  ScriptBuilder(EncodeFn encode, ScriptOptions options);

  // Appends text to the current turn; returns the entries it completed. INVALID_ARGUMENT for a break tag
  // whose duration is not a number (the reference fails on those too).
  absl::StatusOr<std::vector<Entry>> Push(std::string_view text);
  // Ends the current turn (its last word is complete); the next Push starts the other speaker's turn.
  absl::StatusOr<std::vector<Entry>> EndTurn();
  // End of all text: the current turn's last word.
  absl::StatusOr<std::vector<Entry>> Finish();

  int turn() const { return turn_; }

 private:
  // Splits `pending_` up to what is known; `final` = the turn's text is complete.
  absl::StatusOr<std::vector<Entry>> Drain(bool final);
  void AddWord(std::string_view word, std::vector<Entry>& out);

  EncodeFn encode_;
  ScriptOptions options_;
  std::string pending_;  // normalised text of the current turn not yet split
  std::string raw_tail_;  // bytes of an incomplete UTF-8 sequence at the end of the last push
  int turn_ = 0;
  bool first_content_ = true;
  std::optional<int> last_speaker_;
};

// The whole script at once (the reference's script_to_entries over a list of turns).
absl::StatusOr<std::vector<Entry>> ScriptToEntries(const EncodeFn& encode, const ScriptOptions& options,
                                                   const std::vector<std::string>& turns);

}  // namespace monologue::tts
