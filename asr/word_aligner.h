// Words and their timestamps from the STT text stream, decided as the tokens arrive. Torch-free.
//
// The rule is the reference's (delayed-streams-modeling scripts/stt_from_file_pytorch.py,
// `tokens_to_timestamped_text`), applied to the token list of the reference transcriber's framing (one token
// per input frame, index 0 = the step that consumed the first frame, left padding included):
//   - token 0 (EPAD) marks a word boundary; the tokens strictly between two boundaries form a segment;
//     tokens before the first boundary belong to no word;
//   - a segment [s, e) spans max(0, s / frame_rate - offset) .. max(0, e / frame_rate - offset), with
//     offset = silence prefix + audio delay (seconds);
//   - its text is the SentencePiece decoding of its ids > padding id (3): one word keeps that text, several
//     words (split on whitespace) get as many frames as the tokenizer gives each word ids, the last word
//     taking the rest of the segment;
//   - the last segment (after the last boundary) ends at the first EOS in it, else at
//     min(number of tokens, s + frame_rate) (at most 1 s long). The reference computes that bound as a float
//     and then cannot slice with it (torch refuses float indices); here the tokens of the segment are those
//     with index < bound, and the timestamp keeps the float bound.
// So a word is emitted when the NEXT boundary arrives (its end time is that boundary), and the last one at
// Finish().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace monologue {

class TextTokenizer;

struct AsrWord {
  std::string text;
  double start_s = 0;
  double end_s = 0;
  // The segment's ids > padding id that make up this word (for a segment of several words: split where a
  // piece starts with U+2581, the word-start marker).
  std::vector<int> tokens;
};

struct WordAlignerOptions {
  double frame_rate = 12.5;
  double offset_seconds = 0.0;  // silence prefix + audio delay
  int end_of_padding_id = 0;
  int padding_id = 3;  // ids <= padding_id are not text
};

class WordAligner {
 public:
  // `tokenizer` must outlive the aligner. Null: tokens are recorded but no words come out (benchmarks).
  WordAligner(const TextTokenizer* tokenizer, const WordAlignerOptions& options);

  // The next token of the stream; returns the words it completes (possibly none).
  std::vector<AsrWord> Push(int token);
  // End of the stream: the words of the last segment. Push after Finish is not allowed (returns nothing).
  std::vector<AsrWord> Finish();
  // Back to an empty stream.
  void Reset();

  const std::vector<int>& tokens() const { return tokens_; }

 private:
  std::vector<AsrWord> Segment(int64_t start, double end) const;

  const TextTokenizer* tokenizer_;
  WordAlignerOptions options_;
  std::vector<int> tokens_;
  std::optional<int64_t> last_boundary_;
  bool finished_ = false;
};

// Words of a whole token stream at once (Push every token, then Finish).
std::vector<AsrWord> AlignWords(const TextTokenizer& tokenizer, const std::vector<int>& tokens,
                                const WordAlignerOptions& options);

}  // namespace monologue
