// libmonologue_spm_shim.so: sentencepiece behind the SpmApi table (see core/text/sentencepiece_api.h).
// No Abseil header may be included here (sentencepiece's header declares its own absl::string_view).
#include <sentencepiece_processor.h>

#include "core/text/sentencepiece_api.h"

namespace {

using sentencepiece::SentencePieceProcessor;

const SentencePieceProcessor& P(const void* h) { return *static_cast<const SentencePieceProcessor*>(h); }

std::string ErrorText(const sentencepiece::util::Status& status) {
  if (status.ok()) return "";
  std::string text = status.ToString();
  return text.empty() ? "unknown sentencepiece error" : text;
}

const monologue::text_internal::SpmApi kApi = {
    monologue::text_internal::kSpmApiVersion,
    []() -> void* { return new SentencePieceProcessor(); },
    [](void* h) { delete static_cast<SentencePieceProcessor*>(h); },
    [](void* h, std::string_view bytes) {
      return ErrorText(static_cast<SentencePieceProcessor*>(h)->LoadFromSerializedProto(bytes));
    },
    [](const void* h) { return P(h).GetPieceSize(); },
    [](const void* h, int id) { return P(h).IdToPiece(id); },
    [](const void* h, std::string_view piece) { return P(h).PieceToId(piece); },
    [](const void* h, int id) { return P(h).IsControl(id); },
    [](const void* h, int id) { return P(h).IsUnknown(id); },
    [](const void* h, int which) {
      switch (which) {
        case 0: return P(h).unk_id();
        case 1: return P(h).bos_id();
        case 2: return P(h).eos_id();
        default: return P(h).pad_id();
      }
    },
    [](const void* h, std::string_view text, std::vector<int>* ids) { return ErrorText(P(h).Encode(text, ids)); },
    [](const void* h, std::string_view text, std::vector<std::string>* pieces) {
      return ErrorText(P(h).Encode(text, pieces));
    },
    [](const void* h, const std::vector<int>& ids, std::string* text) { return ErrorText(P(h).Decode(ids, text)); },
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const monologue::text_internal::SpmApi* monologue_spm_api_v1() {
  return &kApi;
}
