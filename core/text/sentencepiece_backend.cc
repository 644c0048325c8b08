// No Abseil header may be included here (see sentencepiece_backend.h).
#include "core/text/sentencepiece_backend.h"

#include <sentencepiece_processor.h>

namespace monologue::text_internal {

struct SentencePieceBackend::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {
std::string ErrorText(const sentencepiece::util::Status& status) {
  if (status.ok()) return "";
  std::string text = status.ToString();
  return text.empty() ? "unknown sentencepiece error" : text;
}
}  // namespace

SentencePieceBackend::SentencePieceBackend() : impl_(std::make_unique<Impl>()) {}
SentencePieceBackend::~SentencePieceBackend() = default;

std::string SentencePieceBackend::LoadFromSerializedProto(std::string_view bytes) {
  return ErrorText(impl_->processor.LoadFromSerializedProto(bytes));
}

int SentencePieceBackend::GetPieceSize() const { return impl_->processor.GetPieceSize(); }
std::string SentencePieceBackend::IdToPiece(int id) const { return impl_->processor.IdToPiece(id); }
int SentencePieceBackend::PieceToId(std::string_view piece) const {
  return impl_->processor.PieceToId(piece);
}
bool SentencePieceBackend::IsControl(int id) const { return impl_->processor.IsControl(id); }
bool SentencePieceBackend::IsUnknown(int id) const { return impl_->processor.IsUnknown(id); }
int SentencePieceBackend::unk_id() const { return impl_->processor.unk_id(); }
int SentencePieceBackend::bos_id() const { return impl_->processor.bos_id(); }
int SentencePieceBackend::eos_id() const { return impl_->processor.eos_id(); }
int SentencePieceBackend::pad_id() const { return impl_->processor.pad_id(); }

std::string SentencePieceBackend::Encode(std::string_view text, std::vector<int>* ids) const {
  return ErrorText(impl_->processor.Encode(text, ids));
}

std::string SentencePieceBackend::EncodeAsPieces(std::string_view text,
                                                 std::vector<std::string>* pieces) const {
  return ErrorText(impl_->processor.Encode(text, pieces));
}

std::string SentencePieceBackend::Decode(const std::vector<int>& ids, std::string* text) const {
  return ErrorText(impl_->processor.Decode(ids, text));
}

}  // namespace monologue::text_internal
