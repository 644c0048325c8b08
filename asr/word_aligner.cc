#include "asr/word_aligner.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "core/text/text_tokenizer.h"

namespace monologue {
namespace {

#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
// Length in bytes of the whitespace character at `s[i]` (Python's str.isspace), 0 if none.
size_t WhitespaceAt(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
  auto byte = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  if (c == 0xc2 && (byte(1) == 0x85 || byte(1) == 0xa0)) return 2;
  if (c == 0xe1 && byte(1) == 0x9a && byte(2) == 0x80) return 3;  // U+1680
  if (c == 0xe2 && byte(1) == 0x80) {
    const unsigned char b = byte(2);
    if ((b >= 0x80 && b <= 0x8a) || b == 0xa8 || b == 0xa9 || b == 0xaf)
      return 3;  // U+2000-200A, 2028/9, 202F
  }
  if (c == 0xe2 && byte(1) == 0x81 && byte(2) == 0x9f) return 3;  // U+205F
  if (c == 0xe3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;  // U+3000
  return 0;
}

// Python's str.split() without arguments.
std::vector<std::string> SplitWhitespace(std::string_view s) {
  std::vector<std::string> out;
  std::string current;
  for (size_t i = 0; i < s.size();) {
    if (size_t n = WhitespaceAt(s, i); n > 0) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
      i += n;
    } else {
      current.push_back(s[i]);
      ++i;
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}
#endif

}  // namespace

WordAligner::WordAligner(const TextTokenizer* tokenizer, const WordAlignerOptions& options)
    : tokenizer_(tokenizer), options_(options) {}

void WordAligner::Reset() {
  tokens_.clear();
  last_boundary_.reset();
  finished_ = false;
}

std::vector<AsrWord> WordAligner::Push(int token) {
  if (finished_) return {};
  const int64_t index = static_cast<int64_t>(tokens_.size());
  tokens_.push_back(token);
  if (token != options_.end_of_padding_id) return {};
  std::vector<AsrWord> words;
  if (last_boundary_.has_value()) words = Segment(*last_boundary_ + 1, static_cast<double>(index));
  last_boundary_ = index;
  return words;
}

std::vector<AsrWord> WordAligner::Finish() {
  if (finished_) return {};
  finished_ = true;
  if (!last_boundary_.has_value() || tokenizer_ == nullptr) return {};
#ifndef MONOLOGUE_HAVE_SENTENCEPIECE
  return {};
#else
  const int64_t start = *last_boundary_ + 1;
  const int64_t n = static_cast<int64_t>(tokens_.size());
  const int eos = tokenizer_->eos_id();
  double end = std::min(static_cast<double>(n), static_cast<double>(start) + options_.frame_rate);
  for (int64_t i = start; i < n; ++i) {
    if (eos >= 0 && tokens_[i] == eos) {
      end = static_cast<double>(i);
      break;
    }
  }
  return Segment(start, end);
#endif
}

std::vector<AsrWord> WordAligner::Segment(int64_t start, double end) const {
  if (tokenizer_ == nullptr) return {};
#ifndef MONOLOGUE_HAVE_SENTENCEPIECE
  (void)start;
  (void)end;
  return {};
#else
  const int64_t stop = std::min<int64_t>(static_cast<int64_t>(std::ceil(end)), tokens_.size());
  std::vector<int> ids;
  for (int64_t i = start; i < stop; ++i) {
    if (tokens_[i] > options_.padding_id) ids.push_back(tokens_[i]);
  }
  auto decoded = tokenizer_->Decode(ids);
  if (!decoded.ok()) {
    // Ids outside the vocabulary cannot come from a model whose text_card matches its tokenizer (checked at
    // load); drop such a segment rather than fail the stream.
    return {};
  }
  const std::vector<std::string> parts = SplitWhitespace(*decoded);
  if (parts.empty()) return {};
  auto time = [&](double position) {
    return std::max(0.0, position / options_.frame_rate - options_.offset_seconds);
  };
  std::vector<AsrWord> words;
  if (parts.size() == 1) {
    words.push_back(AsrWord{*decoded, time(static_cast<double>(start)), time(end), ids});
    return words;
  }
  // Ids per word: a piece starting with U+2581 starts a word. (When that does not give one group per word,
  // e.g. a word made of a lone U+2581 piece, the reference's counts are used instead.)
  std::vector<std::vector<int> > groups;
  for (int id : ids) {
    auto piece = tokenizer_->IdToPiece(id);
    const bool starts_word = piece.ok() && piece->rfind("\xe2\x96\x81", 0) == 0;
    if (groups.empty() || starts_word) groups.emplace_back();
    groups.back().push_back(id);
  }
  const bool grouped = groups.size() == parts.size();
  double position = static_cast<double>(start);
  size_t next_id = 0;
  for (size_t w = 0; w < parts.size(); ++w) {
    const bool last = w + 1 == parts.size();
    const size_t n_tokens = last ? 0 : tokenizer_->Encode(parts[w]).size();
    AsrWord word{
        parts[w], time(position), last ? time(end) : time(position + static_cast<double>(n_tokens)), {}};
    if (grouped) {
      word.tokens = groups[w];
    } else if (last) {
      word.tokens.assign(ids.begin() + static_cast<std::ptrdiff_t>(next_id), ids.end());
    } else {
      for (size_t k = 0; k < n_tokens && next_id < ids.size(); ++k) word.tokens.push_back(ids[next_id++]);
    }
    words.push_back(std::move(word));
    position += static_cast<double>(n_tokens);
  }
  return words;
#endif
}

std::vector<AsrWord> AlignWords(const TextTokenizer& tokenizer, const std::vector<int>& tokens,
                                const WordAlignerOptions& options) {
  WordAligner aligner(&tokenizer, options);
  std::vector<AsrWord> words;
  for (int t : tokens) {
    for (AsrWord& w : aligner.Push(t)) words.push_back(std::move(w));
  }
  for (AsrWord& w : aligner.Finish()) words.push_back(std::move(w));
  return words;
}

}  // namespace monologue
