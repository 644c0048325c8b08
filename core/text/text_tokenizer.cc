#include "core/text/text_tokenizer.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/text/sentencepiece_backend.h"

namespace monologue {
namespace {

// Debian's Abseil has its own absl::string_view: std::string_view needs converting for StrCat.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr std::string_view kWordBoundary = "\xE2\x96\x81";  // U+2581 '▁'

}  // namespace

TextTokenizer::TextTokenizer() : backend_(std::make_unique<text_internal::SentencePieceBackend>()) {}
TextTokenizer::~TextTokenizer() = default;

absl::StatusOr<std::unique_ptr<TextTokenizer>> TextTokenizer::LoadForModel(const std::string& path,
                                                                         int64_t text_card) {
  auto tokenizer = Load(path);
  if (tokenizer.ok() && (*tokenizer)->vocab_size() < text_card) {
    return absl::InvalidArgumentError(absl::StrCat("text tokenizer ", path, " has ", (*tokenizer)->vocab_size(),
                                                   " pieces but the model's text_card is ", text_card,
                                                   ": not this model's tokenizer"));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<TextTokenizer>> TextTokenizer::Load(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open tokenizer model ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer model ", path, " is not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open tokenizer model ", path));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read tokenizer model ", path));
  return FromBytes(bytes.str(), path);
}

absl::StatusOr<std::unique_ptr<TextTokenizer>> TextTokenizer::FromBytes(std::string_view bytes,
                                                                        std::string_view name) {
  std::unique_ptr<TextTokenizer> tokenizer(new TextTokenizer());
  tokenizer->name_ = std::string(name);
  if (bytes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer model ", Sv(name), " is empty: not a SentencePiece model"));
  }
  if (std::string error = tokenizer->backend_->LoadFromSerializedProto(bytes); !error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer model ", Sv(name), " is not a valid SentencePiece model (", error, ")"));
  }
  tokenizer->vocab_size_ = tokenizer->backend_->GetPieceSize();
  if (tokenizer->vocab_size_ <= kTextPadId) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer model ", Sv(name), " has ",
                                                   tokenizer->vocab_size_,
                                                   " pieces; the text-stream conventions need ids 0..3"));
  }
  return tokenizer;
}

absl::Status TextTokenizer::CheckId(int id) const {
  if (id < 0 || id >= vocab_size_) {
    return absl::InvalidArgumentError(absl::StrCat("text token id ", id, " is outside the vocabulary of ",
                                                   name_, " (", vocab_size_, " pieces)"));
  }
  return absl::OkStatus();
}

std::vector<int> TextTokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  // Encoding fails only when no model is loaded, which a constructed TextTokenizer rules out.
  if (!backend_->Encode(text, &ids).empty()) ids.clear();
  return ids;
}

std::vector<std::string> TextTokenizer::EncodeAsPieces(std::string_view text) const {
  std::vector<std::string> pieces;
  if (!backend_->EncodeAsPieces(text, &pieces).empty()) pieces.clear();
  return pieces;
}

absl::StatusOr<std::string> TextTokenizer::Decode(absl::Span<const int> ids) const {
  for (int id : ids) {
    if (absl::Status status = CheckId(id); !status.ok()) return status;
  }
  std::string text;
  if (std::string error = backend_->Decode(std::vector<int>(ids.begin(), ids.end()), &text); !error.empty()) {
    return absl::InternalError(absl::StrCat("decoding with ", name_, ": ", error));
  }
  return text;
}

absl::StatusOr<std::string> TextTokenizer::IdToPiece(int id) const {
  if (absl::Status status = CheckId(id); !status.ok()) return status;
  return backend_->IdToPiece(id);
}

int TextTokenizer::PieceToId(std::string_view piece) const { return backend_->PieceToId(piece); }

int TextTokenizer::unk_id() const { return backend_->unk_id(); }
int TextTokenizer::bos_id() const { return backend_->bos_id(); }
int TextTokenizer::eos_id() const { return backend_->eos_id(); }
int TextTokenizer::pad_id() const {
  const int id = backend_->pad_id();
  return id >= 0 ? id : kTextPadId;
}

absl::StatusOr<std::string> TextTokenizer::PrintablePiece(int id) const {
  if (IsSilentTextId(id)) return std::string();
  if (absl::Status status = CheckId(id); !status.ok()) return status;
  return absl::StrReplaceAll(backend_->IdToPiece(id), {{Sv(kWordBoundary), " "}});
}

absl::StatusOr<std::string> TextTokenizer::PrintableText(absl::Span<const int> ids) const {
  std::string text;
  for (int id : ids) {
    absl::StatusOr<std::string> piece = PrintablePiece(id);
    if (!piece.ok()) return piece.status();
    text += *piece;
  }
  return text;
}

}  // namespace monologue
