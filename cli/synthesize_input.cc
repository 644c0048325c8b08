// `monologue synthesize`'s inputs (synthesize.h): the text on the command line, stdin, text files (a line
// per utterance) or a JSON script of turns.
#include "cli/synthesize.h"

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace monologue::cli::synthesize {

namespace fs = std::filesystem;

namespace {
// Why `path` cannot be read as a text file ("" when it can be opened): a directory opens as a stream on Linux
// and fails (or throws) at the first read.
std::string NotAFile(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return "does not exist";
  if (fs::is_directory(st)) return "is a directory";
  return "";
}
}  // namespace

absl::StatusOr<std::vector<std::string>> ReadScript(const std::string& path) {
  if (const std::string why = NotAFile(path); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--script ", path, ": ", why));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--script ", path, ": cannot open"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("--script ", path, ": not valid JSON"));
  if (!j.is_array() || j.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--script ", path, ": expected a non-empty JSON list of turns (strings)"));
  }
  std::vector<std::string> turns;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("--script ", path, ": turn ", i + 1, " is not a string"));
    }
    turns.push_back(j[i].get<std::string>());
  }
  return turns;
}

std::optional<int> ReadUtterances(const SynthesizeFlags& f, std::vector<Utterance>& utterances, int& exit_code) {
  const bool use_stdin = f.text.size() == 1 && f.text[0] == "-";
  const int kinds = (f.text.empty() ? 0 : 1) + (f.text_files.empty() ? 0 : 1) + (f.script.empty() ? 0 : 1);
  if (kinds != 1) {
    Error("give exactly one of: TEXT..., - (stdin), --text-file F, --script F");
    return 2;
  }
  if (f.script.empty() && f.voices.size() > 1) {
    Error(absl::StrCat("note: only the first --voice speaks (", f.voices[0],
                       "): a text is one speaker's turn; a --script alternates between two voices"));
  }
  if (use_stdin) {
    utterances.push_back({"stdin", {}, true});
  } else if (!f.text.empty()) {
    std::string joined;
    for (const std::string& t : f.text) absl::StrAppend(&joined, joined.empty() ? "" : " ", t);
    utterances.push_back({"text", {joined}, false});
  } else if (!f.script.empty()) {
    auto turns = ReadScript(f.script);
    if (!turns.ok()) {
      Error(std::string(turns.status().message()));
      return 1;
    }
    utterances.push_back({fs::path(f.script).stem().string(), *turns, false});
    // A script's turns alternate between two speakers (the DSM's main and other speaker): say when the voices
    // given do not match that, as the model still runs (the reference accepts both).
    if (f.voices.size() > 2) {
      Error(
          absl::StrCat("note: --voice ", absl::StrJoin(f.voices.begin() + 2, f.voices.end(), ", --voice "),
                       " conditions the model but never speaks: a script's turns alternate between the first "
                       "two voices"));
    } else if (f.voices.size() < 2 && turns->size() > 1) {
      Error(
          "note: the script's turns 2, 4, ... are the second speaker's, who has no --voice: the model "
          "chooses "
          "that voice (give a second --voice to set it)");
    }
  } else {
    for (const std::string& file : f.text_files) {
      if (const std::string why = NotAFile(file); !why.empty()) {
        Error(absl::StrCat("--text-file ", file, ": ", why));
        exit_code = 1;
        continue;
      }
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        Error(absl::StrCat("--text-file ", file, ": cannot open: ", std::strerror(errno)));
        exit_code = 1;
        continue;
      }
      std::string line;
      int number = 0;
      while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        utterances.push_back({absl::StrCat(fs::path(file).stem().string(), "-", number), {line}, false});
      }
      if (in.bad()) {
        Error(absl::StrCat("--text-file ", file, ": read error after line ", number));
        exit_code = 1;
      }
    }
    if (utterances.empty()) {
      if (exit_code == 0) Error("the text files hold no text");
      return 1;
    }
  }
  return std::nullopt;
}

}  // namespace monologue::cli::synthesize

#endif
