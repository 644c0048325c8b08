#include "asr/transcript.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/text/text_tokenizer.h"
#include "nlohmann/json.hpp"

namespace monologue {

void AsrTranscript::Add(const AsrEvent& event) {
  switch (event.kind) {
    case AsrEvent::Kind::kText:
      text += event.text;
      break;
    case AsrEvent::Kind::kWord:
      words.push_back(event.word);
      break;
    case AsrEvent::Kind::kVad:
      vad_times.push_back(event.time_s);
      vad.push_back(event.vad);
      break;
    case AsrEvent::Kind::kEndOfTurn:
      end_of_turn.push_back(event.time_s);
      break;
    case AsrEvent::Kind::kEnd:
      ended = true;
      break;
  }
}

absl::StatusOr<std::string> DecodeTranscript(const TextTokenizer& tokenizer, absl::Span<const int> ids,
                                             int padding_id) {
#ifdef MONOLOGUE_HAVE_SENTENCEPIECE
  std::vector<int> kept;
  for (int id : ids) {
    if (id > padding_id) kept.push_back(id);
  }
  return tokenizer.Decode(kept);
#else
  (void)tokenizer;
  (void)ids;
  (void)padding_id;
  return absl::UnimplementedError("DecodeTranscript: this build has no sentencepiece tokenizer");
#endif
}

absl::StatusOr<TranscriptFormat> ParseTranscriptFormat(std::string_view name) {
  if (name == "txt") return TranscriptFormat::kTxt;
  if (name == "json") return TranscriptFormat::kJson;
  if (name == "srt") return TranscriptFormat::kSrt;
  if (name == "vtt") return TranscriptFormat::kVtt;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown format '", std::string(name), "' (expected txt, json, srt or vtt)"));
}

const char* TranscriptFormatExtension(TranscriptFormat format) {
  switch (format) {
    case TranscriptFormat::kTxt:
      return "txt";
    case TranscriptFormat::kJson:
      return "json";
    case TranscriptFormat::kSrt:
      return "srt";
    case TranscriptFormat::kVtt:
      return "vtt";
  }
  return "txt";
}

std::vector<std::pair<size_t, size_t>> GroupCues(const std::vector<AsrWord>& words) {
  constexpr size_t kMaxWords = 12;
  constexpr double kMaxSeconds = 6.0;
  constexpr double kPause = 1.0;
  std::vector<std::pair<size_t, size_t>> cues;
  size_t begin = 0;
  for (size_t i = 1; i <= words.size(); ++i) {
    if (i == words.size() || i - begin >= kMaxWords || words[i].end_s - words[begin].start_s > kMaxSeconds ||
        words[i].start_s - words[i - 1].end_s > kPause) {
      if (i > begin) cues.emplace_back(begin, i);
      begin = i;
    }
  }
  return cues;
}

std::string CueTime(double seconds, char separator) {
  const int64_t ms = std::llround(std::max(0.0, seconds) * 1000.0);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld%c%03lld", static_cast<long long>(ms / 3600000),
                static_cast<long long>(ms / 60000 % 60), static_cast<long long>(ms / 1000 % 60), separator,
                static_cast<long long>(ms % 1000));
  return buf;
}

namespace {

std::string Trimmed(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::string Cues(const AsrTranscript& t, bool vtt) {
  std::string out = vtt ? "WEBVTT\n\n" : "";
  int index = 1;
  for (const auto& [begin, end] : GroupCues(t.words)) {
    std::vector<std::string> texts;
    for (size_t i = begin; i < end; ++i) texts.push_back(t.words[i].text);
    const double start = t.words[begin].start_s;
    const double stop = std::max(start, t.words[end - 1].end_s);
    if (!vtt) absl::StrAppend(&out, index, "\n");
    const char sep = vtt ? '.' : ',';
    absl::StrAppend(&out, CueTime(start, sep), " --> ", CueTime(stop, sep), "\n", absl::StrJoin(texts, " "),
                    "\n\n");
    ++index;
  }
  return out;
}

}  // namespace

std::string FormatTranscript(const AsrTranscript& t, TranscriptFormat format, const AsrModelInfo& info,
                             bool compact) {
  switch (format) {
    case TranscriptFormat::kTxt:
      return Trimmed(t.text) + "\n";
    case TranscriptFormat::kSrt:
      return Cues(t, false);
    case TranscriptFormat::kVtt:
      return Cues(t, true);
    case TranscriptFormat::kJson:
      break;
  }
  nlohmann::ordered_json j;
  j["input"] = t.input;
  j["duration"] = t.duration_s;
  j["text"] = Trimmed(t.text);
  nlohmann::ordered_json words = nlohmann::ordered_json::array();
  for (const AsrWord& w : t.words) {
    nlohmann::ordered_json word;
    word["text"] = w.text;
    word["start"] = w.start_s;
    word["end"] = w.end_s;
    word["tokens"] = w.tokens;
    words.push_back(std::move(word));
  }
  j["words"] = std::move(words);
  if (info.num_vad_heads > 0) {
    nlohmann::ordered_json vad;
    // The released stt-1b heads predict "no voice activity" over these horizons (DSM stt-rs).
    if (info.num_vad_heads == 4) vad["horizons"] = {0.5, 1.0, 2.0, 3.0};
    vad["frame_seconds"] = 1.0 / info.frame_rate;
    vad["times"] = t.vad_times;
    vad["no_voice"] = t.vad;
    j["vad"] = std::move(vad);
  }
  j["end_of_turn"] = t.end_of_turn;
  j["model"] = {{"dir", info.model_dir},
                {"audio_delay_seconds", info.audio_delay_seconds},
                {"audio_silence_prefix_seconds", info.audio_silence_prefix_seconds}};
  if (!t.warning.empty()) j["warning"] = t.warning;
  const auto replace = nlohmann::ordered_json::error_handler_t::replace;  // invalid UTF-8 never throws
  return (compact ? j.dump(-1, ' ', false, replace) : j.dump(1, ' ', false, replace)) + "\n";
}

}  // namespace monologue
