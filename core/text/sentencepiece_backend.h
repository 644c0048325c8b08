// A thin wrapper over sentencepiece::SentencePieceProcessor with plain C++ types only.
//
// Why it exists: sentencepiece's public header declares `namespace absl { using std::string_view; }`,
// which collides with Debian's Abseil (built with its own absl::string_view class), so no translation unit
// may include both. sentencepiece_backend.cc includes sentencepiece and no Abseil header; everything
// else (text_tokenizer.cc) talks to it through this header. Internal to core/text/.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace monologue::text_internal {

class SentencePieceBackend {
 public:
  SentencePieceBackend();
  ~SentencePieceBackend();
  SentencePieceBackend(const SentencePieceBackend&) = delete;
  SentencePieceBackend& operator=(const SentencePieceBackend&) = delete;

  // Loads a serialized ModelProto (the contents of a .model file). Empty string on success, else
  // sentencepiece's error text.
  std::string LoadFromSerializedProto(std::string_view bytes);

  int GetPieceSize() const;
  // `id` must be in [0, GetPieceSize()).
  std::string IdToPiece(int id) const;
  // The unknown id when `piece` is not in the vocabulary.
  int PieceToId(std::string_view piece) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  int unk_id() const;
  int bos_id() const;
  int eos_id() const;
  int pad_id() const;

  // Empty string on success, else sentencepiece's error text. Ids must be in range.
  std::string Encode(std::string_view text, std::vector<int>* ids) const;
  std::string EncodeAsPieces(std::string_view text, std::vector<std::string>* pieces) const;
  std::string Decode(const std::vector<int>& ids, std::string* text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace monologue::text_internal
