#include "tts/tts_script.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace monologue::tts {
namespace {

// One UTF-8 code point at s[i]; `len` gets its byte length (invalid bytes count as one non-space char).
char32_t DecodeAt(std::string_view s, size_t i, size_t* len) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) {
    *len = 1;
    return 0xFFFD;
  }
  char32_t cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c >> 6) != 0x2) {
      *len = 1;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  *len = n;
  return cp;
}

// Python's `\s` for str patterns (Py_UNICODE_ISSPACE).
bool IsPySpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Length of the run of whitespace at s[i] (0 if none).
size_t SpaceRun(std::string_view s, size_t i) {
  size_t j = i;
  while (j < s.size()) {
    size_t len;
    if (!IsPySpace(DecodeAt(s, j, &len))) break;
    j += len;
  }
  return j - i;
}

size_t DigitRun(std::string_view s, size_t i) {
  size_t j = i;
  while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
  return j - i;
}

// `s"\s*/?>` at i: the end of the tag, or npos.
size_t TagTail(std::string_view s, size_t i) {
  if (s.substr(i, 2) != "s\"") return std::string_view::npos;
  i += 2;
  i += SpaceRun(s, i);
  if (i < s.size() && s[i] == '/') ++i;
  if (i < s.size() && s[i] == '>') return i + 1;
  return std::string_view::npos;
}

struct BreakMatch {
  enum Kind { kNone, kMatch, kNeedMore } kind = kNone;
  size_t end = 0;
  std::string duration;
};

// The reference's `<break\s+time="([0-9]+(?:.[0-9]*)?)s"\s*/?>` at s[i], with its backtracking order
// (greedy digits, the optional group tried first). kNeedMore: not a tag yet, but more text could make one.
BreakMatch MatchBreak(std::string_view s, size_t i, bool final) {
  BreakMatch m;
  constexpr std::string_view kOpen = "<break";
  const std::string_view rest = s.substr(i);
  const size_t cmp = std::min(rest.size(), kOpen.size());
  if (rest.substr(0, cmp) != kOpen.substr(0, cmp)) return m;
  auto need_more = [&] {
    // Any complete tag ends with '>': without one after i, more text may still complete it.
    if (!final && rest.find('>') == std::string_view::npos) m.kind = BreakMatch::kNeedMore;
    return m;
  };
  if (cmp < kOpen.size()) return need_more();
  size_t p = i + kOpen.size();
  const size_t ws = SpaceRun(s, p);
  if (ws == 0) return need_more();
  p += ws;
  constexpr std::string_view kTime = "time=\"";
  if (s.substr(p, kTime.size()) != kTime) return need_more();
  p += kTime.size();
  const size_t digits = DigitRun(s, p);
  for (size_t n = digits; n >= 1; --n) {
    const size_t after = p + n;
    // Optional group present: one char (not a newline) then greedy digits.
    if (after < s.size() && s[after] != '\n') {
      size_t len;
      DecodeAt(s, after, &len);
      const size_t more = DigitRun(s, after + len);
      for (size_t k = more + 1; k-- > 0;) {
        const size_t end = TagTail(s, after + len + k);
        if (end != std::string_view::npos) {
          m.kind = BreakMatch::kMatch;
          m.end = end;
          m.duration = std::string(s.substr(p, after + len + k - p));
          return m;
        }
      }
    }
    const size_t end = TagTail(s, after);
    if (end != std::string_view::npos) {
      m.kind = BreakMatch::kMatch;
      m.end = end;
      m.duration = std::string(s.substr(p, n));
      return m;
    }
  }
  return need_more();
}

// Python float() of the captured duration ("1", "1.", "0.5"; anything else fails there too).
absl::StatusOr<double> ParseDuration(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || text.find_first_of("eExXnNiI") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("break tag: time=\"", text, "s\" is not a number of seconds"));
  }
  return v;
}

// Round half to even, as Python's round().
int RoundHalfEven(double x) {
  const int saved = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(x);
  std::fesetround(saved);
  return static_cast<int>(r);
}

// The offset of the first byte of `text` that is not part of a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing past U+10FFFF), or npos. The tokenizer would otherwise take such
// bytes as they are, and the model would speak whatever they map to.
size_t FirstInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      n = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + n >= text.size()) return i;  // cut short
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return i;
    }
    i += n + 1;
  }
  return std::string_view::npos;
}

absl::Status CheckUtf8(std::string_view text) {
  const size_t bad = FirstInvalidUtf8(text);
  if (bad == std::string_view::npos) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "text is not valid UTF-8: byte 0x", absl::Hex(static_cast<unsigned char>(text[bad]), absl::kZeroPad2),
      " at byte ", bad, " (after \"",
      std::string(text.substr(bad >= 20 ? bad - 20 : 0, std::min<size_t>(bad, 20))), "\")"));
}

}  // namespace

ScriptBuilder::ScriptBuilder(EncodeFn encode, ScriptOptions options)
    : encode_(std::move(encode)), options_(options) {}

void ScriptBuilder::AddWord(std::string_view word, std::vector<Entry>& out) {
  Entry e;
  e.text = std::string(word);
  e.tokens = encode_(word);
  if (first_content_) {
    const int speaker = turn_ % 2;
    if (options_.multi_speaker && last_speaker_ != speaker) {
      last_speaker_ = speaker;
      e.tokens.insert(e.tokens.begin(),
                      static_cast<int>(speaker == 0 ? options_.ids.main : options_.ids.other));
    }
    first_content_ = false;
  }
  if (options_.padding_between > 0) {
    e.padding = std::max(0, options_.padding_between + static_cast<int>(e.tokens.size()) - 1);
  }
  out.push_back(std::move(e));
}

absl::StatusOr<std::vector<Entry>> ScriptBuilder::Drain(bool final) {
  std::vector<Entry> out;
  const std::string_view s = pending_;
  size_t p = 0;  // start of the current word
  size_t i = 0;  // scan position
  while (i < s.size()) {
    if (s[i] == '<') {
      BreakMatch m = MatchBreak(s, i, final);
      if (m.kind == BreakMatch::kNeedMore) break;  // keep from the current word on
      if (m.kind == BreakMatch::kMatch) {
        if (i > p) AddWord(s.substr(p, i - p), out);
        auto seconds = ParseDuration(m.duration);
        if (!seconds.ok()) {
          pending_.erase(0, m.end);
          return seconds.status();
        }
        Entry pause;
        pause.padding = RoundHalfEven(*seconds * options_.frame_rate);
        out.push_back(std::move(pause));
        p = i = m.end;
        continue;
      }
    }
    const size_t ws = SpaceRun(s, i);
    if (ws > 0) {
      if (i > p) AddWord(s.substr(p, i - p), out);
      p = i = i + ws;
      continue;
    }
    size_t len;
    DecodeAt(s, i, &len);
    i += len;
  }
  if (final && p < s.size() && i >= s.size()) {
    AddWord(s.substr(p), out);
    p = s.size();
  }
  pending_.erase(0, p);
  return out;
}

absl::StatusOr<std::vector<Entry>> ScriptBuilder::Push(std::string_view text) {
  std::string raw = raw_tail_ + std::string(text);
  raw_tail_.clear();
  // Keep an incomplete UTF-8 sequence at the end for the next push.
  size_t cut = raw.size();
  for (size_t back = 1; back <= 3 && back <= raw.size(); ++back) {
    const auto b = static_cast<unsigned char>(raw[raw.size() - back]);
    if ((b >> 6) == 0x2) continue;  // continuation byte
    const size_t need = (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
    if (need > back) cut = raw.size() - back;
    break;
  }
  raw_tail_ = raw.substr(cut);
  raw.resize(cut);
  RETURN_IF_ERROR(CheckUtf8(raw));
  // Normalisation (character-local, so chunking cannot change it).
  std::string norm;
  norm.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw.compare(i, 3, "\xE2\x80\x99") == 0) {
      norm.push_back('\'');
      i += 2;
    } else if (raw[i] == ':' || (static_cast<unsigned char>(raw[i]) < 0x20 && raw[i] != '\n') ||
               raw[i] == 0x7F) {
      // Control characters (tabs, NULs, escapes) separate words as spaces do; ':' as the reference does.
      norm.push_back(' ');
    } else if (raw[i] != '(' && raw[i] != ')') {
      norm.push_back(raw[i]);
    }
  }
  pending_ += norm;
  return Drain(/*final=*/false);
}

absl::StatusOr<std::vector<Entry>> ScriptBuilder::EndTurn() {
  std::vector<Entry> out;
  if (!raw_tail_.empty()) {
    pending_ += raw_tail_;  // an invalid trailing sequence stays part of the last word
    raw_tail_.clear();
  }
  auto drained = Drain(/*final=*/true);
  if (!drained.ok()) return drained.status();
  out = std::move(*drained);
  pending_.clear();
  ++turn_;
  first_content_ = true;
  return out;
}

absl::StatusOr<std::vector<Entry>> ScriptBuilder::Finish() {
  if (!raw_tail_.empty()) {
    // A sequence cut off at the end of the text, kept for a next push that did not come.
    RETURN_IF_ERROR(CheckUtf8(raw_tail_));
    pending_ += raw_tail_;
    raw_tail_.clear();
  }
  auto drained = Drain(/*final=*/true);
  pending_.clear();
  return drained;
}

absl::StatusOr<std::vector<Entry>> ScriptToEntries(const EncodeFn& encode, const ScriptOptions& options,
                                                   const std::vector<std::string>& turns) {
  ScriptBuilder builder(encode, options);
  std::vector<Entry> all;
  for (size_t t = 0; t < turns.size(); ++t) {
    auto pushed = builder.Push(turns[t]);
    if (!pushed.ok()) return pushed.status();
    all.insert(all.end(), pushed->begin(), pushed->end());
    auto ended = builder.EndTurn();
    if (!ended.ok()) return ended.status();
    all.insert(all.end(), ended->begin(), ended->end());
  }
  return all;
}

}  // namespace monologue::tts
