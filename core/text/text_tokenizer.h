// The text tokenizer of the Moshi-family models: a SentencePiece `.model` file, plus the token-id
// conventions every Kyutai text vocabulary shares (moshi-reference.md §2.6).
//
// Ids 0..3 are special in the LM's text stream:
//   0  end of padding (EPAD): emitted right before a new word starts (word boundary). In the
//      SentencePiece vocabulary it is <unk>, so Encode() also yields 0 for characters it cannot represent.
//   1  BOS; in TTS also the "main speaker" marker.
//   2  EOS; in TTS also the "other speaker" marker. STT may emit it at the end.
//   3  PAD (`existing_text_padding_id`): "nothing this step"; a regular vocabulary entry (<pad>).
// `text_card` (32000 / 8000 / 4000 for the released models, normally == vocab_size()) is the LM-only
// initial text token fed at step 0: it has an embedding row but is never predicted and is NOT a
// vocabulary id (Decode/IdToPiece refuse it).
//
// Thread safety: a loaded TextTokenizer is immutable; all const methods may be called concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace monologue {

inline constexpr int kTextEndOfPaddingId = 0;  // EPAD / word boundary (== <unk> in the vocabulary)
inline constexpr int kTextBosId = 1;
inline constexpr int kTextEosId = 2;
inline constexpr int kTextPadId = 3;                    // existing_text_padding_id
inline constexpr int kTextMainSpeakerId = kTextBosId;   // TTS multi-speaker turns
inline constexpr int kTextOtherSpeakerId = kTextEosId;  // TTS multi-speaker turns

// The LM's initial text token ("text_initial_token_id"): text_card itself, one past the last id the LM
// can predict.
constexpr int TextInitialTokenId(int text_card) { return text_card; }

// Whether a generated id prints nothing in the reference streaming printers (EPAD and PAD).
constexpr bool IsSilentTextId(int id) { return id == kTextEndOfPaddingId || id == kTextPadId; }

namespace text_internal {
class SentencePieceBackend;
}

class TextTokenizer {
 public:
  // Loads a SentencePiece model file. NOT_FOUND (or the errno's code) when it cannot be read;
  // INVALID_ARGUMENT when it is not a SentencePiece model or has fewer than 4 pieces. Both name the file.
  static absl::StatusOr<std::unique_ptr<TextTokenizer>> Load(const std::string& path);
  // Load, checked against the model it serves: INVALID_ARGUMENT when it has fewer pieces than the LM's
  // `text_card` (not this model's tokenizer).
  static absl::StatusOr<std::unique_ptr<TextTokenizer>> LoadForModel(const std::string& path, int64_t text_card);
  // The same from the file's bytes; `name` stands for the file in error messages.
  static absl::StatusOr<std::unique_ptr<TextTokenizer>> FromBytes(std::string_view bytes,
                                                                  std::string_view name);
  ~TextTokenizer();
  TextTokenizer(const TextTokenizer&) = delete;
  TextTokenizer& operator=(const TextTokenizer&) = delete;

  // Where it was loaded from (the file path, or FromBytes' name).
  const std::string& name() const { return name_; }
  // Number of pieces; valid ids are [0, vocab_size()).
  int vocab_size() const { return vocab_size_; }

  // Ids for `text`, without BOS/EOS (like the reference's `tokenizer.encode(text)`). Characters the model
  // cannot represent come out as 0 (<unk>). Invalid UTF-8 is tolerated (it becomes <unk>).
  std::vector<int> Encode(std::string_view text) const;
  // The pieces for `text` (e.g. "▁bonjour"), in Encode's order.
  std::vector<std::string> EncodeAsPieces(std::string_view text) const;

  // SentencePiece detokenization (pieces joined, '▁' -> ' ', leading space dropped, control ids such as
  // BOS/EOS/PAD print nothing, <unk> prints " ⁇ "). INVALID_ARGUMENT naming the id when one is outside
  // [0, vocab_size()).
  absl::StatusOr<std::string> Decode(absl::Span<const int> ids) const;

  // The raw piece for `id` ("▁the", "<pad>", ...). INVALID_ARGUMENT when out of range.
  absl::StatusOr<std::string> IdToPiece(int id) const;
  // The id of `piece`, or 0 (<unk>) when the vocabulary has no such piece.
  int PieceToId(std::string_view piece) const;

  // The model's own special ids (-1 when the model defines none). The released tokenizers, and the test
  // tokenizer, have unk 0, bos 1, eos 2, pad 3. pad_id() falls back to kTextPadId when the model has no
  // PAD piece, as the Rust reference does.
  int unk_id() const;
  int bos_id() const;
  int eos_id() const;
  int pad_id() const;

  // What the reference streaming printers show for one generated text-stream id: nothing for 0 (EPAD)
  // and 3 (PAD), else the raw piece with every '▁' replaced by ' ' (so a word-initial piece starts with a
  // space). Other control ids print their piece text as the reference does ("<s>", "</s>").
  // INVALID_ARGUMENT for ids outside the vocabulary (e.g. text_card).
  absl::StatusOr<std::string> PrintablePiece(int id) const;
  // PrintablePiece over a stream of ids, concatenated.
  absl::StatusOr<std::string> PrintableText(absl::Span<const int> ids) const;

 private:
  TextTokenizer();
  absl::Status CheckId(int id) const;

  std::string name_;
  int vocab_size_ = 0;
  std::unique_ptr<text_internal::SentencePieceBackend> backend_;
};

}  // namespace monologue
