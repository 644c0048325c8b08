#include "tts/tts_voices.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/hf_cache.h"
#include "core/hub/hub.h"

namespace monologue {

namespace fs = std::filesystem;

namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = cur;
    }
  }
  return row[b.size()];
}

}  // namespace

// ---- Voices -----------------------------------------------------------------------------------------------

std::vector<std::string> ListVoices(const std::string& voices_dir_in, const std::string& voice_suffix) {
  std::vector<std::string> names;
  std::error_code ec;
  std::string voices_dir = voices_dir_in;
  if (voices_dir.empty()) {
    auto snapshot = FindHfSnapshot("kyutai/tts-voices");
    if (!snapshot.ok()) return names;
    voices_dir = snapshot->string();
  }
  if (voices_dir.empty() || !fs::is_directory(voices_dir, ec)) return names;
  const std::string suffix = voice_suffix.empty() ? ".safetensors" : voice_suffix;
  for (auto it = fs::recursive_directory_iterator(voices_dir, fs::directory_options::follow_directory_symlink, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    // Not fs::relative: it resolves symlinks, and an HF cache snapshot's files link into blobs/.
    const std::string rel = it->path().lexically_relative(voices_dir).generic_string();
    if (rel.size() > suffix.size() && rel.compare(rel.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        !it->is_directory(ec)) {
      names.push_back(rel.substr(0, rel.size() - suffix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

absl::StatusOr<std::string> ResolveVoiceName(const std::string& voice, const std::string& voices_dir_in,
                                             const std::string& voice_suffix) {
  std::error_code ec;
  constexpr std::string_view kExt = ".safetensors";
  const bool is_file = voice.size() > kExt.size() && voice.compare(voice.size() - kExt.size(), kExt.size(), kExt) == 0;
  if (is_file && fs::is_regular_file(voice, ec)) return voice;
  std::string voices_dir = voices_dir_in;
  std::string where;
  if (voices_dir.empty()) {
    // The voice file itself from the voices repo: the cache, else the Hub (core/hub).
    auto fetched = FetchHfFile("kyutai/tts-voices", is_file ? voice : voice + voice_suffix);
    if (fetched.ok()) return fetched->string();
    if (!absl::IsNotFound(fetched.status())) return fetched.status();  // gated, network, disk: say so
    auto snapshot = FindHfSnapshot("kyutai/tts-voices");
    if (!snapshot.ok() && !hub::IsCacheOnlyMiss(fetched.status())) {
      return absl::NotFoundError(absl::StrCat("voice '", voice, "': ", fetched.status().message(),
                                              " (pass --voices DIR or a .safetensors voice file)"));
    }
    if (!snapshot.ok()) {
      if (is_file) return absl::NotFoundError(absl::StrCat("voice file ", voice, " does not exist"));
      return absl::NotFoundError(absl::StrCat("voice '", voice, "': ", snapshot.status().message(),
                                              ", or pass --voices DIR or a .safetensors voice file"));
    }
    voices_dir = snapshot->string();
    where = " in the kyutai/tts-voices cache snapshot " + voices_dir;
  } else {
    where = " under " + voices_dir;
  }
  const fs::path candidate = is_file ? fs::path(voices_dir) / voice : fs::path(voices_dir) / (voice + voice_suffix);
  if (fs::is_regular_file(candidate, ec)) return candidate.string();
  if (is_file) return absl::NotFoundError(absl::StrCat("voice file ", voice, " does not exist (nor", where, ")"));
  std::vector<std::string> names = ListVoices(voices_dir, voice_suffix);
  std::vector<std::pair<size_t, std::string>> ranked;
  for (const std::string& n : names) {
    // Closest by edit distance, on the file name alone when the query has no folder.
    const std::string key = voice.find('/') == std::string::npos ? fs::path(n).filename().string() : n;
    ranked.emplace_back(EditDistance(voice, key), n);
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> close;
  for (size_t i = 0; i < ranked.size() && i < 5; ++i) close.push_back(ranked[i].second);
  return absl::NotFoundError(absl::StrCat("voice '", voice, "' not found", where, " (looked for ",
                                          candidate.string(), ")",
                                          close.empty() ? std::string(": no voices there")
                                                        : absl::StrCat("; closest: ", absl::StrJoin(close, ", "))));
}

}  // namespace

absl::StatusOr<std::string> ResolveVoice(const std::string& voice, const std::string& voices_dir,
                                         const std::string& voice_suffix) {
  if (voice.empty()) return absl::InvalidArgumentError("empty voice name");
  absl::StatusOr<std::string> path = ResolveVoiceName(voice, voices_dir, voice_suffix);
  if (path.ok()) return path;
  // Not a voice, but something on disk: say what it is rather than how the name failed as a voice name.
  std::error_code ec;
  if (fs::is_directory(voice, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("voice '", voice, "' is a folder: pass --voices ", voice,
                     " and a voice name from it, or a .safetensors voice file"));
  }
  if (fs::is_regular_file(voice, ec) && fs::path(voice).extension() != ".safetensors") {
    return absl::InvalidArgumentError(
        absl::StrCat("voice '", voice,
                     "' is a file but not a voice embedding: a DSM TTS voice is a .safetensors file of "
                     "speaker embeddings (kyutai/tts-voices has one beside each sample, <name>",
                     voice_suffix, "), not audio; ", path.status().message()));
  }
  return path;
}

}  // namespace monologue
