// A finished (or growing) transcript assembled from session events, and its output formats: plain text,
// JSON, SubRip (srt) and WebVTT (vtt). Torch-free; shared by the CLI and the service.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "asr/asr_engine.h"

namespace monologue {

class TextTokenizer;

struct AsrTranscript {
  std::string input;      // what was transcribed (a path, "stdin")
  double duration_s = 0;  // input audio, seconds
  std::string text;       // the text pieces as emitted, concatenated (the reference printer's output)
  std::vector<AsrWord> words;
  std::vector<double> vad_times;        // end of each input frame, seconds
  std::vector<std::vector<float>> vad;  // P(no voice activity) per head, per frame
  std::vector<double> end_of_turn;      // times
  std::string warning;                  // e.g. the input broke off half-way
  bool ended = false;

  // Folds one event in (kText appends to `text`, kWord to `words`, ...).
  void Add(const AsrEvent& event);
};

// The text of a finished STT token stream: every id <= `padding_id` (EPAD 0, BOS, EOS, PAD 3) dropped, as
// the reference's `tokens[tokens > padding_id]`, then the rest decoded by `tokenizer`. INVALID_ARGUMENT
// for ids outside the vocabulary; UNIMPLEMENTED in a build without sentencepiece.
absl::StatusOr<std::string> DecodeTranscript(const TextTokenizer& tokenizer, absl::Span<const int> ids,
                                             int padding_id = 3);

enum class TranscriptFormat { kTxt, kJson, kSrt, kVtt };

// "txt" | "json" | "srt" | "vtt".
absl::StatusOr<TranscriptFormat> ParseTranscriptFormat(std::string_view name);
const char* TranscriptFormatExtension(TranscriptFormat format);

// txt: the text with surrounding whitespace trimmed, one line.
// json: {"input", "duration", "text", "words": [{"text", "start", "end", "tokens"}], "vad": {"horizons",
//        "frame_seconds", "times", "no_voice"} (only when the model has VAD heads), "end_of_turn": [times],
//        "model": {...}, "warning" (only when set)}, pretty-printed (indent 1) or one line (`compact`).
// srt / vtt: the words grouped into cues of at most 12 words and 6 s, a new cue after a pause over 1 s.
std::string FormatTranscript(const AsrTranscript& transcript, TranscriptFormat format,
                             const AsrModelInfo& info, bool compact = false);

// Cue grouping used by srt / vtt (exposed for tests): indices [begin, end) into words.
std::vector<std::pair<size_t, size_t>> GroupCues(const std::vector<AsrWord>& words);
// "HH:MM:SS,mmm" (srt) or "HH:MM:SS.mmm" (vtt), rounded to the millisecond.
std::string CueTime(double seconds, char separator);

}  // namespace monologue
