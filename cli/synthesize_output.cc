// `monologue synthesize`'s outputs (synthesize.h): where each utterance goes (paths and patterns), the audio
// writers (WAV/Ogg through core/audio, raw PCM here), the words JSON and the codes safetensors.
#include "cli/synthesize.h"

#if defined(MONOLOGUE_HAVE_TTS) && defined(MONOLOGUE_HAVE_FFMPEG)
#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/io/output_file.h"
#include "core/io/safetensors.h"

namespace monologue::cli::synthesize {
namespace {

namespace fs = std::filesystem;

// Raw PCM to a file or stdout (s16le / f32le), frame by frame.
class RawWriter : public AudioWriter {
 public:
  RawWriter(FILE* file, bool owned, bool float32) : file_(file), owned_(owned), float32_(float32) {}
  ~RawWriter() override { (void)Close(); }
  absl::Status Write(std::span<const float> samples) override {
    if (file_ == nullptr) return absl::FailedPreconditionError("write after close");
    size_t written;
    if (float32_) {
      written = std::fwrite(samples.data(), sizeof(float), samples.size(), file_);
    } else {
      std::vector<int16_t> pcm(samples.size());
      for (size_t i = 0; i < samples.size(); ++i) {
        const float x = std::isnan(samples[i]) ? 0.0f : samples[i];
        pcm[i] = static_cast<int16_t>(std::clamp(std::lround(x * 32768.0f), -32768L, 32767L));
      }
      written = std::fwrite(pcm.data(), sizeof(int16_t), pcm.size(), file_);
    }
    std::fflush(file_);
    if (written != samples.size()) return absl::UnavailableError(std::strerror(errno));
    samples_ += static_cast<int64_t>(samples.size());
    return absl::OkStatus();
  }
  absl::Status Close() override {
    if (file_ == nullptr) return absl::OkStatus();
    const bool ok = owned_ ? std::fclose(file_) == 0 : std::fflush(file_) == 0;
    file_ = nullptr;
    return ok ? absl::OkStatus() : absl::UnavailableError("cannot finish writing the raw audio");
  }
  int64_t samples_written() const override { return samples_; }

 private:
  FILE* file_;
  bool owned_;
  bool float32_;
  int64_t samples_ = 0;
};

std::string Expand(const std::string& pattern, const Utterance& u, size_t index, const std::string& ext,
                   bool several) {
  if (pattern.empty()) return "";
  const bool is_pattern = pattern.find("{name}") != std::string::npos || pattern.find("{index}") != std::string::npos;
  if (is_pattern) return absl::StrReplaceAll(pattern, {{"{name}", u.name}, {"{index}", std::to_string(index + 1)}});
  if (!several) return pattern;
  return (fs::path(pattern) / absl::StrCat(u.name, ext)).string();
}

// With several utterances, why `pattern` (given to `flag`) cannot hold them all ("" when it can): it names
// one file (an existing one, or a new path ending in an audio, JSON or safetensors extension) instead of a
// directory or a pattern.
std::string OneFileForSeveral(const char* flag, const std::string& pattern, size_t n) {
  if (pattern.empty() || pattern.find("{name}") != std::string::npos ||
      pattern.find("{index}") != std::string::npos) {
    return "";
  }
  std::error_code ec;
  const fs::path path(pattern);
  static const std::set<std::string> kFileExtensions = {".wav", ".ogg",  ".opus", ".raw",        ".pcm",
                                                        ".mp3", ".flac", ".json", ".safetensors"};
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool file = fs::exists(path, ec) ? !fs::is_directory(path, ec) : kFileExtensions.contains(ext);
  if (!file) return "";
  return absl::StrCat(
      flag, " ", pattern, ": ", n, " utterances cannot all go to one file; give a directory (", flag, " ",
      path.parent_path().empty() ? "" : path.parent_path().string() + "/", path.stem().string(),
      "/) or a pattern (", flag, " '",
      (path.parent_path() / absl::StrCat(path.stem().string(), "-{index}", path.extension().string()))
          .string(),
      "')");
}

}  // namespace

std::optional<int> PlanJobs(const SynthesizeFlags& f, const std::vector<Utterance>& utterances,
                            std::vector<std::unique_ptr<Job>>& jobs) {
  const size_t n = utterances.size();
  const bool several = n > 1;
  if (f.output.empty()) {
    Error("-o OUT is required (a .wav/.ogg file, - for stdout, or a directory / {name} pattern for several)");
    return 2;
  }
  if (several && f.output == "-") {
    Error("-o -: several utterances cannot all go to stdout (use a directory or a {index} pattern)");
    return 2;
  }
  if (several) {
    for (const auto& [flag, pattern] : {std::pair<const char*, const std::string*>{"-o", &f.output},
                                        {"--words-out", &f.words_out},
                                        {"--codes-out", &f.codes_out}}) {
      if (const std::string why = OneFileForSeveral(flag, *pattern, n); !why.empty()) {
        Error(why);
        return 2;
      }
    }
  }
  const std::string ext = f.format == "ogg" ? ".ogg" : f.format == "s16le" || f.format == "f32le" ? ".raw" : ".wav";
  std::set<std::string> seen;
  for (size_t i = 0; i < n; ++i) {
    auto job = std::make_unique<Job>();
    job->index = i;
    job->utterance = utterances[i];
    job->audio_path = Expand(f.output, utterances[i], i, ext, several);
    job->words_path = Expand(f.words_out, utterances[i], i, ".words.json", several);
    job->codes_path = Expand(f.codes_out, utterances[i], i, ".codes.safetensors", several);
    if (job->audio_path != "-" && !seen.insert(fs::absolute(job->audio_path).lexically_normal().string()).second) {
      Error(absl::StrCat("two utterances would both be written to ", job->audio_path, " (use -o with {index})"));
      return 2;
    }
    // Unwritable outputs fail now, not after the synthesis.
    for (const std::string* path : {&job->audio_path, &job->words_path, &job->codes_path}) {
      if (path->empty() || *path == "-") continue;
      if (absl::Status st = CheckWritable(*path); !st.ok()) {
        Error(std::string(st.message()));
        return 1;
      }
    }
    jobs.push_back(std::move(job));
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<AudioWriter>> OpenOutput(const std::string& path, const std::string& format,
                                                        const std::string& write_path) {
  std::string fmt = format;
  if (fmt.empty()) {
    std::string ext = fs::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (path == "-" || ext.empty() || ext == ".wav") {
      fmt = "wav";
    } else if (ext == ".ogg" || ext == ".opus") {
      fmt = "ogg";
    } else if (ext == ".raw") {
      fmt = "s16le";
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot write ", path, ": no audio format for '", ext,
                       "' (.wav, .ogg, .opus or .raw; or choose one with --format wav|ogg|s16le|f32le)"));
    }
  }
  const std::string target = write_path.empty() ? path : write_path;
  std::error_code ec;
  if (target != "-" && fs::path(target).has_parent_path()) {
    fs::create_directories(fs::path(target).parent_path(), ec);
  }
  if (target != "-" && fs::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": it is a directory"));
  }
  if (fmt == "s16le" || fmt == "f32le") {
    FILE* f = target == "-" ? stdout : std::fopen(target.c_str(), "wb");
    if (f == nullptr) return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    return std::unique_ptr<AudioWriter>(new RawWriter(f, target != "-", fmt == "f32le"));
  }
  AudioWriterOptions options;
  options.format = fmt;
  auto writer = OpenAudioWriter(target, options);
  if (!writer.ok()) return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", writer.status().message()));
  return writer;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileReplacing(path, text);
}

absl::Status WriteCodes(const std::string& path, const TtsSession& session, const TtsModelInfo& info) {
  std::vector<int64_t> codes = session.codes();
  std::vector<int64_t> text = session.text_tokens();
  const int64_t q = info.num_codebooks, frames = static_cast<int64_t>(codes.size()) / q;
  at::Tensor c = at::tensor(codes, at::kLong).view({frames, q}).t().unsqueeze(0).contiguous();
  at::Tensor t = at::tensor(text, at::kLong);
  std::map<std::string, std::string> meta = {{"sample_rate", std::to_string(info.sample_rate)},
                                             {"frame_rate", absl::StrCat(info.frame_rate)},
                                             {"codebooks", std::to_string(q)},
                                             {"delay_steps", std::to_string(info.delay_steps)}};
  return WriteSafeTensors(path, {{"codes", c}, {"text_tokens", t}}, meta);
}

}  // namespace monologue::cli::synthesize

#endif
